"""torch.compile with the inductor backend on the CPU.

The network goes through ``torch.export`` first, so that each architecture is compiled from a graph module of its
own: compiled straight from ``Network.forward``, every architecture would add a cache entry to that one code object,
and past dynamo's recompile limit (8) later architectures would silently run eager. Compilation happens at the
first call, inside :func:`export`, so it stays outside the timed region. A compiled module cannot leave its process
(inductor's own on-disk caches still spare a second process most kernel builds): it is cached in memory only.
"""

from __future__ import annotations

from typing import Any

import torch

from ladarts.hardware.runtimes.base import Session

ARTEFACT = "inductor"
PERSISTENT = False


def artefact_settings(platform: Any) -> dict[str, Any]:
    # Shapes are static, and inductor writes the thread count into the kernels it generates.
    return {"batch": platform.batch_size, "threads": platform.threads, "torch": torch.__version__}


def export(module: torch.nn.Module, x: torch.Tensor, platform: Any) -> Any:
    torch.set_num_threads(platform.threads)
    graph = torch.export.export(module, (x,)).module()
    compiled = torch.compile(graph, backend="inductor", dynamic=False)
    with torch.inference_mode():
        compiled(x)  # compiles now
    return compiled


def start(compiled: Any, x: torch.Tensor, platform: Any) -> Session:
    def forward() -> object:
        with torch.inference_mode():
            return compiled(x)

    return Session(forward)
