"""Regenerate the multi-platform latency dataset's artefacts from its database (issue 14).

Writes, beside the database (read-only: it may still be growing): the Parquet export of every record, the
cross-platform ranks (``ranks.json``) and their heat map (``ranks_kendall.png``), and ``DATASHEET.md``: schema,
protocol, machine, per-platform counts, latency range, noise floor and cost, and the rank table. Every figure is
computed by the library (``LatencyStore.export``, ``compare_runs``, ``rank_consistency``); the growth log and the
grow configuration that ``grow_dataset.py`` writes supply the protocol, the costs and the machine's load.

    python benchmarks/datasheet.py                      # the default dataset
    python benchmarks/datasheet.py --db path/to/other.db
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from ladarts.errors import LadartsError
from ladarts.hardware import LatencyStore, compare_runs
from ladarts.hardware.campaign import DRIFT_REFERENCES, REFERENCE
from ladarts.hardware.ranks import rank_consistency
from ladarts.io import atomic_write_json, atomic_write_text
from ladarts.report.ranks import ranks_heatmap, ranks_markdown, short_name

from common import machine, stamp

HERE = Path(__file__).resolve().parent
DEFAULT_DB = HERE / "data" / "multiplatform" / "darts_cifar_latency.db"

#: What the columns mean, for the schema section (the column lists themselves are read from the database).
TABLES = {
    "meta": "application id and schema version",
    "platforms": "one row per platform: its key, `Platform.settings()` and fingerprint (JSON), the reference's name",
    "architectures": "one row per architecture: `arch_hash` (canonical genotype hash) and the genotype (JSON)",
    "measurements": "one row per (architecture, platform, metric, run): the ratio, raw estimators, raw pairs, costs",
    "ref_timings": "every timing of the reference (per session `calibration`) and of the drift references (`drift`)",
    "op_timings": "per-op timings for op-sum LPMs (empty in this dataset)",
}
TERMS = """\
- **ratio** (`measurements.ratio`): the median over the timed pairs of t(architecture) / t(reference), the two
  timed back to back in alternating order. It is the stored truth: load and drift slow both members of a pair,
  so the ratio cancels most of them.
- **reference**: DARTS_V2 (`platforms.ref_name`), timed interleaved with every architecture and alone at the start
  of each session. A platform's **one scale** is the median over its sessions of each session's median reference
  timing (`LatencyStore.reference`); every latency in ms is `ratio × that scale`, computed when read, so all
  records of a platform share one scale and it sharpens as sessions accumulate.
- **session**: one measuring process's `Measurer` (here: one worker process per platform per growth session):
  one calibration of the reference; its records carry its id.
- **run**: `main` (the growing prefix of the stream) and `b` (an independent re-timing of the first architectures
  of the same stream, by the same protocol, later in time): their agreement is the platform's noise floor.
- **drift references**: DARTS_V2, PC_DARTS_cifar and DARTS_V1 timed alone every 50 records of a run
  (`ref_timings.kind = 'drift'`), to see the machine's drift; the ratios need no correction from them.
- **Parquet export** (`LatencyStore.export`): one row per measurement, `latency_ms` already on the platform's
  scale, with the genotype as JSON; the raw pairs and costs stay in the database.
"""


def _size(path: Path) -> str:
    n = path.stat().st_size
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def schema_lines(db: Path) -> list[str]:
    """Each table's columns, read from the file itself (so the datasheet cannot drift from the schema)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        out = ["| table | rows | columns | what a row is |", "|---|---:|---|---|"]
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid"):
            cols = ", ".join(f"`{r[1]}`" for r in conn.execute(f"PRAGMA table_info({name})"))
            rows = conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
            out.append(f"| `{name}` | {rows} | {cols} | {TABLES.get(name, '')} |")
        return out
    finally:
        conn.close()


def platform_summary(store: LatencyStore, key: str, log: dict[str, Any]) -> dict[str, Any]:
    """Counts, latency range of run main, the noise floor (main vs b), the reference scale and the costs."""
    runs = store.runs(key)
    main = [r.latency_ms for r in store.iter_records(key, run="main")]
    row = store.platform_row(key)
    out: dict[str, Any] = {"key": key, "runs": runs, "reference": row["reference"],
                           "fingerprint": row["fingerprint"]}
    if main:
        out["latency_ms"] = {"min": min(main), "median": statistics.median(main), "max": max(main)}
    if runs.get("b", 0) >= 3 and main:
        rep = compare_runs(store, key, "main", key, "b")
        out["noise"] = {est: {k: rep[est][k] for k in ("n", "mape_sym_pct", "kendall_tau_b", "spearman_rho",
                                                       "mape_sym_scaled_pct")}
                        for est in ("latency_ms", "median_ms")}
    chunks = [c for c in (log or {}).get("chunks", []) if c["platform"] == key and c["measured"]]
    for run in ("main", "b"):
        mine = [c for c in chunks if c["run"] == run]
        if mine:
            wall = sum(c["wall_s"] for c in mine)
            out[f"cost_{run}"] = {"s_per_arch": wall / sum(c["measured"] for c in mine),
                                  "timed_share": sum(c["timed_s"] for c in mine) / wall,
                                  "export_s_per_arch": sum(c["export_s"] for c in mine) / sum(c["measured"]
                                                                                              for c in mine)}
    return out


def load_summary(log: dict[str, Any]) -> dict[str, Any]:
    """The 1-minute load average before and after each chunk, over the whole growth log."""
    loads = [c["load_before"][0] for c in log["chunks"]] + [c["machine"]["load_avg"][0] for c in log["chunks"]]
    dates = [c["date"] for c in log["chunks"]]
    if not loads:
        return {}
    q = statistics.quantiles(loads, n=10) if len(loads) > 1 else [loads[0]] * 9
    return {"n": len(loads), "min": min(loads), "p10": q[0], "median": statistics.median(loads), "p90": q[-1],
            "max": max(loads), "first": min(dates), "last": max(dates), "sessions": len(log["sessions"])}


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "—" if x is None else format(x, spec)


def shares_by_session(log: dict[str, Any]) -> str:
    """Each growth session's shares (``--shares`` lets a session spend its time where the dataset is shortest)."""
    out = []
    for session in (log or {}).get("sessions", []):
        shares = (session.get("config") or {}).get("shares") or {}
        out.append(f"{session.get('date', '?')[:16]}: " + ", ".join(f"{g} {v:.2f}" for g, v in shares.items()))
    return "; ".join(out) or "not logged"


def datasheet(db: Path, summaries: list[dict[str, Any]], ranks: dict[str, Any] | None, config: dict[str, Any],
              log: dict[str, Any], files: dict[str, str], notes: list[str]) -> str:
    timer = config.get("timer", {})
    net = config.get("network", {})
    load = load_summary(log) if log else {}
    first = (log or {}).get("sessions", [{}])[0].get("machine", {})
    now = machine()
    lines = [
        "# Multi-platform latency dataset of the DARTS space (CIFAR network)",
        "",
        f"Generated {stamp()['date']} by `python benchmarks/datasheet.py --db {db.name}` from the database as it "
        "stood then; grown by `benchmarks/grow_dataset.py` (rerun it to grow it further, then rerun this).",
        "",
        "## Files",
        "",
        "| file | size | what |",
        "|---|---:|---|",
        *[f"| `{name}` | {size} | {what} |" for name, (size, what) in files.items()],
        "",
        "## Schema",
        "",
        *schema_lines(db),
        "",
        TERMS,
        "## Protocol",
        "",
        f"- **Network**: the deployed CIFAR network, C={net.get('channels')} × {net.get('cells')} cells, "
        f"{net.get('input_size')} px input, {net.get('classes')} classes, seeded random weights (seed 0), float32, "
        "batch 1 (8 on the two `-b8` platforms).",
        f"- **Architectures**: one stream, `campaign_items(n, seed={config.get('seed')}, "
        f"sampler='{config.get('sampler')}')` (the number of parameter-free edges per cell uniform in 0..8); every "
        "platform holds a prefix of it (`seq` is the position), so any two platforms share their shorter prefix.",
        f"- **Timing**: {timer.get('warmup')} untimed forward of each, then {timer.get('pairs')} pairs "
        f"(reference, architecture), alternating which goes first; each session first times the reference alone "
        f"{timer.get('calibration')} times (calibration); drift references {', '.join(DRIFT_REFERENCES)} timed "
        f"alone {timer.get('drift_repeats')} times every {timer.get('drift_every')} records. Reference: {REFERENCE}.",
        "- **Latency**: ratio (median of the per-pair ratios) × the platform's one scale (see Schema); the "
        "interleaved reference is the drift correction: a slow spell slows both members of a pair.",
        "- **Threads**: intra- and inter-op threads of PyTorch, ONNX Runtime's intra/inter-op threads, OpenVINO's "
        "`INFERENCE_NUM_THREADS` (with `PERFORMANCE_HINT=LATENCY`, f32), ExecuTorch's XNNPACK thread pool: all set to "
        "the platform's `t`; each platform in its own process, one process timing at a time.",
        "- **Export** (ONNX, ExecuTorch program, inductor compilation) happens before timing, cached by "
        "architecture; OpenVINO and ONNX Runtime read the same ONNX export (opset 17, TorchScript exporter).",
        f"- **Schedule**: rounds of about {config.get('round_s'):g} s; each platform group gets a share of each round "
        f"({shares_by_session(log)}), the platforms of a group "
        f"advance to the same prefix, run `b` grows to a share of the main prefix ("
        f"{', '.join(f'{g} {r:g}' for g, r in config.get('b_ratio', {}).items())}), capped at "
        f"{config.get('b_cap')}; a new session (calibration) per platform each round, inductor's per growth session.",
        "",
        "## Machine",
        "",
        f"- CPU: {first.get('cpu', now['cpu'])}, {first.get('cpu_count', now['cpu_count'])} logical cores, shared "
        "with other work (no isolation, no frequency pinning); OS "
        f"{first.get('os', now['os'])}.",
    ]
    signatures = Counter(c["machine"].get("cpu_signature") for c in (log or {}).get("chunks", []))
    if signatures:
        seen = [f"{sig} in {n} chunks" for sig, n in sorted(signatures.items(), key=lambda kv: str(kv[0])) if sig]
        if signatures[None]:
            seen.append(f"not recorded in {signatures[None]} chunks, from before it was")
        lines.append("- CPUID signature (vendor family/model/stepping, which the VM's brand string hides): "
                     + "; ".join(seen) + ".")
    if load:
        lines.append(f"- Load average (1 min) before and after each of the {load['n'] // 2} chunks, "
                     f"{load['first']} – {load['last']} ({load['sessions']} growth session(s)): median "
                     f"{load['median']:.2f}, 10–90% {load['p10']:.2f}–{load['p90']:.2f}, range "
                     f"{load['min']:.2f}–{load['max']:.2f} (2 cores: above 2 the timing shared a core).")
    versions = {}
    for s in summaries:
        versions.update({k: v for k, v in s["fingerprint"].items()
                         if k in ("python", "torch", "numpy", "onnx", "onnxruntime", "openvino", "executorch")})
    lines += ["- Library versions (the platforms' fingerprints): "
              + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) + ".", ""]
    lines += [
        "## Platforms",
        "",
        "Latency: run `main`, on the platform's scale. Noise floor: run `main` against run `b` over their common "
        "architectures (`compare_runs`): symmetric MAPE and Kendall τ-b of the stored latency, and of the raw median "
        "of the pairs (no reference, no drift correction) for comparison. Cost: wall seconds per architecture in "
        "the growth log (export and compilation included; the session's start is not).",
        "",
        "| platform | main | b | latency min / median / max (ms) | reference (ms, sessions) | noise n | MAPE % | "
        "τ-b | raw-median MAPE % / τ-b | s/arch main (b) | timed share |",
        "|---|---:|---:|---|---|---:|---:|---:|---|---|---:|",
    ]
    for s in summaries:
        lat, ref, noise = s.get("latency_ms"), s.get("reference"), s.get("noise")
        cm, cb = s.get("cost_main", {}), s.get("cost_b", {})
        n = noise["latency_ms"] if noise else {}
        raw = noise["median_ms"] if noise else {}
        lines.append(
            f"| {short_name(s['key'])} | {s['runs'].get('main', 0)} | {s['runs'].get('b', 0)} | "
            + (f"{lat['min']:.2f} / {lat['median']:.2f} / {lat['max']:.2f}" if lat else "—") + " | "
            + (f"{ref['ms']:.2f} ({ref['sessions']})" if ref else "—") + " | "
            + f"{n.get('n', '—')} | {_fmt(n.get('mape_sym_pct'))} | {_fmt(n.get('kendall_tau_b'), '.3f')} | "
            + (f"{raw['mape_sym_pct']:.2f} / {raw['kendall_tau_b']:.3f}" if raw else "—") + " | "
            + f"{_fmt(cm.get('s_per_arch'), '.1f')} ({_fmt(cb.get('s_per_arch'), '.1f')}) | "
            + f"{_fmt(cm.get('timed_share'))} |")
    lines += ["", "Platform keys (settings / network / device):", ""]
    lines += [f"- `{s['key']}`" for s in summaries]
    lines += ["", "## Rank consistency across platforms", ""]
    if ranks and ranks["pairs"]:
        lines += ["Every pair of platforms over the architectures both measured (each architecture's runs averaged "
                  "geometrically; `ladarts.hardware.ranks.rank_consistency`, pairs with fewer than 10 in common "
                  "left out). The LA-DARTS paper found 69% concordant pairs between a GPU and a CPU.", "",
                  ranks_markdown(ranks).rstrip(), "", "![Kendall τ-b between platforms](ranks_kendall.png)", ""]
    else:
        lines += ["Not enough architectures in common yet.", ""]
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", default=str(DEFAULT_DB), help=f"latency database (default {DEFAULT_DB})")
    p.add_argument("--note", action="append", default=[], help="a line for the datasheet's Notes (repeatable)")
    args = p.parse_args(argv)
    db = Path(args.db)
    out = db.parent
    try:
        config = _read_json(Path(f"{db}.grow-config.json")) or {}
        log = _read_json(out / "growth-log.json") or {"sessions": [], "chunks": [], "errors": []}
        with LatencyStore.open(db) as store:
            keys = [k for k in store.platforms() if store.runs(k)]
            summaries = [platform_summary(store, k, log) for k in keys]
            parquet = db.with_suffix(".parquet")
            rows = store.export(parquet)
            ranks = None
            if len(keys) >= 2:
                ranks = rank_consistency(store, keys)
                atomic_write_json(out / "ranks.json", ranks)
                if ranks["pairs"]:
                    ranks_heatmap(ranks, out / "ranks_kendall.png")
        files = {db.name: "the SQLite latency database (`ladarts db stats` reads it)",
                 parquet.name: f"Parquet export, {rows} rows (`LatencyStore.export`)",
                 "DATASHEET.md": "this file"}
        for name, what in (("ranks.json", "rank consistency: pairs and matrices"),
                           ("ranks_kendall.png", "heat map of Kendall τ-b between platforms"),
                           (f"{db.name}.grow-config.json", "the growth script's resolved configuration"),
                           ("growth-log.json", "every chunk: costs, load before/after, machine, command")):
            if (out / name).exists():
                files[name] = what
        # DATASHEET.md's own size is not known before it is written.
        sized = {name: (_size(out / name) if name != "DATASHEET.md" else "—", what) for name, what in files.items()}
        text = datasheet(db, summaries, ranks, config, log, sized, args.note)
        atomic_write_text(out / "DATASHEET.md", text)
    except LadartsError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    print(f"wrote {out / 'DATASHEET.md'}, {parquet.name} ({rows} rows)"
          + (f", ranks over {len(ranks['platforms'])} platforms" if ranks else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
