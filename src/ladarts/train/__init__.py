"""Training a found genotype with the DARTS evaluation protocol, and exporting it to ONNX.

The names are imported on first use, so that reading the protocol's defaults (``ladarts --help``) does not load
PyTorch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DATASET_DEFAULTS": "protocol", "TrainConfig": "protocol",
    "TrainResult": "trainer", "load_trained": "trainer", "run_train": "trainer",
    "export_and_check": "export", "perturb_": "export",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
