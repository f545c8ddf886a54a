"""Baselines the LPM must beat, fitted on the same training split and scored with the same metrics.

* ``constant``: the mean training latency.
* ``lut_offset`` / ``lut_linear``: the per-primitive lookup table (ProxylessNAS, FBNet): each primitive's
  in-place timing at each cell position and stride (``hardware/optimings.py``, the DB's ``op_timings``) summed
  over the network. The raw sum misses everything outside the edges (stem, preprocessing, adds, concat, the
  classifier), so ``lut_offset`` adds one constant fitted on the training split, and ``lut_linear`` fits
  ``a·sum + b`` there. Rank metrics are those of the raw sum either way.
* ``macs_params_linear``: least squares on the network's MACs and parameter count.
* ``gbdt``: scikit-learn gradient-boosted trees on the flattened encoding (log latency).
* ``ridge_encoding``: a ridge regression on the encoding (log latency): a per-edge-primitive cost learned from
  the measurements instead of timed, i.e. a learned lookup table.

MACs and parameters are additive over the edges (both count only the ops' own layers), so they are computed
from per-position tables: ``fixed + <table, encoding>``, checked against ``count_macs``/``count_params``.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache
from typing import Any, Callable

import numpy as np
import torch

from ladarts.errors import UserInputError
from ladarts.space.encoding import EDGES, ENCODING_SHAPE, encode
from ladarts.space.networks import NetworkConfig, build_network, count_macs, count_params
from ladarts.space.primitives import PRIMITIVES
from ladarts.space.zoo import ZOO

Predictor = Callable[[np.ndarray], np.ndarray]  # (N, 2, 14, 8) encodings → (N,) ms


def edge_stride(cell: int, edge: int) -> int:
    """Stride of edge ``edge`` in cell type ``cell`` (0 normal, 1 reduce): 2 on a reduction cell's input edges."""
    return 2 if cell == 1 and EDGES[edge][1] < 2 else 1


def table_from_positions(values: dict[tuple[int, int, str], float], network: NetworkConfig) -> np.ndarray:
    """(2, 14, 8) table: for each cell type, edge and primitive, the sum over the network's cells of that type of
    ``values[(cell_index, stride, op)]``. <table, one-hot encoding> is the network total."""
    from ladarts.hardware.optimings import cell_input_shapes

    kinds = [k for k, _ in cell_input_shapes(network)]
    table = np.zeros(ENCODING_SHAPE)
    for c, kind in enumerate(("normal", "reduce")):
        cells = [i for i, k in enumerate(kinds) if k == kind]
        for e in range(len(EDGES)):
            s = edge_stride(c, e)
            for p, op in enumerate(PRIMITIVES):
                if op == "none":
                    continue
                missing = [i for i in cells if (i, s, op) not in values]
                if missing:
                    raise UserInputError(f"no op timing for {op} at stride {s} in cell {missing[0]}; "
                                         f"time the ops first (ladarts.hardware.optimings.time_op_table)")
                table[c, e, p] = sum(values[(i, s, op)] for i in cells)
    return table


@lru_cache(maxsize=8)
def cost_tables(network: NetworkConfig) -> dict[str, Any]:
    """Per-position MACs and parameters of each primitive, and the network's fixed part, as (2, 14, 8) tables."""
    macs: dict = {}
    params: dict = {}
    ref = ZOO["DARTS_V2"]
    with one_thread():  # hundreds of tiny forwards: extra threads only contend
        _count_ops(network, macs, params)
        total_macs, total_params = count_macs(build_network(ref, network)), count_params(build_network(ref, network))
    t_macs, t_params = table_from_positions(macs, network), table_from_positions(params, network)
    enc = encode(ref).double().numpy()
    return {"macs": t_macs, "params": t_params, "macs_fixed": float(total_macs - (t_macs * enc).sum()),
            "params_fixed": float(total_params - (t_params * enc).sum())}


@contextlib.contextmanager
def one_thread():
    """Run torch on one intra-op thread for the block (small work on a shared machine), then restore."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _count_ops(network: NetworkConfig, macs: dict, params: dict) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    from ladarts.hardware.optimings import op_positions
    from ladarts.space.primitives import build_op

    for pos in op_positions(network):
        op = build_op(pos.op, pos.shape[0], pos.stride).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            op(torch.zeros(1, *pos.shape))
        macs[(pos.cell_index, pos.stride, pos.op)] = counter.get_total_flops() // 2
        params[(pos.cell_index, pos.stride, pos.op)] = sum(p.numel() for p in op.parameters())


def macs_params(encodings: np.ndarray, network: NetworkConfig) -> tuple[np.ndarray, np.ndarray]:
    """MACs (batch 1) and parameter count of each encoded architecture on ``network``."""
    t = cost_tables(network)
    e = np.asarray(encodings, dtype=float).reshape(len(encodings), -1)
    return e @ t["macs"].ravel() + t["macs_fixed"], e @ t["params"].ravel() + t["params_fixed"]


def lut_table(op_timings: list[dict[str, Any]], network: NetworkConfig, field: str = "median_ms") -> np.ndarray:
    """(2, 14, 8) lookup table in ms from the DB's ``op_timings`` rows of one platform."""
    if not op_timings:
        raise UserInputError("no op timings stored for this platform; time the ops first")
    return table_from_positions({(r["cell_index"], r["edge_stride"], r["op"]): r[field] for r in op_timings}, network)


def _flat(enc: np.ndarray) -> np.ndarray:
    return np.asarray(enc, dtype=float).reshape(len(enc), -1)


def _threads(n: int | None):
    if n is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n)


def fit_baselines(x_train: np.ndarray, y_train: np.ndarray, network: NetworkConfig | None = None,
                  op_timings: list[dict[str, Any]] | None = None, seed: int = 0,
                  threads: int | None = None) -> dict[str, Predictor]:
    """Fit every baseline that the inputs allow: MACs/params need ``network``, the LUT needs ``op_timings``."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import Ridge

    x, y = _flat(x_train), np.asarray(y_train, dtype=float)
    out: dict[str, Predictor] = {}
    mean = float(y.mean())
    out["constant"] = lambda e: np.full(len(e), mean)
    if op_timings and network is not None:
        w = lut_table(op_timings, network).ravel()
        s = x @ w
        offset = float(np.mean(y - s))
        a, b = np.polyfit(s, y, 1)
        out["lut_offset"] = lambda e, w=w, o=offset: _flat(e) @ w + o
        out["lut_linear"] = lambda e, w=w, a=a, b=b: a * (_flat(e) @ w) + b
    if network is not None:
        m, p = macs_params(x_train, network)
        design = np.column_stack([m / 1e6, p / 1e6, np.ones_like(m)])
        coef = np.linalg.lstsq(design, y, rcond=None)[0]

        def flops_linear(e: np.ndarray, coef=coef) -> np.ndarray:
            mm, pp = macs_params(e, network)
            return np.column_stack([mm / 1e6, pp / 1e6, np.ones_like(mm)]) @ coef

        out["macs_params_linear"] = flops_linear
    logy = np.log(y)
    ridge = Ridge(alpha=1.0).fit(x, logy)
    out["ridge_encoding"] = lambda e, r=ridge: np.exp(r.predict(_flat(e)))
    with _threads(threads):
        gbdt = HistGradientBoostingRegressor(max_iter=2000, learning_rate=0.05, max_leaf_nodes=15,
                                             early_stopping=len(y) >= 50, validation_fraction=0.15,
                                             n_iter_no_change=50, random_state=seed).fit(x, logy)

    def gbdt_predict(e: np.ndarray, g=gbdt) -> np.ndarray:
        with _threads(threads):
            return np.exp(g.predict(_flat(e)))

    out["gbdt"] = gbdt_predict
    return out
