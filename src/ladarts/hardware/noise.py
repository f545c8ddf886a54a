"""Agreement between two sets of latencies over the same architectures: two runs (the noise floor) or two
platforms (their rank consistency; the paper found 69% between GPU and CPU)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from ladarts.errors import UserInputError


def concordant_share(a: np.ndarray, b: np.ndarray) -> float:
    """Share of architecture pairs ordered the same way by both (ties in either count as not concordant)."""
    da = np.sign(a[:, None] - a[None, :])
    db = np.sign(b[:, None] - b[None, :])
    iu = np.triu_indices(len(a), k=1)
    return float(np.mean((da * db)[iu] > 0))


def agreement(a: dict[str, float], b: dict[str, float]) -> dict[str, Any]:
    """Symmetric MAPE (|a−b| / mean(a, b), in %), Kendall τ-b, Spearman ρ and the concordant share."""
    common = sorted(set(a) & set(b))
    if len(common) < 3:
        raise UserInputError(f"only {len(common)} architectures in common; need at least 3 to compare")
    x = np.array([a[h] for h in common], dtype=float)
    y = np.array([b[h] for h in common], dtype=float)
    sym = np.abs(x - y) / ((x + y) / 2)
    return {
        "n": len(common),
        "mape_sym_pct": float(100 * sym.mean()),
        "median_ape_sym_pct": float(100 * np.median(sym)),
        "max_ape_sym_pct": float(100 * sym.max()),
        "kendall_tau_b": float(stats.kendalltau(x, y, variant="b").statistic),
        "spearman_rho": float(stats.spearmanr(x, y).statistic),
        "concordant_share": concordant_share(x, y),
        "mean_a_ms": float(x.mean()),
        "mean_b_ms": float(y.mean()),
    }


ESTIMATORS = ("latency_ms", "median_ms", "min_ms")


def compare_runs(store, platform_a: str, run_a: str, platform_b: str, run_b: str,
                 metric: str = "latency") -> dict[str, Any]:
    """Agreement of each stored estimator: drift-corrected ``latency_ms`` and the raw median and min."""
    ra = store.records(platform_a, metric, run_a)
    rb = store.records(platform_b, metric, run_b)
    if not ra or not rb:
        missing = f"{platform_a} run {run_a}" if not ra else f"{platform_b} run {run_b}"
        raise UserInputError(f"no records for {missing}")
    out: dict[str, Any] = {"a": {"platform": platform_a, "run": run_a}, "b": {"platform": platform_b, "run": run_b}}
    for est in ESTIMATORS:
        out[est] = agreement({r.arch_hash: getattr(r, est) for r in ra}, {r.arch_hash: getattr(r, est) for r in rb})
    out["repeats"] = ra[0].repeats
    return out
