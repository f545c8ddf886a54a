"""The latency prediction module (LPM): an MLP from the (2, 14, 8) encoding to a platform's latency in ms.

Why this shape: the search needs a cost that is differentiable in the encoding, so the LPM is a plain torch
module; latencies span about 3x and the search cares about relative cost, so it regresses standardised
log-latency (MSE in log space ≈ relative error); a linear term beside the MLP carries the mostly additive
per-edge cost, and the MLP learns the interactions. Early stopping on a validation split picks the epoch.

An LPM is saved as a folder: ``model.safetensors`` (weights and normalisation, nothing pickled) and
``meta.json`` (platform key and fingerprint, network, encoding version, normalisation, the mean training
latency the search divides by, the architectures it was fitted on, metrics, hyperparameters). Each file pins
the other by hash, so an edited, truncated or swapped file is refused with one clear line.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import struct
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ladarts.errors import UserInputError
from ladarts.space.encoding import ENCODING_SHAPE, ENCODING_VERSION, encode_many

FORMAT = "ladarts-lpm"
FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
META_FILE = "meta.json"
N_FEATURES = int(np.prod(ENCODING_SHAPE))
ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}


@dataclass
class LPMConfig:
    """Architecture and training hyperparameters. Defaults come from the sweep in benchmarks/bench_lpm.py."""

    depth: int = 3  # hidden layers
    width: int = 256
    activation: str = "silu"
    linear_skip: bool = True  # a linear term on the encoding beside the MLP (the additive part of latency)
    lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int | None = None  # None: n_train // 32, clipped to [32, 1024]
    max_epochs: int = 600
    max_steps: int = 30_000
    patience: int = 60  # epochs without a better validation loss
    val_fraction: float = 0.15

    def __post_init__(self) -> None:
        if self.depth < 0 or self.width < 1:
            raise UserInputError(f"LPM depth must be ≥ 0 and width ≥ 1, got depth {self.depth}, width {self.width}")
        if self.activation not in ACTIVATIONS:
            raise UserInputError(f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        if not 0 < self.val_fraction < 1:
            raise UserInputError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.max_epochs < 1 or self.patience < 1 or self.max_steps < 1 or not self.lr > 0:
            raise UserInputError("LPM max_epochs, patience and max_steps must be ≥ 1 and lr > 0")
        if self.depth == 0 and not self.linear_skip:
            raise UserInputError("an LPM with depth 0 needs linear_skip")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LPMConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise UserInputError(f"LPM config has unknown fields: {', '.join(sorted(unknown))}")
        return cls(**d)


class LPM(nn.Module):
    """Latency in ms from an encoding. ``lpm(enc)``: (2,14,8) → scalar, (B,2,14,8) → (B,); differentiable."""

    def __init__(self, config: LPMConfig | None = None, meta: dict[str, Any] | None = None):
        super().__init__()
        self.config = config or LPMConfig()
        c = self.config
        layers: list[nn.Module] = []
        d_in = N_FEATURES
        for _ in range(c.depth):
            layers += [nn.Linear(d_in, c.width), ACTIVATIONS[c.activation]()]
            d_in = c.width
        if c.depth:
            layers.append(nn.Linear(d_in, 1))
        self.mlp = nn.Sequential(*layers) if c.depth else None
        self.linear = nn.Linear(N_FEATURES, 1) if c.linear_skip else None
        if self.mlp is not None and self.linear is not None:
            nn.init.zeros_(self.mlp[-1].weight)  # start as the linear model; the MLP adds interactions
            nn.init.zeros_(self.mlp[-1].bias)
        self.register_buffer("log_mean", torch.zeros(()))
        self.register_buffer("log_std", torch.ones(()))
        self.meta: dict[str, Any] = meta or {}

    # ---- prediction ------------------------------------------------------------------------------------------
    def standardised(self, encoding: torch.Tensor) -> torch.Tensor:
        """The raw network output: standardised log-latency, (B, 2, 14, 8) → (B,)."""
        x = encoding.reshape(encoding.shape[0], N_FEATURES)
        z = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        if self.mlp is not None:
            z = z + self.mlp(x).squeeze(-1)
        if self.linear is not None:
            z = z + self.linear(x).squeeze(-1)
        return z

    def forward(self, encoding: torch.Tensor) -> torch.Tensor:
        if encoding.dim() not in (3, 4) or tuple(encoding.shape[-3:]) != ENCODING_SHAPE:
            raise UserInputError(f"LPM input has shape {tuple(encoding.shape)}; expected {ENCODING_SHAPE} or "
                                 f"(B, {', '.join(map(str, ENCODING_SHAPE))})")
        single = encoding.dim() == 3
        x = encoding.unsqueeze(0) if single else encoding
        ref = self.log_mean
        x = x.to(device=ref.device, dtype=torch.float32 if not x.is_floating_point() else x.dtype)
        ms = torch.exp(self.standardised(x) * self.log_std + self.log_mean)
        return ms[0] if single else ms

    @torch.no_grad()
    def predict_encodings(self, encodings: torch.Tensor, batch_size: int = 8192) -> np.ndarray:
        """Latency in ms for a stack of encodings, without gradients (evaluation, CLI)."""
        was = self.training
        self.eval()
        try:
            out = [self(encodings[i : i + batch_size]).cpu() for i in range(0, len(encodings), batch_size)]
        finally:
            self.train(was)
        return torch.cat(out).double().numpy() if out else np.zeros(0)

    def predict(self, genotypes: Sequence[Any]) -> np.ndarray:
        """Latency in ms for each genotype."""
        return self.predict_encodings(encode_many(list(genotypes)))

    # ---- identity --------------------------------------------------------------------------------------------
    @property
    def platform_key(self) -> str | None:
        return (self.meta.get("platform") or {}).get("key")

    def check_platform(self, key: str, allow_mismatch: bool = False) -> None:
        """Refuse (or, with the override, warn about) use on a platform other than the one it was fitted on."""
        mine = self.platform_key
        if mine == key:
            return
        msg = f"the LPM was fitted on platform {mine!r}, not {key!r}"
        if allow_mismatch:
            warnings.warn(msg + " (platform mismatch allowed)", stacklevel=2)
            return
        raise UserInputError(msg + "; refit it, transfer it, or allow the mismatch explicitly "
                                   "(allow_platform_mismatch / --allow-platform-mismatch)")

    # ---- files -----------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``model.safetensors`` then ``meta.json`` (each atomically) into the folder ``path``."""
        from safetensors.torch import save as st_save

        from ladarts import __version__
        from ladarts.io import atomic_write, atomic_write_json

        d = Path(path)
        if d.exists() and not d.is_dir():
            raise UserInputError(f"{path}: exists and is not a folder")
        d.mkdir(parents=True, exist_ok=True)
        meta = json_safe({k: v for k, v in self.meta.items() if k != "files"})
        meta.update(format=FORMAT, format_version=FORMAT_VERSION, ladarts_version=__version__,
                    encoding_version=ENCODING_VERSION, config=self.config.to_dict(),
                    normalisation={"space": "log_ms", "log_mean": float(self.log_mean),
                                   "log_std": float(self.log_std)})
        tensors = {k: v.detach().cpu().float().contiguous() for k, v in self.state_dict().items()}
        blob = st_save(tensors, metadata={"format": FORMAT, "meta_sha256": _meta_hash(meta)})

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                f.write(blob)

        atomic_write(d / MODEL_FILE, write)
        meta["files"] = {MODEL_FILE: {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}}
        atomic_write_json(d / META_FILE, meta)
        self.meta = meta
        return d

    @classmethod
    def load(cls, path: str | os.PathLike, expect_platform: str | None = None,
             allow_platform_mismatch: bool = False, device: str | torch.device = "cpu") -> "LPM":
        """Read an LPM folder (safetensors + JSON only, nothing unpickled); every inconsistency is one clear line."""
        from safetensors import SafetensorError
        from safetensors.torch import load as st_load

        d = Path(path)
        if not d.is_dir():
            raise UserInputError(f"{path}: not an LPM folder (expected a folder with {MODEL_FILE} and {META_FILE})")
        for name in (META_FILE, MODEL_FILE):
            if not (d / name).is_file():
                raise UserInputError(f"{path}: not an LPM folder ({name} is missing)")
        try:
            meta = json.loads((d / META_FILE).read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise UserInputError(f"{d / META_FILE}: not valid JSON ({e})") from None
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
            model = cls(config, meta)
            model.load_state_dict(tensors, strict=True)
        except (KeyError, TypeError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserInputError(f"{path}: weights do not fit the LPM described in meta.json ({first})") from None
        if not all(torch.isfinite(t).all() for t in tensors.values()):
            raise UserInputError(f"{d / MODEL_FILE}: holds non-finite weights")
        if expect_platform is not None:
            model.check_platform(expect_platform, allow_platform_mismatch)
        return model.to(device).eval()


def _safetensors_metadata(blob: bytes) -> dict[str, str]:
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ValueError("header length past the end of the file")
    header = json.loads(blob[8 : 8 + n])
    return header.get("__metadata__") or {}


def _meta_hash(meta: dict[str, Any]) -> str:
    text = json.dumps(json_safe(meta), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def json_safe(obj: Any) -> Any:
    """JSON-serialisable copy: NaN/inf become None, numpy scalars plain numbers, tuples lists."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    return obj


# ---- training ------------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    epochs: int
    best_epoch: int
    steps: int
    best_val_loss: float
    fit_s: float
    batch_size: int


def _batch_size(config: LPMConfig, n: int) -> int:
    return config.batch_size or int(min(1024, max(32, n // 32)))


def train_lpm(model: LPM, x_train: torch.Tensor, y_train_ms: torch.Tensor, x_val: torch.Tensor,
              y_val_ms: torch.Tensor, *, seed: int = 0, device: str | torch.device = "cpu",
              set_normalisation: bool = True, anchor_weight: float = 0.0, lr: float | None = None,
              max_epochs: int | None = None, progress: bool = False, desc: str = "fit LPM") -> TrainResult:
    """Adam on MSE of standardised log-latency with early stopping on (x_val, y_val); keeps the best epoch.

    ``set_normalisation`` fits the log mean/std on the training targets (off when fine-tuning keeps them);
    ``anchor_weight`` > 0 adds an L2 pull towards the starting weights (L2-SP, for few-shot transfer).
    """
    cfg = model.config
    dev = torch.device(device)
    model.to(dev)
    g = torch.Generator().manual_seed(seed)
    logy = torch.log(y_train_ms.double())
    if set_normalisation:
        model.log_mean.fill_(float(logy.mean()))
        model.log_std.fill_(float(logy.std()) if len(logy) > 1 and float(logy.std()) > 0 else 1.0)
    mu, sd = float(model.log_mean), float(model.log_std)
    xt = x_train.reshape(len(x_train), -1).float().to(dev)
    zt = ((logy - mu) / sd).float().to(dev)
    xv = x_val.reshape(len(x_val), -1).float().to(dev)
    zv = ((torch.log(y_val_ms.double()) - mu) / sd).float().to(dev)
    anchor = [p.detach().clone() for p in model.parameters()] if anchor_weight > 0 else None
    opt = torch.optim.Adam(model.parameters(), lr=lr or cfg.lr, weight_decay=0.0 if anchor else cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(5, cfg.patience // 4))
    bs = min(_batch_size(cfg, len(xt)), len(xt))
    n = len(xt)
    epochs = max_epochs or cfg.max_epochs

    def val_loss() -> float:
        model.eval()
        with torch.no_grad():
            return float(torch.mean((model.standardised(xv.view(-1, *ENCODING_SHAPE)) - zv) ** 2))

    best = val_loss() if len(xv) else float("inf")
    best_state, best_epoch, steps, stale = copy.deepcopy(model.state_dict()), 0, 0, 0
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=epochs, desc=desc, unit="epoch", leave=False)
    epoch = 0
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=g).to(dev)
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            pred = model.standardised(xt[idx].view(-1, *ENCODING_SHAPE))
            loss = torch.mean((pred - zt[idx]) ** 2)
            if anchor is not None:
                loss = loss + anchor_weight * sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
        v = val_loss() if len(xv) else float(loss)
        sched.step(v)
        if v < best - 1e-7:
            best, best_epoch, stale = v, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(val=f"{v:.4f}", best=f"{best:.4f}")
        if stale >= cfg.patience or steps >= cfg.max_steps:
            break
    if bar is not None:
        bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(epochs=epoch, best_epoch=best_epoch, steps=steps, best_val_loss=best,
                       fit_s=time.perf_counter() - t0, batch_size=bs)
