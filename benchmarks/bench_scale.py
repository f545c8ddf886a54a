"""One latency scale per platform (issue 12): two databases measured at different loads on one machine.

    python benchmarks/bench_scale.py                 # 150 + 60 architectures, about 15 minutes on 2 cores

Database A: the first 150 architectures of seed 0, measured with the machine as it is. Database B: 60 other
architectures (seed 1), measured while a busy loop keeps the other core busy. The network is the issue's:
C=8 × 5 cells, 16 px, 1 thread, batch 1, 10 pairs. An LPM fitted on 80% of A is scored on the 20% of A held out
and on all of B, with B's latencies on

  * B's own scale (ratio × the reference as B timed it, under load): how it was before one scale per platform,
  * the LPM's scale (ratio × the reference latency it was fitted with): what `evaluate` on another database of
    the platform should use,
  * one scale after `db merge` of A and B (an LPM fitted on the merged A records, scored on the merged B records).

It must show: MAPE on B within 1.5× of the MAPE on A's held-out split, on one scale. Writes
benchmarks/data/bench_scale.json; the databases are kept in --workdir, so a rerun resumes.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
from pathlib import Path

from ladarts.hardware.campaign import MeasureConfig, Measurer, campaign_items
from ladarts.hardware.platform import Platform
from ladarts.hardware.store import LatencyStore, merge_databases
from ladarts.io import atomic_write_json
from ladarts.predict import evaluate_lpm, fit_lpm
from ladarts.space import network_config

from common import machine, stamp

PLATFORM = Platform(network=network_config("cifar", channels=8, cells=5, input_size=16))


def _measure(db: Path, n: int, seed: int, run: str, pairs: int, busy: bool) -> dict:
    """Measure into ``db``; with ``busy``, a busy loop runs on the other core throughout."""
    loop = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        load0 = os.getloadavg()[0]
        with LatencyStore.open_or_create(db) as store:
            m = Measurer(store, PLATFORM, MeasureConfig(pairs=pairs))
            res = m.run(campaign_items(n, seed), run=run, progress=True)
            session_ref_ms = m.session_ref_ms
        return {"db": str(db), "n": n, "seed": seed, "busy_loop": busy, "measured_now": res.measured,
                "archs_per_hour": res.archs_per_hour, "session_ref_ms": session_ref_ms,
                "load_1min": [round(load0, 2), round(os.getloadavg()[0], 2)]}
    finally:
        if loop is not None:
            loop.kill()
            loop.wait()


def _split(records, fraction: float = 0.2, seed: int = 0):
    hashes = sorted(r.arch_hash for r in records)
    random.Random(seed).shuffle(hashes)
    held = set(hashes[: round(fraction * len(hashes))])
    return [r for r in records if r.arch_hash not in held], [r for r in records if r.arch_hash in held]


def _score(lpm, records) -> dict:
    m = evaluate_lpm(lpm, records)["metrics"]
    return {"n": len(records), "mape_pct": m["mape_pct"], "kendall_tau_b": m["kendall_tau_b"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", default="/tmp/ladarts-bench-scale")
    ap.add_argument("--n-a", type=int, default=150)
    ap.add_argument("--n-b", type=int, default=60)
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--out", default="benchmarks/data/bench_scale.json")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    db_a, db_b, db_m = work / "a.db", work / "b.db", work / "merged.db"
    runs = {"a": _measure(db_a, args.n_a, 0, "a", args.pairs, busy=False),
            "b": _measure(db_b, args.n_b, 1, "b", args.pairs, busy=True)}
    key = PLATFORM.key
    with LatencyStore.open(db_a) as sa, LatencyStore.open(db_b) as sb:
        scales = {"a_ms": sa.reference(key).ms, "b_ms": sb.reference(key).ms}
        train, held = _split(sa.records(key, run="a"))
        lpm, _ = fit_lpm(train, seed=0, platform_row=sa.platform_row(key))
        lpm_ms = lpm.meta["platform"]["ref_ms"]
        separate = {"held_out_a": _score(lpm, held), "b_own_scale": _score(lpm, sb.records(key, run="b")),
                    "b_lpm_scale": _score(lpm, sb.records(key, run="b", ref_ms=lpm_ms))}
    if db_m.exists():
        db_m.unlink()
    merge_databases(db_m, [db_a, db_b])
    with LatencyStore.open(db_m) as sm:
        ref = sm.reference(key)
        scales["merged_ms"], scales["merged_sessions"] = ref.ms, ref.sessions
        train_m, held_m = _split(sm.records(key, run="a"))
        lpm_m, _ = fit_lpm(train_m, seed=0, platform_row=sm.platform_row(key))
        merged = {"held_out_a": _score(lpm_m, held_m), "b": _score(lpm_m, sm.records(key, run="b"))}
    ratio = {"b_own_scale": separate["b_own_scale"]["mape_pct"] / separate["held_out_a"]["mape_pct"],
             "b_lpm_scale": separate["b_lpm_scale"]["mape_pct"] / separate["held_out_a"]["mape_pct"],
             "merged": merged["b"]["mape_pct"] / merged["held_out_a"]["mape_pct"]}
    report = {**stamp(), "machine": machine(), "platform": key, "runs": runs, "scales": scales,
              "separate_databases": separate, "merged": merged, "mape_b_over_held_out_a": ratio,
              "pass": ratio["b_lpm_scale"] <= 1.5 and ratio["merged"] <= 1.5}
    atomic_write_json(args.out, report)
    print(f"reference latency: A {scales['a_ms']:.3f} ms, B (busy loop) {scales['b_ms']:.3f} ms, "
          f"merged {scales['merged_ms']:.3f} ms over {scales['merged_sessions']} sessions")
    print("| LPM fitted on 80% of A, scored on | n | MAPE % | Kendall τ-b | MAPE / held-out A |")
    print("|---|---|---|---|---|")
    rows = [("held-out 20% of A", separate["held_out_a"], 1.0),
            ("B, on B's own scale (before)", separate["b_own_scale"], ratio["b_own_scale"]),
            ("B, on the LPM's scale", separate["b_lpm_scale"], ratio["b_lpm_scale"]),
            ("merged: held-out 20% of A", merged["held_out_a"], 1.0),
            ("merged: B, one scale", merged["b"], ratio["merged"])]
    for label, s, r in rows:
        print(f"| {label} | {s['n']} | {s['mape_pct']:.2f} | {s['kendall_tau_b']:.3f} | {r:.2f} |")
    print("pass" if report["pass"] else "FAIL: MAPE on B is more than 1.5x the held-out MAPE")


if __name__ == "__main__":
    main()
