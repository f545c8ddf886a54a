"""Platform: what a latency number was measured on, its fingerprint, and its stable key.

The key is made of the settings that change a latency (runtime, device kind, threads, batch, dtype, network)
plus the device's identity (CPU model or GPU name). A virtual machine's CPU often reports a masked brand string
(``AMD EPYC``) that is the same for several CPU generations: the CPUID signature (vendor, family, model, stepping)
goes in the fingerprint, so a session on another generation under the same key warns. For PyTorch eager and ONNX
Runtime on the CPU, library versions are *not* in the key: they live in the fingerprint, and a mismatch warns instead of orphaning a campaign's data after
a pip upgrade (the keys of existing databases stay as they were). The compiling runtimes (OpenVINO, inductor,
ExecuTorch, ONNX Runtime's CUDA provider) carry their major.minor version in the key, since a minor release of a
graph compiler changes its fusions and kernels, and so the latencies; a patch release keeps the key.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform as _platform
import re
import subprocess
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from ladarts.errors import UserInputError
from ladarts.space.networks import NetworkConfig, network_config



@dataclass(frozen=True)
class RuntimeInfo:
    """What a runtime is, as far as a platform needs: where it runs, what installs it, what versions it."""

    label: str
    devices: tuple[str, ...]  # device kinds: "cpu", "cuda"
    module: str  # the third-party module it imports
    distributions: tuple[str, ...]  # pip distributions that provide ``module``, the first installed one versions it
    extra: str | None = None  # the ladarts extra that installs it (None: a core dependency)
    versioned: bool = True  # whether its major.minor version is part of the platform key


RUNTIME_INFO: dict[str, RuntimeInfo] = {
    "torch": RuntimeInfo("PyTorch eager", ("cpu", "cuda"), "torch", ("torch",), versioned=False),
    "onnxruntime": RuntimeInfo("ONNX Runtime", ("cpu",), "onnxruntime", ("onnxruntime",), versioned=False),
    "openvino": RuntimeInfo("OpenVINO", ("cpu",), "openvino", ("openvino",), "openvino"),
    # torch.compile is part of PyTorch: its version is torch's.
    "inductor": RuntimeInfo("torch.compile (inductor)", ("cpu",), "torch", ("torch",)),
    "executorch": RuntimeInfo("ExecuTorch", ("cpu",), "executorch", ("executorch",), "executorch"),
    "onnxruntime-cuda": RuntimeInfo("ONNX Runtime with the CUDA execution provider", ("cuda",), "onnxruntime",
                                    ("onnxruntime-gpu", "onnxruntime"), "onnxruntime-cuda"),
}
RUNTIMES = tuple(RUNTIME_INFO)
DTYPES = ("float32", "float16", "bfloat16")


@lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """``/proc/cpuinfo``'s first processor block, names lower-cased; empty where there is none (macOS)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return cpuinfo_fields(f.read())
    except OSError:
        return {}


def cpuinfo_fields(cpuinfo: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break  # the first processor's block is enough
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return fields


@lru_cache(maxsize=1)
def cpu_model() -> str:
    if "model name" in _cpuinfo():
        return _cpuinfo()["model name"]
    if _platform.system() == "Darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                  timeout=5).stdout.strip() or _platform.processor()
        except (OSError, subprocess.SubprocessError):
            pass
    return _platform.processor() or _platform.machine() or "unknown-cpu"


def cpu_signature(fields: dict[str, str] | None = None) -> str | None:
    """``AuthenticAMD 25/17/1``: vendor and CPUID family/model/stepping, which a masked brand string hides; of this
    machine, or of ``fields`` (:func:`cpuinfo_fields`). None where cpuinfo names its parts otherwise (ARM)."""
    fields = _cpuinfo() if fields is None else fields
    if not {"vendor_id", "cpu family", "model"} <= fields.keys():
        return None
    return f"{fields['vendor_id']} {fields['cpu family']}/{fields['model']}/{fields.get('stepping', '?')}"


def missing_runtime(runtime: str, cause: str | None = None) -> UserInputError:
    """The one line a user sees when ``runtime`` is not installed (or its install is broken: ``cause``)."""
    info = RUNTIME_INFO[runtime]
    how = f"pip install 'ladarts[{info.extra}]'" if info.extra else f"pip install {info.distributions[0]}"
    return UserInputError(f"--runtime {runtime} needs {info.label}: {how}" + (f" ({cause})" if cause else ""))


def runtime_version(runtime: str) -> str:
    """Installed version of ``runtime``'s library; a one-line error naming the extra when it is not installed."""
    info = RUNTIME_INFO[runtime]
    try:
        found = importlib.util.find_spec(info.module) is not None
    except (ImportError, ValueError):  # ValueError: a module blocked in sys.modules
        found = False
    if found:
        for dist in info.distributions:
            try:
                return importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
    raise missing_runtime(runtime)


def major_minor(version: str) -> str:
    """``2026.4.1-22982`` -> ``2026.4``, ``2.13.0+cpu`` -> ``2.13``: the part of a version that goes in a key."""
    return ".".join(re.split(r"[.+-]", version)[:2])


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


@dataclass(frozen=True)
class Platform:
    """Settings of a measurement. ``device`` is ``cpu`` or ``cuda:N``; ``runtime`` one of :data:`RUNTIMES`."""

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
        devices = RUNTIME_INFO[self.runtime].devices
        if ("cuda" if self.is_cuda else "cpu") not in devices:
            use = "--device cpu" if devices == ("cpu",) else "--device cuda:N"
            raise UserInputError(f"the {self.runtime} platform runs on the {'/'.join(devices).upper()}: use {use}")
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

            index = int(self.device.split(":")[1])
            if not torch.cuda.is_available():
                # A GPU runtime other than PyTorch may run beside a CPU-only PyTorch: ask the driver instead.
                name = None if self.runtime == "torch" else _nvidia_smi("name", index)
                if name:
                    return name
                raise UserInputError(f"device {self.device} requested, but PyTorch sees no CUDA GPU here")
            if index >= torch.cuda.device_count():
                raise UserInputError(f"device {self.device} requested, but only {torch.cuda.device_count()} GPU(s)")
            return torch.cuda.get_device_name(index)
        return cpu_model()

    @property
    def runtime_tag(self) -> str:
        """The runtime as it appears in the key: its name, with its major.minor version where it is versioned."""
        info = RUNTIME_INFO[self.runtime]
        return self.runtime + (major_minor(runtime_version(self.runtime)) if info.versioned else "")

    @property
    def key(self) -> str:
        n = self.network
        net = f"{n.preset}-c{n.channels}-l{n.cells}-k{n.classes}-{n.input_size}px-in{n.in_channels}"
        kind = "cuda" if self.is_cuda else "cpu"
        settings = f"{self.runtime_tag}-{kind}-t{self.threads}-b{self.batch_size}-{self.dtype}"
        return f"{settings}/{net}/{_slug(self.device_name())}"

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
            "cpu_signature": cpu_signature(),
            "cpu_count": os.cpu_count(),
            "machine": _platform.machine(),
            "os": _platform.platform(),
            "python": _platform.python_version(),
            "torch": torch.__version__,
            "numpy": numpy.__version__,
        }
        if self.runtime in ("onnxruntime", "onnxruntime-cuda", "openvino"):  # the runtimes that read the ONNX export
            import onnx

            fp["onnx"] = onnx.__version__
        if RUNTIME_INFO[self.runtime].module != "torch":
            fp[RUNTIME_INFO[self.runtime].module] = runtime_version(self.runtime)
        if self.is_cuda:
            fp["gpu_name"] = self.device_name()
            fp["cuda"] = torch.version.cuda if torch.cuda.is_available() else None
            fp["cudnn"] = torch.backends.cudnn.version() if torch.cuda.is_available() else None
            fp["driver"] = _nvidia_driver()
        return fp


def _nvidia_smi(query: str, index: int = 0) -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader", f"--id={index}"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


def _nvidia_driver() -> str | None:
    return _nvidia_smi("driver_version")


COMPARED_KEYS = ("torch", "onnxruntime", "onnx", "openvino", "executorch", "cuda", "cudnn", "driver", "python",
                 "cpu_signature")


def fingerprint_mismatch(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Library or driver versions, or the CPU's signature, that changed since a platform's data was first measured.
    Only what the first measurement recorded is compared: databases from before a field existed do not warn."""
    return [f"{k} {old.get(k)} → {new.get(k)}" for k in COMPARED_KEYS if k in old and old.get(k) != new.get(k)]
