"""Measurement throughput and noise floor on one platform.

Measures run 'a' over the first N architectures of a seed, re-times them as an independent run 'b', and prints:
architectures per hour, the share of wall time inside timed forwards (the reference's included), the export
cost (ONNX Runtime), and the run-vs-run agreement of each estimator. Resumable: rerun to continue.

    python benchmarks/bench_measure.py --db benchmarks/data/latency_cpu.db --runtime torch --n 200
    python benchmarks/bench_measure.py --db benchmarks/data/latency_cpu.db --runtime onnxruntime --n 200
    python benchmarks/bench_measure.py --db benchmarks/data/latency_cpu.db --cross   # torch vs onnxruntime ranks
"""

from __future__ import annotations

import argparse
import json
import platform as _pf
import time
from pathlib import Path

from ladarts.hardware import LatencyStore, MeasureConfig, Measurer, Platform, campaign_items, compare_runs, retime_items
from ladarts.io import atomic_write_json
from ladarts.space import network_config


def _print_agreement(title: str, rep: dict) -> None:
    print(f"\n{title}: {rep['latency_ms']['n']} architectures in common")
    print("| estimator | MAPE (sym) % | Kendall τ-b | Spearman ρ | concordant |")
    print("|---|---|---|---|---|")
    for est, label in (("latency_ms", "drift-corrected ratio × ref"), ("median_ms", "raw median"),
                       ("min_ms", "raw min")):
        a = rep[est]
        print(f"| {label} | {a['mape_sym_pct']:.2f} | {a['kendall_tau_b']:.3f} | {a['spearman_rho']:.3f} | "
              f"{100 * a['concordant_share']:.1f}% |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="benchmarks/data/latency_cpu.db")
    ap.add_argument("--runtime", default="torch")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cross", action="store_true", help="only compare the torch and onnxruntime platforms")
    args = ap.parse_args()

    plat = Platform(runtime=args.runtime, threads=args.threads, network=network_config("cifar"))
    with LatencyStore.open_or_create(args.db) as store:
        if args.cross:
            keys = store.platforms()
            tk = next(k for k in keys if k.startswith("torch-cpu") and "/cifar-c36-l20" in k)
            ok = next(k for k in keys if k.startswith("onnxruntime-cpu") and "/cifar-c36-l20" in k)
            rep = compare_runs(store, tk, "a", ok, "a")
            _print_agreement(f"rank consistency, {tk}  vs  {ok}", rep)
            atomic_write_json(Path(args.db).with_name("bench_measure_cross.json"), rep)
            return
        measurer = Measurer(store, plat, MeasureConfig(pairs=args.pairs))
        summaries = {}
        for run, items in (("a", lambda: campaign_items(args.n, args.seed)),
                           ("b", lambda: retime_items(store, plat.key, "a"))):
            res = measurer.run(items(), run=run)
            summaries[run] = res.to_dict()
            if res.measured:
                print(f"run {run}: {res.measured} archs in {res.wall_s:.0f} s = {res.archs_per_hour:.0f} archs/hour; "
                      f"timed share {res.timed_share:.3f}; build {res.build_s / res.measured * 1e3:.0f} ms/arch; "
                      f"export {res.export_s / res.measured:.2f} s/arch")
        rep = compare_runs(store, plat.key, "a", plat.key, "b")
        _print_agreement(f"noise floor, {plat.key}, run a vs run b, {args.pairs} pairs", rep)
    out = Path(args.db).with_name(f"bench_measure_{args.runtime}.json")
    history = json.loads(out.read_text())["invocations"] if out.exists() else []
    history.append({"date": time.strftime("%Y-%m-%d %H:%M"), "machine": _pf.node(), "platform": plat.key,
                    "n": args.n, "pairs": args.pairs, "runs": summaries})
    atomic_write_json(out, {"invocations": history, "noise": rep})


if __name__ == "__main__":
    main()
