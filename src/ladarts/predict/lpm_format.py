"""The LPM folder: ``model.safetensors`` (weights and normalisation, nothing pickled) and ``meta.json`` (platform
key and fingerprint, network, encoding version, normalisation, the mean training latency the search divides by,
the architectures it was fitted on, metrics, hyperparameters).

Each file pins the other by hash, so an edited, truncated or swapped file is refused with one clear line.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from pathlib import Path
from typing import Any

import torch

from ladarts.errors import LadartsError, UserInputError
from ladarts.io import json_safe
from ladarts.predict.lpm import LPM, LPMConfig
from ladarts.space.encoding import ENCODING_VERSION

FORMAT = "ladarts-lpm"
FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
META_FILE = "meta.json"
#: A meta.json lists the fitted architectures' hashes (2 MB at 100K); the weights of the largest allowed LPM fit in
#: the model cap. Anything bigger is not an LPM this ladarts wrote.
MAX_META_BYTES, MAX_MODEL_BYTES = 64 << 20, 1 << 30


def save_lpm(lpm: LPM, path: str | os.PathLike) -> Path:
    """Write ``model.safetensors`` then ``meta.json`` (each atomically) into the folder ``path``."""
    from safetensors.torch import save as st_save

    from ladarts import __version__
    from ladarts.io import atomic_write, atomic_write_json

    d = Path(path)
    if d.exists() and not d.is_dir():
        raise UserInputError(f"{path}: exists and is not a folder")
    d.mkdir(parents=True, exist_ok=True)
    meta = json_safe({k: v for k, v in lpm.meta.items() if k != "files"})
    meta.update(format=FORMAT, format_version=FORMAT_VERSION, ladarts_version=__version__,
                encoding_version=ENCODING_VERSION, config=lpm.config.to_dict(),
                normalisation={"space": "log_ms" if lpm.config.output == "log" else "ms",
                               "mean": float(lpm.y_mean), "std": float(lpm.y_std)})
    tensors = {k: v.detach().cpu().float().contiguous() for k, v in lpm.state_dict().items()}
    if not all(torch.isfinite(t).all() for t in tensors.values()):
        raise LadartsError(f"{path}: the LPM has non-finite weights; not saved")
    blob = st_save(tensors, metadata={"format": FORMAT, "meta_sha256": _meta_hash(meta)})

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(blob)

    atomic_write(d / MODEL_FILE, write)
    meta["files"] = {MODEL_FILE: {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}}
    atomic_write_json(d / META_FILE, meta)
    lpm.meta = meta
    return d


def load_lpm(path: str | os.PathLike, cls: type[LPM] = LPM) -> LPM:
    """Read an LPM folder (safetensors + JSON only, nothing unpickled); every inconsistency is one clear line."""
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    d = Path(path)
    if not d.is_dir():
        raise UserInputError(f"{path}: not an LPM folder (expected a folder with {MODEL_FILE} and {META_FILE})")
    for name in (META_FILE, MODEL_FILE):
        if not (d / name).is_file():
            raise UserInputError(f"{path}: not an LPM folder ({name} is missing)")
    for name, cap in ((META_FILE, MAX_META_BYTES), (MODEL_FILE, MAX_MODEL_BYTES)):
        if (d / name).stat().st_size > cap:
            raise UserInputError(f"{d / name}: {(d / name).stat().st_size} bytes, more than any LPM writes ({cap})")
    try:
        meta = json.loads((d / META_FILE).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise UserInputError(f"{d / META_FILE}: not valid JSON ({type(e).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserInputError(f"{d / META_FILE}: not an LPM meta file")
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserInputError(f"{d / META_FILE}: LPM format version {meta.get('format_version')}; this ladarts "
                             f"reads version {FORMAT_VERSION}")
    if meta.get("encoding_version") != ENCODING_VERSION:
        raise UserInputError(f"{path}: the LPM was fitted on encoding version {meta.get('encoding_version')}, "
                             f"this ladarts encodes with version {ENCODING_VERSION}; refit it")
    blob = (d / MODEL_FILE).read_bytes()
    want = (meta.get("files") or {}).get(MODEL_FILE) or {}
    if not isinstance(want, dict) or "sha256" not in want or "bytes" not in want:
        raise UserInputError(f"{d / META_FILE}: has no hash for {MODEL_FILE}")
    if len(blob) != want["bytes"]:
        raise UserInputError(f"{d / MODEL_FILE}: {len(blob)} bytes, meta.json says {want['bytes']} "
                             f"({'truncated' if len(blob) < want['bytes'] else 'modified'})")
    if hashlib.sha256(blob).hexdigest() != want["sha256"]:
        raise UserInputError(f"{d / MODEL_FILE}: does not match meta.json (sha256 differs): modified or corrupted")
    try:
        header = _safetensors_metadata(blob)
        tensors = st_load(blob)
    except (SafetensorError, ValueError, struct.error, UnicodeDecodeError) as e:
        raise UserInputError(f"{d / MODEL_FILE}: not a readable safetensors file ({e})") from None
    core = {k: v for k, v in meta.items() if k != "files"}
    if header.get("meta_sha256") != _meta_hash(core):
        raise UserInputError(f"{d / META_FILE}: was edited after saving (its hash in {MODEL_FILE} differs)")
    try:
        config = LPMConfig.from_dict(meta["config"])
    except (KeyError, TypeError) as e:
        raise UserInputError(f"{path}: meta.json has no valid LPM config ({type(e).__name__})") from None
    _check_tensors(d, config, tensors)
    model = cls(config, meta)
    model.load_state_dict(tensors, strict=True)
    check_meaning(model, str(path))
    return model


def _check_tensors(d: Path, config: LPMConfig, tensors: dict[str, torch.Tensor]) -> None:
    """The weights match the config's shapes and are finite floats, checked before the LPM allocates anything
    (the config's width alone could ask for gigabytes)."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in LPM(config).state_dict().items()}
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    if got != expected:
        wrong = sorted(set(got) ^ set(expected)) or sorted(k for k in got if got[k] != expected[k])
        raise UserInputError(f"{d / MODEL_FILE}: weights do not fit the LPM described in meta.json "
                             f"({wrong[0]}: {got.get(wrong[0])} vs {expected.get(wrong[0])})")
    bad = [k for k, v in tensors.items() if v.dtype not in (torch.float32, torch.float64)]
    if bad:
        raise UserInputError(f"{d / MODEL_FILE}: {bad[0]} is {tensors[bad[0]].dtype}; LPM weights are floats")
    if not all(torch.isfinite(t).all() for t in tensors.values()):
        raise UserInputError(f"{d / MODEL_FILE}: holds non-finite weights")


def _known_pairs() -> list[tuple[str, Any, Any]]:
    """Architectures whose latency order holds on any platform: every edge a 5×5 separable conv (two
    depthwise-pointwise blocks) against every edge a skip (identity, or a 1×1 FactorizedReduce when strided)."""
    from ladarts.space.genotype import Genotype

    def uniform(op: str) -> Genotype:
        cell = tuple((op, i) for node in range(4) for i in (0, 1))
        return Genotype(cell, (2, 3, 4, 5), cell, (2, 3, 4, 5))

    return [("all sep_conv_5x5 vs all skip_connect", uniform("sep_conv_5x5"), uniform("skip_connect"))]


def check_meaning(lpm: LPM, where: str) -> None:
    """An LPM whose files are intact can still be harmful: refuse one that predicts nonsense. Its scale must be
    positive (a negative one inverts every ranking), its predictions finite and positive on the published cells,
    and it must order a pair of architectures whose order no platform reverses."""
    from ladarts.space.encoding import encode_many, is_encodable
    from ladarts.space.zoo import ZOO

    mean, std = float(lpm.y_mean), float(lpm.y_std)
    if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
        raise UserInputError(f"{where}: the LPM's output scale is {std} (offset {mean}); it must be positive and "
                             "finite: refit it")
    zoo = [g for g in ZOO.values() if is_encodable(g)]
    with torch.no_grad():
        pred = lpm.predict_encodings(encode_many(zoo))
    if not all(math.isfinite(v) and v > 0 for v in pred):
        raise UserInputError(f"{where}: the LPM predicts {min(pred):.4g} ms for a published cell; latencies are "
                             "positive: refit it")
    for name, heavy, light in _known_pairs():
        with torch.no_grad():
            h, l = lpm.predict_encodings(encode_many([heavy, light]))
        if not h > l:
            raise UserInputError(f"{where}: the LPM ranks {name} the wrong way round ({h:.3g} vs {l:.3g} ms): "
                                 "refit it")


def _safetensors_metadata(blob: bytes) -> dict[str, str]:
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ValueError("header length past the end of the file")
    header = json.loads(blob[8 : 8 + n])
    return header.get("__metadata__") or {}


def _meta_hash(meta: dict[str, Any]) -> str:
    text = json.dumps(json_safe(meta), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()
