"""Soft (continuous) encodings of a supernet's α (and PC-DARTS' β), for a differentiable latency cost.

Plain softmax(α) is the wrong input for a latency model trained on derived architectures: DARTS derivation
ignores 'none' and keeps exactly two edges per node, so mass on 'none' would look cheap to the model without
changing what is derived. The derivation-aware encoding instead says "the architecture this α would derive",
in expectation:

* each edge's strength is its strongest non-'none' weight (times its β weight in PC-DARTS), as in derivation;
* ``keep_e``, the chance that edge e is among its node's top two, is the Plackett–Luce probability of drawing e
  in two draws without replacement from softmax(strength / τ): it sums to exactly 2 over a node's edges and is
  at most 1, like the one-hot of a derived cell;
* a kept edge's primitive is distributed as softmax(α) renormalised over the non-'none' primitives;
* the row is ``[1 − keep_e, keep_e · q_e]``: 'none' holds exactly the chance that the edge is not derived.

The straight-through form feeds the model the one-hot of the currently derived genotype while gradients flow
through the derivation-aware encoding.
"""

from __future__ import annotations

import torch

from ladarts.space.encoding import EDGES, N_NODES, encode
from ladarts.space.genotype import Genotype, Pair
from ladarts.space.primitives import PRIMITIVES

SOFT_MODES = ("derived", "straight-through", "softmax")
_NONE = PRIMITIVES.index("none")
_CONCAT = tuple(range(2, 2 + N_NODES))
# Edge slices per node, in α order: node 2 → edges 0:2, node 3 → 2:5, node 4 → 5:9, node 5 → 9:14.
NODE_SLICES: tuple[slice, ...] = tuple(
    slice(sum(range(2, n)), sum(range(2, n)) + n) for n in range(2, 2 + N_NODES)
)


def edge_weights(betas: torch.Tensor) -> torch.Tensor:
    """PC-DARTS edge normalisation: a softmax over each node's incoming edges. (…, 14) → (…, 14)."""
    return torch.cat([torch.softmax(betas[..., s], dim=-1) for s in NODE_SLICES], dim=-1)


def edge_strength(alphas: torch.Tensor, betas: torch.Tensor | None = None) -> torch.Tensor:
    """What derivation ranks edges by: the strongest non-'none' softmax weight, times β's edge weight."""
    p = torch.softmax(alphas, dim=-1)
    strength = torch.cat([p[..., :_NONE], p[..., _NONE + 1 :]], dim=-1).max(dim=-1).values
    return strength * edge_weights(betas) if betas is not None else strength


def _top2_probability(logits: torch.Tensor) -> torch.Tensor:
    """P(edge among the first two draws without replacement) for draw weights softmax(``logits``) on the last axis.

    P(e) = w_e + Σ_{j≠e} w_j · w_e / (1 − w_j). The second factor is computed as a softmax over the edges other
    than j, which stays exact when one edge takes almost all the weight (1 − w_j would cancel to 0 there)."""
    n = logits.shape[-1]
    w = torch.softmax(logits, dim=-1)
    if n == 2:
        return torch.ones_like(w)
    eye = torch.eye(n, dtype=torch.bool, device=logits.device)
    # [..., j, e] = P(e drawn second | j drawn first) = softmax over k ≠ j of the logits
    second = torch.softmax(logits.unsqueeze(-2).masked_fill(eye, float("-inf")), dim=-1)
    return w + (w.unsqueeze(-1) * second).sum(-2)


def keep_probability(alphas: torch.Tensor, betas: torch.Tensor | None = None, tau: float = 0.05) -> torch.Tensor:
    """Per edge, the soft chance of being one of its node's two derived edges. (…, 14, 8) → (…, 14)."""
    s = edge_strength(alphas, betas)
    return torch.cat([_top2_probability(s[..., sl] / tau) for sl in NODE_SLICES], dim=-1)


def derived_encoding(alphas: torch.Tensor, betas: torch.Tensor | None = None, tau: float = 0.05) -> torch.Tensor:
    """Derivation-aware soft encoding of one cell type: (…, 14, 8) α → (…, 14, 8), rows summing to 1."""
    keep = keep_probability(alphas, betas, tau).unsqueeze(-1)
    ops = torch.softmax(alphas.masked_fill(_none_mask(alphas), float("-inf")), dim=-1)  # 0 on 'none'
    none_col = torch.zeros_like(ops)
    none_col[..., _NONE] = 1.0
    return (1 - keep) * none_col + keep * ops


def _none_mask(alphas: torch.Tensor) -> torch.Tensor:
    m = torch.zeros(alphas.shape[-1], dtype=torch.bool, device=alphas.device)
    m[_NONE] = True
    return m


def derive_cell(alphas: torch.Tensor, betas: torch.Tensor | None = None) -> tuple[Pair, ...]:
    """The reference derivation: per node, the top-2 edges by strongest non-'none' weight (β-weighted in
    PC-DARTS), each with that primitive. Pairs in ascending input order (the canonical order)."""
    with torch.no_grad():
        p = torch.softmax(alphas.detach().float(), dim=-1).clone()
        p[..., _NONE] = -1.0
        w = p * edge_weights(betas.detach().float()).unsqueeze(-1) if betas is not None else p
        best_w, best_op = w.max(dim=-1)
        pairs: list[Pair] = []
        for node, sl in zip(range(2, 2 + N_NODES), NODE_SLICES):
            edges = list(range(sl.start, sl.stop))
            top = sorted(edges, key=lambda e: -float(best_w[e]))[:2]
            for e in sorted(top, key=lambda e: EDGES[e][1]):
                pairs.append((PRIMITIVES[int(best_op[e])], EDGES[e][1]))
    return tuple(pairs)


def derive(alphas_normal: torch.Tensor, alphas_reduce: torch.Tensor, betas_normal: torch.Tensor | None = None,
           betas_reduce: torch.Tensor | None = None) -> Genotype:
    return Genotype(derive_cell(alphas_normal, betas_normal), _CONCAT, derive_cell(alphas_reduce, betas_reduce),
                    _CONCAT)


def soft_encoding(alphas_normal: torch.Tensor, alphas_reduce: torch.Tensor, betas_normal: torch.Tensor | None = None,
                  betas_reduce: torch.Tensor | None = None, mode: str = "derived", tau: float = 0.05) -> torch.Tensor:
    """(2, 14, 8) encoding of the supernet's architecture for a latency cost; differentiable in α and β.

    ``mode``: ``derived`` (derivation-aware, above), ``straight-through`` (one-hot of the derived genotype in the
    forward pass, the derived encoding's gradient in the backward pass), or ``softmax`` (plain softmax(α), the
    paper's literal form, kept for comparison).
    """
    if mode == "softmax":
        return torch.stack([torch.softmax(alphas_normal, -1), torch.softmax(alphas_reduce, -1)])
    soft = torch.stack([derived_encoding(alphas_normal, betas_normal, tau),
                        derived_encoding(alphas_reduce, betas_reduce, tau)])
    if mode == "derived":
        return soft
    if mode == "straight-through":
        hard = encode(derive(alphas_normal, alphas_reduce, betas_normal, betas_reduce)).to(soft)
        return hard + soft - soft.detach()
    raise ValueError(f"unknown soft encoding mode {mode!r}; choose one of {', '.join(SOFT_MODES)}")
