"""Runtimes: turn a genotype into a zero-argument ``forward`` callable on the platform.

Everything one-off (building, ONNX export, session creation, moving to the device) happens in :func:`load`,
outside the timed region, and its cost is returned separately.
"""

from __future__ import annotations

import io
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import torch

from ladarts.hardware.platform import Platform
from ladarts.space.genotype import Genotype
from ladarts.space.networks import build_network

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class Loaded:
    forward: Callable[[], object]
    sync: Callable[[], None]
    build_s: float
    export_s: float = 0.0


def configure_threads(platform: Platform) -> None:
    """Intra-op and inter-op threads from the platform (inter-op can only be set once per process)."""
    torch.set_num_threads(platform.threads)
    try:
        torch.set_num_interop_threads(platform.threads)
    except RuntimeError:
        pass  # already set (or inter-op work already started) in this process
    if not platform.is_cuda:
        # Randomly initialised 20-cell networks can underflow into denormals, which real trained networks rarely
        # do and which are 10-100x slower on x86: flush them so timings reflect the architecture.
        torch.set_flush_denormal(True)


def export_onnx(model: torch.nn.Module, example: torch.Tensor) -> bytes:
    """TorchScript-based export (about 1 s here, against about 16 s for the dynamo exporter); dynamic batch axis."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example,), buf, dynamo=False, input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
        )
    return buf.getvalue()


def example_input(platform: Platform) -> torch.Tensor:
    n = platform.network
    gen = torch.Generator().manual_seed(0)
    return torch.randn(platform.batch_size, n.in_channels, n.input_size, n.input_size, generator=gen)


def prepare(module: torch.nn.Module, x: torch.Tensor, platform: Platform) -> Loaded:
    """A zero-argument forward of ``module`` on ``x`` in ``platform``'s runtime (export and session creation
    included here, outside any timed region; their cost is ``export_s``). Used for networks and single ops."""
    module = module.eval()
    if platform.runtime == "onnxruntime":
        import onnxruntime as ort

        t1 = time.perf_counter()
        blob = export_onnx(module, x)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = platform.threads
        opts.inter_op_num_threads = platform.threads
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.set_denormal_as_zero", "1")
        session = ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])
        feed = {"input": x.numpy()}
        return Loaded(lambda: session.run(None, feed), lambda: None, 0.0, time.perf_counter() - t1)

    device = torch.device(platform.device)
    module = module.to(device=device, dtype=_DTYPES[platform.dtype])
    x = x.to(device=device, dtype=_DTYPES[platform.dtype])
    sync = (lambda: torch.cuda.synchronize(device)) if platform.is_cuda else (lambda: None)

    def forward() -> object:
        with torch.inference_mode():
            return module(x)

    return Loaded(forward, sync, 0.0)


def load(genotype: Genotype, platform: Platform, seed: int = 0) -> Loaded:
    """Build ``genotype`` on ``platform``'s network with seeded random weights, ready to time."""
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = build_network(genotype, platform.network)
    loaded = prepare(model, example_input(platform), platform)
    loaded.build_s = time.perf_counter() - t0 - loaded.export_s
    return loaded
