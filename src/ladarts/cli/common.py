"""Shared argument helpers for the command modules."""

from __future__ import annotations

import argparse
import json
from typing import Any


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
