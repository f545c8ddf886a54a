"""Two networks timed against each other: a latency reduction with a confidence interval that a rerun respects.

Timing each network against the platform's reference gives two latencies whose ratio carries the noise of both
timings and of two calibrations. Timing the two networks interleaved, pair by pair (order alternating), makes each
pair's ratio see one machine state, so fast drift cancels in it. Slow drift does not: measured on a shared 2-core
machine, the ratio of two networks moves by about ±0.4 points from one 15-second stretch to the next, and jumps
by 15 points for seconds at a time while a neighbour's process competes for the core's arithmetic units (the
conv-heavy network slows, the parameter-free one hardly). Pairs taken within seconds are correlated, so an
interval over them (or over blocks of them) is too narrow: such intervals missed a rerun's estimate in 3 of 3 demo
seeds. So the pairs are taken in ``sittings`` spread over time (``gap_s`` apart, both networks built afresh in
each), every sitting gives one median ratio, the estimate is the median over sittings, and the interval is the
distribution-free interval of that median (order statistics, ``scipy.stats.quantile_test``): it needs no normal
model, and a minority of sittings hit by a neighbour moves neither.

No interval over one sitting's span can hold a neighbour that competes for the whole span: measured here, a busy
process on the other core moved the demo's reduction from 69% to 81% for minutes. So each sitting also counts the
other runnable tasks on the machine (``/proc/loadavg``) before and after it; the estimate uses only the sittings that
had none (when at least :data:`MIN_SITTINGS` did), and :func:`busy_warning` warns when too few did.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

import numpy as np

from ladarts.errors import UserInputError
from ladarts.hardware.platform import Platform
from ladarts.hardware.runtimes import configure_threads, load
from ladarts.hardware.timer import time_interleaved
from ladarts.space.genotype import Genotype

#: Fewer sittings cannot give a 95% distribution-free interval of a median (0.5**5 * 2 > 0.05).
MIN_SITTINGS = 6


def paired_reduction(baseline: Genotype, candidate: Genotype, platform: Platform, sittings: int = 15,
                     pairs: int = 20, gap_s: float = 2.0, warmup: int = 3, confidence: float = 0.95,
                     sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """How much faster ``candidate`` runs than ``baseline`` on ``platform``: ``reduction_pct`` = 100·(1 − the
    median over ``sittings`` of each sitting's median per-pair ratio candidate/baseline), with its ``confidence``
    interval (``ci_pct``: low, high). Each sitting times ``pairs`` interleaved pairs; sittings are ``gap_s`` apart."""
    from scipy import stats

    if not MIN_SITTINGS <= sittings <= 1000 or not 1 <= pairs <= 100_000 or not 0 <= gap_s <= 3600:
        raise UserInputError(f"need {MIN_SITTINGS}..1000 sittings of 1..100000 pairs, 0..3600 s apart; got "
                             f"{sittings} sittings of {pairs} pairs, {gap_s} s apart")
    if not 0.5 <= confidence < 1 - 2 * 0.5 ** sittings:
        raise UserInputError(f"a {confidence:.0%} interval needs more than {sittings} sittings")
    configure_threads(platform)
    load_start, t0 = os.getloadavg()[0], time.monotonic()
    ratios, neighbours, base_ms, cand_ms = [], [], [], []
    for s in range(sittings):
        if s:
            sleep(gap_s)
        base, cand = load(baseline, platform, seed=s), load(candidate, platform, seed=s)
        before = other_runnable()
        timing = time_interleaved(cand.forward, base.forward, cand.sync, pairs, warmup, ref_ms=1.0)
        neighbours.append(max(before, other_runnable()))
        c, r = np.asarray(timing.samples["arch"]), np.asarray(timing.samples["ref"])
        ratios.append(float(np.median(c / r)))
        base_ms += r.tolist()
        cand_ms += c.tolist()
    idle = [r for r, n in zip(ratios, neighbours) if n == 0]
    used = idle if len(idle) >= MIN_SITTINGS and len(idle) < len(ratios) else ratios
    median = float(np.median(used))
    ci = stats.quantile_test(used, p=0.5).confidence_interval(confidence_level=confidence)
    return {
        "pairs": pairs * sittings, "sittings": sittings, "pairs_per_sitting": pairs, "gap_s": gap_s,
        "span_s": round(time.monotonic() - t0, 1), "confidence": confidence, "ratio": median,
        "sitting_ratios": ratios, "sitting_neighbours": neighbours, "sittings_used": len(used),
        "busy_sittings": sum(n > 0 for n in neighbours), "reduction_pct": 100 * (1 - median),
        "ci_pct": [100 * (1 - float(ci.high)), 100 * (1 - float(ci.low))],
        "baseline_raw_median_ms": float(np.median(base_ms)), "candidate_raw_median_ms": float(np.median(cand_ms)),
        "load": [round(load_start, 2), round(os.getloadavg()[0], 2)], "cpus": os.cpu_count(),
        "platform": platform.key,
    }


def other_runnable() -> int:
    """Runnable tasks on this machine besides the caller, now (Linux's ``/proc/loadavg``; 0 where it is absent)."""
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            running = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 0
    return max(0, running - 1)


def busy_warning(result: dict[str, Any]) -> str | None:
    """One line when sittings beside busy processes had to stay in the estimate (too few were idle)."""
    busy, n = result["busy_sittings"], result["sittings"]
    if not busy or result["sittings_used"] < n:
        return None
    return (f"{busy} of {n} sittings ran beside other busy processes, too few idle ones to leave them out (a busy "
            f"neighbour slows conv-heavy networks more than parameter-free ones): the figure may be off by more "
            f"than its interval; rerun on an idle machine")


def format_reduction(result: dict[str, Any]) -> str:
    """``66.2% (95% CI 61.0–70.3%)``."""
    lo, hi = result["ci_pct"]
    return f"{result['reduction_pct']:.1f}% ({100 * result['confidence']:.0f}% CI {lo:.1f}–{hi:.1f}%)"


def describe_sittings(result: dict[str, Any]) -> str:
    """Where the figure came from, with the machine's load: ``15 sittings of 20 interleaved pairs over 38 s (load
    1.2–1.4 on 2 CPUs; 1 beside busy processes left out)``."""
    lo, hi = sorted(result["load"])
    left_out = result["sittings"] - result["sittings_used"]
    return (f"{result['sittings']} sittings of {result['pairs_per_sitting']} interleaved pairs over "
            f"{result['span_s']:.0f} s (load {lo:.1f}–{hi:.1f} on {result['cpus']} CPUs"
            + (f"; {left_out} beside busy processes left out)" if left_out else ")"))
