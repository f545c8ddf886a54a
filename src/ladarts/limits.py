"""The stated ranges of every number a user gives ladarts, and the one check that enforces them.

A value outside its range is one clear line (exit 2) before any work starts, never a traceback from deep inside
NumPy or PyTorch, and never minutes of work or gigabytes of memory. The ranges are generous: they exclude only
what cannot be meant (a negative seed, a 10^8-cell network), not what is merely unusual.
"""

from __future__ import annotations

import math

from ladarts.errors import UserInputError

#: NumPy and scikit-learn take seeds in [0, 2^32); torch takes more, but one range for all keeps runs reproducible.
SEED = (0, 2**32 - 1)
THREADS = (1, 1024)
EPOCHS = (1, 100_000)
BATCH = (2, 65_536)  # training batches: batch norm needs at least 2
CHANNELS = (2, 4096)
CELLS = (3, 200)  # the networks have two reduction cells
INPUT_SIZE = (8, 4096)
SUBSET = (2, 100_000_000)


def check_int(name: str, value: object, bounds: tuple[int, int], optional: bool = False) -> None:
    """``value`` is an int within ``bounds`` (inclusive), else one line naming the flag and the range."""
    if value is None and optional:
        return
    lo, hi = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise UserInputError(f"{name} must be an integer in {lo}..{hi}, got {value!r:.40}")


def check_float(name: str, value: object, lo: float = 0.0, hi: float = math.inf, lo_open: bool = False,
                optional: bool = False) -> None:
    """``value`` is a finite number in [lo, hi] (or (lo, hi] with ``lo_open``), else one line."""
    if value is None and optional:
        return
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and (value > lo if lo_open else value >= lo) and value <= hi)
    if not ok:
        where = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
        raise UserInputError(f"{name} must be a finite number in {where}, got {value!r:.40}")


#: The fields that search and training configs share, each with its range.
RUN_FIELDS = {"seed": SEED, "epochs": EPOCHS, "channels": CHANNELS, "cells": CELLS, "threads": THREADS,
              "subset": SUBSET, "batch_size": BATCH, "input_size": INPUT_SIZE}


def check_run_fields(config: object, optional: set[str] = frozenset({"threads", "subset"})) -> None:
    """Every :data:`RUN_FIELDS` field ``config`` has, against its range (``optional`` ones may be None)."""
    for name, bounds in RUN_FIELDS.items():
        if hasattr(config, name):
            check_int("--" + name.replace("_", "-"), getattr(config, name), bounds, optional=name in optional)
