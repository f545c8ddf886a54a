"""The ``ladarts`` command line: argument parsing and printing only; the work is done by the packages.

Each module here registers its commands with ``register(add)``; ``add(name, func, help)`` returns the
subcommand's parser.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from ladarts import __version__
from ladarts.errors import LadartsError

COMMAND_MODULES = ("space", "hardware", "predict", "search", "train", "report", "demo")


class Parser(argparse.ArgumentParser):
    """Argument errors are one line on stderr and exit code 2 (argparse's default prints the usage too)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = Parser(prog="ladarts", description="Latency-aware differentiable architecture search (LA-DARTS).")
    parser.add_argument("--version", action="version", version=f"ladarts {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    def add(name: str, func: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    for module in COMMAND_MODULES:
        importlib.import_module(f"ladarts.cli.{module}").register(add)
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
