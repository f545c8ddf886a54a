"""Two networks timed against each other: a latency reduction with its confidence interval.

Timing each network against the platform's reference gives two latencies whose ratio carries the noise of both
timings and of two calibrations. Timing the two networks interleaved, pair by pair (order alternating), makes each
pair's ratio see one machine state, so drift cancels in it. What pairs in one sitting cannot see is how much the
ratio moves from one sitting to the next (the networks' memory placement, the machine's state): measured here, the
per-pair spread gave intervals of about ±0.5 points that a rerun missed by 1 point. So the pairs are taken in
``blocks``, each with both networks built and warmed afresh, and the interval is a t-interval over the blocks'
median ratios: it holds the between-sitting variation a rerun sees.
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
                     warmup: int = 3, confidence: float = 0.95, blocks: int = 6) -> dict[str, Any]:
    """How much faster ``candidate`` runs than ``baseline`` on ``platform``: ``reduction_pct`` = 100·(1 − the mean
    over ``blocks`` of each block's median per-pair ratio candidate/baseline), with its ``confidence`` interval
    (``ci_pct``: low, high)."""
    from scipy import stats

    if not 2 <= blocks <= 100 or not 5 * blocks <= pairs <= 100_000:
        raise UserInputError(f"need 2..100 blocks of at least 5 pairs (at most 100000 pairs), got {pairs} pairs in "
                             f"{blocks} blocks")
    configure_threads(platform)
    block_ratios, base_ms, cand_ms = [], [], []
    for b in range(blocks):
        base, cand = load(baseline, platform, seed=b), load(candidate, platform, seed=b)
        timing = time_interleaved(cand.forward, base.forward, cand.sync, pairs // blocks, warmup, ref_ms=1.0)
        c, r = np.asarray(timing.samples["arch"]), np.asarray(timing.samples["ref"])
        block_ratios.append(float(np.median(c / r)))
        base_ms += r.tolist()
        cand_ms += c.tolist()
    ratios = np.asarray(block_ratios)
    mean = float(ratios.mean())
    half = float(stats.t.ppf(0.5 + confidence / 2, blocks - 1) * ratios.std(ddof=1) / np.sqrt(blocks))
    return {
        "pairs": pairs // blocks * blocks, "blocks": blocks, "confidence": confidence, "ratio": mean,
        "block_ratios": block_ratios, "reduction_pct": 100 * (1 - mean),
        "ci_pct": [100 * (1 - mean - half), 100 * (1 - mean + half)],
        "baseline_raw_median_ms": float(np.median(base_ms)), "candidate_raw_median_ms": float(np.median(cand_ms)),
        "platform": platform.key,
    }


def format_reduction(result: dict[str, Any]) -> str:
    """``66.2% (95% CI 61.0–70.3%)``."""
    lo, hi = result["ci_pct"]
    return f"{result['reduction_pct']:.1f}% ({100 * result['confidence']:.0f}% CI {lo:.1f}–{hi:.1f}%)"
