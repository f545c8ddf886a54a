"""Seeded sampling of valid architectures from the DARTS space.

Two samplers, each an endless reproducible stream per seed (the i-th item of a seed never changes):

* ``uniform``: each node reads 2 distinct earlier nodes, each edge a uniform non-'none' primitive (the paper's
  random architectures). Three of the seven primitives are parameter-free, so a cell almost never has more than
  5 of its 8 edges parameter-free: P(≥ 7 of 8) ≈ 1.3%.
* ``stratified``: the number of parameter-free edges of each cell (pools and skips) is drawn uniformly from 0..8,
  then which edges and which ops. A latency-aware search drives α towards exactly the cells uniform sampling
  misses (a λ=1 normal cell is often all parameter-free), so an LPM fitted on stratified samples does not have to
  extrapolate where the search goes. The default for measurement campaigns.
"""

from __future__ import annotations

import random
from typing import Callable, Iterator

from ladarts.errors import UserInputError
from ladarts.space.encoding import N_NODES
from ladarts.space.genotype import Genotype, Pair
from ladarts.space.primitives import PRIMITIVES

#: What an edge of a derived cell may be: every primitive but 'none'.
EDGE_CHOICES: tuple[str, ...] = tuple(p for p in PRIMITIVES if p != "none")
PARAMETER_FREE: tuple[str, ...] = ("max_pool_3x3", "avg_pool_3x3", "skip_connect")
WITH_PARAMETERS: tuple[str, ...] = tuple(p for p in EDGE_CHOICES if p not in PARAMETER_FREE)
_CONCAT = tuple(range(2, 2 + N_NODES))
_EDGES_PER_CELL = 2 * N_NODES


def _inputs(rng: random.Random) -> list[int]:
    """Two distinct inputs per node, uniform over the C(node, 2) pairs, in ascending order."""
    out: list[int] = []
    for node in range(2, 2 + N_NODES):
        out += sorted(rng.sample(range(node), 2))
    return out


def _uniform_cell(rng: random.Random) -> tuple[Pair, ...]:
    pairs: list[Pair] = []
    for node in range(2, 2 + N_NODES):
        for inp in sorted(rng.sample(range(node), 2)):
            pairs.append((rng.choice(EDGE_CHOICES), inp))
    return tuple(pairs)


def _stratified_cell(rng: random.Random) -> tuple[Pair, ...]:
    inputs = _inputs(rng)
    free = set(rng.sample(range(_EDGES_PER_CELL), rng.randint(0, _EDGES_PER_CELL)))
    return tuple((rng.choice(PARAMETER_FREE if e in free else WITH_PARAMETERS), inp) for e, inp in enumerate(inputs))


SAMPLERS: dict[str, Callable[[random.Random], tuple[Pair, ...]]] = {
    "uniform": _uniform_cell,
    "stratified": _stratified_cell,
}


def _cell_sampler(sampler: str) -> Callable[[random.Random], tuple[Pair, ...]]:
    if sampler not in SAMPLERS:
        raise UserInputError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[sampler]


def sample_genotype(rng: random.Random, sampler: str = "uniform") -> Genotype:
    """One architecture: a normal and a reduction cell drawn by ``sampler``."""
    cell = _cell_sampler(sampler)
    normal = cell(rng)
    reduce = cell(rng)
    return Genotype(normal, _CONCAT, reduce, _CONCAT)


def iter_genotypes(seed: int, sampler: str = "uniform") -> Iterator[Genotype]:
    """The endless, reproducible stream of architectures for ``seed`` (the i-th item never changes)."""
    _cell_sampler(sampler)
    rng = random.Random(seed)
    while True:
        yield sample_genotype(rng, sampler)


def sample_genotypes(n: int, seed: int, sampler: str = "uniform") -> list[Genotype]:
    stream = iter_genotypes(seed, sampler)
    return [next(stream) for _ in range(n)]


def parameter_free_count(pairs: tuple[Pair, ...]) -> int:
    """How many edges of a cell are parameter-free (pools and skips)."""
    return sum(op in PARAMETER_FREE for op, _ in pairs)


def neighbours(genotype: Genotype, n: int, seed: int) -> list[Genotype]:
    """Up to ``n`` distinct architectures one edge away from ``genotype``: one edge of the normal or the reduction
    cell takes another primitive (its input stays). Where a search stands, these are what an LPM must rank."""
    rng = random.Random(seed)
    cells = {"normal": list(genotype.normal), "reduce": list(genotype.reduce)}
    moves = [(kind, e, op) for kind, pairs in cells.items() for e, (old, _) in enumerate(pairs)
             for op in EDGE_CHOICES if op != old]
    out = []
    for kind, e, op in rng.sample(moves, min(n, len(moves))):
        pairs = list(cells[kind])
        pairs[e] = (op, pairs[e][1])
        changed = {**cells, kind: pairs}
        out.append(Genotype(tuple(changed["normal"]), genotype.normal_concat, tuple(changed["reduce"]),
                            genotype.reduce_concat))
    return out
