"""Latency objectives: any differentiable ``cost(encoding) -> ms`` turned into a unit-free loss on α (and β).

The cost sees an encoding of the supernet's architecture built by :func:`ladarts.space.soft.soft_encoding`
(derivation-aware, straight-through or plain softmax); it never sees the weights w, so its gradient reaches α/β only.

* paper form: ``λ · LAT(α) / mean_ms`` — ``mean_ms`` is the mean training latency of the LPM (``meta``), so λ=1 weighs
  a 100% latency change like one nat of cross-entropy;
* budget form (``target_ms=T``): ``λ · max(0, LAT(α)/T − 1)``, zero under the target.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from ladarts.errors import LadartsWarning, UserInputError
from ladarts.space.encoding import ENCODING_SHAPE, encode
from ladarts.space.genotype import Genotype
from ladarts.space.soft import SOFT_MODES, soft_encoding

#: The default soft form: derived and straight-through found equally fast cells across the λ front, and the derived
#: form's front is monotone in λ and its term costs half as much (benchmarks/RESULTS.md, "Search").
DEFAULT_SOFT_MODE = "derived"


@runtime_checkable
class Cost(Protocol):
    """What the search needs of a hardware cost: differentiable ms from an encoding, and what it is.

    ``cost(encoding)``: (2, 14, 8) → scalar ms, (B, 2, 14, 8) → (B,), differentiable in the encoding.
    ``meta``: at least ``mean_latency_ms`` (what the paper form divides by), unless a scale is given.
    ``describe()``: a JSON-able summary written into the search's config.json (and compared on resume).
    An LPM (:class:`ladarts.predict.LPM`) is one; :class:`TableCost` (a lookup table) another.
    """

    meta: dict[str, Any]

    def __call__(self, encoding: torch.Tensor) -> torch.Tensor: ...

    def describe(self) -> dict[str, Any]: ...


def check_objective(lam: float, target_ms: float | None = None, soft_mode: str = DEFAULT_SOFT_MODE) -> None:
    """The one check of the latency objective's settings (the config, the objective and the CLI all call it)."""
    if not isinstance(lam, (int, float)) or isinstance(lam, bool) or not math.isfinite(lam) or lam < 0:
        raise UserInputError(f"--lambda must be a non-negative number, got {lam}")
    if target_ms is not None and not (math.isfinite(target_ms) and target_ms > 0):
        raise UserInputError(f"--target-ms must be a positive number, got {target_ms}")
    if soft_mode not in SOFT_MODES:
        raise UserInputError(f"unknown soft encoding {soft_mode!r}; choose one of {', '.join(SOFT_MODES)}")


def cost_scale_ms(cost: Any, override: float | None = None) -> float:
    """The latency the paper form divides by: ``override``, else the cost's ``meta["mean_latency_ms"]``."""
    if override is not None:
        scale = float(override)
    else:
        meta = getattr(cost, "meta", None) or {}
        if "mean_latency_ms" not in meta:
            raise UserInputError("the latency cost has no meta['mean_latency_ms']; pass latency_scale_ms")
        scale = float(meta["mean_latency_ms"])
    if not scale > 0:
        raise UserInputError(f"latency scale must be positive, got {scale}")
    return scale


class LatencyObjective:
    """λ·LAT(α)/mean_ms (paper form) or λ·max(0, LAT(α)/T − 1) (budget form), with LAT = ``cost`` on the soft
    encoding of α (and β for PC-DARTS). ``__call__`` returns (loss term, LAT(α) in ms)."""

    def __init__(self, cost: Cost, lam: float, mode: str = DEFAULT_SOFT_MODE, target_ms: float | None = None,
                 scale_ms: float | None = None, tau: float = 0.05):
        check_objective(lam, target_ms, mode)
        self.cost, self.lam, self.mode, self.target_ms, self.tau = cost, float(lam), mode, target_ms, tau
        self.scale_ms = cost_scale_ms(cost, scale_ms) if target_ms is None else float(scale_ms or target_ms)
        if isinstance(cost, nn.Module):  # the cost is fixed during search: no gradient into its own parameters
            cost.eval()
            cost.requires_grad_(False)

    def latency(self, alphas_normal: torch.Tensor, alphas_reduce: torch.Tensor,
                betas_normal: torch.Tensor | None = None, betas_reduce: torch.Tensor | None = None) -> torch.Tensor:
        """LAT(α) in ms, differentiable in α and β."""
        enc = soft_encoding(alphas_normal, alphas_reduce, betas_normal, betas_reduce, mode=self.mode, tau=self.tau)
        return self.cost(enc).reshape(())

    def __call__(self, alphas_normal: torch.Tensor, alphas_reduce: torch.Tensor,
                 betas_normal: torch.Tensor | None = None,
                 betas_reduce: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        lat = self.latency(alphas_normal, alphas_reduce, betas_normal, betas_reduce)
        if self.target_ms is None:
            term = self.lam * lat / self.scale_ms
        else:
            term = self.lam * torch.relu(lat / self.target_ms - 1.0)
        return term, lat

    def describe(self) -> dict[str, Any]:
        """The objective's settings and its cost's own description, for the run's config.json."""
        return {**self.cost.describe(), "lambda": self.lam, "soft_mode": self.mode, "tau": self.tau, "target_ms": self.target_ms,
                "form": "paper" if self.target_ms is None else "budget", "scale_ms": self.scale_ms}


def genotype_latency(cost: Cost, genotype: Genotype) -> float:
    """The cost's prediction for a discrete genotype (its one-hot encoding); warns (once per message) when the
    cost says the genotype lies outside what it was fitted on."""
    support = getattr(cost, "support_warning", None)
    message = support(genotype) if support is not None else None
    if message:
        warnings.warn(f"derived genotype: {message}", LadartsWarning, stacklevel=2)
    with torch.no_grad():
        return float(cost(encode(genotype)).reshape(()))


class TableCost(nn.Module):
    """A per-(cell type, edge, primitive) additive cost: ``base_ms + Σ encoding · table``. A lookup table is
    the simplest latency model; it is also the differentiable cost the tests and the no-LPM benchmarks use."""

    def __init__(self, table: torch.Tensor, base_ms: float = 0.0, mean_latency_ms: float | None = None,
                 name: str = "table"):
        super().__init__()
        if tuple(table.shape) != ENCODING_SHAPE:
            raise ValueError(f"table must have shape {ENCODING_SHAPE}, got {tuple(table.shape)}")
        self.register_buffer("table", table.float().clone())
        self.base_ms = float(base_ms)
        self.name = name
        if mean_latency_ms is None:
            from ladarts.space.sampling import sample_genotypes

            with torch.no_grad():
                encs = torch.stack([encode(g) for g in sample_genotypes(256, seed=0)])
                mean_latency_ms = float(self.forward(encs).mean())
        self.meta = {"mean_latency_ms": float(mean_latency_ms), "kind": name}

    def describe(self) -> dict[str, Any]:
        return {"kind": "TableCost", "name": self.name, "mean_latency_ms": self.meta["mean_latency_ms"]}

    def forward(self, encoding: torch.Tensor) -> torch.Tensor:
        return self.base_ms + (encoding * self.table).sum(dim=(-3, -2, -1))

    @classmethod
    def macs_proxy(cls, channels: int = 36, cells: int = 20, input_size: int = 32) -> "TableCost":
        """The network's MACs in millions (the one per-edge MACs table, :func:`ladarts.space.costs.cost_tables`, on
        the CIFAR network of C channels, L cells and this many px): a FLOPs proxy, **not** a latency; for
        benchmarks without an LPM."""
        from ladarts.space.costs import cost_tables
        from ladarts.space.networks import network_config

        t = cost_tables(network_config("cifar", channels=channels, cells=cells, input_size=input_size))
        return cls(torch.from_numpy(t["macs"] / 1e6), base_ms=t["macs_fixed"] / 1e6,
                   name=f"macs-proxy C{channels}x{cells} {input_size}px (MMACs, not ms)")
