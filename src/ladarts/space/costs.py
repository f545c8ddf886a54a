"""Per-edge cost tables of a network: what each primitive adds on each edge, as (2, 14, 8) tables.

MACs and parameters are additive over the edges (both count only the ops' own layers), so a network's total is
``fixed + <table, encoding>``. The tables are built from the op positions of :mod:`ladarts.space.geometry`, the
MACs counted by ``torch.utils.flop_counter`` as :func:`~ladarts.space.networks.count_macs` counts them (so pools
and identities cost 0 MACs, as in the published figures), and checked against a whole-network count.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache
from typing import Any, Iterator

import numpy as np
import torch

from ladarts.errors import UserInputError
from ladarts.space.encoding import EDGES, ENCODING_SHAPE, encode
from ladarts.space.geometry import CELL_KINDS, cell_input_shapes, edge_stride, op_positions
from ladarts.space.networks import NetworkConfig, build_network, count_macs, count_params
from ladarts.space.primitives import PRIMITIVES, build_op
from ladarts.space.zoo import ZOO


def table_from_positions(values: dict[tuple[int, int, str], float], network: NetworkConfig) -> np.ndarray:
    """(2, 14, 8) table: for each cell type, edge and primitive, the sum over the network's cells of that type of
    ``values[(cell_index, stride, op)]``. <table, one-hot encoding> is the network total."""
    kinds = [k for k, _ in cell_input_shapes(network)]
    table = np.zeros(ENCODING_SHAPE)
    for c, kind in enumerate(CELL_KINDS):
        cells = [i for i, k in enumerate(kinds) if k == kind]
        for e, (_, inp) in enumerate(EDGES):
            s = edge_stride(kind == "reduce", inp)
            for p, op in enumerate(PRIMITIVES):
                if op == "none":
                    continue
                missing = [i for i in cells if (i, s, op) not in values]
                if missing:
                    raise UserInputError(f"no value for {op} at stride {s} in cell {missing[0]}; "
                                         f"time the ops first (ladarts.hardware.optimings.time_op_table)")
                table[c, e, p] = sum(values[(i, s, op)] for i in cells)
    return table


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread for the block (small work on a shared machine), then restore."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _count_ops(network: NetworkConfig) -> tuple[dict, dict]:
    from torch.utils.flop_counter import FlopCounterMode

    macs: dict = {}
    params: dict = {}
    for pos in op_positions(network):
        op = build_op(pos.op, pos.shape[0], pos.stride).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            op(torch.zeros(1, *pos.shape))
        macs[(pos.cell_index, pos.stride, pos.op)] = counter.get_total_flops() // 2
        params[(pos.cell_index, pos.stride, pos.op)] = sum(p.numel() for p in op.parameters())
    return macs, params


@lru_cache(maxsize=8)
def cost_tables(network: NetworkConfig) -> dict[str, Any]:
    """Per-edge MACs and parameters of each primitive, and the network's fixed part (stem, preprocessing,
    classifier), as (2, 14, 8) tables: ``{"macs", "params", "macs_fixed", "params_fixed"}``."""
    ref = ZOO["DARTS_V2"]
    with one_thread():  # hundreds of tiny forwards: extra threads only contend
        macs, params = _count_ops(network)
        net = build_network(ref, network)
        total_macs, total_params = count_macs(net), count_params(net)
    t_macs, t_params = table_from_positions(macs, network), table_from_positions(params, network)
    enc = encode(ref).double().numpy()
    return {"macs": t_macs, "params": t_params, "macs_fixed": float(total_macs - (t_macs * enc).sum()),
            "params_fixed": float(total_params - (t_params * enc).sum())}


def macs_params(encodings: np.ndarray, network: NetworkConfig) -> tuple[np.ndarray, np.ndarray]:
    """MACs (batch 1) and parameter count of each encoded architecture on ``network``."""
    t = cost_tables(network)
    e = np.asarray(encodings, dtype=float).reshape(len(encodings), -1)
    return e @ t["macs"].ravel() + t["macs_fixed"], e @ t["params"].ravel() + t["params_fixed"]
