"""Seeded uniform sampling of valid architectures from the DARTS space."""

from __future__ import annotations

import random
from typing import Iterator

from ladarts.space.encoding import N_NODES
from ladarts.space.genotype import Genotype, Pair
from ladarts.space.primitives import PRIMITIVES

#: What an edge of a derived cell may be: every primitive but 'none'.
EDGE_CHOICES: tuple[str, ...] = tuple(p for p in PRIMITIVES if p != "none")
_CONCAT = tuple(range(2, 2 + N_NODES))


def _sample_cell(rng: random.Random) -> tuple[Pair, ...]:
    pairs: list[Pair] = []
    for node in range(2, 2 + N_NODES):
        for inp in sorted(rng.sample(range(node), 2)):  # two distinct inputs, uniform over the C(node, 2) pairs
            pairs.append((rng.choice(EDGE_CHOICES), inp))
    return tuple(pairs)


def sample_genotype(rng: random.Random) -> Genotype:
    """One architecture: each node reads 2 distinct earlier nodes, each edge a uniform non-'none' primitive."""
    normal = _sample_cell(rng)
    reduce = _sample_cell(rng)
    return Genotype(normal, _CONCAT, reduce, _CONCAT)


def iter_genotypes(seed: int) -> Iterator[Genotype]:
    """The endless, reproducible stream of architectures for ``seed`` (the i-th item never changes)."""
    rng = random.Random(seed)
    while True:
        yield sample_genotype(rng)


def sample_genotypes(n: int, seed: int) -> list[Genotype]:
    stream = iter_genotypes(seed)
    return [next(stream) for _ in range(n)]
