"""Distributed search on this CPU: bilevel steps per second with 1 and 2 processes (torchrun, gloo, one thread
each), measured side by side in one run (the two alternate, so both see the same machine load).

The global batch is fixed (``--batch``, split evenly across the processes, as ``ladarts search`` does), so 2
processes at twice the speed would be perfect scaling. A 2-core machine shared with other work bounds what this can
show: the table reports the load average before and after.

    .venv/bin/python benchmarks/bench_distributed.py                   # DARTS, C=8 × 5 cells, 16 px, batch 64
    .venv/bin/python benchmarks/bench_distributed.py --compile         # also: eager vs torch.compile, one process

``--compile`` times one training step of the discrete network (DARTS_V2, C=16 × 8 cells, 16 px, batch 32, one
thread) eager and under ``torch.compile``: the first compiled step (compilation) and the steady step time, eager and
compiled steps alternating.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine, stamp

HERE = Path(__file__).resolve()
OUT = HERE.parent / "data" / "bench_distributed.json"


def worker(args: argparse.Namespace) -> None:
    """One rank: ``--warmup`` untimed then ``--steps`` timed bilevel steps (α step, then the w step through DDP)."""
    import torch

    torch.set_num_threads(1)
    from ladarts.distributed import setup
    from ladarts.search import Architect, weight_step
    from ladarts.space.supernet import Supernet

    ctx = setup("cpu")
    per = args.batch // ctx.world_size
    torch.manual_seed(0)
    net = Supernet(args.channels, 10, args.cells, 3, method=args.method)
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    arch = Architect(net, order=1, average=ctx.average_)
    forward = ctx.wrap(net, exclude=net.arch_parameters())
    g = torch.Generator().manual_seed(1 + ctx.rank)  # each rank its own part of the batch
    s = args.input_size
    xw, yw = torch.randn(per, 3, s, s, generator=g), torch.randint(0, 10, (per,), generator=g)
    xa, ya = torch.randn(per, 3, s, s, generator=g), torch.randint(0, 10, (per,), generator=g)
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            ctx.barrier()
            t0 = time.perf_counter()
        arch.step(xa, ya)
        weight_step(net, w_opt, xw, yw, 5.0, forward)
    ctx.barrier()
    wall = time.perf_counter() - t0
    if ctx.is_main:
        Path(args.result).write_text(json.dumps({"nproc": ctx.world_size, "per_process_batch": per,
                                                 "seconds": wall, "steps_per_s": args.steps / wall}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(nproc: int, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--master-addr=127.0.0.1",
               f"--master-port={_free_port()}", str(HERE), "--worker", "--result", str(result),
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--batch", str(args.batch),
               "--channels", str(args.channels), "--cells", str(args.cells), "--input-size", str(args.input_size),
               "--method", args.method]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"{nproc}-process run failed:\n{proc.stderr[-3000:]}")
        return json.loads(result.read_text())


def compile_probe(rounds: int = 20) -> dict:
    """Eager against torch.compile on one training step of the discrete network, one thread: the first compiled step
    (compilation; much shorter when inductor's on-disk cache already holds the kernels), then ``rounds`` rounds of one
    eager and one compiled step, alternating, so that both see the same machine load."""
    import torch
    import torch.nn.functional as F

    from ladarts.space import ZOO, build_network, network_config

    torch.set_num_threads(1)
    x = torch.randn(32, 3, 16, 16, generator=torch.Generator().manual_seed(0)).contiguous(
        memory_format=torch.channels_last)
    y = torch.randint(0, 10, (32,), generator=torch.Generator().manual_seed(1))

    def make(compiled: bool):
        torch.manual_seed(0)
        net = build_network(ZOO["DARTS_V2"], network_config("cifar", channels=16, cells=8, classes=10,
                                                            input_size=16)).to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        f = torch.compile(net) if compiled else net

        def step() -> float:
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(f(x), y).backward()
            opt.step()
            return time.perf_counter() - t0

        return step

    steps = {"eager": make(False), "compiled": make(True)}
    first = {mode: step() for mode, step in steps.items()}
    times: dict[str, list[float]] = {mode: [] for mode in steps}
    for _ in range(rounds):
        for mode, step in steps.items():
            times[mode].append(step())
    return {mode: {"first_step_s": first[mode], "step_s_median": statistics.median(times[mode]),
                   "rounds": rounds} for mode in steps}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=12, help="timed steps per run (default 12)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each process count, alternating (default 3)")
    p.add_argument("--batch", type=int, default=64, help="global batch (default 64, the DARTS reference)")
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--cells", type=int, default=5)
    p.add_argument("--input-size", type=int, default=16)
    p.add_argument("--method", default="darts", choices=["darts", "pc-darts"])
    p.add_argument("--compile", action="store_true", help="also time eager vs torch.compile (minutes)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    before = machine()
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for _ in range(args.repeats):
        for nproc in (1, 2):
            runs[nproc].append(launch(nproc, args))
    after = machine()["load_avg"]
    rows = []
    for nproc, rs in runs.items():
        rates = [r["steps_per_s"] for r in rs]
        rows.append({"nproc": nproc, "per_process_batch": rs[0]["per_process_batch"],
                     "steps_per_s_median": statistics.median(rates), "steps_per_s_all": rates})
    speedup = rows[1]["steps_per_s_median"] / rows[0]["steps_per_s_median"]
    report = {**stamp(), "machine": before, "load_avg_after": after,
              "config": {k: getattr(args, k) for k in ("steps", "warmup", "repeats", "batch", "channels", "cells",
                                                       "input_size", "method")},
              "rows": rows, "speedup_2_over_1": speedup}
    if args.compile:
        report["compile"] = compile_probe()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{before['cpu']}, {before['cpu_count']} cores; load average {before['load_avg']} before, {after} after")
    print(f"{args.method} supernet C={args.channels} × {args.cells} cells, {args.input_size} px, global batch "
          f"{args.batch}, first order, {args.steps} timed steps × {args.repeats} runs each, alternating")
    print("| processes | batch per process | steps/s (median) | runs |")
    print("|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['nproc']} | {r['per_process_batch']} | {r['steps_per_s_median']:.3f} | "
              f"{', '.join(f'{v:.3f}' for v in r['steps_per_s_all'])} |")
    print(f"2 processes / 1: {speedup:.2f}×")
    if args.compile:
        c = report["compile"]
        print("| mode | first step s | step s (median, alternating) |\n|---|---:|---:|")
        for mode, v in c.items():
            print(f"| {mode} | {v['first_step_s']:.2f} | {v['step_s_median']:.4f} |")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
