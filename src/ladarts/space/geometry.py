"""Where each op of a network sits: cell kinds, edge strides, the shapes the edges see, the op positions.

One rule for all of ladarts: a reduction cell strides the edges that leave its two inputs (inputs 0 and 1) and
keeps stride 1 on the edges between its intermediate nodes, which already run at the halved resolution. The
discrete network, the supernet, the per-op timings, the cost tables and the LPM's pooling all ask this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ladarts.space.primitives import PRIMITIVES

#: Primitives a derived edge can be ('none' is never built in a discrete network).
EDGE_OPS: tuple[str, ...] = tuple(p for p in PRIMITIVES if p != "none")
CELL_KINDS = ("normal", "reduce")


def reduction_indices(cells: int) -> tuple[int, int]:
    """The reference places its two reduction cells at 1/3 and 2/3 of the depth."""
    return cells // 3, 2 * cells // 3


def edge_stride(reduction: bool, input_index: int) -> int:
    """Stride of an edge reading ``input_index`` in a normal (False) or reduction (True) cell."""
    return 2 if reduction and input_index < 2 else 1


def _halve(size: int) -> int:
    """A stride-2 op (3×3 pad 1 conv or pool, 1×1 conv) maps n px to ceil(n / 2)."""
    return (size + 1) // 2


def _network_fields(network) -> tuple[str, int, int, int]:
    return network.preset, network.channels, network.cells, network.input_size


@lru_cache(maxsize=32)
def _shapes(preset: str, channels: int, cells: int, input_size: int) -> tuple[tuple[str, tuple[int, int, int]], ...]:
    reductions = set(reduction_indices(cells))
    c = channels
    # the resolution of the cell's second input (s1), which every preprocessed cell input is brought to
    size = _halve(_halve(_halve(input_size))) if preset == "imagenet" else input_size
    out = []
    for i in range(cells):
        reduction = i in reductions
        if reduction:
            c *= 2
        out.append((CELL_KINDS[reduction], (c, size, size)))
        if reduction:
            size = _halve(size)
    return tuple(out)


def cell_input_shapes(network) -> tuple[tuple[str, tuple[int, int, int]], ...]:
    """Per cell of ``network`` (a NetworkConfig): its kind and the (C, H, W) its edges from the two cell inputs see,
    after preprocessing."""
    return _shapes(*_network_fields(network))


@dataclass(frozen=True)
class OpPosition:
    """One primitive at one place in the network: the cell, its kind, the edge stride and the input shape."""

    cell_index: int
    cell_kind: str  # normal | reduce
    stride: int
    op: str
    shape: tuple[int, int, int]  # (channels, height, width) of the op's input


def op_positions(network) -> list[OpPosition]:
    """Every (cell, stride, primitive) of the network: normal cells stride 1; reduction cells stride 2 on the
    edges from the cell inputs and stride 1 (at the halved resolution) on the edges between intermediate nodes."""
    out: list[OpPosition] = []
    for i, (kind, (c, h, w)) in enumerate(cell_input_shapes(network)):
        strides = [(1, (c, h, w))] if kind == "normal" else [(2, (c, h, w)), (1, (c, _halve(h), _halve(w)))]
        for stride, shape in strides:
            out += [OpPosition(i, kind, stride, op, shape) for op in EDGE_OPS]
    return out
