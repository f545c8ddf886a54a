"""Platform: what a latency number was measured on, its fingerprint, and its stable key.

The key is made of the settings that change a latency (runtime, device kind, threads, batch, dtype, network)
plus the device's identity (CPU model or GPU name). Library versions are *not* in the key: they live in the
fingerprint, and a mismatch warns instead of orphaning a campaign's data after a pip upgrade.
"""

from __future__ import annotations

import os
import platform as _platform
import re
import subprocess
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from ladarts.errors import UserInputError
from ladarts.space.networks import NetworkConfig, network_config

RUNTIMES = ("torch", "onnxruntime")
DTYPES = ("float32", "float16", "bfloat16")


@lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if _platform.system() == "Darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                  timeout=5).stdout.strip() or _platform.processor()
        except (OSError, subprocess.SubprocessError):
            pass
    return _platform.processor() or _platform.machine() or "unknown-cpu"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


@dataclass(frozen=True)
class Platform:
    """Settings of a measurement. ``device`` is ``cpu`` or ``cuda:N``; ``runtime`` ``torch`` or ``onnxruntime``."""

    device: str = "cpu"
    runtime: str = "torch"
    threads: int = 1
    batch_size: int = 1
    dtype: str = "float32"
    network: NetworkConfig = field(default_factory=lambda: network_config("cifar"))

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise UserInputError(f"unknown runtime {self.runtime!r}; choose one of {', '.join(RUNTIMES)}")
        if not re.fullmatch(r"cpu|cuda(:\d+)?", self.device):
            raise UserInputError(f"unknown device {self.device!r}; use cpu or cuda:N")
        if self.device == "cuda":
            object.__setattr__(self, "device", "cuda:0")
        if self.runtime == "onnxruntime" and self.device != "cpu":
            raise UserInputError("the onnxruntime platform runs on the CPU execution provider: use --device cpu")
        if self.dtype not in DTYPES:
            raise UserInputError(f"unknown dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}")
        if self.dtype != "float32" and (self.runtime != "torch" or self.device == "cpu"):
            raise UserInputError(f"dtype {self.dtype} is only supported for the torch runtime on CUDA")
        if self.threads < 1 or self.batch_size < 1:
            raise UserInputError("threads and batch size must be at least 1")

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def device_name(self) -> str:
        if self.is_cuda:
            import torch

            if not torch.cuda.is_available():
                raise UserInputError(f"device {self.device} requested, but PyTorch sees no CUDA GPU here")
            index = int(self.device.split(":")[1])
            if index >= torch.cuda.device_count():
                raise UserInputError(f"device {self.device} requested, but only {torch.cuda.device_count()} GPU(s)")
            return torch.cuda.get_device_name(index)
        return cpu_model()

    @property
    def key(self) -> str:
        n = self.network
        net = f"{n.preset}-c{n.channels}-l{n.cells}-k{n.classes}-{n.input_size}px-in{n.in_channels}"
        kind = "cuda" if self.is_cuda else "cpu"
        return f"{self.runtime}-{kind}-t{self.threads}-b{self.batch_size}-{self.dtype}/{net}/{_slug(self.device_name())}"

    def settings(self) -> dict[str, Any]:
        d = asdict(self)
        d["network"] = self.network.to_dict()
        return d

    @classmethod
    def from_settings(cls, d: dict[str, Any]) -> "Platform":
        d = dict(d)
        d["network"] = NetworkConfig(**d["network"])
        return cls(**d)

    def fingerprint(self) -> dict[str, Any]:
        """Where and with what this platform measures. Compared, not keyed: a mismatch only warns."""
        import numpy
        import torch

        fp: dict[str, Any] = {
            "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(),
            "machine": _platform.machine(),
            "os": _platform.platform(),
            "python": _platform.python_version(),
            "torch": torch.__version__,
            "numpy": numpy.__version__,
        }
        if self.runtime == "onnxruntime":
            import onnx
            import onnxruntime

            fp["onnxruntime"] = onnxruntime.__version__
            fp["onnx"] = onnx.__version__
        if self.is_cuda:
            fp["gpu_name"] = self.device_name()
            fp["cuda"] = torch.version.cuda
            fp["cudnn"] = torch.backends.cudnn.version()
            fp["driver"] = _nvidia_driver()
        return fp


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


VERSION_KEYS = ("torch", "onnxruntime", "onnx", "cuda", "cudnn", "driver", "python")


def fingerprint_mismatch(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Library or driver versions that changed since a platform's data was first measured."""
    return [f"{k} {old.get(k)} → {new.get(k)}" for k in VERSION_KEYS if k in old and old.get(k) != new.get(k)]
