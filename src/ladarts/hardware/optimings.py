"""Per-op timings for lookup-table latency models (ProxylessNAS / FBNet style), measured in place.

Every primitive is timed at every cell position and edge stride of the deployed network, at the exact input
shape it sees there (channels and resolution after the cell's preprocessing; batch from the platform), on the
platform's runtime and thread settings, and stored in the latency database's ``op_timings`` table. Summing the
table over a genotype's edges gives the lookup-table estimate; what it cannot see (the stem, preprocessing,
the adds and concats, caches and the runtime's fusion across ops) is the point of comparing it with the LPM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

import torch

from ladarts.hardware.platform import Platform
from ladarts.space.networks import NetworkConfig, build_network
from ladarts.space.primitives import PRIMITIVES, build_op
from ladarts.space.zoo import ZOO

#: Primitives a derived edge can be ('none' is never built in a discrete network).
TIMED_OPS: tuple[str, ...] = tuple(p for p in PRIMITIVES if p != "none")


@dataclass(frozen=True)
class OpPosition:
    """One primitive at one place in the network: the cell, its kind, the edge stride and the input shape."""

    cell_index: int
    cell_kind: str  # normal | reduce
    stride: int
    op: str
    shape: tuple[int, int, int]  # (channels, height, width) of the op's input


@lru_cache(maxsize=8)
def cell_input_shapes(network: NetworkConfig) -> tuple[tuple[str, tuple[int, int, int]], ...]:
    """Per cell: its kind and the (C, H, W) its edges from the two cell inputs see (after preprocessing)."""
    net = build_network(ZOO["DARTS_V2"], network).eval()
    shapes: list[tuple[str, tuple[int, int, int]]] = []
    hooks = [cell.preprocess1.register_forward_hook(
        lambda m, i, o, kind=("reduce" if cell.reduction else "normal"): shapes.append((kind, tuple(o.shape[1:]))))
        for cell in net.cells]
    with torch.no_grad():
        net(torch.zeros(1, network.in_channels, network.input_size, network.input_size))
    for h in hooks:
        h.remove()
    return tuple(shapes)


def op_positions(network: NetworkConfig) -> list[OpPosition]:
    """Every (cell, stride, primitive) of the network: normal cells stride 1; reduction cells stride 2 on the
    edges from the cell inputs and stride 1 (at the halved resolution) on the edges between intermediate nodes."""
    out: list[OpPosition] = []
    for i, (kind, (c, h, w)) in enumerate(cell_input_shapes(network)):
        strides = [(1, (c, h, w))] if kind == "normal" else [(2, (c, h, w)), (1, (c, math.ceil(h / 2),
                                                                                 math.ceil(w / 2)))]
        for stride, shape in strides:
            out += [OpPosition(i, kind, stride, op, shape) for op in TIMED_OPS]
    return out


def _op_forward(pos: OpPosition, platform: Platform, seed: int = 0) -> tuple[Callable[[], object], Callable[[], None]]:
    from ladarts.hardware.runtimes import prepare

    torch.manual_seed(seed)
    loaded = prepare(build_op(pos.op, pos.shape[0], pos.stride), torch.randn(platform.batch_size, *pos.shape),
                     platform)
    return loaded.forward, loaded.sync


def time_op_table(platform: Platform, store: Any | None = None, repeats: int = 50, warmup: int = 5,
                  progress: bool = False) -> list[dict[str, Any]]:
    """Time every op position of ``platform``'s network; store each in ``store`` (a LatencyStore) if given.

    Returns one dict per position with the median, min and IQR in ms. The platform is registered in the store.
    """
    from ladarts.hardware.runtimes import configure_threads
    from ladarts.hardware.timer import stats_ms, time_alone

    configure_threads(platform)
    if store is not None:
        store.register_platform(platform)
    positions = op_positions(platform.network)
    it = positions
    if progress:
        from tqdm import tqdm

        it = tqdm(positions, desc="time ops", unit="op")
    rows = []
    for pos in it:
        forward, sync = _op_forward(pos, platform)
        stats = stats_ms(time_alone(forward, sync, repeats, warmup))
        if store is not None:
            store.add_op_timing(platform.key, pos.cell_kind, pos.cell_index, pos.stride, pos.op, pos.shape, stats)
        rows.append({"cell_index": pos.cell_index, "cell_kind": pos.cell_kind, "edge_stride": pos.stride,
                     "op": pos.op, "channels": pos.shape[0], "height": pos.shape[1], "width": pos.shape[2], **stats})
    return rows
