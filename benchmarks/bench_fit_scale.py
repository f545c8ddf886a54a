"""Fitting the LPM at the paper's scale: 100K synthetic records (additive per-edge latency + noise).

Times the whole of ``fit_lpm`` (encoding included) on the CPU (one thread by default) or a GPU, and scores the
result on 5K other synthetic architectures, where the noise-free latency is known.

    python benchmarks/bench_fit_scale.py                  # 100K records, CPU, 1 thread
    python benchmarks/bench_fit_scale.py --device cuda    # on a GPU
"""

from __future__ import annotations

import argparse
import time

import torch

from ladarts.io import atomic_write_json, json_safe
from ladarts.predict import LPMConfig, fit_lpm, synthetic_records
from ladarts.predict.fit import dataset_from_records
from ladarts.predict.metrics import format_table, regression_metrics
from ladarts.predict.synthetic import additive_latency, additive_table

from common import machine, stamp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--noise", type=float, default=0.02, help="multiplicative noise (std) on the latency")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-epochs", type=int, help="override LPMConfig.max_epochs")
    ap.add_argument("--out", default="benchmarks/data/bench_fit_scale.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    records = synthetic_records(args.n, seed=0, noise=args.noise)
    t_sample = time.perf_counter() - t0
    test = dataset_from_records(synthetic_records(5000, seed=99, noise=args.noise))
    truth = additive_latency(test.encodings.numpy(), additive_table(0))
    cfg = LPMConfig(**({"max_epochs": args.max_epochs} if args.max_epochs else {}))
    t1 = time.perf_counter()
    lpm, rep = fit_lpm(records, seed=0, config=cfg, device=args.device, progress=True)
    t_fit = time.perf_counter() - t1
    seen = set(lpm.meta["training"]["arch_hashes"])
    keep = [i for i, h in enumerate(test.hashes) if h not in seen]
    pred = lpm.predict_encodings(test.encodings[keep])
    rows = {"vs noise-free latency": regression_metrics(pred, truth[keep]),
            "vs noisy latency": regression_metrics(pred, test.latency_ms[keep] * 1.0)}
    print(f"{args.n} records ({args.noise:.0%} noise): sampling + records {t_sample:.1f} s; fit_lpm {t_fit:.1f} s "
          f"on {args.device} ({args.threads} thread(s)): {rep['epochs']} epochs, {rep['steps']} steps of "
          f"{rep['batch_size']}, best epoch {rep['best_epoch']}")
    print(format_table(rows, f"\non {len(keep)} other architectures"))
    gpu = torch.cuda.get_device_name(torch.device(args.device)) if args.device.startswith("cuda") else None
    out = {"n": args.n, "noise": args.noise, "device": args.device, "gpu": gpu, "threads": args.threads,
           "machine": machine(), **stamp(), "sample_s": t_sample, "fit_lpm_s": t_fit, "fit": rep, "test": rows}
    atomic_write_json(args.out, json_safe(out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
