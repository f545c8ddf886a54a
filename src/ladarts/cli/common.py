"""Shared argument helpers for the command modules."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ladarts.errors import UserInputError


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2))


def add_network_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("network (defaults from the preset)")
    g.add_argument("--network", default="cifar", choices=["cifar", "imagenet"],
                   help="preset: cifar = C36 × 20 cells, 32 px; imagenet = C48 × 14 cells, 224 px")
    g.add_argument("--channels", type=int, help="initial channels C")
    g.add_argument("--cells", type=int, help="number of cells L")
    g.add_argument("--classes", type=int, help="number of classes")
    g.add_argument("--input-size", type=int, help="input resolution in px")
    g.add_argument("--in-channels", type=int, help="input image channels")


def network_config_from_args(args: argparse.Namespace):
    from ladarts.space import network_config

    return network_config(
        args.network, channels=args.channels, cells=args.cells, classes=args.classes,
        input_size=args.input_size, in_channels=args.in_channels,
    )


GENOTYPE_HELP = "a zoo name (ladarts zoo), a JSON file, or DARTS text Genotype(normal=[...], ...)"

#: The runtimes' names for --help (listed here, not imported: registering the commands must not load torch;
#: tests/test_architecture.py checks it against ladarts.hardware.platform.RUNTIMES).
RUNTIME_HELP = "torch (eager; the default), onnxruntime, openvino, inductor, executorch, onnxruntime-cuda"


def launch_nproc(args: argparse.Namespace, kind: str, batch_size: int) -> int | None:
    """``--nproc N``: rerun this command line in N processes under torchrun (single node); None when the command
    should run here (no --nproc, or --nproc 1). Refusals come before any process starts."""
    if args.nproc is None:
        return None
    from ladarts import distributed
    from ladarts.runs import recorded_world_size_check

    distributed.check_nproc(args.nproc, args.device)
    if args.nproc == 1:
        return None
    if batch_size % args.nproc or batch_size // args.nproc < 2:
        raise UserInputError(f"--batch-size {batch_size} is the batch of all {args.nproc} processes together: it must "
                             "split into equal parts of at least 2")
    if args.resume:
        recorded_world_size_check(args.out, args.nproc, kind)
    return distributed.launch(args.nproc, distributed.without_flag(sys.argv[1:], "--nproc"))


def is_main_process() -> bool:
    """Under torchrun only rank 0 prints the summary."""
    import os

    return os.environ.get("RANK", "0") == "0"


def add_scale_args(p: argparse.ArgumentParser) -> None:
    """Device, processes and precision: the flags search and train share."""
    g = p.add_argument_group("scaling out (see README, 'Scaling out')")
    g.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (under torchrun, cuda = cuda:LOCAL_RANK)")
    g.add_argument("--nproc", type=int, metavar="N",
                   help="run in N processes on this node under torchrun (at most one per CUDA device, or per core)")
    g.add_argument("--amp", choices=["bf16", "fp16"], help="mixed precision with autocast (fp16 with a GradScaler)")
    g.add_argument("--sync-bn", action="store_true",
                   help="synchronise BN batch statistics across processes (CUDA only; default: per-process, as the "
                        "reference)")
