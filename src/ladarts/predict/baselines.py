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

MACs and parameters come from the per-edge tables of :mod:`ladarts.space.costs`.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import numpy as np

from ladarts.errors import UserInputError
from ladarts.space.costs import macs_params, table_from_positions
from ladarts.space.networks import NetworkConfig

Predictor = Callable[[np.ndarray], np.ndarray]  # (N, 2, 14, 8) encodings → (N,) ms


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
