"""Rank consistency across platforms: do two runtimes or devices order the same architectures the same way?

For every pair of platforms in a database, over the architectures both measured (each architecture's runs
averaged), Kendall τ-b, Spearman ρ and the share of concordant pairs. The LA-DARTS paper found 69% concordance
between a GPU and a CPU; a low figure says a latency model cannot be carried from one platform to the other.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np

from ladarts.errors import UserInputError
from ladarts.hardware.noise import agreement


def per_architecture(records: list[Any]) -> dict[str, float]:
    """arch_hash → latency, the geometric mean over the runs that measured it."""
    logs: dict[str, list[float]] = {}
    for r in records:
        logs.setdefault(r.arch_hash, []).append(float(np.log(r.latency_ms)))
    return {h: float(np.exp(np.mean(v))) for h, v in logs.items()}


def rank_consistency(store: Any, platforms: list[str] | None = None, min_common: int = 10) -> dict[str, Any]:
    """Pairwise agreement of the platforms in ``store`` (default: all with records), and the matrices for a heat
    map (``kendall_tau_b``, ``spearman_rho``, ``concordant_share``, ``n``, in ``platforms`` order). Pairs with
    fewer than ``min_common`` architectures in common are listed under ``left_out`` with their count."""
    keys = platforms or [k for k in store.platforms() if store.runs(k)]
    if len(keys) < 2:
        raise UserInputError(f"{store.path}: rank consistency needs two platforms with records, found {len(keys)}")
    values = {k: per_architecture(store.records(k)) for k in keys}
    n = len(keys)
    mats = {m: np.full((n, n), np.nan) for m in ("kendall_tau_b", "spearman_rho", "concordant_share", "n")}
    pairs, left_out = [], []
    for i in range(n):
        for m in ("kendall_tau_b", "spearman_rho", "concordant_share"):
            mats[m][i, i] = 1.0
        mats["n"][i, i] = len(values[keys[i]])
    for i, j in combinations(range(n), 2):
        common = set(values[keys[i]]) & set(values[keys[j]])
        if len(common) < min_common:
            left_out.append({"a": keys[i], "b": keys[j], "n": len(common)})
            continue
        a = agreement(values[keys[i]], values[keys[j]])
        pairs.append({"a": keys[i], "b": keys[j], **{k: a[k] for k in ("n", "kendall_tau_b", "spearman_rho",
                                                                        "concordant_share")}})
        for m in mats:
            mats[m][i, j] = mats[m][j, i] = a[m]
    return {"platforms": keys, "pairs": pairs, "left_out": left_out, "min_common": min_common,
            "matrices": {m: v.tolist() for m, v in mats.items()}}
