"""The latency prediction module (LPM): an MLP from the (2, 14, 8) encoding to a platform's latency in ms.

Why this shape:
* the search needs a cost that is differentiable in the encoding, so the LPM is a plain torch module;
* a network's latency is mostly the sum of its ops' latencies, and a primitive costs about the same on every
  edge of a cell type, so besides the flattened encoding the LPM sees a fixed, differentiable pooling of it:
  the count of each primitive per (cell type, edge stride) group. A linear term on those counts is a lookup
  table learned from whole-network measurements; the MLP (on everything) learns what is not additive;
* fitting (:mod:`ladarts.predict.training`) is staged: the linear term first, then everything, with early
  stopping on a validation split, so with few measurements the MLP cannot drown the additive part in noise;
* the output is standardised latency (or log-latency, ``output="log"``) and the loss is relative squared
  error, because latencies span about 3x and the search cares about relative cost.
Defaults come from the sweep in benchmarks/bench_lpm.py. The folder format is :mod:`ladarts.predict.lpm_format`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ladarts.errors import LadartsWarning, UserInputError
from ladarts.space.encoding import EDGES, ENCODING_SHAPE, encode_many
from ladarts.space.geometry import edge_stride

N_FEATURES = int(np.prod(ENCODING_SHAPE))
ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU}
OUTPUTS = ("log", "ms")
#: Bounds on the LPM's size: far above what helps (benchmarks/bench_lpm.py: depth 1, width 128 is the best), low
#: enough that a config from a file cannot ask for gigabytes.
MAX_DEPTH, MAX_WIDTH = 8, 4096


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
        if not (0 <= self.depth <= MAX_DEPTH and 1 <= self.width <= MAX_WIDTH):
            raise UserInputError(f"LPM depth must be in 0..{MAX_DEPTH} and width in 1..{MAX_WIDTH}, got depth "
                                 f"{self.depth}, width {self.width}")
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
        self.source: str | None = None  # the folder it was loaded from, if any

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
            warnings.warn(msg + " (platform mismatch allowed)", LadartsWarning, stacklevel=2)
            return
        raise UserInputError(msg + "; refit it, transfer it, or allow the mismatch explicitly "
                                   "(allow_platform_mismatch / --allow-platform-mismatch)")

    def support_warning(self, genotype: Any) -> str | None:
        """One line when ``genotype`` lies outside what this LPM was fitted on (more or fewer parameter-free edges
        in a cell than any training architecture had), else None. LPMs saved before this was recorded: None."""
        from ladarts.space.sampling import parameter_free_count

        seen = (self.meta.get("support") or {}).get("parameter_free") or {}
        for kind in ("normal", "reduce"):
            if kind not in seen:
                continue
            lo, hi = seen[kind]
            n = parameter_free_count(getattr(genotype, kind))
            if not lo <= n <= hi:
                return (f"the {kind} cell has {n} parameter-free edges; the LPM was fitted on {lo}..{hi}, so its "
                        "prediction is an extrapolation (measure it, or refit on `measure --sampler stratified`)")
        return None

    def describe(self) -> dict[str, Any]:
        """What this cost is, for a search's config.json (the search compares it when a run is resumed)."""
        files = (self.meta.get("files") or {}).get("model.safetensors") or {}
        return {"kind": "lpm", "platform_key": self.platform_key, "mean_latency_ms": self.meta.get("mean_latency_ms"),
                "model_sha256": files.get("sha256"), "path": self.source}

    # ---- files -----------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``model.safetensors`` then ``meta.json`` (each atomically) into the folder ``path``."""
        from ladarts.predict.lpm_format import save_lpm

        return save_lpm(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, expect_platform: str | None = None,
             allow_platform_mismatch: bool = False, device: str | torch.device = "cpu") -> "LPM":
        """Read an LPM folder (safetensors + JSON only, nothing unpickled); every inconsistency is one clear line."""
        from ladarts.predict.lpm_format import load_lpm

        model = load_lpm(path, cls)
        model.source = str(path)
        if expect_platform is not None:
            model.check_platform(expect_platform, allow_platform_mismatch)
        return model.to(device).eval()


def pooling_matrix() -> torch.Tensor:
    """(224, 24) fixed map from the encoding to primitive counts per (cell type, edge stride) group: normal,
    reduction stride 2 (edges from the cell inputs), reduction stride 1. Each primitive's cost depends mostly on
    where it runs, not on which edge it sits, so these counts let few measurements inform every edge."""
    n_p = ENCODING_SHAPE[2]
    m = torch.zeros(ENCODING_SHAPE + (3, n_p))
    for c in range(2):
        for e, (_, inp) in enumerate(EDGES):
            group = 0 if c == 0 else (1 if edge_stride(True, inp) == 2 else 2)
            for p in range(n_p):
                m[c, e, p, group, p] = 1.0
    return m.reshape(N_FEATURES, 3 * n_p)
