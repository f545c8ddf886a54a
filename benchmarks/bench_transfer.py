"""Few-shot transfer of the LPM from the PyTorch-eager CPU platform to the ONNX Runtime CPU platform.

Fits a source LPM on the torch platform's training run, then for K = 10/20/50/100 and several seeds draws K
architectures of the ONNX Runtime run, adapts the source LPM with them (recalibration + L2-SP fine-tuning) and
trains the same LPM recipe on the K alone; all are scored on the run's other architectures. The ONNX
Runtime run-vs-run noise floor is printed beside them.

    python benchmarks/bench_transfer.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ladarts.hardware import LatencyStore
from ladarts.io import atomic_write_json, json_safe
from ladarts.predict import dataset_from_records, fit_dataset, transfer_experiment
from ladarts.predict.compare import noise_floor

from common import machine, stamp

MODELS = ("source_as_is", "recalibrated", "finetuned", "scratch")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="benchmarks/data/latency_cpu.db")
    ap.add_argument("--source", default="torch-cpu-t1-b1-float32/cifar-c36-l20")
    ap.add_argument("--source-run", default="train")
    ap.add_argument("--target", default="onnxruntime-cpu-t1-b1-float32/cifar-c36-l20")
    ap.add_argument("--target-run", default="a")
    ap.add_argument("--target-rerun", default="b")
    ap.add_argument("--ks", default="10,20,50,100")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--out", default="benchmarks/data/bench_transfer.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    with LatencyStore.open(args.db) as store:
        src_key, tgt_key = store.resolve_platform(args.source), store.resolve_platform(args.target)
        source = dataset_from_records(store.records(src_key, run=args.source_run))
        target = dataset_from_records(store.records(tgt_key, run=args.target_run))
        rerun = dataset_from_records(store.records(tgt_key, run=args.target_rerun))
        src_row, tgt_row = store.platform_row(src_key), store.platform_row(tgt_key)
    shared = len(set(source.hashes) & set(target.hashes))
    print(f"source {src_key} run {args.source_run!r}: {len(source)} architectures ({shared} also in the target run)")
    print(f"target {tgt_key} run {args.target_run!r}: {len(target)} architectures", flush=True)
    lpm, rep = fit_dataset(source, seed=0, platform_row=src_row)
    print(f"source LPM: {rep['epochs']} epochs, {rep['fit_s']:.0f} s, validation MAPE "
          f"{rep['metrics']['validation']['mape_pct']:.2f}%", flush=True)

    floor = noise_floor(target, rerun)
    print(f"target noise floor (run {args.target_run} predicts run {args.target_rerun}, {floor['n']} archs): "
          f"MAPE {floor['mape_pct']:.2f}%, τ {floor['kendall_tau_b']:.3f}")

    rows = []
    for k in (int(x) for x in args.ks.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            res = transfer_experiment(lpm, target, k, seed=seed, platform_row=tgt_row)
            res.pop("lpm")
            res.pop("fit_report")
            rows.append(res)
            m = res["metrics"]
            print(f"  K={k:3d} seed {seed}: " + "  ".join(f"{n} {m[n]['mape_pct']:.2f}%/{m[n]['kendall_tau_b']:.3f}"
                                                       for n in MODELS), flush=True)
    summary = {}
    n_eval = sorted({r["n_eval"] for r in rows})
    print(f"\nmean ± std over seeds, on the target run's architectures outside the K that the source LPM was not "
          f"fitted on ({n_eval[0]}–{n_eval[-1]}; MAPE % | Kendall τ-b | within ±10%):")
    print("| K | " + " | ".join(MODELS) + " |")
    print("|---|" + "---|" * len(MODELS))
    for k in sorted({r["k"] for r in rows}):
        rk = [r for r in rows if r["k"] == k]
        cells, summary[k] = [], {}
        for n in MODELS:
            mape = np.array([r["metrics"][n]["mape_pct"] for r in rk])
            tau = np.array([r["metrics"][n]["kendall_tau_b"] or np.nan for r in rk], dtype=float)
            w10 = np.array([r["metrics"][n]["within_10_pct"] for r in rk])
            summary[k][n] = {"mape_mean": mape.mean(), "mape_std": mape.std(), "tau_mean": np.nanmean(tau),
                             "tau_std": np.nanstd(tau), "within_10_mean": w10.mean()}
            cells.append(f"{mape.mean():.2f} ± {mape.std():.2f} | {np.nanmean(tau):.3f} ± {np.nanstd(tau):.3f} | "
                         f"{w10.mean():.0f}%")
        print(f"| {k} | " + " | ".join(cells) + " |")
    wins = {k: sum(r["metrics"]["finetuned"]["mape_pct"] < r["metrics"]["scratch"]["mape_pct"]
                   for r in rows if r["k"] == k) for k in summary}
    print("\nfine-tuned beats scratch on MAPE in " + ", ".join(f"K={k}: {w}/{len(args.seeds.split(','))}"
                                                             for k, w in wins.items()) + " seeds")
    out = {"source": src_key, "source_run": args.source_run, "n_source": len(source), "shared_archs": shared,
           "target": tgt_key, "target_run": args.target_run, "n_target": len(target), "target_noise_floor": floor,
           "source_fit": rep, "runs": rows, "summary": summary, "finetuned_wins": wins, "machine": machine(),
           **stamp(), "wall_s": round(time.time() - t0, 1)}
    atomic_write_json(args.out, json_safe(out))
    print(f"\nwrote {args.out} ({out['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
