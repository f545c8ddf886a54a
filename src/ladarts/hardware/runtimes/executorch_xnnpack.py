"""ExecuTorch with the XNNPACK delegate on the CPU: the PyTorch mobile runtime, run here through its Python
bindings. The program (.pte, a flatbuffer) is static in its shapes, so it is exported per batch size."""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

import torch

from ladarts.hardware.platform import runtime_version
from ladarts.hardware.runtimes.base import Session, require

ARTEFACT = "pte"
PERSISTENT = True


@contextmanager
def _quiet() -> Iterator[None]:
    """Importing torchao (which the XNNPACK partitioner uses) logs that its CUDA kernels do not load on a CPU
    build, and lowering warns about deprecated pytree calls: noise for a user who measures latency."""
    loggers = [logging.getLogger(name) for name in ("torchao", "torch.utils._pytree")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def artefact_settings(platform: Any) -> dict[str, Any]:
    return {"batch": platform.batch_size, "executorch": runtime_version("executorch"), "torch": torch.__version__}


def export(module: torch.nn.Module, x: torch.Tensor, platform: Any) -> bytes:
    with _quiet():
        exir = require(platform.runtime, "executorch.exir")
        partition = require(platform.runtime, "executorch.backends.xnnpack.partition.xnnpack_partitioner")
        program = torch.export.export(module, (x,))
        lowered = exir.to_edge_transform_and_lower(program, partitioner=[partition.XnnpackPartitioner()])
        return bytes(lowered.to_executorch().buffer)


def configure(platform: Any) -> None:
    """XNNPACK runs on ExecuTorch's own thread pool, one per process: size it to the platform."""
    with _quiet():
        lib = require(platform.runtime, "executorch.extension.pybindings.portable_lib")
    if lib._threadpool_get_thread_count() != platform.threads:
        lib._unsafe_reset_threadpool(platform.threads)


def start(blob: bytes, x: torch.Tensor, platform: Any) -> Session:
    configure(platform)
    with _quiet():
        runtime = require(platform.runtime, "executorch.runtime").Runtime.get()
    program = runtime.load_program(blob)
    method = program.load_method("forward")
    inputs = [x.contiguous()]

    def forward(_program: Any = program) -> object:  # the method reads the program's memory: keep it alive
        return method.execute(inputs)

    return Session(forward)
