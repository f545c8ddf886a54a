"""The LPM beside the baselines on one held-out split, and against independent re-runs (the noise floor).

Shared by ``ladarts fit`` and benchmarks/bench_lpm.py so the table a user sees is the one the benchmark reports.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ladarts.errors import UserInputError
from ladarts.predict.baselines import fit_baselines
from ladarts.predict.fit import LatencyDataset
from ladarts.io import json_safe
from ladarts.predict.lpm import LPM
from ladarts.predict.metrics import regression_metrics
from ladarts.space.networks import NetworkConfig


def network_of(platform_row: dict[str, Any] | None) -> NetworkConfig | None:
    settings = (platform_row or {}).get("settings") or {}
    return NetworkConfig(**settings["network"]) if settings.get("network") else None


def noise_floor(test: LatencyDataset, rerun: LatencyDataset) -> dict[str, Any]:
    """The test run as a predictor of an independent re-run, on the architectures both hold: what no model of the
    test run can beat on the re-run."""
    pos = {h: i for i, h in enumerate(test.hashes)}
    common = [(pos[h], j) for j, h in enumerate(rerun.hashes) if h in pos]
    if len(common) < 3:
        raise UserInputError(f"only {len(common)} architectures in both runs; need at least 3")
    ti, ri = np.array([c[0] for c in common]), np.array([c[1] for c in common])
    return regression_metrics(test.latency_ms[ti], rerun.latency_ms[ri])


def compare_models(lpm: LPM, train: LatencyDataset, test: LatencyDataset, *, network: NetworkConfig | None = None,
                   op_timings: list[dict[str, Any]] | None = None, reruns: dict[str, LatencyDataset] | None = None,
                   seed: int = 0, baselines: bool = True, threads: int | None = None) -> dict[str, Any]:
    """Metrics of the LPM and every baseline on ``test`` (the run they were split from), and on each
    independent re-run in ``reruns`` over the test architectures it holds, beside that re-run's own error
    against the test run (the run-vs-run noise floor) and the LPM against the mean of both runs."""
    x_test = test.encodings.numpy()
    preds: dict[str, np.ndarray] = {"lpm": lpm.predict_encodings(test.encodings)}
    if baselines:
        for name, f in fit_baselines(train.encodings.numpy(), train.latency_ms, network=network,
                                     op_timings=op_timings, seed=seed, threads=threads).items():
            preds[name] = f(x_test)
    out: dict[str, Any] = {"n_train": len(train), "n_test": len(test),
                           "test": {name: regression_metrics(p, test.latency_ms) for name, p in preds.items()},
                           "reruns": {}}
    pos = {h: i for i, h in enumerate(test.hashes)}
    for run, data in (reruns or {}).items():
        common = [(pos[h], j) for j, h in enumerate(data.hashes) if h in pos]
        if len(common) < 3:
            continue
        ti, ri = np.array([c[0] for c in common]), np.array([c[1] for c in common])
        y_rerun, y_test = data.latency_ms[ri], test.latency_ms[ti]
        rows = {name: regression_metrics(p[ti], y_rerun) for name, p in preds.items()}
        rows["noise_floor (test run predicts re-run)"] = noise_floor(test, data)
        both = np.sqrt(y_rerun * y_test)
        out["reruns"][run] = {
            "n": len(common), "vs_rerun": rows,
            "lpm_vs_mean_of_runs": regression_metrics(preds["lpm"][ti], both),
            "lpm_vs_test_run_same_archs": regression_metrics(preds["lpm"][ti], y_test),
        }
    return json_safe(out)
