"""The fixed-length architecture encoding shared by the latency predictor and the search.

Shape (2, 14, 8): [normal, reduce] × 14 edges × 8 primitives, shaped like DARTS' α. Edges are ordered by node
(node 2: inputs 0,1; node 3: 0,1,2; node 4: 0..3; node 5: 0..4). Each edge row sums to 1; a discrete
architecture is one-hot per edge with 'none' on the edges its cell does not use.
"""

from __future__ import annotations

import hashlib

import torch

from ladarts.errors import UserInputError
from ladarts.space.genotype import Genotype, Pair
from ladarts.space.primitives import PRIMITIVES

ENCODING_VERSION = 1
N_NODES = 4
#: (node, input) for each of the 14 edges, in α order.
EDGES: tuple[tuple[int, int], ...] = tuple((n, i) for n in range(2, 2 + N_NODES) for i in range(n))
N_EDGES = len(EDGES)
EDGE_INDEX = {e: k for k, e in enumerate(EDGES)}
ENCODING_SHAPE = (2, N_EDGES, len(PRIMITIVES))
_PRIM_INDEX = {p: k for k, p in enumerate(PRIMITIVES)}
_FULL_CONCAT = tuple(range(2, 2 + N_NODES))


def check_encodable(genotype: Genotype) -> None:
    """Raise a clear error unless the genotype is a 4-node DARTS-space cell pair whose nodes read 2 distinct inputs."""
    for kind in ("normal", "reduce"):
        pairs, concat = genotype.cell(kind == "reduce")
        if len(pairs) != 2 * N_NODES:
            raise UserInputError(f"not encodable: {kind} cell has {len(pairs) // 2} nodes; the DARTS space has 4")
        if tuple(concat) != _FULL_CONCAT:
            raise UserInputError(f"not encodable: {kind}_concat is {list(concat)}; the DARTS space uses [2, 3, 4, 5]")
        for k in range(N_NODES):
            (op_a, in_a), (op_b, in_b) = pairs[2 * k], pairs[2 * k + 1]
            for op in (op_a, op_b):
                if op not in _PRIM_INDEX:
                    raise UserInputError(f"not encodable: {kind} cell uses {op!r}, outside the 8 DARTS primitives")
            if in_a == in_b:
                raise UserInputError(f"not encodable: {kind} node {k + 2} reads input {in_a} twice")


def is_encodable(genotype: Genotype) -> bool:
    try:
        check_encodable(genotype)
    except UserInputError:
        return False
    return True


def canonical(genotype: Genotype) -> Genotype:
    """The same architecture with each node's two inputs in ascending order (what decoding gives)."""
    check_encodable(genotype)

    def sort_cell(pairs: tuple[Pair, ...]) -> tuple[Pair, ...]:
        out: list[Pair] = []
        for k in range(N_NODES):
            out += sorted(pairs[2 * k : 2 * k + 2], key=lambda p: p[1])
        return tuple(out)

    return Genotype(sort_cell(genotype.normal), _FULL_CONCAT, sort_cell(genotype.reduce), _FULL_CONCAT)


def encode(genotype: Genotype) -> torch.Tensor:
    """One-hot (2, 14, 8) float32 encoding; 'none' on unused edges."""
    check_encodable(genotype)
    enc = torch.zeros(ENCODING_SHAPE)
    enc[:, :, _PRIM_INDEX["none"]] = 1.0
    for c, pairs in enumerate((genotype.normal, genotype.reduce)):
        for j, (op, inp) in enumerate(pairs):
            e = EDGE_INDEX[(2 + j // 2, inp)]
            enc[c, e].zero_()
            enc[c, e, _PRIM_INDEX[op]] = 1.0
    return enc


def encode_many(genotypes: list[Genotype]) -> torch.Tensor:
    return torch.stack([encode(g) for g in genotypes]) if genotypes else torch.zeros((0, *ENCODING_SHAPE))


def decode(encoding: torch.Tensor) -> Genotype:
    """Inverse of :func:`encode` for a one-hot encoding (argmax per edge; exactly two used edges per node)."""
    if tuple(encoding.shape) != ENCODING_SHAPE:
        raise UserInputError(f"encoding has shape {tuple(encoding.shape)}, expected {ENCODING_SHAPE}")
    choice = encoding.argmax(-1).tolist()
    cells = []
    for c, kind in enumerate(("normal", "reduce")):
        pairs: list[Pair] = []
        for node in range(2, 2 + N_NODES):
            used = [(PRIMITIVES[choice[c][EDGE_INDEX[(node, i)]]], i) for i in range(node)]
            used = [p for p in used if p[0] != "none"]
            if len(used) != 2:
                raise UserInputError(f"encoding: {kind} node {node} has {len(used)} used edges, expected 2")
            pairs += used
        cells.append(tuple(pairs))
    return Genotype(cells[0], _FULL_CONCAT, cells[1], _FULL_CONCAT)


def arch_hash(genotype: Genotype) -> str:
    """Stable identity of an encodable architecture: sha256 of its canonical JSON (order within a node ignored)."""
    return hashlib.sha256(canonical(genotype).to_json().encode()).hexdigest()[:16]
