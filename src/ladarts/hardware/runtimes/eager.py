"""PyTorch eager, on the CPU or a CUDA GPU, in any dtype the platform allows."""

from __future__ import annotations

from typing import Any

import torch

from ladarts.hardware.runtimes.base import Session

ARTEFACT = None
PERSISTENT = False
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def artefact_settings(platform: Any) -> dict[str, Any]:
    return {}


def export(module: torch.nn.Module, x: torch.Tensor, platform: Any) -> torch.nn.Module:
    return module.to(device=torch.device(platform.device), dtype=DTYPES[platform.dtype])


def start(module: torch.nn.Module, x: torch.Tensor, platform: Any) -> Session:
    device = torch.device(platform.device)
    x = x.to(device=device, dtype=DTYPES[platform.dtype])
    sync = (lambda: torch.cuda.synchronize(device)) if platform.is_cuda else (lambda: None)

    def forward() -> object:
        with torch.inference_mode():
            return module(x)

    return Session(forward, sync, lambda out: out.float().cpu().numpy())
