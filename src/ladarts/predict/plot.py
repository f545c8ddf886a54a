"""Predicted-vs-measured scatter (through :mod:`ladarts.plotting`: headless, atomic)."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np


def scatter_png(path: str | os.PathLike, measured: Sequence[float], predicted: dict[str, Sequence[float]],
                title: str) -> None:
    """One panel: each model's predictions against the measurement, with y = x and a ±10% band. Atomic write."""
    from ladarts.plotting import figure, save_png

    m = np.asarray(measured, dtype=float)
    fig, ax = figure(figsize=(5.5, 5.0), dpi=110)
    lo, hi = float(m.min()) * 0.9, float(m.max()) * 1.1
    for name, p in predicted.items():
        ax.scatter(m, np.asarray(p, dtype=float), s=9, alpha=0.6, label=name)
        lo, hi = min(lo, float(np.min(p)) * 0.95), max(hi, float(np.max(p)) * 1.05)
    xs = np.array([lo, hi])
    ax.plot(xs, xs, "k-", lw=1, label="y = x")
    ax.fill_between(xs, 0.9 * xs, 1.1 * xs, color="grey", alpha=0.15, label="±10%")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    save_png(fig, path)
