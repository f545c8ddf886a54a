"""λ sweep on digits, ≥3 seeds, for the soft forms of LAT(α): the derived genotype's predicted latency (the LPM)
and its measured latency (the LPM's platform: torch, 1 thread, batch 1, the CIFAR network C36 × 20 cells),
against the λ=0 baseline run at the same epochs and seeds. Also answers "which soft form finds faster cells at
equal accuracy" (derived vs straight-through).

    .venv/bin/python benchmarks/bench_search_sweep.py --lpm LPM_DIR [--modes derived,straight-through]
        [--lambdas 0.3,1,3] [--seeds 0,1,2] [--epochs 6] [--measure-pairs 20]
    .venv/bin/python benchmarks/bench_search_sweep.py --from-json FILE             # only the table
    .venv/bin/python benchmarks/bench_search_sweep.py --remeasure-from-json FILE   # re-time FILE's cells, no search

Searches are small so that they fit this CPU (a supernet of C=8 × 5 cells on digits at their native 8 px by
default); the flags say what was run, and the JSON under benchmarks/data/search/ records it.

"Measured" is the library's measurer (``ladarts.hardware.measure_genotypes``): each cell's median ratio to the
interleaved reference, times one reference latency: the LPM's (its meta.json ``platform.ref_ms``, the scale its
predictions are on), else --reference-ms, else the one stored for --platform in --db. The measuring session's
calibration goes into a temporary copy of --db, never into --db itself.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from common import machine, stamp

HERE = Path(__file__).resolve().parent
PLATFORM = "torch-cpu-t1-b1-float32/cifar-c36-l20"  # the LPM's platform in benchmarks/data/latency_cpu.db


def measure(genotypes: dict[str, dict], pairs: int, db: str, scale_platform: str,
            reference_ms: float | None = None) -> dict[str, Any]:
    """Time each genotype on this CPU's torch platform and put it on ``scale_platform``'s stored scale in ``db``
    (or on ``reference_ms``, the scale an LPM was fitted on when the database's estimate has moved since).

    When this CPU is not the one ``scale_platform`` was measured on, the ratios come from this CPU and only the
    scale from the stored platform; the result says so (``measured_on`` differs from ``scale_platform``).
    """
    from ladarts.hardware import LatencyStore, Platform, measure_genotypes
    from ladarts.hardware.store import merge_databases
    from ladarts.space import Genotype

    platform = Platform()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "latency.db"
        merge_databases(copy, [db])
        with LatencyStore.open(copy) as store:
            key = store.resolve_platform(scale_platform)
        timings = measure_genotypes([Genotype.from_dict(g) for g in genotypes.values()], platform, pairs, db=copy)
        with LatencyStore.open(copy) as store:
            ref = store.reference(key)
    if ref is None and reference_ms is None:
        raise SystemExit(f"platform {key} has no timing of its reference in {db}")
    if key != platform.key:
        print(f"warning: ratios timed on {platform.key}, scaled by the reference of {key}", file=sys.stderr)
    scale = ref.ms if reference_ms is None else reference_ms
    return {"measured_on": platform.key, "scale_platform": key, "reference_ms": scale,
            "platform_reference_ms": ref.ms if ref else None, "pairs": pairs, "db": db,
            "load_avg_before": list(load_before), "load_avg_after": list(os.getloadavg()),
            "ratio": {k: t["ratio"] for k, t in zip(genotypes, timings)},
            "latency_ms": {k: t["ratio"] * scale for k, t in zip(genotypes, timings)}}


def arch_key(genotype: dict) -> str:
    return json.dumps(genotype, sort_keys=True)


PARAM_FREE = {"max_pool_3x3", "avg_pool_3x3", "skip_connect"}


def print_table(rows: list[dict], modes: list[str], lambdas: list[float], measured: bool) -> list[dict]:
    """The Markdown table of the sweep (also rebuilt from a saved JSON with ``--from-json``)."""
    print("\n| soft form | λ | seeds | supernet val acc | predicted latency (ms) | measured latency (ms) | "
          "param-free ops in the normal cell (of 8) | runs faster than λ=0, same seed (predicted / measured) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    base_by_seed = {r["seed"]: r for r in rows if r["mode"] == "λ=0"}
    summary = []
    for mode, lam, rs in groups(rows, modes, lambdas):

        def ms(values: list[float], digits: int = 2) -> str:
            if not values:
                return "n/a"
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            return f"{statistics.fmean(values):.{digits}f} ± {sd:.{digits}f}"

        free = [sum(op in PARAM_FREE for op, _ in r["genotype"]["normal"]) for r in rs]
        faster_p = sum(r["lat_derived_ms"] < base_by_seed[r["seed"]]["lat_derived_ms"] for r in rs)
        faster_m = (sum(r["measured_ms"] < base_by_seed[r["seed"]]["measured_ms"] for r in rs)
                    if measured else None)
        s = {"mode": mode, "lambda": lam, "n": len(rs),
             "val_acc_mean": statistics.fmean(r["val_acc"] for r in rs),
             "pred_ms_mean": statistics.fmean(r["lat_derived_ms"] for r in rs),
             "measured_ms_mean": statistics.fmean(r["measured_ms"] for r in rs) if measured else None,
             "param_free_normal_mean": statistics.fmean(free),
             "faster_pred": faster_p, "faster_measured": faster_m}
        summary.append(s)
        fm = "—" if mode == "λ=0" else f"{faster_p}/{len(rs)} / {faster_m if measured else 'n/a'}/{len(rs)}"
        print(f"| {mode} | {lam:g} | {len(rs)} | {ms([r['val_acc'] for r in rs], 3)} | "
              f"{ms([r['lat_derived_ms'] for r in rs])} | "
              f"{ms([r['measured_ms'] for r in rs if r.get('measured_ms') is not None])} | "
              f"{ms(free, 1)} | {fm} |")
    return summary


def groups(rows: list[dict], modes: list[str], lambdas: list[float]) -> list[tuple[str, float, list[dict]]]:
    """(soft form, λ, its runs) in table order: the λ=0 baseline first."""
    return [(mode, lam, [r for r in rows if r["mode"] == mode and r["lambda"] == lam])
            for mode in ["λ=0", *modes] for lam in ([0.0] if mode == "λ=0" else lambdas)]


def saved_ratio(run: dict, measured: dict) -> float:
    """A saved run's ratio to the reference: stored, or (files measured before the library's measurer) its
    latency over the reference latency that file's measurement scaled by."""
    if "measured_ratio" in run:
        return run["measured_ratio"]
    return run["measured_ms"] / measured["reference_DARTS_V2_ms"]


def saved_axes(saved: dict) -> tuple[list[str], list[float]]:
    a = saved["args"]
    return a["modes"].split(","), [float(v) for v in a["lambdas"].split(",")]


def remeasure(args: argparse.Namespace) -> None:
    """Re-time the cells a saved sweep found (no search), print the table and how measured/predicted moved."""
    saved = json.loads(Path(args.remeasure_from_json).read_text())
    rows, before = saved["runs"], saved["measured"]
    modes, lambdas = saved_axes(saved)
    uniq = {arch_key(r["genotype"]): r["genotype"] for r in rows}
    t0 = time.perf_counter()
    m = measure(uniq, args.measure_pairs, args.db, args.platform, args.reference_ms)
    stored = m["platform_reference_ms"]
    print(f"re-measured {len(uniq)} cells in {time.perf_counter() - t0:.0f} s on {m['measured_on']}, "
          f"{m['pairs']} pairs; scale {m['reference_ms']:.2f} ms (reference of {m['scale_platform']} in the "
          f"database: {'none' if stored is None else f'{stored:.2f} ms'}); "
          f"load average {m['load_avg_before'][0]:.2f} before, {m['load_avg_after'][0]:.2f} after")
    print(f"searches: {saved['command']}")
    new_rows = [{**r, "measured_ms": m["latency_ms"][arch_key(r["genotype"])],
                 "measured_ratio": m["ratio"][arch_key(r["genotype"])]} for r in rows]
    summary = print_table(new_rows, modes, lambdas, True)
    measured = {**{k: v for k, v in m.items() if k not in ("ratio", "latency_ms")}, **stamp(), "machine": machine()}
    if before:
        measured.update(compare_before(rows, new_rows, before, m, modes, lambdas))
    result = {**saved, "measured": measured, "summary": summary, "runs": new_rows}
    from ladarts.io import atomic_write_json, json_safe

    atomic_write_json(args.json, json_safe(result))
    print(f"\nwrote {args.json}")


def compare_before(rows: list[dict], new_rows: list[dict], before: dict, m: dict, modes: list[str],
                   lambdas: list[float]) -> dict[str, Any]:
    """Per row, the mean of measured / predicted as saved, with the saved ratios on the scale used now, and
    re-measured; the saved and the new ratios' agreement; and the superseded measurement."""
    from ladarts.hardware import agreement

    old_ratio = {arch_key(r["genotype"]): saved_ratio(r, before) for r in rows}
    print("\nmean of measured / predicted per row: before (as saved), before with its ratios on the scale used "
          "now, after (re-measured)")
    print("| soft form | λ | before | before, rescaled | after |")
    print("|---|---:|---:|---:|---:|")
    comparison = []
    for (mode, lam, old), (_, _, new) in zip(groups(rows, modes, lambdas), groups(new_rows, modes, lambdas)):
        c = {"mode": mode, "lambda": lam,
             "before": statistics.fmean(r["measured_ms"] / r["lat_derived_ms"] for r in old),
             "before_rescaled": statistics.fmean(old_ratio[arch_key(r["genotype"])] * m["reference_ms"]
                                                 / r["lat_derived_ms"] for r in old),
             "after": statistics.fmean(r["measured_ms"] / r["lat_derived_ms"] for r in new)}
        comparison.append(c)
        print(f"| {mode} | {lam:g} | {c['before']:.3f} | {c['before_rescaled']:.3f} | {c['after']:.3f} |")
    agree = agreement(old_ratio, m["ratio"])
    print(f"\nratios to the reference, before vs after, {agree['n']} cells: symmetric MAPE "
          f"{agree['mape_sym_pct']:.2f}%, Kendall τ-b {agree['kendall_tau_b']:.3f}, "
          f"scale factor {agree['scale_factor']:.3f}")
    superseded = {k: v for k, v in before.items() if k != "superseded"}
    superseded["measured_ms"] = [r["measured_ms"] for r in rows]
    return {"comparison": comparison, "ratios_before_vs_after": agree, "superseded": superseded}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lpm", help="LPM folder (required unless --proxy)")
    ap.add_argument("--proxy", action="store_true", help="use the MACs-proxy table instead of an LPM")
    ap.add_argument("--modes", default="derived,straight-through")
    ap.add_argument("--lambdas", default="0.3,1,3", help="λ > 0 values (λ=0 is always run, as the baseline)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--cells", type=int, default=5)
    ap.add_argument("--input-size", type=int, default=8, help="digits at their native 8 px")
    ap.add_argument("--subset", type=int, default=0, help="0: all 1,437 training images")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--method", default="darts")
    ap.add_argument("--measure-pairs", type=int, default=20, help="0: skip measuring the derived genotypes")
    ap.add_argument("--db", default=str(HERE / "data" / "latency_cpu.db"),
                    help="latency database holding the platform's reference timings (read only)")
    ap.add_argument("--platform", default=PLATFORM,
                    help="platform in --db whose scale the measured latencies take (default: the LPM's, with --lpm)")
    ap.add_argument("--reference-ms", type=float,
                    help="scale by this reference latency (e.g. an LPM's meta.json platform.ref_ms) instead")
    ap.add_argument("--out", default="/tmp/ladarts-bench-sweep")
    ap.add_argument("--json", default=str(HERE / "data" / "search" / "bench_search_sweep.json"))
    ap.add_argument("--from-json", help="only print the table of a saved result")
    ap.add_argument("--remeasure-from-json", metavar="FILE",
                    help="re-measure the cells of a saved result (no search), print its table, write --json")
    args = ap.parse_args()
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        print_table(saved["runs"], *saved_axes(saved), bool(saved["measured"]))
        return
    if args.remeasure_from_json:
        if args.measure_pairs < 1:
            raise SystemExit("--remeasure-from-json needs --measure-pairs ≥ 1")
        remeasure(args)
        return

    import torch

    torch.set_num_threads(1)
    from ladarts.predict import LPM
    from ladarts.search import SearchConfig, TableCost
    from ladarts.search.sweep import run_sweep

    scale_platform, reference_ms = args.platform, args.reference_ms
    if args.proxy:
        cost, cost_name = TableCost.macs_proxy(), "macs-proxy"
    elif args.lpm:
        cost, cost_name = LPM.load(args.lpm), f"lpm {args.lpm}"
        scale_platform = cost.meta["platform"].get("key") or args.platform
        reference_ms = reference_ms or cost.meta["platform"].get("ref_ms")
    else:
        raise SystemExit("pass --lpm DIR (or --proxy)")
    lambdas = [float(v) for v in args.lambdas.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    modes = args.modes.split(",")
    out = Path(args.out)
    base = SearchConfig(out=str(out / "baseline"), method=args.method, dataset="digits", subset=args.subset or None,
                        input_size=args.input_size, epochs=args.epochs, channels=args.channels, cells=args.cells,
                        batch_size=args.batch_size, threads=1, soft_mode=modes[0])
    t0 = time.perf_counter()
    rows = []
    for r in run_sweep(base, [0.0], seeds, cost=cost)["runs"]:
        rows.append({**r, "mode": "λ=0"})
    for mode in modes:
        front = run_sweep(replace(base, out=str(out / mode), soft_mode=mode), lambdas, seeds, cost=cost)
        rows += [{**r, "mode": mode} for r in front["runs"]]
    search_s = time.perf_counter() - t0

    measured: dict[str, Any] = {}
    if args.measure_pairs:
        uniq = {arch_key(r["genotype"]): r["genotype"] for r in rows}
        m = measure(uniq, args.measure_pairs, args.db, scale_platform, reference_ms)
        measured = {k: v for k, v in m.items() if k not in ("ratio", "latency_ms")}
        for r in rows:
            key = arch_key(r["genotype"])
            r["measured_ms"], r["measured_ratio"] = m["latency_ms"][key], m["ratio"][key]

    info = machine()
    print(f"machine: {info['cpu']}; searches took {search_s / 60:.1f} min; cost {cost_name}")
    print(f"supernet {args.method} C{args.channels} × {args.cells} cells, digits {args.input_size} px, subset "
          f"{args.subset}, batch {args.batch_size}, {args.epochs} epochs, seeds {seeds}")
    summary = print_table(rows, modes, lambdas, bool(measured))
    result = {"machine": info, **stamp(), "cost": cost_name, "search_s": search_s, "args": vars(args),
              "measured": measured, "summary": summary, "runs": rows}
    from ladarts.io import atomic_write_json, json_safe

    atomic_write_json(args.json, json_safe(result))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
