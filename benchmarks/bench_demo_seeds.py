"""The demo (measure → fit → search λ=0 and λ>0 → train both → measure both), repeated over seeds.

Each seed is a full, independent replicate: its own measured architectures, LPM, searches and trainings.
Prints per-seed rows and the mean ± std of test accuracy and measured latency for λ=0 and λ>0.

    python benchmarks/bench_demo_seeds.py --seeds 0,1,2 --work /tmp/demo-seeds
"""

from __future__ import annotations

import argparse
import platform as _pf
import statistics
import time
from dataclasses import asdict

from ladarts.demo import DemoConfig, run_demo
from ladarts.io import atomic_write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--lam", type=float, default=DemoConfig.lam)
    ap.add_argument("--work", default="/tmp/demo-seeds", help="run folders (large; not committed)")
    ap.add_argument("--json", default="benchmarks/data/bench_demo_seeds.json")
    args = ap.parse_args()
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        cfg = DemoConfig(out=f"{args.work}/seed{seed}", seed=seed, lam=args.lam)
        t0 = time.perf_counter()
        s = run_demo(config=cfg)
        base, la = s["compare"]["rows"]
        rows.append({"seed": seed, "seconds": round(time.perf_counter() - t0, 1),
                     "acc0": base["test_acc_pct"], "acc1": la["test_acc_pct"],
                     "ms0": base["measured_ms"], "ms1": la["measured_ms"],
                     "pred0": base["predicted_ms"], "pred1": la["predicted_ms"],
                     "reduction_pct": s["compare"]["measured_reduction_pct"],
                     "genotype0": base["genotype"], "genotype1": la["genotype"]})
    print(f"\n| seed | acc λ=0 % | acc λ={args.lam:g} % | measured λ=0 ms | measured λ={args.lam:g} ms | reduction % |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['acc0']:.2f} | {r['acc1']:.2f} | {r['ms0']:.2f} | {r['ms1']:.2f} | "
              f"{r['reduction_pct']:.1f} |")

    def ms(key: str) -> str:
        v = [r[key] for r in rows]
        return f"{statistics.mean(v):.2f} ± {statistics.stdev(v) if len(v) > 1 else 0:.2f}"

    print(f"| mean ± std | {ms('acc0')} | {ms('acc1')} | {ms('ms0')} | {ms('ms1')} | {ms('reduction_pct')} |")
    atomic_write_json(args.json, {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": _pf.processor() or _pf.node(),
                                  "command": "python benchmarks/bench_demo_seeds.py --seeds " + args.seeds,
                                  "config": asdict(DemoConfig(lam=args.lam)), "rows": rows})


if __name__ == "__main__":
    main()
