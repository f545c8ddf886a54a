"""The timer: warm-up, then forwards interleaved with a fixed reference architecture.

This machine's noise is slow drift, not jitter: a median over many repeats of one architecture still moves
with the machine's speed. Timing the reference forward-by-forward beside the architecture and keeping the
ratio cancels the drift (both see the same machine state). "The latency" stored and learned is

    latency_ms = median_i(t_arch_i / t_ref_i) × calibrated reference latency of the platform,

with the raw samples' median, min and IQR kept beside it. The choice is justified by the run-vs-run noise
floor measured in benchmarks/bench_measure.py and recorded in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np


def _timed(fn: Callable[[], object], sync: Callable[[], None]) -> float:
    """Seconds for one forward; on CUDA the queue is drained before and after, so the clock sees the kernels."""
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


@dataclass
class Timing:
    """Summary of one architecture's timing. All times in ms."""

    latency_ms: float  # drift-corrected: ratio × calibrated reference latency ("the latency")
    ratio: float  # median of per-pair t_arch / t_ref
    median_ms: float
    min_ms: float
    iqr_ms: float
    mean_ms: float
    ref_median_ms: float
    repeats: int
    warmup: int
    timed_s: float  # wall time spent inside timed forwards, the reference's included
    samples: dict[str, list[float]]  # raw per-forward ms of both, in pair order

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(arch_s: list[float], ref_s: list[float], ref_ms: float, warmup: int) -> Timing:
    a = np.asarray(arch_s) * 1e3
    r = np.asarray(ref_s) * 1e3
    ratio = float(np.median(a / r))
    q1, q3 = np.percentile(a, [25, 75])
    return Timing(
        latency_ms=ratio * ref_ms, ratio=ratio, median_ms=float(np.median(a)), min_ms=float(a.min()),
        iqr_ms=float(q3 - q1), mean_ms=float(a.mean()), ref_median_ms=float(np.median(r)), repeats=len(a),
        warmup=warmup, timed_s=float(sum(arch_s) + sum(ref_s)),
        samples={"arch": [round(v, 4) for v in a.tolist()], "ref": [round(v, 4) for v in r.tolist()]},
    )


def time_interleaved(
    forward: Callable[[], object],
    ref_forward: Callable[[], object],
    sync: Callable[[], None],
    pairs: int,
    warmup: int,
    ref_ms: float,
) -> Timing:
    """``warmup`` untimed forwards of each, then ``pairs`` × (reference, architecture), each timed alone."""
    for _ in range(warmup):
        forward()
        ref_forward()
    sync()
    arch_s, ref_s = [], []
    for i in range(pairs):
        # Alternate which goes first, so a slow trend within a pair biases neither side.
        if i % 2:
            arch_s.append(_timed(forward, sync))
            ref_s.append(_timed(ref_forward, sync))
        else:
            ref_s.append(_timed(ref_forward, sync))
            arch_s.append(_timed(forward, sync))
    return summarize(arch_s, ref_s, ref_ms, warmup)


def time_alone(forward: Callable[[], object], sync: Callable[[], None], repeats: int, warmup: int) -> list[float]:
    """Raw per-forward seconds, for calibrating the reference and recording its drift."""
    for _ in range(warmup):
        forward()
    sync()
    return [_timed(forward, sync) for _ in range(repeats)]


def stats_ms(samples_s: list[float]) -> dict[str, float]:
    a = sorted(s * 1e3 for s in samples_s)
    q = statistics.quantiles(a, n=4) if len(a) > 1 else [a[0], a[0], a[0]]
    return {"median_ms": statistics.median(a), "min_ms": a[0], "iqr_ms": q[2] - q[0], "n": len(a)}
