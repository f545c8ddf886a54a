"""Synthetic latency records with a known answer: an additive per-edge cost plus multiplicative noise.

Used by the tests (the LPM must learn it to < 1% error) and by the scale benchmark (100K records), where
measuring is not the point. The costs are in the ballpark of the CIFAR network on this machine's CPU.
"""

from __future__ import annotations

import time

import numpy as np

from ladarts.hardware.records import Record
from ladarts.space.encoding import ENCODING_SHAPE, arch_hash, encode_many
from ladarts.space.primitives import PRIMITIVES
from ladarts.space.sampling import sample_genotypes

SYNTHETIC_PLATFORM = "synthetic-additive/cifar-c36-l20"
#: Rough per-edge cost (ms, summed over the cells of a type) per primitive: normal (18 cells), reduce (2 cells).
_BASE_COST = {"none": 0.0, "max_pool_3x3": 0.4, "avg_pool_3x3": 0.5, "skip_connect": 0.05, "sep_conv_3x3": 2.2,
              "sep_conv_5x5": 3.4, "dil_conv_3x3": 1.1, "dil_conv_5x5": 1.6}


def additive_table(seed: int = 0) -> np.ndarray:
    """(2, 14, 8) cost table in ms: a primitive's base cost, ×0.25 in the reduction cell, jittered per edge."""
    rng = np.random.default_rng(seed)
    base = np.array([_BASE_COST[p] for p in PRIMITIVES])
    table = np.stack([base, 0.25 * base])[:, None, :] * rng.uniform(0.8, 1.2, size=ENCODING_SHAPE)
    table[..., PRIMITIVES.index("skip_connect")] += np.array([0.0, 0.3])[:, None] * rng.uniform(0.8, 1.2, (2, 14))
    return table


def additive_latency(encodings: np.ndarray, table: np.ndarray, fixed_ms: float = 20.0) -> np.ndarray:
    e = np.asarray(encodings, dtype=float).reshape(len(encodings), -1)
    return fixed_ms + e @ table.ravel()


def synthetic_records(n: int, seed: int = 0, noise: float = 0.0, table_seed: int = 0, run: str = "synthetic",
                      platform: str = SYNTHETIC_PLATFORM, fixed_ms: float = 20.0) -> list[Record]:
    """``n`` sampled architectures (sample stream ``seed``) with latency = additive cost × (1 + noise·N(0,1))."""
    gens = sample_genotypes(n, seed)
    lat = additive_latency(encode_many(gens).numpy(), additive_table(table_seed), fixed_ms)
    rng = np.random.default_rng(seed + 7919)
    lat = lat * np.clip(1 + noise * rng.standard_normal(n), 0.5, 1.5)
    now = time.time()
    return [Record(arch_hash=arch_hash(g), genotype=g, platform=platform, metric="latency", run=run, seq=i,
                   latency_ms=float(y), ratio=None, median_ms=float(y), min_ms=float(y), iqr_ms=0.0,
                   mean_ms=float(y), ref_median_ms=None, repeats=1, created=now)
            for i, (g, y) in enumerate(zip(gens, lat))]
