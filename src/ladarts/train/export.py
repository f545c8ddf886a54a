"""ONNX export of a trained network, checked against PyTorch with ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ladarts.hardware.runtimes import export_onnx
from ladarts.io import atomic_write
from ladarts.space.networks import Network


def export_and_check(model: Network, path: str | Path, batch_sizes: tuple[int, ...] = (1, 3), seed: int = 0) -> dict:
    """Export with a dynamic batch axis, then compare ONNX Runtime with PyTorch on random inputs of each batch size.

    Returns the worst relative error, max|onnx − torch| / max|torch|, over all inputs.
    """
    import onnxruntime as ort

    model = model.eval()
    cfg = model.config
    gen = torch.Generator().manual_seed(seed)
    shape = (cfg.in_channels, cfg.input_size, cfg.input_size)
    blob = export_onnx(model, torch.randn(1, *shape, generator=gen))
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(blob))
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    worst = 0.0
    for b in batch_sizes:
        x = torch.randn(b, *shape, generator=gen)
        with torch.inference_mode():
            ref = model(x).numpy()
        got = session.run(None, {"input": x.numpy()})[0]
        worst = max(worst, float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-12)))
    return {"path": str(path), "max_rel_error": worst, "batch_sizes": list(batch_sizes)}


def perturb_(model: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> torch.nn.Module:
    """Randomise weights and BN statistics, so an export check sees non-trivial activations (a network fresh
    from init gives outputs near zero, where a relative error means little)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d) and m.running_mean is not None:
                m.running_mean.copy_(scale * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
    return model
