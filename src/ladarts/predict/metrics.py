"""Accuracy of a latency predictor against measurements: relative error first (latencies span 3x), then
absolute error and the ranking the search relies on.

nn-Meter's headline is the share of predictions within ±10%; the LA-DARTS paper reports relative error and
Kendall τ. All are computed here on the same arrays so every table uses one definition.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

def regression_metrics(predicted: Any, measured: Any) -> dict[str, float]:
    """MAPE (%, against the measurement), RMSE and max error (ms), share within ±5%/±10% (%), Kendall τ-b and
    Spearman ρ, and the MAPE after one fitted scale factor. Rank statistics are NaN when fewer than 3 points or a
    constant side make them undefined."""
    p = np.asarray(predicted, dtype=float).ravel()
    m = np.asarray(measured, dtype=float).ravel()
    if p.shape != m.shape:
        raise ValueError(f"predicted has {p.size} values, measured {m.size}")
    if p.size == 0:
        raise ValueError("no values to compare")
    if np.any(m <= 0):
        raise ValueError("measured latencies must be positive")
    err = p - m
    ape = np.abs(err) / m
    c = np.median(m / p) if np.all(p > 0) else float("nan")
    ranked = p.size >= 3 and np.ptp(p) > 0 and np.ptp(m) > 0
    return {
        "n": int(p.size),
        "mape_pct": float(100 * ape.mean()),
        "rmse_ms": float(np.sqrt(np.mean(err ** 2))),
        "max_abs_err_ms": float(np.abs(err).max()),
        "max_ape_pct": float(100 * ape.max()),
        "within_5_pct": float(100 * np.mean(ape <= 0.05)),
        "within_10_pct": float(100 * np.mean(ape <= 0.10)),
        "kendall_tau_b": float(stats.kendalltau(p, m, variant="b").statistic) if ranked else float("nan"),
        "spearman_rho": float(stats.spearmanr(p, m).statistic) if ranked else float("nan"),
        # scale-free: what is left after one factor c = median(measured / predicted), the definition of
        # ladarts.hardware.noise.scale_free (a constant factor is a different reference latency, not an error
        # in the ranking or spacing)
        "scale_factor": float(c),
        "mape_scaled_pct": float(100 * np.mean(np.abs(c * p - m) / m)),
    }


def format_table(rows: dict[str, dict[str, float]], title: str | None = None) -> str:
    """A markdown table of metric dicts, one row per model (what the CLI and the benchmarks print)."""
    head = ("| model | n | MAPE % | RMSE ms | max err ms | ±5% | ±10% | Kendall τ-b | Spearman ρ |\n"
            "|---|---|---|---|---|---|---|---|---|")
    lines = [f"{title}", ""] if title else []
    lines.append(head)
    for name, r in rows.items():
        lines.append(f"| {name} | {r['n']} | {_f(r['mape_pct'], '.2f')} | {_f(r['rmse_ms'], '.2f')} | "
                     f"{_f(r['max_abs_err_ms'], '.2f')} | {_f(r['within_5_pct'], '.1f')}% | "
                     f"{_f(r['within_10_pct'], '.1f')}% | {_f(r['kendall_tau_b'], '.3f')} | "
                     f"{_f(r['spearman_rho'], '.3f')} |")
    return "\n".join(lines)


def _f(v: float | None, fmt: str) -> str:
    return "–" if v is None or v != v else format(v, fmt)
