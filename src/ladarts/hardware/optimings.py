"""Per-op timings for lookup-table latency models (ProxylessNAS / FBNet style), measured in place.

Every primitive is timed at every cell position and edge stride of the deployed network, at the exact input
shape it sees there (channels and resolution after the cell's preprocessing; batch from the platform), on the
platform's runtime and thread settings, and stored in the latency database's ``op_timings`` table. Summing the
table over a genotype's edges gives the lookup-table estimate; what it cannot see (the stem, preprocessing,
the adds and concats, caches and the runtime's fusion across ops) is the point of comparing it with the LPM.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ladarts.hardware.platform import Platform
from ladarts.space.geometry import OpPosition, op_positions
from ladarts.space.primitives import build_op


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
