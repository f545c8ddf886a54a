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
from ladarts.predict.fit import Dataset, fit_dataset, platform_meta, split_indices
from ladarts.predict.lpm import LPM, LPMConfig, json_safe
from ladarts.predict.metrics import regression_metrics


def recalibrate(lpm: LPM, data: Dataset, shrink: float = 2.0) -> LPM:
    """A copy of ``lpm`` whose log output is mapped by ``a·log ŷ + b`` fitted on ``data`` (slope ridge → 1)."""
    x = np.log(lpm.predict_encodings(data.encodings))
    y = np.log(data.latency_ms)
    xm, ym = x.mean(), y.mean()
    sxx = float(((x - xm) ** 2).sum())
    sxy = float(((x - xm) * (y - ym)).sum())
    lam = shrink * sxx / max(len(x), 1)  # prior weight comparable to `shrink` extra points' spread
    a = (sxy + lam) / (sxx + lam) if sxx + lam > 0 else 1.0
    a = float(np.clip(a, 0.05, 20.0))
    b = ym - a * xm
    out = LPM(lpm.config, dict(lpm.meta))
    out.load_state_dict(lpm.state_dict())
    with torch.no_grad():
        out.log_mean.copy_(a * lpm.log_mean + b)
        out.log_std.copy_(a * lpm.log_std)
    return out.eval()


def fine_tune(lpm: LPM, data: Dataset, *, seed: int = 0, platform_row: dict[str, Any] | None = None,
              anchor_weight: float = 1e-3, lr: float = 3e-4, max_epochs: int = 300,
              device: str = "cpu") -> tuple[LPM, dict[str, Any]]:
    """Recalibrate then fine-tune ``lpm`` (fitted on another platform) on ``data`` from the target platform."""
    if len(data) < 4:
        raise UserInputError(f"need at least 4 target-platform architectures to transfer, got {len(data)}")
    cal = recalibrate(lpm, data)
    model, report = fit_dataset(data, seed=seed, platform_row=platform_row, init=cal, anchor_weight=anchor_weight,
                                lr=lr, max_epochs=max_epochs, device=device)
    source = lpm.meta.get("platform") or {}
    model.meta["transfer"] = {"source_platform": source.get("key"),
                              "source_training": {k: v for k, v in (lpm.meta.get("training") or {}).items()
                                                  if k != "arch_hashes"},
                              "k": len(data), "method": "recalibrate + L2-SP fine-tune",
                              "anchor_weight": anchor_weight, "lr": lr}
    report["transfer"] = model.meta["transfer"]
    return model, report


def transfer_experiment(lpm: LPM, target: Dataset, k: int, *, seed: int = 0,
                        platform_row: dict[str, Any] | None = None, scratch_config: LPMConfig | None = None,
                        device: str = "cpu") -> dict[str, Any]:
    """K random target records adapt ``lpm``; the rest evaluate it beside the scratch model and the source as-is.

    Returns metrics per model ({source, recalibrated, finetuned, scratch}) on the target records not in the K,
    plus the fine-tuned LPM itself under ``"lpm"``."""
    if k < 4 or k >= len(target) - 2:
        raise UserInputError(f"--k must be at least 4 and leave at least 3 of the {len(target)} target "
                             f"architectures to evaluate on, got {k}")
    rest_idx, k_idx = split_indices(target.hashes, n_second=k, seed=seed)
    shots, rest = target.subset(k_idx), target.subset(rest_idx)
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
    return {"k": k, "seed": seed, "n_eval": len(rest), "source_platform": lpm.platform_key,
            "target_platform": target.platform, "metrics": json_safe(rows), "lpm": tuned,
            "fit_report": report}


__all__ = ["fine_tune", "recalibrate", "transfer_experiment", "platform_meta"]
