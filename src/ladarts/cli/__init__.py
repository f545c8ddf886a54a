"""The ``ladarts`` command line: argument parsing and printing only; the work is done by the packages.

Each module here registers its commands with ``register(add)``; ``add(name, func, help)`` returns the
subcommand's parser.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Callable, Sequence

from ladarts import __version__
from ladarts.errors import LadartsError, LadartsWarning

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


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """Every warning the CLI shows is one line, in the form errors take."""
    first = str(message).strip().splitlines()[0] if str(message).strip() else category.__name__
    sys.stderr.write(f"ladarts: warning: {first}\n")


def _likely_cause(e: BaseException) -> str:
    """One line for a failure that is not a user mistake: what failed, and the usual reason."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    name = type(e).__name__
    if isinstance(e, MemoryError) or "out of memory" in text.lower():
        return f"out of memory ({name}{': ' + text if text else ''}); try a smaller batch, network or --n"
    if isinstance(e, RecursionError):
        return "input nested too deeply (RecursionError)"
    if "No space left" in text or "disk full" in text.lower() or "database or disk is full" in text:
        return f"disk full ({text})"
    if type(e).__module__ == "sqlite3" or name in ("OperationalError", "DatabaseError", "IntegrityError"):
        return f"database error: {text} ({name})"
    return f"{name}: {text}" if text else name


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = " ".join(filter(None, (args.command, getattr(args, "db_command", None))))
    with warnings.catch_warnings():  # restores the filters and the display afterwards
        warnings.showwarning = _one_line_warning
        # ladarts' own warnings are for the user: shown once each, whatever PYTHONWARNINGS says about libraries'
        warnings.filterwarnings("default", category=LadartsWarning)
        code = _run(args, command)
    if "ladarts.distributed" in sys.modules:  # a torchrun rank ends here (PyTorch is loaded only when one ran)
        sys.modules["ladarts.distributed"].exit_rank(code)
    return code


def _run(args: argparse.Namespace, command: str) -> int:
    """The command, with every failure turned into one line: exit 2 for bad input, 1 for anything else."""
    try:
        return int(args.func(args) or 0)
    except LadartsError as e:
        sys.stderr.write(f"ladarts: error: {e}\n")
        return e.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("ladarts: interrupted\n")
        return 130
    except OSError as e:
        sys.stderr.write(f"ladarts: error: {e.strerror or e} ({e.filename or ''})\n")
        return 1
    except Exception as e:  # noqa: BLE001 - the top of the program: any failure becomes one line
        if os.environ.get("LADARTS_DEBUG") == "1":
            raise
        sys.stderr.write(f"ladarts: error: {command} failed: {_likely_cause(e)} "
                         "(LADARTS_DEBUG=1 shows the traceback)\n")
        return 1
