"""The trained front of a λ sweep: train every run's derived cell from scratch on digits and put its test accuracy
beside the latency the sweep measured (``bench_search_sweep.py``), per soft form and λ.

The supernet's validation accuracy says little about the derived cell (the supernet mixes every op), so "faster
cells at equal accuracy" is judged on trained accuracy. Trainings are resumable run folders; ``--shard i/n`` splits
them over processes (one per core), and a last call without ``--shard`` prints the table from the finished runs.

    python benchmarks/bench_front_train.py --shard 0/2 & python benchmarks/bench_front_train.py --shard 1/2; wait
    python benchmarks/bench_front_train.py            # the table (trains whatever is still missing)
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from common import machine, stamp

HERE = Path(__file__).resolve().parent


def run_dir(work: Path, r: dict) -> Path:
    return work / r["mode"].replace("λ=0", "lambda0") / f"lam{r['lambda']:g}_seed{r['seed']}"


def train_one(work: Path, r: dict, epochs: int) -> float:
    from ladarts.train import TrainConfig, run_train

    out = run_dir(work, r)
    report = out / "report.json"
    if report.exists():
        return json.loads(report.read_text())["test_acc"]
    cfg = TrainConfig(genotype=r["genotype"], out=str(out), dataset="digits", epochs=epochs, seed=r["seed"], threads=1)
    return run_train(cfg, resume=out.exists(), progress=False).test_acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweep", default=str(HERE / "data" / "search" / "bench_search_sweep.json"))
    ap.add_argument("--epochs", type=int, default=8, help="training epochs per cell (digits defaults otherwise)")
    ap.add_argument("--work", default="/tmp/ladarts-front-train", help="run folders (not committed)")
    ap.add_argument("--shard", help="i/n: train only every n-th run starting at i, print nothing")
    ap.add_argument("--json", default=str(HERE / "data" / "search" / "bench_front_train.json"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    sweep = json.loads(Path(args.sweep).read_text())
    runs, work = sweep["runs"], Path(args.work)
    if args.shard:
        i, n = (int(v) for v in args.shard.split("/"))
        for r in runs[i::n]:
            train_one(work, r, args.epochs)
        return
    for r in runs:
        r["test_acc"] = train_one(work, r, args.epochs)
    modes = sweep["args"]["modes"].split(",")
    lambdas = [float(v) for v in sweep["args"]["lambdas"].split(",")]

    def ms(values: list[float], digits: int) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.fmean(values):.{digits}f} ± {sd:.{digits}f}"

    print(f"digits network C16 × 8 cells, 16 px, {args.epochs} epochs, seed = search seed; latency measured by the "
          f"sweep (its deployed network on its platform)")
    print("\n| soft form | λ | seeds | trained test acc % | measured latency (ms) |")
    print("|---|---:|---:|---:|---:|")
    summary = []
    for mode in ["λ=0", *modes]:
        for lam in ([0.0] if mode == "λ=0" else lambdas):
            rs = [r for r in runs if r["mode"] == mode and r["lambda"] == lam]
            acc = [100 * r["test_acc"] for r in rs]
            lat = [r["measured_ms"] for r in rs]
            summary.append({"mode": mode, "lambda": lam, "n": len(rs), "test_acc_pct_mean": statistics.fmean(acc),
                            "measured_ms_mean": statistics.fmean(lat)})
            print(f"| {mode} | {lam:g} | {len(rs)} | {ms(acc, 2)} | {ms(lat, 2)} |")
    result = {"machine": machine(), **stamp(), "epochs": args.epochs, "sweep": args.sweep,
              "summary": summary, "runs": [{k: r[k] for k in ("mode", "lambda", "seed", "genotype", "measured_ms",
                                                               "lat_derived_ms", "val_acc", "test_acc")}
                                           for r in runs]}
    from ladarts.io import atomic_write_json

    atomic_write_json(args.json, result)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
