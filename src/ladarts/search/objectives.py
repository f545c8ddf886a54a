"""Latency objectives: any differentiable ``cost(encoding) -> ms`` turned into a unit-free loss on α (and β).

The cost sees an encoding of the supernet's architecture built by :func:`ladarts.space.soft.soft_encoding`
(derivation-aware, straight-through or plain softmax); it never sees the weights w, so its gradient reaches α/β only.

* paper form: ``λ · LAT(α) / mean_ms`` — ``mean_ms`` is the mean training latency of the LPM (``meta``), so λ=1 weighs
  a 100% latency change like one nat of cross-entropy;
* budget form (``target_ms=T``): ``λ · max(0, LAT(α)/T − 1)``, zero under the target.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ladarts.errors import UserInputError
from ladarts.space.encoding import ENCODING_SHAPE, encode
from ladarts.space.genotype import Genotype
from ladarts.space.soft import SOFT_MODES, soft_encoding

Cost = Callable[[torch.Tensor], torch.Tensor]
#: The default soft form (see benchmarks/bench_search_soft.py for the measurement that chose it).
DEFAULT_SOFT_MODE = "derived"


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
        if mode not in SOFT_MODES:
            raise UserInputError(f"unknown soft encoding {mode!r}; choose one of {', '.join(SOFT_MODES)}")
        if lam < 0:
            raise UserInputError(f"λ must be non-negative, got {lam}")
        if target_ms is not None and not target_ms > 0:
            raise UserInputError(f"--target-ms must be positive, got {target_ms}")
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
        return {"lambda": self.lam, "soft_mode": self.mode, "tau": self.tau, "target_ms": self.target_ms,
                "form": "paper" if self.target_ms is None else "budget", "scale_ms": self.scale_ms}


def genotype_latency(cost: Cost, genotype: Genotype) -> float:
    """The cost's prediction for a discrete genotype (its one-hot encoding)."""
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

    def forward(self, encoding: torch.Tensor) -> torch.Tensor:
        return self.base_ms + (encoding * self.table).sum(dim=(-3, -2, -1))

    @classmethod
    def macs_proxy(cls, channels: int = 36, cells: int = 20, input_size: int = 32) -> "TableCost":
        """MACs (in millions) each primitive adds on each edge of the deployed network (C, L cells, px), summed
        over the cells of each type: a FLOPs proxy, **not** a latency; for benchmarks without an LPM."""
        from ladarts.space.encoding import EDGES
        from ladarts.space.networks import reduction_indices
        from ladarts.space.primitives import PRIMITIVES

        red = set(reduction_indices(cells))
        table = torch.zeros(ENCODING_SHAPE)
        c, hw = channels, input_size * input_size
        for i in range(cells):
            if i in red:
                c *= 2
            out_hw = hw // 4 if i in red else hw
            kind = 1 if i in red else 0
            for e, (_, src) in enumerate(EDGES):
                stride2 = i in red and src < 2
                for p, name in enumerate(PRIMITIVES):
                    table[kind, e, p] += _op_macs(name, c, out_hw, stride2) / 1e6
            if i in red:
                hw = out_hw
        return cls(table, base_ms=0.0, name=f"macs-proxy C{channels}x{cells} {input_size}px (MMACs, not ms)")


def _op_macs(name: str, c: int, hw: int, stride2: bool) -> float:
    if name in ("none",):
        return 0.0
    if name == "skip_connect":
        return float(c * c * hw) if stride2 else 0.0  # FactorizedReduce: two 1×1 convs C → C/2
    if "pool" in name:
        return 9.0 * c * hw
    k = int(name[-1])
    block = k * k * c * hw + c * c * hw
    return 2 * block if name.startswith("sep") else block
