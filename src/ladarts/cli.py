"""The ``ladarts`` command line: argument parsing and printing only; the work is done by the packages."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Sequence

from ladarts import __version__
from ladarts.errors import LadartsError, UserInputError


class _Parser(argparse.ArgumentParser):
    """Argument errors are one line on stderr and exit code 2 (argparse's default prints the usage too)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2))


def _add_network_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("network (defaults from the preset)")
    g.add_argument("--network", default="cifar", choices=["cifar", "imagenet"],
                   help="preset: cifar = C36 × 20 cells, 32 px; imagenet = C48 × 14 cells, 224 px")
    g.add_argument("--channels", type=int, help="initial channels C")
    g.add_argument("--cells", type=int, help="number of cells L")
    g.add_argument("--classes", type=int, help="number of classes")
    g.add_argument("--input-size", type=int, help="input resolution in px")
    g.add_argument("--in-channels", type=int, help="input image channels")


def _network_config(args: argparse.Namespace):
    from ladarts.space import network_config

    return network_config(
        args.network, channels=args.channels, cells=args.cells, classes=args.classes,
        input_size=args.input_size, in_channels=args.in_channels,
    )


# ---- commands --------------------------------------------------------------------------------------------
def cmd_info(args: argparse.Namespace) -> int:
    from ladarts.space import resolve_genotype
    from ladarts.space.describe import describe

    name, genotype = resolve_genotype(args.genotype)
    info = describe(genotype, _network_config(args), name=name)
    if args.json:
        _print_json(info)
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

    if args.n < 0:
        raise UserInputError(f"--n must be non-negative, got {args.n}")
    lines = [g.to_json() for g in sample_genotypes(args.n, args.seed)]
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
        _print_json(rows)
    else:
        for r in rows:
            print(f"{r['name']:<16} {'encodable' if r['encodable'] else 'not encodable (not a 4-node DARTS cell)'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ladarts.demo import run_demo

    run_demo(out=args.out, seed=args.seed)
    return 0


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "info": (cmd_info, "parameters, MACs and encoding of a genotype on the CIFAR or ImageNet network"),
    "sample": (cmd_sample, "print N random architectures of the DARTS space, one JSON object per line"),
    "zoo": (cmd_zoo, "list the published genotypes"),
    "demo": (cmd_demo, "run the pipeline on the embedded default (what `make demo` runs)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ladarts", description="Latency-aware differentiable architecture search (LA-DARTS).")
    parser.add_argument("--version", action="version", version=f"ladarts {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def add(name: str) -> argparse.ArgumentParser:
        fn, help_ = COMMANDS[name]
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=fn)
        return p

    genotype_help = "a zoo name (ladarts zoo), a JSON file, or DARTS text Genotype(normal=[...], ...)"
    p = add("info")
    p.add_argument("genotype", metavar="GENOTYPE", help=genotype_help)
    _add_network_args(p)
    p.add_argument("--json", action="store_true", help="print a JSON object")

    p = add("sample")
    p.add_argument("--n", type=int, required=True, help="number of architectures")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", help="write JSON lines to this file instead of stdout")

    p = add("zoo")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = add("demo")
    p.add_argument("--out", default="demo-out", help="output folder (default demo-out)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LadartsError as e:
        sys.stderr.write(f"ladarts: error: {e}\n")
        return e.exit_code
    except OSError as e:
        sys.stderr.write(f"ladarts: error: {e.strerror or e} ({e.filename or ''})\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("ladarts: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
