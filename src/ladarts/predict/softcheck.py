"""How an LPM behaves on the soft encodings the search feeds it (``space/soft.py``), measured, not assumed.

Two properties matter for a latency term in the search loss:
* monotone: moving probability mass on one edge from a cheap primitive to a costly one should raise the
  prediction steadily (no bumps the optimiser could sit in);
* no free lunch via 'none': raising α_none everywhere changes little about what DARTS derives (it ignores
  'none'), so it must not lower the predicted latency much more than the derived architecture's latency drops.
  Plain softmax(α) fails this; the derivation-aware encoding should not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ladarts.predict.lpm import LPM
from ladarts.space.encoding import encode
from ladarts.space.primitives import PRIMITIVES
from ladarts.space.soft import NODE_SLICES, derive, soft_encoding

_NONE = PRIMITIVES.index("none")


def mass_path(lpm: LPM, alphas: torch.Tensor, cell: int, edge: int, src: str, dst: str, steps: int = 11,
              mode: str = "derived", mass: float = 0.9) -> np.ndarray:
    """LPM predictions as ``mass`` of edge ``edge``'s probability moves from ``src`` to ``dst`` in ``steps``.

    ``alphas``: (2, 14, 8) logits; the edge's other primitives share the remaining 1 − mass."""
    i, j = PRIMITIVES.index(src), PRIMITIVES.index(dst)
    out = []
    with torch.no_grad():
        for t in np.linspace(0.0, 1.0, steps):
            a = alphas.clone()
            p = torch.full((len(PRIMITIVES),), (1 - mass) / (len(PRIMITIVES) - 2))
            p[i], p[j] = mass * (1 - t) + 1e-6, mass * t + 1e-6
            a[cell, edge] = torch.log(p)
            out.append(float(lpm(soft_encoding(a[0], a[1], mode=mode))))
    return np.array(out)


def random_alphas(rng: np.random.Generator, scale: float = 1.0, keep_edge: tuple[int, int] | None = None) -> torch.Tensor:
    """(2, 14, 8) logits like a search midway: random, with 'none' a little favoured; ``keep_edge`` made the
    clear top-1 edge of its node (so it is derived whatever happens to its primitive mix)."""
    a = torch.tensor(rng.normal(0.0, scale, size=(2, 14, 8)), dtype=torch.float32)
    a[..., _NONE] += 0.5
    if keep_edge is not None:
        c, e = keep_edge
        node = next(s for s in NODE_SLICES if s.start <= e < s.stop)
        a[c, node, 1:] -= 2.0
        a[c, e, 1:] += 2.0  # restored, so this edge dominates its node's strength ranking
    return a


def soft_behaviour(lpm: LPM, n_paths: int = 100, n_none: int = 20, seed: int = 0, steps: int = 11,
                   none_steps: int = 50, tol: float = 1e-4) -> dict[str, Any]:
    """Monotone share along random mass paths (derived mode) and the 'none' attack in the derived and softmax
    modes (``free_pct``: how much lower the soft prediction went than the derived genotype's)."""
    rng = np.random.default_rng(seed)
    ops = [p for p in PRIMITIVES if p != "none"]
    mono, agree, worst = 0, 0, 0.0
    for _ in range(n_paths):
        c, e = int(rng.integers(2)), int(rng.integers(14))
        src, dst = rng.choice(ops, size=2, replace=False)
        a = random_alphas(rng, keep_edge=(c, e))
        path = mass_path(lpm, a, c, e, str(src), str(dst), steps=steps)
        d = np.diff(path) / path[:-1]
        up, down = bool(np.all(d >= -tol)), bool(np.all(d <= tol))
        mono += up or down
        trend = np.sign(path[-1] - path[0]) or 1.0
        worst = max(worst, float(np.max(-trend * d)) * 100)
        # the direction should be that of the one-hot endpoints' costs on this edge
        ends = []
        for op in (src, dst):
            b = a.clone()
            b[c, e] = -10.0
            b[c, e, PRIMITIVES.index(str(op))] = 10.0
            with torch.no_grad():
                ends.append(float(lpm(encode(derive(b[0], b[1])))))
        agree += (path[-1] - path[0]) * (ends[1] - ends[0]) >= 0
    attacks = {mode: [none_attack(lpm, random_alphas(np.random.default_rng([seed, i])), mode, steps=none_steps)
                      for i in range(n_none)] for mode in ("derived", "softmax")}
    shifts = {mode: [none_shift(lpm, balanced_alphas(np.random.default_rng([seed, 1000 + i])), mode)
                     for i in range(n_none)] for mode in ("derived", "softmax")}
    return {
        "n_paths": n_paths, "steps": steps,
        "monotone_share_pct": 100 * mono / n_paths,
        "direction_agrees_pct": float(100 * agree / n_paths),
        "max_violation_pct": max(0.0, worst),
        "n_none": n_none, "none_steps": none_steps,
        "none_shift": {mode: _summary(rows) for mode, rows in shifts.items()},
        "none_attack": {mode: _summary(rows) for mode, rows in attacks.items()},
    }


def balanced_alphas(rng: np.random.Generator, scale: float = 1.0) -> torch.Tensor:
    """Random logits whose non-'none' part has the same logsumexp on every edge, and equal 'none' logits: a
    shift of every 'none' logit then scales every edge's strength by the same factor, so the derived genotype
    provably stays the same."""
    a = torch.tensor(rng.normal(0.0, scale, size=(2, 14, 8)), dtype=torch.float32)
    ops = torch.cat([a[..., :_NONE], a[..., _NONE + 1 :]], dim=-1)
    a = a - torch.logsumexp(ops, dim=-1, keepdim=True)
    a[..., _NONE] = 0.0
    return a


def none_shift(lpm: LPM, alphas: torch.Tensor, mode: str, delta: float = 2.0) -> dict[str, float]:
    """Shift every 'none' logit by ±``delta`` (derived genotype unchanged, checked); the larger drop of the
    soft prediction (%, ≥ 0) is latency a search could 'save' without changing the architecture."""
    g0 = derive(alphas[0], alphas[1])
    changes = []
    with torch.no_grad():
        before = float(lpm(soft_encoding(alphas[0], alphas[1], mode=mode)))
        for d in (delta, -delta):
            b = alphas.clone()
            b[..., _NONE] += d
            if derive(b[0], b[1]) != g0:
                raise AssertionError("a uniform none shift changed the derived genotype")
            changes.append(100 * (float(lpm(soft_encoding(b[0], b[1], mode=mode))) - before) / before)
    return {"up_change_pct": changes[0], "down_change_pct": changes[1], "free_drop_pct": max(0.0, -min(changes))}


def none_attack(lpm: LPM, alphas: torch.Tensor, mode: str, steps: int = 50, lr: float = 0.2) -> dict[str, float]:
    """Gradient descent on the 'none' logits alone to lower ``lpm(soft_encoding(α))``.

    Returns the change (%) of the soft prediction and of the prediction for the genotype DARTS derives
    before/after. A gap (soft falls, derived does not) is latency the search would 'save' for free."""
    a = alphas.clone()
    none = a[..., _NONE].clone().requires_grad_(True)
    opt = torch.optim.Adam([none], lr=lr)

    def full(n: torch.Tensor) -> torch.Tensor:
        return torch.cat([a[..., :_NONE], n.unsqueeze(-1), a[..., _NONE + 1 :]], dim=-1)

    def soft(n: torch.Tensor) -> torch.Tensor:
        b = full(n)
        return lpm(soft_encoding(b[0], b[1], mode=mode))

    with torch.no_grad():
        soft0 = float(soft(none))
        geno0 = float(lpm(encode(derive(a[0], a[1]))))
    for _ in range(steps):
        loss = soft(none)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        b = full(none.detach())
        soft1 = float(soft(none))
        geno1 = float(lpm(encode(derive(b[0], b[1]))))
    ds, dg = 100 * (soft1 - soft0) / soft0, 100 * (geno1 - geno0) / geno0
    return {"soft_change_pct": ds, "derived_change_pct": dg, "free_pct": dg - ds}


def _summary(rows: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k in rows[0]:
        v = np.array([r[k] for r in rows])
        out[f"{k}_mean"] = float(v.mean())
        out[f"{k}_max"] = float(v.max())
    return out
