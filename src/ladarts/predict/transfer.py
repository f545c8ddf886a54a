"""Few-shot transfer of an LPM to a new platform (the paper's RQ3; HELP's few-shot setting).

An LPM fitted on platform A is adapted with K measurements from platform B in two steps:
1. recalibrate: a least-squares line from A's log-prediction to B's log-latency, its slope shrunk towards 1
   (with K = 10 a free slope overfits), folded into the LPM's output normalisation;
2. fine-tune every weight on the K records, pulled towards A's weights (L2-SP), with early stopping on a
   share of the K.
The reference is the same LPM recipe trained on the K records alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ladarts.errors import UserInputError
from ladarts.predict.fit import LatencyDataset, fit_dataset, seen_architectures, split_indices
from ladarts.io import json_safe
from ladarts.predict.lpm import LPM, LPMConfig
from ladarts.predict.metrics import regression_metrics


def recalibrate(lpm: LPM, data: LatencyDataset, shrink: float = 2.0) -> LPM:
    """A copy of ``lpm`` whose output (in its target space: log-ms or ms) is mapped by ``a·t(ŷ) + b`` fitted on
    ``data``; the slope is shrunk towards 1 in log space, towards the ratio of means in ms space."""
    with torch.no_grad():
        x = lpm.to_target(torch.from_numpy(lpm.predict_encodings(data.encodings))).numpy()
        y = lpm.to_target(torch.from_numpy(data.latency_ms)).numpy()
    a0 = 1.0 if lpm.config.output == "log" else float(np.mean(data.latency_ms) / np.mean(lpm.predict_encodings(data.encodings)))
    xm, ym = x.mean(), y.mean()
    sxx = float(((x - xm) ** 2).sum())
    sxy = float(((x - xm) * (y - ym)).sum())
    lam = shrink * sxx / max(len(x), 1)  # prior weight comparable to `shrink` extra points' spread
    a = (sxy + lam * a0) / (sxx + lam) if sxx + lam > 0 else a0
    a = float(np.clip(a, 0.02, 50.0))
    b = ym - a * xm
    out = LPM(lpm.config, dict(lpm.meta))
    out.load_state_dict(lpm.state_dict())
    with torch.no_grad():
        out.y_mean.copy_(a * lpm.y_mean + b)
        out.y_std.copy_(a * lpm.y_std)
    return out.eval()


PRIOR_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


def choose_prior(cal: LPM, data: LatencyDataset, grid: tuple[float, ...] = PRIOR_GRID, folds: int = 5,
                 seed: int = 0) -> tuple[float, dict[float, float]]:
    """Pick the strength of the pull towards the source's linear term by K-fold cross-validation on the K
    records (closed-form fits: free). Strong when the source's costs predict the target, weak when they do not."""
    from ladarts.predict.training import fit_linear_closed_form

    x = data.encodings.reshape(len(data), -1).float()
    y = torch.from_numpy(data.latency_ms)
    mu, sd = float(cal.y_mean), float(cal.y_std)
    z = ((cal.to_target(y.double()) - mu) / sd).float()
    r = (sd / y).float() if cal.config.output == "ms" else torch.full((len(y),), sd)
    order = np.random.default_rng(seed).permutation(len(data))
    parts = np.array_split(order, min(folds, len(data)))
    scores = {}
    for lam in grid:
        err = []
        for part in parts:
            tr = np.setdiff1d(order, part)
            m = LPM(cal.config)
            m.load_state_dict(cal.state_dict())
            fit_linear_closed_form(m, x[tr], z[tr], r[tr], ridge=lam, towards_current=True)
            with torch.no_grad():
                p = m(data.encodings[part]).double().numpy()
            err += list(np.abs((p - data.latency_ms[part]) / data.latency_ms[part]))
        scores[lam] = float(np.mean(err))
    return min(scores, key=scores.get), scores


def fine_tune(lpm: LPM, data: LatencyDataset, *, seed: int = 0, platform_row: dict[str, Any] | None = None,
              anchor_weight: float = 1e-3, prior_ridge: float | None = None,
              device: str = "cpu") -> tuple[LPM, dict[str, Any]]:
    """Adapt ``lpm`` (fitted on another platform) to ``data`` from the target platform.

    1. recalibrate the source's output to the target (:func:`recalibrate`);
    2. re-fit its linear term (the learned lookup table) in closed form on the K records, shrunk towards the
       source's weights rather than towards zero, with a strength picked by cross-validation on the K
       (:func:`choose_prior`): what K records pin down follows the target, the rest keeps the source's costs;
    3. fine-tune every weight with early stopping and an L2 pull (L2-SP) towards the result of step 2.
    When the platforms rank architectures alike this keeps the source's knowledge; when they do not (PyTorch
    eager vs ONNX Runtime here, see benchmarks/bench_transfer.py) it degrades towards a fit on the K alone.
    """
    if len(data) < 4:
        raise UserInputError(f"need at least 4 target-platform architectures to transfer, got {len(data)}")
    cal = recalibrate(lpm, data)
    cv = None
    if prior_ridge is None:
        prior_ridge, cv = choose_prior(cal, data, seed=seed)
    model, report = fit_dataset(data, seed=seed, platform_row=platform_row, init=cal, anchor_weight=anchor_weight,
                                device=device, staged=True, prior_ridge=prior_ridge)
    source = lpm.meta.get("platform") or {}
    model.meta["training"]["source_arch_hashes"] = sorted(seen_architectures(lpm))
    model.meta["transfer"] = {"source_platform": source.get("key"),
                              "source_training": {k: v for k, v in (lpm.meta.get("training") or {}).items()
                                                  if k not in ("arch_hashes", "source_arch_hashes")},
                              "k": len(data), "method": "recalibrate; linear term re-fitted with a prior at the "
                                                        "source; L2-SP fine-tune",
                              "anchor_weight": anchor_weight, "prior_ridge": prior_ridge,
                              "prior_cv": {str(k): v for k, v in (cv or {}).items()}}
    report["transfer"] = model.meta["transfer"]
    return model, report


def check_k(k: int, n: int) -> None:
    """K few-shot measurements out of ``n``: at least 4 to fit, at least 3 left to evaluate on."""
    if k < 4 or k >= n - 2:
        raise UserInputError(f"--k must be at least 4 and leave at least 3 of the {n} target architectures to "
                             f"evaluate on, got {k}")


def few_shot_split(target: LatencyDataset, k: int, *, seed: int = 0,
                   seen: set[str] | frozenset[str] = frozenset()) -> tuple[LatencyDataset, LatencyDataset]:
    """K seeded target records to adapt with, and the evaluation set: the other target architectures, less those
    in ``seen`` (the ones a source LPM was fitted on, on its own platform: on them a transfer looks better than
    it will on the architectures a search proposes)."""
    check_k(k, len(target))
    rest_idx, k_idx = split_indices(target.hashes, n_second=k, seed=seed)
    unseen = [i for i in rest_idx if target.hashes[i] not in seen]
    if len(unseen) < 3:
        raise UserInputError(f"only {len(unseen)} of the {len(rest_idx)} target architectures outside the K are "
                             f"unseen by the source LPM(s): nothing fair to evaluate the transfer on; measure "
                             f"architectures they were not fitted on")
    return target.subset(k_idx), target.subset(unseen)


def evaluation_architectures(target: LatencyDataset, k: int, *, seed: int = 0, fraction: float = 0.3) -> set[str]:
    """A seeded share (at least 3) of the target architectures outside the K of :func:`few_shot_split`, to keep out
    of the sources' training data: where platforms share architectures, as in a multi-platform dataset, scoring on
    ones the sources saw would flatter the prior."""
    if not 0 < fraction <= 1:
        raise UserInputError(f"--eval-fraction must be in (0, 1], got {fraction}")
    _, rest = few_shot_split(target, k, seed=seed)
    n = min(len(rest), max(3, round(fraction * len(rest))))
    _, idx = split_indices(rest.hashes, n_second=n, seed=seed)
    return {rest.hashes[i] for i in idx}


def transfer_experiment(lpm: LPM, target: LatencyDataset, k: int, *, seed: int = 0,
                        platform_row: dict[str, Any] | None = None, scratch_config: LPMConfig | None = None,
                        device: str = "cpu") -> dict[str, Any]:
    """K random target records adapt ``lpm``; the rest evaluate it beside the scratch model and the source as-is.

    Returns metrics per model ({source, recalibrated, finetuned, scratch}) on the target records not in the K and
    not seen by ``lpm`` (:func:`few_shot_split`), plus the fine-tuned LPM itself under ``"lpm"``."""
    shots, rest = few_shot_split(target, k, seed=seed, seen=seen_architectures(lpm))
    tuned, report = fine_tune(lpm, shots, seed=seed, platform_row=platform_row, device=device)
    scratch, _ = fit_dataset(shots, seed=seed, platform_row=platform_row,
                             config=scratch_config or LPMConfig(**{**lpm.config.to_dict(), "val_fraction": 0.2}),
                             device=device)
    y = rest.latency_ms
    rows = {
        "source_as_is": regression_metrics(lpm.predict_encodings(rest.encodings), y),
        "recalibrated": regression_metrics(recalibrate(lpm, shots).predict_encodings(rest.encodings), y),
        "finetuned": regression_metrics(tuned.predict_encodings(rest.encodings), y),
        "scratch": regression_metrics(scratch.predict_encodings(rest.encodings), y),
    }
    tuned.meta["metrics"]["transfer_heldout"] = json_safe(rows["finetuned"])
    return {"k": k, "seed": seed, "n_eval": len(rest), "n_excluded_seen": len(target) - k - len(rest),
            "source_platform": lpm.platform_key,
            "target_platform": target.platform, "metrics": json_safe(rows), "lpm": tuned,
            "fit_report": report}


__all__ = ["check_k", "choose_prior", "evaluation_architectures", "few_shot_split", "fine_tune", "recalibrate",
           "transfer_experiment"]
