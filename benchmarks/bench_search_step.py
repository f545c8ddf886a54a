"""Search-step cost on this CPU: time and peak RSS of one first-order step (α step + w step) of the DARTS and
PC-DARTS supernets at the reference size (C=16 × 8 cells, 32 px) and one batch size, 1 thread; the latency term's
overhead, measured alternating steps with and without it; and the extrapolated cost of a full CIFAR-10 search.

Each configuration runs in its own process so that its peak RSS is its own.

    .venv/bin/python benchmarks/bench_search_step.py                  # step time + RSS, DARTS and PC-DARTS
    .venv/bin/python benchmarks/bench_search_step.py --overhead-pairs 20 [--lpm DIR]
    .venv/bin/python benchmarks/bench_search_step.py --methods darts --peer-python /tmp/nni-venv/bin/python

``--peer-python`` runs NNI 3.0's DARTS step (``benchmarks/peers/nni_darts_step.py``, in the venv that
``benchmarks/peers/setup_nni.sh`` builds) on the same configuration, alternating processes with ours so that both see
the same machine drift; ``--layouts channels_last,nchw`` also times our supernet in the NCHW layout.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import machine, stamp

HERE = Path(__file__).resolve().parent
OUT = HERE / "data" / "search"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker(args: argparse.Namespace) -> dict:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    from ladarts.search import Architect, weight_step
    from ladarts.space.supernet import Supernet

    torch.manual_seed(0)
    net = Supernet(args.channels, 10, args.cells, 3, method=args.method, channels_last=args.layout == "channels_last")
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    arch = Architect(net, order=1)
    b, s = args.batch_size, args.input_size
    xw, yw = torch.randn(b, 3, s, s), torch.randint(0, 10, (b,))
    xa, ya = torch.randn(b, 3, s, s), torch.randint(0, 10, (b,))
    rss_before = _rss_mb()
    rows = []
    for i in range(args.steps):
        t0 = time.perf_counter()
        arch.step(xa, ya)
        t1 = time.perf_counter()
        weight_step(net, w_opt, xw, yw)
        t2 = time.perf_counter()
        rows.append({"alpha_s": t1 - t0, "w_s": t2 - t1, "step_s": t2 - t0})
    net.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        F.cross_entropy(net(xa), ya)
    eval_s = time.perf_counter() - t0
    measured = rows[1:] if len(rows) > 1 else rows  # the first step warms up allocators
    return {"method": args.method, "layout": args.layout, "channels": args.channels, "cells": args.cells,
            "batch_size": b, "input_size": s, "threads": args.threads, "steps_measured": len(measured),
            "step_s_median": statistics.median(r["step_s"] for r in measured),
            "alpha_s_median": statistics.median(r["alpha_s"] for r in measured),
            "w_s_median": statistics.median(r["w_s"] for r in measured),
            "eval_forward_s": eval_s, "steps": rows,
            "rss_before_mb": rss_before, "peak_rss_mb": _rss_mb()}


def overhead_worker(args: argparse.Namespace) -> dict:
    """Alternate steps without and with the latency term (order swapped every pair) on the same supernet."""
    import torch

    torch.set_num_threads(args.threads)
    from ladarts.search import Architect, LatencyObjective, TableCost, weight_step
    from ladarts.space.supernet import Supernet

    if args.lpm:
        from ladarts.predict import LPM

        cost, cost_name = LPM.load(args.lpm), f"lpm {args.lpm}"
    else:
        cost, cost_name = TableCost.macs_proxy(), "macs-proxy table"
    torch.manual_seed(0)
    net = Supernet(args.channels, 10, args.cells, 3, method=args.method)
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    plain = Architect(net, order=1)
    objective = LatencyObjective(cost, lam=0.1, mode=args.soft_mode)
    with_lat = Architect(net, order=1, objective=objective)
    with_lat.optimizer = plain.optimizer  # one α optimiser: the two differ only by the latency term
    b, s = args.batch_size, args.input_size
    xw, yw = torch.randn(b, 3, s, s), torch.randint(0, 10, (b,))
    xa, ya = torch.randn(b, 3, s, s), torch.randint(0, 10, (b,))

    def step(a: Architect) -> float:
        t0 = time.perf_counter()
        a.step(xa, ya)
        weight_step(net, w_opt, xw, yw)
        return time.perf_counter() - t0

    step(plain), step(with_lat)  # warm-up
    off, on = [], []
    for i in range(args.overhead_pairs):
        if i % 2 == 0:
            off.append(step(plain))
            on.append(step(with_lat))
        else:
            on.append(step(with_lat))
            off.append(step(plain))
    term = []
    for _ in range(50):
        t0 = time.perf_counter()
        t, _ = objective(*net.arch_tensors())
        torch.autograd.grad(t, net.arch_parameters(), allow_unused=True)
        term.append(time.perf_counter() - t0)
    ratios = [b_ / a_ for a_, b_ in zip(off, on)]
    return {"method": args.method, "channels": args.channels, "cells": args.cells, "batch_size": b, "input_size": s,
            "soft_mode": args.soft_mode, "cost": cost_name, "pairs": len(off),
            "step_without_s_median": statistics.median(off), "step_with_s_median": statistics.median(on),
            "overhead_median_of_ratios_pct": 100 * (statistics.median(ratios) - 1),
            "overhead_of_medians_pct": 100 * (statistics.median(on) / statistics.median(off) - 1),
            "term_fwd_bwd_ms_median": 1e3 * statistics.median(term)}


def spawn(extra: list[str], python: str = sys.executable, script: str = __file__) -> dict:
    args = [python, script, *extra] if script != __file__ else [python, script, "--worker", *extra]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_peer(args: argparse.Namespace, common: list[str]) -> list[dict]:
    """Alternate one process of ours and one of NNI's per round (order swapped every round): same config, same drift."""
    peer_script = str(HERE / "peers" / "nni_darts_step.py")
    rounds = []
    for i in range(args.peer_rounds):
        order = ("ladarts", "nni") if i % 2 == 0 else ("nni", "ladarts")
        row = {}
        for who in order:
            if who == "ladarts":
                row[who] = spawn(["--method", "darts", *common])
            else:
                row[who] = spawn(common, python=args.peer_python, script=peer_script)
            print(f"round {i + 1} {who}: step {row[who]['step_s_median']:.2f} s, peak RSS "
                  f"{row[who]['peak_rss_mb']:.0f} MB", file=sys.stderr)
        rounds.append(row)
    return rounds


def print_peer(rounds: list[dict]) -> None:
    print("\nAgainst NNI 3.0's DARTS (first order), same config, processes alternating:")
    print("| round | ladarts step (s) | NNI step (s) | time ratio | ladarts peak RSS (MB) | NNI peak RSS (MB) | "
          "memory ratio |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for i, r in enumerate(rounds, 1):
        a, b = r["ladarts"], r["nni"]
        print(f"| {i} | {a['step_s_median']:.2f} | {b['step_s_median']:.2f} | "
              f"{a['step_s_median'] / b['step_s_median']:.2f} | {a['peak_rss_mb']:.0f} | {b['peak_rss_mb']:.0f} | "
              f"{a['peak_rss_mb'] / b['peak_rss_mb']:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--overhead-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--method", default="darts")
    ap.add_argument("--methods", default="darts,pc-darts")
    ap.add_argument("--layout", default="channels_last", help=argparse.SUPPRESS)
    ap.add_argument("--layouts", default="channels_last", help="supernet layouts to time: channels_last,nchw")
    ap.add_argument("--peer-python", help="python of the NNI 3.0 venv: also time NNI's DARTS step (DARTS only)")
    ap.add_argument("--peer-rounds", type=int, default=2, help="alternating ladarts/NNI process pairs")
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--cells", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3, help="steps per configuration (the first is a warm-up)")
    ap.add_argument("--overhead-pairs", type=int, default=0, help="pairs of steps with/without the latency term")
    ap.add_argument("--overhead-size", default="8,5,16", help="C,cells,px of the overhead supernet")
    ap.add_argument("--soft-mode", default="derived")
    ap.add_argument("--lpm", help="LPM folder for the overhead run (default: a MACs-proxy lookup table)")
    ap.add_argument("--skip-steps", action="store_true", help="only the overhead measurement")
    ap.add_argument("--json", default=str(OUT / "bench_search_step.json"))
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(overhead_worker(args) if args.overhead_worker else worker(args)))
        return

    result: dict = {"machine": machine(), **stamp(), "steps": [], "overhead": [], "peer": []}
    common = ["--channels", str(args.channels), "--cells", str(args.cells), "--batch-size", str(args.batch_size),
              "--input-size", str(args.input_size), "--threads", str(args.threads), "--steps", str(args.steps)]
    if not args.skip_steps and not args.peer_python:
        for m in args.methods.split(","):
            for layout in args.layouts.split(","):
                r = spawn(["--method", m, "--layout", layout, *common])
                result["steps"].append(r)
                print(f"{m} {layout}: step {r['step_s_median']:.2f} s (α {r['alpha_s_median']:.2f} s, "
                      f"w {r['w_s_median']:.2f} s), peak RSS {r['peak_rss_mb']:.0f} MB", file=sys.stderr)
    if args.peer_python:
        result["peer"] = run_peer(args, common)
    if args.overhead_pairs:
        c, l, px = (int(v) for v in args.overhead_size.split(","))
        for mode in ("derived", "straight-through"):
            extra = ["--overhead-worker", "--method", "darts", "--channels", str(c), "--cells", str(l),
                     "--batch-size", str(args.batch_size), "--input-size", str(px), "--threads", str(args.threads),
                     "--overhead-pairs", str(args.overhead_pairs), "--soft-mode", mode]
            if args.lpm:
                extra += ["--lpm", args.lpm]
            result["overhead"].append(spawn(extra))

    print(f"machine: {result['machine']['cpu']}, torch {result['machine']['versions']['torch']}, {result['date']}")
    if result["steps"]:
        print("\n| method | layout | C × cells | batch | px | threads | step (s, median) | α step (s) | w step (s) | "
              "peak RSS (MB) |")
        print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in result["steps"]:
            print(f"| {r['method']} | {r['layout']} | {r['channels']} × {r['cells']} | {r['batch_size']} | "
                  f"{r['input_size']} | "
                  f"{r['threads']} | {r['step_s_median']:.2f} | {r['alpha_s_median']:.2f} | {r['w_s_median']:.2f} | "
                  f"{r['peak_rss_mb']:.0f} |")
        print("\nExtrapolation (not a measurement): a full CIFAR-10 search at the reference settings on this CPU,")
        print("from the median step time above; 25,000 images per half, validation pass counted as forward-only.")
        print("| method | layout | batch | steps/epoch | epochs | α-frozen epochs | extrapolated hours |")
        print("|---|---|---:|---:|---:|---:|---:|")
        extrap = []
        for r in result["steps"]:
            ref_batch = 64 if r["method"] == "darts" else 256
            scale = ref_batch / r["batch_size"]  # per-sample cost assumed linear in the batch (labelled)
            steps = math.ceil(25000 / ref_batch)
            frozen = 0 if r["method"] == "darts" else 15
            step_s = (r["alpha_s_median"] + r["w_s_median"]) * scale
            w_only = r["w_s_median"] * scale
            eval_s = r["eval_forward_s"] * scale
            total = steps * (50 * eval_s + frozen * w_only + (50 - frozen) * step_s)
            extrap.append({"method": r["method"], "layout": r["layout"], "batch": ref_batch,
                           "steps_per_epoch": steps, "epochs": 50,
                           "frozen_epochs": frozen, "hours": total / 3600, "assumes_linear_batch_scaling": scale != 1})
            print(f"| {r['method']} | {r['layout']} | {ref_batch} | {steps} | 50 | {frozen} | {total / 3600:.0f} |")
        result["extrapolation"] = extrap
    if result["peer"]:
        print_peer(result["peer"])
    if result["overhead"]:
        print("\nLatency-term overhead, steps alternating without/with it (same supernet, same batches):")
        print("| supernet | soft form | cost | pairs | without (s) | with (s) | overhead (median of ratios) | term fwd+bwd (ms) |")
        print("|---|---|---|---:|---:|---:|---:|---:|")
        for r in result["overhead"]:
            print(f"| C{r['channels']} × {r['cells']}, {r['input_size']} px, batch {r['batch_size']} | {r['soft_mode']} | "
                  f"{r['cost']} | {r['pairs']} | {r['step_without_s_median']:.3f} | {r['step_with_s_median']:.3f} | "
                  f"{r['overhead_median_of_ratios_pct']:+.2f}% | {r['term_fwd_bwd_ms_median']:.2f} |")
    from ladarts.io import atomic_write_json

    atomic_write_json(args.json, result)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
