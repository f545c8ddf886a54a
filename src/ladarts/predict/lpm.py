"""The latency prediction module (LPM): an MLP from the (2, 14, 8) encoding to a platform's latency in ms.

Why this shape:
* the search needs a cost that is differentiable in the encoding, so the LPM is a plain torch module;
* a network's latency is mostly the sum of its ops' latencies, and a primitive costs about the same on every
  edge of a cell type, so besides the flattened encoding the LPM sees a fixed, differentiable pooling of it:
  the count of each primitive per (cell type, edge stride) group. A linear term on those counts is a lookup
  table learned from whole-network measurements; the MLP (on everything) learns what is not additive;
* fitting is staged: the linear term first, then everything, with early stopping on a validation split, so
  with few measurements the MLP cannot drown the additive part in noise;
* the output is standardised latency (or log-latency, ``output="log"``) and the loss is relative squared
  error, because latencies span about 3x and the search cares about relative cost.
Defaults come from the sweep in benchmarks/bench_lpm.py.

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
OUTPUTS = ("log", "ms")


@dataclass
class LPMConfig:
    """Architecture and training hyperparameters. Defaults come from the sweep in benchmarks/bench_lpm.py."""

    depth: int = 1  # hidden layers
    width: int = 128
    activation: str = "silu"
    linear_skip: bool = True  # a linear term on the encoding beside the MLP (the additive part of latency)
    pooled: bool = True  # also feed per-cell-type primitive counts (by edge stride): shared across edges
    linear_on: str = "all"  # the linear term sees "pooled" counts only (a learned lookup table) or "all"
    edge_ridge: float = 1.0  # with linear_on="all": ridge on the per-edge weights (they refine the pooled costs)
    staged: bool = True  # fit the linear term first, then everything (the MLP learns what is not additive)
    loss: str = "huber"  # on the relative error: "mse", or "huber" (robust to contention outliers in the labels)
    huber_delta: float = 0.03  # relative error where the Huber loss turns linear
    output: str = "ms"  # what the network regresses: "log" (log-latency) or "ms" (latency; ops add up in ms)
    lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int | None = None  # None: n_train // 32, clipped to [32, 1024]
    max_epochs: int = 600
    max_steps: int = 5_000  # per stage: bounds a 100K-record fit to minutes
    patience: int = 60  # epochs without a better validation loss
    val_fraction: float = 0.15

    def __post_init__(self) -> None:
        if self.depth < 0 or self.width < 1:
            raise UserInputError(f"LPM depth must be ≥ 0 and width ≥ 1, got depth {self.depth}, width {self.width}")
        if self.activation not in ACTIVATIONS:
            raise UserInputError(f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        if not 0 < self.val_fraction < 1:
            raise UserInputError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.linear_on not in ("pooled", "all"):
            raise UserInputError(f"linear_on must be 'pooled' or 'all', got {self.linear_on!r}")
        if self.loss not in ("mse", "huber") or not self.huber_delta > 0:
            raise UserInputError(f"LPM loss must be 'mse' or 'huber' (with huber_delta > 0), got {self.loss!r}")
        if self.output not in OUTPUTS:
            raise UserInputError(f"unknown LPM output {self.output!r}; choose one of {', '.join(OUTPUTS)}")
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
        self.register_buffer("pool", pooling_matrix(), persistent=False)
        n_in = N_FEATURES + (self.pool.shape[1] if c.pooled else 0)
        d_in = n_in
        for _ in range(c.depth):
            layers += [nn.Linear(d_in, c.width), ACTIVATIONS[c.activation]()]
            d_in = c.width
        if c.depth:
            layers.append(nn.Linear(d_in, 1))
        self.mlp = nn.Sequential(*layers) if c.depth else None
        self._lin_pooled_only = c.pooled and c.linear_on == "pooled"
        self.linear = nn.Linear(self.pool.shape[1] if self._lin_pooled_only else n_in, 1) if c.linear_skip else None
        if self.mlp is not None and self.linear is not None:
            nn.init.zeros_(self.mlp[-1].weight)  # start as the linear model; the MLP adds interactions
            nn.init.zeros_(self.mlp[-1].bias)
        # target normalisation: the network outputs (t(latency) − y_mean) / y_std, t = log or identity
        self.register_buffer("y_mean", torch.zeros(()))
        self.register_buffer("y_std", torch.ones(()))
        self.meta: dict[str, Any] = meta or {}

    # ---- prediction ------------------------------------------------------------------------------------------
    def standardised(self, encoding: torch.Tensor) -> torch.Tensor:
        """The raw network output: the standardised target (latency or log-latency), (B, 2, 14, 8) → (B,)."""
        x = encoding.reshape(encoding.shape[0], N_FEATURES)
        if self.config.pooled:
            x = torch.cat([x, x @ self.pool.to(x.dtype)], dim=-1)
        z = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        if self.mlp is not None:
            z = z + self.mlp(x).squeeze(-1)
        if self.linear is not None:
            z = z + self.linear(x[:, N_FEATURES:] if self._lin_pooled_only else x).squeeze(-1)
        return z

    def forward(self, encoding: torch.Tensor) -> torch.Tensor:
        if encoding.dim() not in (3, 4) or tuple(encoding.shape[-3:]) != ENCODING_SHAPE:
            raise UserInputError(f"LPM input has shape {tuple(encoding.shape)}; expected {ENCODING_SHAPE} or "
                                 f"(B, {', '.join(map(str, ENCODING_SHAPE))})")
        single = encoding.dim() == 3
        x = encoding.unsqueeze(0) if single else encoding
        ref = self.y_mean
        x = x.to(device=ref.device, dtype=ref.dtype)  # differentiable cast: float64 or int inputs work too
        ms = self.from_standardised(self.standardised(x))
        return ms[0] if single else ms

    def from_standardised(self, z: torch.Tensor) -> torch.Tensor:
        t = z * self.y_std + self.y_mean
        return torch.exp(t) if self.config.output == "log" else t

    def to_target(self, ms: torch.Tensor) -> torch.Tensor:
        """The output space before standardisation: log(ms) or ms."""
        return torch.log(ms) if self.config.output == "log" else ms

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
                    normalisation={"space": "log_ms" if self.config.output == "log" else "ms",
                                   "mean": float(self.y_mean), "std": float(self.y_std)})
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


@torch.no_grad()
def _fit_linear_closed_form(model: "LPM", x: torch.Tensor, z: torch.Tensor, r: torch.Tensor,
                            ridge: float = 1e-3, towards_current: bool = False, irls_steps: int = 8) -> None:
    """Set the linear term to the ridge solution of z − mlp(x) ≈ linear(features) under the training loss on the
    relative error r·(ẑ − z): weighted least squares, iteratively reweighted for the Huber loss.

    The ridge shrinks towards zero, or (``towards_current``, for transfer) towards the current weights, so that
    directions the few new measurements cannot pin down keep what the source platform learned."""
    cfg = model.config
    model.eval()
    feats = _linear_features(model, x)
    resid = z.double() - (model.standardised(x).double() - model.linear(feats).squeeze(-1).double())
    a = torch.cat([feats, torch.ones(len(feats), 1, device=x.device, dtype=feats.dtype)], dim=-1).double()
    lam = ridge * len(a) * float((r.double() ** 2).mean())
    diag = torch.full((a.shape[1],), lam, dtype=torch.float64, device=x.device)
    if not model._lin_pooled_only and cfg.pooled:  # per-edge weights refine the shared per-group costs: shrink more
        diag[:N_FEATURES] = cfg.edge_ridge * len(a) * float((r.double() ** 2).mean())
    diag[-1] = 0.0  # the bias is not shrunk
    reg = torch.diag(diag)
    prior = torch.zeros(a.shape[1], 1, dtype=torch.float64, device=x.device)
    if towards_current:
        prior[:-1, 0] = model.linear.weight.detach().double().ravel()
    r2 = r.double() ** 2
    w = r2.clone()
    for _ in range(irls_steps if cfg.loss == "huber" else 1):
        aw = a * w.sqrt().unsqueeze(-1)
        sol = torch.linalg.solve(aw.T @ aw + reg, aw.T @ (resid * w.sqrt()).unsqueeze(-1) + diag.unsqueeze(-1) * prior)
        rel = (a @ sol).squeeze(-1) - resid
        rel = rel * r.double()
        w = r2 * torch.clamp(cfg.huber_delta / rel.abs().clamp_min(1e-12), max=1.0)
    sol = sol.squeeze(-1)
    model.linear.weight.copy_(sol[:-1].to(model.linear.weight.dtype).unsqueeze(0))
    model.linear.bias.copy_(sol[-1:].to(model.linear.bias.dtype))


def _linear_features(model: "LPM", x: torch.Tensor) -> torch.Tensor:
    if model.config.pooled:
        pooled = x @ model.pool.to(x.dtype)
        return pooled if model._lin_pooled_only else torch.cat([x, pooled], dim=-1)
    return x


def pooling_matrix() -> torch.Tensor:
    """(224, 24) fixed map from the encoding to primitive counts per (cell type, edge stride) group: normal,
    reduction stride 2 (edges from the cell inputs), reduction stride 1. Each primitive's cost depends mostly on
    where it runs, not on which edge it sits, so these counts let few measurements inform every edge."""
    from ladarts.space.encoding import EDGES

    n_p = ENCODING_SHAPE[2]
    m = torch.zeros(ENCODING_SHAPE + (3, n_p))
    for c in range(2):
        for e, (_, inp) in enumerate(EDGES):
            group = 0 if c == 0 else (1 if inp < 2 else 2)
            for p in range(n_p):
                m[c, e, p, group, p] = 1.0
    return m.reshape(N_FEATURES, 3 * n_p)


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
              max_epochs: int | None = None, progress: bool = False, desc: str = "fit LPM",
              staged: bool | None = None, prior_ridge: float | None = None) -> TrainResult:
    """Adam on a relative-error loss with early stopping on (x_val, y_val); keeps the best epoch.

    ``set_normalisation`` fits the target mean/std on the training targets (off when fine-tuning keeps them);
    ``anchor_weight`` > 0 adds an L2 pull towards the starting weights (L2-SP, for few-shot transfer).
    ``staged`` (default: ``config.staged`` for a fresh fit) fits the linear term in closed form first;
    ``prior_ridge`` (transfer) shrinks that fit towards the current linear weights instead of towards zero.
    """
    cfg = model.config
    dev = torch.device(device)
    model.to(dev)
    g = torch.Generator().manual_seed(seed)
    ty = model.to_target(y_train_ms.double())
    if set_normalisation:
        model.y_mean.fill_(float(ty.mean()))
        model.y_std.fill_(float(ty.std()) if len(ty) > 1 and float(ty.std()) > 0 else 1.0)
    mu, sd = float(model.y_mean), float(model.y_std)
    xt = x_train.reshape(len(x_train), -1).float().to(dev)
    zt = ((ty - mu) / sd).float().to(dev)
    xv = x_val.reshape(len(x_val), -1).float().to(dev)
    zv = ((model.to_target(y_val_ms.double()) - mu) / sd).float().to(dev)
    # The loss is on the relative error rel = (pred − y) / y = r · (ẑ − z): r = std / y in ms space, r = std in
    # log space (a log-ratio is a relative error to first order).
    if cfg.output == "ms":
        rt = (sd / y_train_ms.double()).float().to(dev)
        rv = (sd / y_val_ms.double()).float().to(dev)
    else:
        rt, rv = torch.full_like(zt, sd), torch.full_like(zv, sd)

    def rel_loss(rel: torch.Tensor) -> torch.Tensor:
        if cfg.loss == "huber":
            return torch.nn.functional.huber_loss(rel, torch.zeros_like(rel), delta=cfg.huber_delta)
        return torch.mean(rel ** 2)

    anchor = [p.detach().clone() for p in model.parameters()] if anchor_weight > 0 else None
    bs = min(_batch_size(cfg, len(xt)), len(xt))
    n = len(xt)
    epochs = max_epochs or cfg.max_epochs

    def val_loss() -> float:
        model.eval()
        with torch.no_grad():
            return float(rel_loss(rv * (model.standardised(xv) - zv)))

    state = {"best": val_loss() if len(xv) else float("inf"), "best_state": copy.deepcopy(model.state_dict()),
             "best_epoch": 0, "steps": 0, "epochs": 0}
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=epochs, desc=desc, unit="epoch", leave=False)

    def optimise(params: list[nn.Parameter], lr_: float, budget: int) -> None:
        """Adam on ``params`` until the validation loss stalls for ``patience`` epochs; keeps the best state."""
        nonlocal anchor
        opt = torch.optim.Adam(params, lr=lr_, weight_decay=0.0 if anchor else cfg.weight_decay)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(5, cfg.patience // 4))
        stale, steps0 = 0, state["steps"]
        for _ in range(budget):
            model.train()
            perm = torch.randperm(n, generator=g).to(dev)
            for i in range(0, n, bs):
                idx = perm[i : i + bs]
                loss = rel_loss(rt[idx] * (model.standardised(xt[idx]) - zt[idx]))
                if anchor is not None:
                    loss = loss + anchor_weight * sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                state["steps"] += 1
            state["epochs"] += 1
            v = val_loss() if len(xv) else float(loss)
            sched.step(v)
            if v < state["best"] - 1e-7:
                state.update(best=v, best_epoch=state["epochs"], best_state=copy.deepcopy(model.state_dict()))
                stale = 0
            else:
                stale += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(val=f"{v:.4f}", best=f"{state['best']:.4f}")
            if stale >= cfg.patience or state["steps"] - steps0 >= cfg.max_steps:
                break
        model.load_state_dict(state["best_state"])

    base_lr = lr or cfg.lr
    if staged is None:
        staged = cfg.staged and set_normalisation
    if staged and model.mlp is not None and model.linear is not None:
        # Stage 1: the linear term alone, in closed form (the MLP's last layer starts at zero, so the model is
        # linear); stage 2: everything, from there. The MLP only stays if it beats the linear fit on validation.
        # weighted ridge: exact and instant even at 100K records
        if prior_ridge is None:
            _fit_linear_closed_form(model, xt, zt, rt)
        else:
            _fit_linear_closed_form(model, xt, zt, rt, ridge=prior_ridge, towards_current=True)
        v = val_loss() if len(xv) else float("inf")
        state.update(best=v, best_state=copy.deepcopy(model.state_dict()))
        if anchor is not None:  # L2-SP pulls towards where the all-parameter stage starts
            anchor = [p.detach().clone() for p in model.parameters()]
        optimise(list(model.parameters()), base_lr, epochs - state["epochs"])
    else:
        optimise(list(model.parameters()), base_lr, epochs)
    if bar is not None:
        bar.close()
    model.eval()
    best, best_epoch, steps, epoch = state["best"], state["best_epoch"], state["steps"], state["epochs"]
    return TrainResult(epochs=epoch, best_epoch=best_epoch, steps=steps, best_val_loss=best,
                       fit_s=time.perf_counter() - t0, batch_size=bs)
