"""The fit experiment behind ``ladarts fit`` and benchmarks/bench_lpm.py: hold out a test split, fit the LPM,
score it beside the baselines and against independent re-runs (the noise floor), and write the LPM folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ladarts.errors import UserInputError
from ladarts.io import atomic_write_json, json_safe
from ladarts.predict.compare import compare_models, network_of
from ladarts.predict.fit import LatencyDataset, fit_dataset, split_indices
from ladarts.predict.lpm import LPM, LPMConfig


def holdout_split(data: LatencyDataset, test_fraction: float = 0.2, train_size: int | None = None,
                  seed: int = 0) -> tuple[LatencyDataset, LatencyDataset]:
    """(train, test) by architecture: ``test_fraction`` of ``data`` held out; ``train_size`` of the rest to train."""
    if not 0 < test_fraction < 1:
        raise UserInputError(f"--test-fraction must be in (0, 1), got {test_fraction}")
    if train_size is not None and train_size < 4:
        raise UserInputError(f"--train-size must be at least 4, got {train_size}")
    rest_idx, test_idx = split_indices(data.hashes, fraction=test_fraction, seed=seed)
    rest = data.subset(rest_idx)
    if train_size is not None:
        if train_size > len(rest):
            raise UserInputError(f"--train-size {train_size}: only {len(rest)} architectures are left for training "
                                 f"after holding out {len(test_idx)}")
        _, pick = split_indices(rest.hashes, n_second=train_size, seed=seed + 2)
        rest = rest.subset(pick)
    if len(rest) < 4 or len(test_idx) < 3:
        raise UserInputError(f"{len(data)} architectures: too few to fit and hold out a test split")
    return rest, data.subset(test_idx)


@dataclass
class FitExperiment:
    """An LPM fitted on ``train`` and what it scored: ``report`` (the fit) and ``comparison`` (test and re-runs)."""

    lpm: LPM
    train: LatencyDataset
    test: LatencyDataset
    report: dict[str, Any]
    comparison: dict[str, Any]


def fit_experiment(train: LatencyDataset, test: LatencyDataset, *, reruns: dict[str, LatencyDataset] | None = None,
                   platform_row: dict[str, Any] | None = None, op_timings: list[dict[str, Any]] | None = None,
                   config: LPMConfig | None = None, seed: int = 0, device: str = "cpu", progress: bool = False,
                   baselines: bool = True, threads: int | None = None) -> FitExperiment:
    """Fit on ``train``; score the LPM and the baselines on ``test`` and on each re-run of the test architectures."""
    lpm, report = fit_dataset(train, seed=seed, platform_row=platform_row, config=config, device=device,
                              progress=progress)
    cmp = compare_models(lpm, train, test, network=network_of(platform_row), op_timings=op_timings or None,
                         reruns=reruns, seed=seed, baselines=baselines, threads=threads)
    lpm.meta["metrics"]["test"] = cmp["test"]["lpm"]
    return FitExperiment(lpm, train, test, report, cmp)


def save_fit_experiment(exp: FitExperiment, out: str | Path, resolved: dict[str, Any], title: str) -> dict[str, Any]:
    """Write the LPM folder with its predicted-vs-measured plot, ``config.json`` (``resolved``) and
    ``fit_report.json``; returns the report."""
    from ladarts.predict.plot import scatter_png

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out}: exists and is not a folder")
    exp.lpm.meta["training"]["test_run"] = resolved.get("run")
    exp.lpm.save(out)
    scatter_png(out / "predicted_vs_measured.png", exp.test.latency_ms,
                {"LPM": exp.lpm.predict_encodings(exp.test.encodings)}, title)
    atomic_write_json(out / "config.json", {**resolved, "lpm_config": exp.lpm.config.to_dict()})
    result = json_safe({**{k: resolved.get(k) for k in ("platform", "run")}, "lpm": str(out), "fit": exp.report,
                        **exp.comparison,
                        "lut": "calibrated on the training split" if resolved.get("op_timings")
                        else "no op timings for this platform"})
    atomic_write_json(out / "fit_report.json", result)
    return result
