"""Two networks timed against each other: a latency reduction with its confidence interval.

Timing each network against the platform's reference gives two latencies whose ratio carries the noise of both
timings and of two calibrations. Timing the two networks interleaved, pair by pair (order alternating), makes each
pair's ratio see one machine state, so drift cancels in it; the spread of the per-pair ratios then gives the
confidence interval of the reduction directly (a percentile bootstrap of their median).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ladarts.errors import UserInputError
from ladarts.hardware.platform import Platform
from ladarts.hardware.runtimes import configure_threads, load
from ladarts.hardware.timer import time_interleaved
from ladarts.space.genotype import Genotype


def paired_reduction(baseline: Genotype, candidate: Genotype, platform: Platform, pairs: int = 300,
                     warmup: int = 3, confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """How much faster ``candidate`` runs than ``baseline`` on ``platform``: ``reduction_pct`` = 100·(1 − median
    per-pair ratio candidate/baseline), with its ``confidence`` interval (``ci_pct``: low, high)."""
    from scipy.stats import bootstrap

    if not 10 <= pairs <= 100_000:
        raise UserInputError(f"pairs must be in 10..100000, got {pairs}")
    configure_threads(platform)
    base, cand = load(baseline, platform), load(candidate, platform)
    timing = time_interleaved(cand.forward, base.forward, cand.sync, pairs, warmup, ref_ms=1.0)
    cand_ms, base_ms = np.asarray(timing.samples["arch"]), np.asarray(timing.samples["ref"])
    ratios = cand_ms / base_ms
    ci = bootstrap((ratios,), np.median, confidence_level=confidence, method="percentile", n_resamples=4000,
                   random_state=seed).confidence_interval
    median = float(np.median(ratios))
    return {
        "pairs": pairs, "confidence": confidence, "ratio_median": median,
        "reduction_pct": 100 * (1 - median),
        "ci_pct": [100 * (1 - float(ci.high)), 100 * (1 - float(ci.low))],
        "baseline_raw_median_ms": float(np.median(base_ms)), "candidate_raw_median_ms": float(np.median(cand_ms)),
        "platform": platform.key,
    }


def format_reduction(result: dict[str, Any]) -> str:
    """``66.2% (95% CI 61.0–70.3%)``."""
    lo, hi = result["ci_pct"]
    return f"{result['reduction_pct']:.1f}% ({100 * result['confidence']:.0f}% CI {lo:.1f}–{hi:.1f}%)"
