"""ONNX Runtime with the CUDA execution provider, for NVIDIA GPUs.

Input and output stay on the GPU through an I/O binding, so a forward is the network's compute, as it is for
PyTorch eager on CUDA (whose input also lives on the device). ONNX Runtime falls back to the CPU without a word when
the CUDA provider cannot start (a missing CUDA or cuDNN library): that is refused, so that a GPU platform is never
measured on the CPU.
"""

from __future__ import annotations

from typing import Any

import torch

from ladarts.errors import LadartsError
from ladarts.hardware.platform import missing_runtime
from ladarts.hardware.runtimes.base import Session, require
from ladarts.hardware.runtimes.onnx_export import ARTEFACT, PERSISTENT, artefact_settings, export
from ladarts.hardware.runtimes.ort_cpu import session_options

__all__ = ["ARTEFACT", "PERSISTENT", "artefact_settings", "export", "providers", "session_options", "start"]

CUDA = "CUDAExecutionProvider"


def device_id(platform: Any) -> int:
    return int(platform.device.split(":")[1])


def providers(platform: Any) -> list[Any]:
    """The CUDA provider on the platform's GPU first; the CPU provider only for the nodes CUDA has no kernel for."""
    return [(CUDA, {"device_id": str(device_id(platform)), "cudnn_conv_algo_search": "EXHAUSTIVE"}),
            "CPUExecutionProvider"]


def check_cuda_provider(ort: Any, platform: Any) -> None:
    """A one-line error unless this onnxruntime build offers the CUDA execution provider."""
    if hasattr(ort, "preload_dlls"):  # CUDA and cuDNN from the nvidia-* wheels of onnxruntime-gpu[cuda,cudnn]
        try:
            ort.preload_dlls()
        except Exception:  # noqa: BLE001 - libraries found elsewhere (system CUDA) are fine too; checked below
            pass
    available = ort.get_available_providers()
    if CUDA not in available:
        raise missing_runtime(platform.runtime, f"this onnxruntime {ort.__version__} offers only "
                                                f"{', '.join(available)}")


def start(blob: bytes, x: torch.Tensor, platform: Any) -> Session:
    ort = require(platform.runtime, "onnxruntime")
    check_cuda_provider(ort, platform)
    session = ort.InferenceSession(blob, session_options(platform), providers=providers(platform))
    if session.get_providers()[0] != CUDA:
        raise LadartsError(f"ONNX Runtime could not start its CUDA execution provider on {platform.device} (are the "
                           f"CUDA 12 and cuDNN 9 libraries installed?); refusing to measure on the CPU instead")
    gpu = device_id(platform)
    binding = session.io_binding()
    x_gpu = ort.OrtValue.ortvalue_from_numpy(x.numpy(), "cuda", gpu)
    binding.bind_ortvalue_input("input", x_gpu)
    binding.bind_output("logits", "cuda", gpu)

    def forward(_bound_input: Any = x_gpu) -> object:  # holding the bound input keeps its GPU memory alive
        session.run_with_iobinding(binding)  # returns once the GPU is done: Run synchronises its stream
        return binding

    return Session(forward, to_numpy=lambda b: b.copy_outputs_to_cpu()[0])
