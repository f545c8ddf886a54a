"""The one interface every runtime module implements, and what loading hands to the timer.

A runtime module (``eager``, ``ort_cpu``, ``openvino_cpu``, ...) provides:

- ``ARTEFACT``: the name of what it exports (``"onnx"``, ``"pte"``, ...), shared by runtimes that read the same
  export; ``None`` when nothing is exported (eager PyTorch);
- ``PERSISTENT``: whether that artefact is bytes that may be kept on disk between processes;
- ``artefact_settings(platform) -> dict``: the platform settings the artefact depends on (beyond the network);
- ``export(module, x, platform) -> artefact``: the one-off conversion, outside any timed region;
- ``start(artefact, x, platform) -> Session``: a ready session on input ``x``;
- optionally ``configure(platform)``: process-wide settings (thread pools) applied by ``configure_threads``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable

import numpy as np

from ladarts.hardware.platform import missing_runtime


def as_numpy(out: Any) -> np.ndarray:
    """The logits in whatever a runtime's forward returns (a tensor, a list of arrays, OpenVINO's result)."""
    if isinstance(out, (list, tuple)):
        out = out[0]
    if hasattr(out, "detach"):
        out = out.detach().cpu()
    return np.asarray(out)


@dataclass
class Session:
    """A zero-argument ``forward`` ready to time; ``sync`` waits for the device; ``to_numpy`` reads the output."""

    forward: Callable[[], object]
    sync: Callable[[], None] = lambda: None
    to_numpy: Callable[[Any], np.ndarray] = as_numpy


@dataclass
class Loaded:
    """A network or op ready to time. ``build_s`` and ``export_s`` (export plus session creation) are one-off costs
    paid before timing; ``cache`` says where the export came from: ``""`` (exported now), ``memory`` or ``disk``."""

    forward: Callable[[], object]
    sync: Callable[[], None]
    build_s: float
    export_s: float = 0.0
    cache: str = ""
    to_numpy: Callable[[Any], np.ndarray] = field(default=as_numpy, repr=False)

    def output(self) -> np.ndarray:
        """One forward's logits as an array: for checking a runtime against PyTorch, never for timing."""
        out = self.forward()
        self.sync()
        return self.to_numpy(out)


def require(runtime: str, module: str) -> ModuleType:
    """Import a runtime's third-party ``module``, or fail with the one line that names the extra installing it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        # Not installed at all: the extra is the whole answer. A broken install (a missing dependency, a wheel built
        # for another PyTorch): its message is the cause, on the same line.
        absent = getattr(e, "name", None) in (module, module.split(".")[0])
        raise missing_runtime(runtime, None if absent else str(e).splitlines()[0]) from None
