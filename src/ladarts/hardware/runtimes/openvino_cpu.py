"""OpenVINO Runtime on the CPU, reading the shared ONNX export, compiled for latency with the platform's threads."""

from __future__ import annotations

from typing import Any

import torch

from ladarts.hardware.runtimes.base import Session, require
from ladarts.hardware.runtimes.onnx_export import ARTEFACT, PERSISTENT, artefact_settings, export

__all__ = ["ARTEFACT", "PERSISTENT", "artefact_settings", "compile_config", "export", "start"]


def compile_config(platform: Any) -> dict[str, Any]:
    return {
        "INFERENCE_NUM_THREADS": platform.threads,
        "PERFORMANCE_HINT": "LATENCY",  # one stream, one request at a time: what a single forward sees
        # float32 as the platform says: on CPUs with bf16 units OpenVINO would otherwise infer in bf16.
        "INFERENCE_PRECISION_HINT": "f32",
        "CPU_DENORMALS_OPTIMIZATION": True,  # flush denormals, as the other CPU runtimes do here
    }


def start(blob: bytes, x: torch.Tensor, platform: Any) -> Session:
    ov = require(platform.runtime, "openvino")
    core = ov.Core()
    compiled = core.compile_model(core.read_model(blob), "CPU", compile_config(platform))
    request = compiled.create_infer_request()
    feed = x.numpy()
    request.set_input_tensor(ov.Tensor(feed, shared_memory=True))  # bound once: no copy per forward

    def forward() -> object:
        request.infer()  # ``feed`` stays referenced here, so the memory the request reads stays alive
        return request.get_output_tensor(0).data

    return Session(forward)
