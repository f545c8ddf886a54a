"""Commands on the search space: info, sample, zoo."""

from __future__ import annotations

import argparse
import sys

from ladarts.cli.common import GENOTYPE_HELP, add_network_args, network_config_from_args, print_json
from ladarts.errors import UserInputError


def cmd_info(args: argparse.Namespace) -> int:
    from ladarts.space import resolve_genotype
    from ladarts.space.describe import describe

    name, genotype = resolve_genotype(args.genotype)
    info = describe(genotype, network_config_from_args(args), name=name)
    if args.json:
        print_json(info)
        return 0
    print(f"{info['name']}: {info['params_m']:.6f} M params (without the auxiliary head), "
          f"{info['macs_m']:.1f} M MACs at batch 1")
    net = info["network"]
    print(f"network: {net['preset']}, C={net['channels']}, {net['cells']} cells, {net['classes']} classes, "
          f"{net['input_size']} px × {net['in_channels']} channels")
    print(f"encodable in the DARTS space: {'yes, hash ' + info['arch_hash'] if info['encodable'] else 'no'}")
    print(f"genotype: {info['darts_text']}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from ladarts.io import atomic_write_text
    from ladarts.space import sample_genotypes

    if not 0 <= args.n <= 10_000_000:
        raise UserInputError(f"--n must be in 0..10000000, got {args.n}")
    if not 0 <= args.seed < 2**32:
        raise UserInputError(f"--seed must be in 0..{2**32 - 1}, got {args.seed}")
    lines = [g.to_json() for g in sample_genotypes(args.n, args.seed, args.sampler)]
    text = "".join(line + "\n" for line in lines)
    if args.out:
        atomic_write_text(args.out, text)
        print(f"wrote {args.n} genotypes to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    from ladarts.space import ZOO, is_encodable

    rows = [{"name": n, "encodable": is_encodable(g), "genotype": g.to_dict()} for n, g in ZOO.items()]
    if args.json:
        print_json(rows)
    else:
        for r in rows:
            print(f"{r['name']:<16} {'encodable' if r['encodable'] else 'not encodable (not a 4-node DARTS cell)'}")
    return 0



def register(add) -> None:
    p = add("info", cmd_info, "parameters, MACs and encoding of a genotype on the CIFAR or ImageNet network")
    p.add_argument("genotype", metavar="GENOTYPE", help=GENOTYPE_HELP)
    add_network_args(p)
    p.add_argument("--json", action="store_true", help="print a JSON object")

    p = add("sample", cmd_sample, "print N random architectures of the DARTS space, one JSON object per line")
    p.add_argument("--n", type=int, required=True, help="number of architectures")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--sampler", default="uniform", choices=["uniform", "stratified"],
                   help="uniform: every edge a uniform primitive (default); stratified: the number of parameter-free "
                        "edges per cell uniform in 0..8")
    p.add_argument("--out", help="write JSON lines to this file instead of stdout")

    p = add("zoo", cmd_zoo, "list the published genotypes")
    p.add_argument("--json", action="store_true", help="print JSON")
