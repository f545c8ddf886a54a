"""Runtimes: turn a genotype into a zero-argument ``forward`` callable on the platform.

Each runtime is one small module behind the interface in :mod:`.base`: export a network once (cached by
architecture, see :mod:`.cache`), start a session, then time forwards. Everything one-off (building, export,
compilation, session creation, moving to the device) happens in :func:`load` / :func:`prepare`, outside the timed
region, and its cost is returned separately.
"""

from __future__ import annotations

import hashlib
import importlib
import time
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Callable

import torch

from ladarts.errors import UserInputError
from ladarts.hardware.platform import Platform, runtime_version
from ladarts.hardware.runtimes.base import Loaded, Session
from ladarts.hardware.runtimes.cache import ExportCache, cache_dir, cache_key
from ladarts.hardware.runtimes.onnx_export import export_onnx
from ladarts.space.genotype import Genotype
from ladarts.space.networks import build_network

__all__ = ["EXPORTS", "Loaded", "Session", "backend", "configure_threads", "check_exportable", "example_input",
           "export_onnx", "export_only", "load", "prepare"]

#: The runtime name of a platform -> the module that implements it.
MODULES = {
    "torch": "eager",
    "onnxruntime": "ort_cpu",
    "openvino": "openvino_cpu",
    "inductor": "inductor",
    "executorch": "executorch_xnnpack",
    "onnxruntime-cuda": "ort_cuda",
}

#: The process's export cache (memory LRU plus the disk folder).
EXPORTS = ExportCache()


def backend(platform: Platform) -> ModuleType:
    """The module implementing ``platform``'s runtime (imported on first use: no runtime is imported before)."""
    return importlib.import_module(f"{__name__}.{MODULES[platform.runtime]}")


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
    configure = getattr(backend(platform), "configure", None)
    if configure is not None:
        configure(platform)


#: The modules whose code decides what network a genotype builds. Only their edits make older exports stale:
#: hashing all of ``space/`` made every cached export stale when a sampler changed.
BUILDER_MODULES = ("ladarts.space.genotype", "ladarts.space.primitives", "ladarts.space.geometry",
                   "ladarts.space.networks")


@lru_cache(maxsize=1)
def _builder_digest() -> str:
    """Digest of the code that builds networks: an edit to a primitive or a cell makes older exports stale."""
    h = hashlib.sha256()
    for name in BUILDER_MODULES:
        path = Path(importlib.import_module(name).__file__)
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:16]


def example_input(platform: Platform) -> torch.Tensor:
    n = platform.network
    gen = torch.Generator().manual_seed(0)
    return torch.randn(platform.batch_size, n.in_channels, n.input_size, n.input_size, generator=gen)


def _artefact_digest(key: dict, runtime: ModuleType, platform: Platform) -> str:
    return cache_key({**key, "artefact": runtime.ARTEFACT, **runtime.artefact_settings(platform)})


def _start(build: Callable[[], torch.nn.Module], x: torch.Tensor, platform: Platform,
           key: dict | None) -> Loaded:
    """Export (unless cached) and start a session; ``key`` identifies the network, None for an uncacheable one."""
    runtime_version(platform.runtime)  # a runtime that is not installed fails here, in one line, before any export
    runtime = backend(platform)
    t0 = time.perf_counter()
    artefact, source, digest = None, "", None
    if key is not None and runtime.ARTEFACT is not None:
        digest = _artefact_digest(key, runtime, platform)
        artefact, source = EXPORTS.get(digest, runtime.ARTEFACT, runtime.PERSISTENT)
    build_s = 0.0
    if artefact is None:
        module = build().eval()
        build_s = time.perf_counter() - t0
        artefact = runtime.export(module, x, platform)
        if digest is not None:
            EXPORTS.put(digest, runtime.ARTEFACT, artefact, runtime.PERSISTENT)
    session = runtime.start(artefact, x, platform)
    one_off = time.perf_counter() - t0 - build_s
    if runtime.ARTEFACT is None:  # nothing exported (eager): moving to the device is part of building
        build_s, one_off = build_s + one_off, 0.0
    return Loaded(session.forward, session.sync, build_s, one_off, source, session.to_numpy)


def prepare(module: torch.nn.Module, x: torch.Tensor, platform: Platform) -> Loaded:
    """A zero-argument forward of ``module`` on ``x`` in ``platform``'s runtime (export and session creation
    included here, outside any timed region; their cost is ``export_s``). Used for networks and single ops;
    nothing identifies an arbitrary module, so nothing is cached."""
    return _start(lambda: module, x, platform, None)


def _network_key(genotype: Genotype, platform: Platform, seed: int) -> dict:
    """What identifies one architecture's network: the genotype as given, network, weights' seed, code, versions."""
    return {"genotype": genotype.to_json(), "network": platform.network.to_dict(), "seed": seed,
            "torch": torch.__version__, "builder": _builder_digest()}


def _seeded_builder(genotype: Genotype, platform: Platform, seed: int) -> Callable[[], torch.nn.Module]:
    def build() -> torch.nn.Module:
        torch.manual_seed(seed)
        return build_network(genotype, platform.network)

    return build


def load(genotype: Genotype, platform: Platform, seed: int = 0) -> Loaded:
    """Build ``genotype`` on ``platform``'s network with seeded random weights, ready to time. The export is
    cached by architecture, network, seed and library versions: loading the same genotype again skips building
    and exporting. The architecture is the genotype as given, not its canonical form (``arch_hash``): the order
    of a node's inputs sets the order of the seeded weights, and NASNet-like cells have no canonical form."""
    return _start(_seeded_builder(genotype, platform, seed), example_input(platform), platform,
                  _network_key(genotype, platform, seed))


def check_exportable(platform: Platform) -> ModuleType:
    """``platform``'s runtime module, or one line saying why nothing can be exported ahead for it."""
    runtime_version(platform.runtime)  # a runtime that is not installed fails here, in one line
    runtime = backend(platform)
    if runtime.ARTEFACT is None:
        raise UserInputError(f"runtime {platform.runtime!r} exports nothing: there is nothing to prepare ahead")
    if runtime.PERSISTENT and cache_dir() is None:
        raise UserInputError("the export cache is off (LADARTS_EXPORT_CACHE=off): an export made ahead would be lost")
    return runtime


def export_only(genotype: Genotype, platform: Platform, seed: int = 0) -> str:
    """Do ``load``'s one-off work for ``genotype`` without starting a session, so that a later ``load`` (in any
    process) finds it done: ``"cached"`` (the artefact was already on disk), ``"exported"`` (written to the disk
    cache), or ``"compiled"`` (an artefact that cannot leave its process, inductor's: compiling it fills the
    runtime's own on-disk caches, which spare the later compilation most of its work). Exporting needs no quiet
    machine, so it can run ahead of timing, in parallel (:mod:`ladarts.hardware.ahead`)."""
    runtime = check_exportable(platform)
    digest = _artefact_digest(_network_key(genotype, platform, seed), runtime, platform)
    if runtime.PERSISTENT and EXPORTS.on_disk(digest, runtime.ARTEFACT):
        return "cached"
    x = example_input(platform)
    artefact = runtime.export(_seeded_builder(genotype, platform, seed)().eval(), x, platform)
    if not runtime.PERSISTENT:
        return "compiled"
    EXPORTS.put(digest, runtime.ARTEFACT, artefact, persistent=True, remember=False)
    return "exported"
