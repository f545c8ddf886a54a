"""Latency prediction: the LPM, its baselines, metrics, transfer to a new platform.

Python API (what the demo and the search use)::

    from ladarts.predict import LPM, fit_lpm, evaluate_lpm

    lpm, report = fit_lpm(records, seed=0, platform_row=store.platform_row(key))
    #   records: store.records(key, run=...) (one platform); platform_row: meta for the LPM (optional)
    #   report: n_train, n_val, epochs, fit_s, mean_latency_ms, metrics["validation"] (MAPE %, τ, ...)
    lpm.save("lpm/")                         # model.safetensors + meta.json
    lpm = LPM.load("lpm/")                   # optional: expect_platform=key, allow_platform_mismatch=False
    ms = lpm(encoding)                       # (2,14,8) → scalar ms; (B,2,14,8) → (B,); differentiable
    lpm.meta["mean_latency_ms"]              # the search divides its latency term by this
    evaluate_lpm(lpm, other_records)         # metrics on architectures it never saw (and how many it left out)

Lower level: :func:`fit_dataset`, :func:`dataset_from_records`, :func:`split_indices`, :class:`LPMConfig`,
:func:`fit_baselines`, :func:`regression_metrics`, :func:`fine_tune`, :func:`transfer_experiment`,
:func:`soft_behaviour`, :func:`synthetic_records`; the few-shot LPM for a new platform from the other
platforms' LPMs: :func:`fit_prior`, :func:`adapt_prior`, :func:`fewshot_experiment` (:mod:`ladarts.predict.fewshot`);
the fit experiment of ``ladarts fit`` is :mod:`ladarts.predict.experiment`.
"""

from ladarts.predict.baselines import fit_baselines, lut_table
from ladarts.predict.fewshot import PlatformPrior, adapt_prior, fewshot_experiment, fit_prior
from ladarts.predict.fit import (
    LatencyDataset,
    dataset_from_records,
    evaluate_lpm,
    fit_dataset,
    fit_lpm,
    split_indices,
)
from ladarts.predict.lpm import LPM, LPMConfig
from ladarts.predict.metrics import format_table, regression_metrics
from ladarts.predict.softcheck import mass_path, soft_behaviour
from ladarts.predict.synthetic import additive_table, synthetic_records
from ladarts.predict.transfer import fine_tune, recalibrate, transfer_experiment
from ladarts.space.costs import macs_params

__all__ = [
    "LPM", "LPMConfig", "LatencyDataset", "PlatformPrior", "adapt_prior", "additive_table", "dataset_from_records",
    "evaluate_lpm", "fewshot_experiment", "fine_tune", "fit_baselines", "fit_dataset", "fit_lpm", "fit_prior",
    "format_table", "lut_table", "macs_params", "mass_path", "recalibrate", "regression_metrics", "soft_behaviour",
    "split_indices", "synthetic_records", "transfer_experiment",
]
