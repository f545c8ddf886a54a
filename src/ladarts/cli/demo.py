"""`ladarts demo`: what `make demo` runs."""

from __future__ import annotations

import argparse


def cmd_demo(args: argparse.Namespace) -> int:
    from ladarts.demo import run_demo

    run_demo(out=args.out, seed=args.seed, remeasure=args.remeasure)
    return 0


def register(add) -> None:
    p = add("demo", cmd_demo, "run the pipeline on the embedded default (what `make demo` runs)")
    p.add_argument("--out", default="demo-out", help="output folder (default demo-out)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--remeasure", action="store_true",
                   help="time the two trained networks again (default: reuse a finished comparison.json)")
