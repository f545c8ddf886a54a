"""Agreement between two sets of latencies over the same architectures: two runs (the noise floor) or two
platforms (their rank consistency; the paper found 69% between GPU and CPU).

Besides the MAPE on the common scale, two scale-free figures: Kendall τ, and the MAPE left after one fitted
scale factor, which says how much of a disagreement is a constant factor (a different reference latency) and
how much is the architectures' order and spacing.
"""

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


def fitted_scale(reference: np.ndarray, other: np.ndarray) -> float:
    """The one factor ``c`` that best maps ``other`` onto ``reference``: the median of ``reference / other``
    (least absolute error of the log-ratios, so robust to a few outliers and close to minimising the MAPE)."""
    return float(np.median(np.asarray(reference, dtype=float) / np.asarray(other, dtype=float)))


def scale_free(measured: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Kendall τ-b and the MAPE of ``predicted × c`` against ``measured`` after one fitted scale factor ``c``:
    for comparing a predictor or a run whose absolute scale may differ (e.g. ``ladarts evaluate``)."""
    y = np.asarray(measured, dtype=float)
    p = np.asarray(predicted, dtype=float)
    c = fitted_scale(y, p)
    return {"kendall_tau_b": float(stats.kendalltau(y, p, variant="b").statistic), "scale_factor": c,
            "mape_scaled_pct": float(100 * np.mean(np.abs(c * p - y) / y))}


def agreement(a: dict[str, float], b: dict[str, float]) -> dict[str, Any]:
    """Symmetric MAPE (|a−b| / mean(a, b), in %), Kendall τ-b, Spearman ρ and the concordant share; and the
    symmetric MAPE after scaling ``b`` by one fitted factor (``scale_factor``, ``mape_sym_scaled_pct``)."""
    common = sorted(set(a) & set(b))
    if len(common) < 3:
        raise UserInputError(f"only {len(common)} architectures in common; need at least 3 to compare")
    x = np.array([a[h] for h in common], dtype=float)
    y = np.array([b[h] for h in common], dtype=float)
    sym = np.abs(x - y) / ((x + y) / 2)
    c = fitted_scale(x, y)
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
        "scale_factor": c,
        "mape_sym_scaled_pct": float(100 * np.mean(np.abs(x - c * y) / ((x + c * y) / 2))),
    }


ESTIMATORS = ("latency_ms", "median_ms", "min_ms")


def compare_runs(store, platform_a: str, run_a: str, platform_b: str, run_b: str, metric: str = "latency",
                 store_b=None) -> dict[str, Any]:
    """Agreement of each stored estimator: ``latency_ms`` (ratio × reference latency) and the raw median and min.

    With ``store_b`` run B is read from another database. For one platform in two databases both sides then use
    the common scale over both databases' reference timings (:func:`~ladarts.hardware.store.common_reference`),
    so their agreement measures the ratios, not when each database happened to time its reference.
    """
    from ladarts.hardware.store import common_reference

    store_b = store_b or store
    scale = {"a_ref_ms": store.platform_row(platform_a)["ref_ms"],
             "b_ref_ms": store_b.platform_row(platform_b)["ref_ms"]}
    ref_a = ref_b = None
    if store_b is not store and platform_a == platform_b:
        common = common_reference([store, store_b], platform_a)
        ref_a = ref_b = common.ms if common else None
        scale["common_ref_ms"] = ref_a
    ra = store.records(platform_a, metric, run_a, ref_ms=ref_a)
    rb = store_b.records(platform_b, metric, run_b, ref_ms=ref_b)
    if not ra or not rb:
        missing = f"{platform_a} run {run_a}" if not ra else f"{platform_b} run {run_b}"
        raise UserInputError(f"no records for {missing}")
    out: dict[str, Any] = {"a": {"platform": platform_a, "run": run_a, "db": str(store.path)},
                           "b": {"platform": platform_b, "run": run_b, "db": str(store_b.path)}, "scale": scale}
    for est in ESTIMATORS:
        out[est] = agreement({r.arch_hash: getattr(r, est) for r in ra}, {r.arch_hash: getattr(r, est) for r in rb})
    out["repeats"] = ra[0].repeats
    return out
