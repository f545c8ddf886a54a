"""ONNX Runtime on the CPU execution provider, all graph optimisations on, denormals flushed."""

from __future__ import annotations

from typing import Any

import torch

from ladarts.hardware.runtimes.base import Session, require
from ladarts.hardware.runtimes.onnx_export import ARTEFACT, PERSISTENT, artefact_settings, export

__all__ = ["ARTEFACT", "PERSISTENT", "artefact_settings", "export", "session_options", "start"]


def session_options(platform: Any) -> Any:
    ort = require(platform.runtime, "onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = platform.threads
    opts.inter_op_num_threads = platform.threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Like torch.set_flush_denormal: randomly initialised networks underflow where trained ones rarely do.
    opts.add_session_config_entry("session.set_denormal_as_zero", "1")
    return opts


def start(blob: bytes, x: torch.Tensor, platform: Any) -> Session:
    ort = require(platform.runtime, "onnxruntime")
    session = ort.InferenceSession(blob, session_options(platform), providers=["CPUExecutionProvider"])
    feed = {"input": x.numpy()}
    return Session(lambda: session.run(None, feed))
