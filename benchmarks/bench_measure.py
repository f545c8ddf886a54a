"""Measurement throughput and noise floor on one platform.

Times the first N architectures of a seed as independent runs (default 'a' then 'b') and prints: architectures
per hour, the share of wall time inside timed forwards (the reference's included), the export cost (ONNX
Runtime), and the run-vs-run agreement of each estimator. Where the runs stored their raw pairs, it also
re-derives other estimators (ratio of mins, fewer pairs) from the same samples, to justify the default.
Resumable: rerun to continue.

    python benchmarks/bench_measure.py --db benchmarks/data/latency_cpu.db --runtime torch --n 200
    python benchmarks/bench_measure.py --db benchmarks/data/latency_cpu.db --runtime onnxruntime --n 200
    python benchmarks/bench_measure.py --db benchmarks/data/latency_cpu.db --cross   # torch vs onnxruntime ranks
    python benchmarks/bench_measure.py --runtime torch --runs c,d                    # a second pair of runs
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ladarts.hardware import LatencyStore, MeasureConfig, Measurer, Platform, agreement, campaign_items, compare_runs
from ladarts.io import atomic_write_json
from ladarts.space import network_config

from common import machine, stamp


def _print_agreement(title: str, rep: dict) -> None:
    print(f"\n{title}: {rep['latency_ms']['n']} architectures in common")
    print("| estimator | MAPE (sym) % | Kendall τ-b | Spearman ρ | concordant |")
    print("|---|---|---|---|---|")
    for est, label in (("latency_ms", "drift-corrected ratio × ref"), ("median_ms", "raw median"),
                       ("min_ms", "raw min")):
        a = rep[est]
        print(f"| {label} | {a['mape_sym_pct']:.2f} | {a['kendall_tau_b']:.3f} | {a['spearman_rho']:.3f} | "
              f"{100 * a['concordant_share']:.1f}% |")


def _estimators(arch: np.ndarray, ref: np.ndarray, ref_ms: float) -> dict[str, float]:
    return {
        "median pair ratio": float(np.median(arch / ref)) * ref_ms,
        "ratio of medians": float(np.median(arch) / np.median(ref)) * ref_ms,
        "ratio of mins": float(arch.min() / ref.min()) * ref_ms,
        "raw min": float(arch.min()),
        "raw median": float(np.median(arch)),
    }


def _estimator_study(store, key: str, run_a: str, run_b: str, ref_ms: float) -> dict:
    """Re-derive estimators from the stored raw pairs, using the first k pairs, to see noise against cost."""
    rows = {}
    for run in (run_a, run_b):
        rows[run] = store.raw_samples(key, run)
    common = sorted(set(rows[run_a]) & set(rows[run_b]))
    if len(common) < 3:
        return {}
    pairs = len(rows[run_a][common[0]]["arch"])
    out = {}
    print(f"\nestimators re-derived from the raw pairs of {len(common)} architectures (first k of {pairs} pairs):")
    print("| estimator | k | MAPE (sym) % | Kendall τ-b | concordant |")
    print("|---|---|---|---|---|")
    for k in sorted({5, 10, pairs} & set(range(1, pairs + 1))):
        per_run = {}
        for run in (run_a, run_b):
            per_run[run] = {h: _estimators(np.array(rows[run][h]["arch"][:k]), np.array(rows[run][h]["ref"][:k]),
                                           ref_ms) for h in common}
        for est in per_run[run_a][common[0]]:
            a = agreement({h: v[est] for h, v in per_run[run_a].items()}, {h: v[est] for h, v in per_run[run_b].items()})
            out[f"{est} k={k}"] = a
            print(f"| {est} | {k} | {a['mape_sym_pct']:.2f} | {a['kendall_tau_b']:.3f} | {100 * a['concordant_share']:.1f}% |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="benchmarks/data/latency_cpu.db")
    ap.add_argument("--runtime", default="torch")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", default="a,b", help="two run names to measure and compare (default a,b)")
    ap.add_argument("--cross", action="store_true", help="only compare the torch and onnxruntime platforms")
    args = ap.parse_args()

    if args.cross:
        with LatencyStore.open(args.db) as store:
            keys = store.platforms()
            tk = next(k for k in keys if k.startswith("torch-cpu") and "/cifar-c36-l20" in k)
            ok = next(k for k in keys if k.startswith("onnxruntime-cpu") and "/cifar-c36-l20" in k)
            rep = compare_runs(store, tk, "a", ok, "a")
        _print_agreement(f"rank consistency, {tk}  vs  {ok}", rep)
        atomic_write_json(Path(args.db).with_name("bench_measure_cross.json"), {**rep, **stamp()})
        return
    plat = Platform(runtime=args.runtime, threads=args.threads, network=network_config("cifar"))
    with LatencyStore.open_or_create(args.db) as store:
        measurer = Measurer(store, plat, MeasureConfig(pairs=args.pairs))
        summaries = {}
        run_a, run_b = args.runs.split(",")
        for run in (run_a, run_b):
            res = measurer.run(campaign_items(args.n, args.seed), run=run)  # the same architectures each run
            summaries[run] = res.to_dict()
            if res.measured:
                print(f"run {run}: {res.measured} archs in {res.wall_s:.0f} s = {res.archs_per_hour:.0f} archs/hour; "
                      f"timed share {res.timed_share:.3f}; build {res.build_s / res.measured * 1e3:.0f} ms/arch; "
                      f"export {res.export_s / res.measured:.2f} s/arch")
        rep = compare_runs(store, plat.key, run_a, plat.key, run_b)
        _print_agreement(f"noise floor, {plat.key}, run {run_a} vs run {run_b}, {args.pairs} pairs", rep)
        rep["estimators"] = _estimator_study(store, plat.key, run_a, run_b, measurer.ref_ms)
    out = Path(args.db).with_name(f"bench_measure_{args.runtime}.json")
    history = json.loads(out.read_text())["invocations"] if out.exists() else []
    history.append({**stamp(), "machine": machine(), "platform": plat.key, "n": args.n, "pairs": args.pairs,
                    "runs": summaries, "compared": args.runs})
    atomic_write_json(out, {"invocations": history, "noise": rep})


if __name__ == "__main__":
    main()
