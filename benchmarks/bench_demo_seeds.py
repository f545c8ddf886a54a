"""The demo (measure → fit → search λ=0 and λ>0 → train both → measure both), repeated over seeds.

Each seed is a full, independent replicate: its own measured architectures, LPM, searches and trainings.
Prints per-seed rows and the mean ± std of test accuracy and measured latency for λ=0 and λ>0, the λ>0 cell's
prediction error against its measurement (and, per refinement round, the derived cell's prediction before and
after the refit against its measurement), and the latency reduction with its CI, measured twice (the demo's own
verdict, then `--remeasure`: does the second estimate fall inside the first interval, do the intervals overlap?).

    python benchmarks/bench_demo_seeds.py --seeds 0,1,2 --work /tmp/demo-seeds
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import asdict, replace

from ladarts.demo import DemoConfig, run_demo
from ladarts.io import atomic_write_json

from common import machine, stamp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--lam", type=float, default=DemoConfig.lam)
    ap.add_argument("--refine", type=int, default=DemoConfig.refine, help="refinement rounds of the λ>0 search")
    ap.add_argument("--work", default="/tmp/demo-seeds", help="run folders (large; not committed)")
    ap.add_argument("--json", default="benchmarks/data/bench_demo_seeds.json")
    args = ap.parse_args()
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        cfg = DemoConfig(out=f"{args.work}/seed{seed}", seed=seed, lam=args.lam, refine=args.refine)
        t0 = time.perf_counter()
        s = run_demo(config=cfg)
        seconds = round(time.perf_counter() - t0, 1)
        again_s = run_demo(config=replace(cfg, remeasure=True))["compare"]
        again = again_s["paired"]
        base, la = s["compare"]["rows"]
        la_again = again_s["rows"][1]
        first = s["compare"]["paired"]
        rounds = s["search"][f"{args.lam:g}"]["refine_rounds"]
        rows.append({"seed": seed, "seconds": seconds,
                     "pred_err1_pct": 100 * abs(la["predicted_ms"] - la["measured_ms"]) / la["measured_ms"],
                     "ci_pct": first["ci_pct"], "rerun_reduction_pct": again["reduction_pct"],
                     "rerun_ci_pct": again["ci_pct"],
                     "rerun_inside_ci": first["ci_pct"][0] <= again["reduction_pct"] <= first["ci_pct"][1],
                     "cis_overlap": first["ci_pct"][0] <= again["ci_pct"][1] and again["ci_pct"][0] <= first["ci_pct"][1],
                     "load": [first["load"], again["load"]],
                     "ms1_again": la_again["measured_ms"],
                     "pred_err1_again_pct": 100 * abs(la["predicted_ms"] - la_again["measured_ms"]) / la_again["measured_ms"],
                     "refine_rounds": [{k: r[k] for k in ("round", "epoch", "predicted_ms", "refit_predicted_ms",
                                                          "measured_ms", "n_train")} for r in rounds],
                     "acc0": base["test_acc_pct"], "acc1": la["test_acc_pct"],
                     "ms0": base["measured_ms"], "ms1": la["measured_ms"],
                     "pred0": base["predicted_ms"], "pred1": la["predicted_ms"],
                     "reduction_pct": s["compare"]["measured_reduction_pct"],
                     "genotype0": base["genotype"], "genotype1": la["genotype"]})
    lam = f"λ={args.lam:g}"
    print(f"\n| seed | acc λ=0 % | acc {lam} % | measured λ=0 ms | measured {lam} ms | predicted {lam} ms (error) | "
          f"{lam} re-measured ms (error) | reduction % (95% CI) | re-measured reduction % (95% CI) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        verdict = ("inside" if r["rerun_inside_ci"] else "outside") + (", CIs overlap" if r["cis_overlap"] else "")
        print(f"| {r['seed']} | {r['acc0']:.2f} | {r['acc1']:.2f} | {r['ms0']:.2f} | {r['ms1']:.2f} | "
              f"{r['pred1']:.2f} ({r['pred_err1_pct']:.1f}%) | {r['ms1_again']:.2f} ({r['pred_err1_again_pct']:.1f}%) | "
              f"{r['reduction_pct']:.1f} ({r['ci_pct'][0]:.1f}–{r['ci_pct'][1]:.1f}) | {r['rerun_reduction_pct']:.1f} "
              f"({r['rerun_ci_pct'][0]:.1f}–{r['rerun_ci_pct'][1]:.1f}; {verdict}) |")

    def ms(key: str) -> str:
        v = [r[key] for r in rows]
        return f"{statistics.mean(v):.2f} ± {statistics.stdev(v) if len(v) > 1 else 0:.2f}"

    print(f"| mean ± std | {ms('acc0')} | {ms('acc1')} | {ms('ms0')} | {ms('ms1')} | {ms('pred_err1_pct')} "
          f"(error %) | {ms('pred_err1_again_pct')} (error %) | {ms('reduction_pct')} | {ms('rerun_reduction_pct')} |")
    print(f"\nrefinement rounds of the {lam} search (derived cell: predicted before → after the refit, measured):")
    for r in rows:
        print(f"seed {r['seed']}: " + "; ".join(
            f"epoch {x['epoch'] + 1}: {x['predicted_ms']:.2f} → {x['refit_predicted_ms']:.2f} ms, measured "
            f"{x['measured_ms']:.2f} ms" for x in r["refine_rounds"]))
    atomic_write_json(args.json, {**stamp(), "machine": machine(), "config": asdict(DemoConfig(lam=args.lam, refine=args.refine)),
                                  "rows": rows})


if __name__ == "__main__":
    main()
