"""Fitting an LPM on latency records, splitting them reproducibly, and evaluating on records it never saw.

Records of the same architecture in several runs are averaged (geometric mean) before fitting, and splits are
made by architecture, so an architecture is never on both sides of a split.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ladarts import limits
from ladarts.errors import UserInputError
from ladarts.io import json_safe
from ladarts.limits import check_int
from ladarts.predict.lpm import LPM, LPMConfig
from ladarts.predict.training import train_lpm
from ladarts.predict.metrics import regression_metrics
from ladarts.space.encoding import ENCODING_VERSION, encode_many


@dataclass
class LatencyDataset:
    """One platform's latencies, one entry per architecture: hashes, genotypes, encodings, latency (ms)."""

    hashes: list[str]
    genotypes: list[Any]
    encodings: torch.Tensor  # (N, 2, 14, 8)
    latency_ms: np.ndarray
    platform: str | None
    runs: list[str]

    def __len__(self) -> int:
        return len(self.hashes)

    def subset(self, idx: Sequence[int] | np.ndarray) -> "LatencyDataset":
        idx = np.asarray(idx, dtype=int)
        return LatencyDataset([self.hashes[i] for i in idx], [self.genotypes[i] for i in idx], self.encodings[idx],
                       self.latency_ms[idx], self.platform, self.runs)

    def by_hash(self) -> dict[str, float]:
        return dict(zip(self.hashes, self.latency_ms.tolist()))


#: What a measured latency can be: from 0.1 µs (less is not a network forward) to a day (more is not a timing).
LATENCY_RANGE_MS = (1e-4, 8.64e7)


def _plausible(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and LATENCY_RANGE_MS[0] <= value <= LATENCY_RANGE_MS[1]


def dataset_from_records(records: Sequence[Any]) -> LatencyDataset:
    """Group records (``hardware.store.Record``) by architecture; several runs → their geometric mean latency."""
    if not records:
        raise UserInputError("no latency records to use")
    platforms = {r.platform for r in records}
    if len(platforms) > 1:
        raise UserInputError(f"records come from {len(platforms)} platforms; an LPM is fitted on one")
    groups: dict[str, list[float]] = {}
    genotypes: dict[str, Any] = {}
    runs: list[str] = []
    bad = [r for r in records if not _plausible(r.latency_ms)]
    if bad:
        shown = ", ".join(f"{r.arch_hash} (run {r.run!r}: {r.latency_ms!r:.12})" for r in bad[:3])
        raise UserInputError(f"{len(bad)} of {len(records)} records have impossible latencies (not a number, or "
                             f"outside {LATENCY_RANGE_MS[0]:g}..{LATENCY_RANGE_MS[1]:g} ms): {shown}"
                             f"{', ...' if len(bad) > 3 else ''}; re-measure or remove them")
    for r in records:
        groups.setdefault(r.arch_hash, []).append(float(r.latency_ms))
        genotypes.setdefault(r.arch_hash, r.genotype)
        if r.run not in runs:
            runs.append(r.run)
    hashes = list(groups)
    lat = np.array([float(np.exp(np.mean(np.log(groups[h])))) for h in hashes])
    gens = [genotypes[h] for h in hashes]
    return LatencyDataset(hashes, gens, encode_many(gens), lat, platforms.pop(), runs)


def split_indices(hashes: Sequence[str], fraction: float | None = None, n_second: int | None = None,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A reproducible split by architecture: ``n_second`` (or ``fraction`` of them) go to the second part.

    Depends only on the set of hashes and the seed, not on record order."""
    check_int("--seed", seed, limits.SEED)
    order = np.argsort(np.asarray(hashes))
    perm = order[np.random.default_rng(seed).permutation(len(hashes))]
    k = n_second if n_second is not None else int(round(len(hashes) * (fraction or 0.0)))
    k = max(0, min(len(hashes), k))
    return np.sort(perm[k:]), np.sort(perm[:k])


def platform_meta(platform_row: dict[str, Any] | None, key: str | None) -> dict[str, Any]:
    """The platform part of an LPM's meta: from ``LatencyStore.platform_row`` when available."""
    if platform_row is None:
        return {"key": key, "fingerprint": {}, "settings": None, "ref_name": None, "ref_ms": None}
    return {"key": platform_row["key"], "fingerprint": platform_row.get("fingerprint") or {},
            "settings": platform_row.get("settings"), "ref_name": platform_row.get("ref_name"),
            "ref_ms": platform_row.get("ref_ms")}


def fit_dataset(data: LatencyDataset, *, seed: int = 0, platform_row: dict[str, Any] | None = None,
                config: LPMConfig | None = None, device: str = "cpu", progress: bool = False,
                init: LPM | None = None, anchor_weight: float = 0.0, lr: float | None = None,
                max_epochs: int | None = None, renormalise: bool = False, staged: bool | None = None,
                prior_ridge: float | None = None) -> tuple[LPM, dict[str, Any]]:
    """Fit an LPM on a :class:`LatencyDataset` (see :func:`fit_lpm`). ``init``: start from this LPM's weights (and its
    normalisation, unless ``renormalise``) instead of a fresh one."""
    check_int("--seed", seed, limits.SEED)
    if len(data) < 4:
        raise UserInputError(f"need at least 4 architectures to fit an LPM, got {len(data)}")
    if platform_row is not None and data.platform is not None and platform_row["key"] != data.platform:
        raise UserInputError(f"platform_row is {platform_row['key']!r} but the records are {data.platform!r}")
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    if init is not None:
        model = LPM(init.config)
        model.load_state_dict(init.state_dict())
        config = init.config
    else:
        config = config or LPMConfig()
        model = LPM(config)
    tr, va = split_indices(data.hashes, fraction=config.val_fraction, seed=seed + 1)
    if len(va) == 0:
        tr, va = tr[1:], tr[:1]
    train, val = data.subset(tr), data.subset(va)
    res = train_lpm(model, train.encodings, torch.from_numpy(train.latency_ms), val.encodings,
                    torch.from_numpy(val.latency_ms), seed=seed, device=device, set_normalisation=init is None or renormalise,
                    anchor_weight=anchor_weight, lr=lr, max_epochs=max_epochs, progress=progress, staged=staged,
                    prior_ridge=prior_ridge)
    model.cpu()
    metrics = {"validation": regression_metrics(model.predict_encodings(val.encodings), val.latency_ms),
               "train": regression_metrics(model.predict_encodings(train.encodings), train.latency_ms)}
    training = {"runs": data.runs, "arch_hashes": data.hashes, "n_archs": len(data), "n_train": len(train),
                "n_val": len(val), "seed": seed, "epochs": res.epochs, "best_epoch": res.best_epoch,
                "steps": res.steps, "batch_size": res.batch_size, "fit_s": round(time.perf_counter() - t0, 3),
                "device": str(device), "finetuned_from": (init.meta.get("platform") or {}).get("key")
                if init is not None else None}
    pm = platform_meta(platform_row, data.platform)
    model.meta = json_safe({
        "platform": pm,
        "network": (pm.get("settings") or {}).get("network"),
        "encoding_version": ENCODING_VERSION,
        "target": "latency_ms: the store's drift-corrected latency, in ms",
        "mean_latency_ms": float(np.mean(data.latency_ms)),
        "support": fitted_support(data),
        "training": training,
        "metrics": metrics,
    })
    report = {k: v for k, v in training.items() if k != "arch_hashes"}
    report.update(platform=pm["key"], mean_latency_ms=float(np.mean(data.latency_ms)), metrics=metrics,
                  config=model.config.to_dict())
    return model, json_safe(report)


def fitted_support(data: LatencyDataset) -> dict[str, Any]:
    """What the LPM saw: the range of parameter-free edges per cell and of latencies. Outside it the LPM
    extrapolates (a latency-aware search goes there: see :mod:`ladarts.space.sampling`)."""
    from ladarts.space.sampling import parameter_free_count

    free = {kind: [parameter_free_count(getattr(g, kind)) for g in data.genotypes] for kind in ("normal", "reduce")}
    return {"parameter_free": {k: [min(v), max(v)] for k, v in free.items()},
            "latency_ms": [float(data.latency_ms.min()), float(data.latency_ms.max())]}


def fit_lpm(records: Sequence[Any], *, seed: int = 0, platform_row: dict[str, Any] | None = None,
            config: LPMConfig | None = None, device: str = "cpu", progress: bool = False) -> tuple[LPM, dict[str, Any]]:
    """Fit an LPM on latency records of one platform; returns ``(lpm, report)``.

    ``records``: ``hardware.store.Record`` objects (``store.records(platform, run=...)``), all of one platform;
    an architecture in several runs is averaged. A ``config.val_fraction`` share of the architectures is held
    out for early stopping. ``platform_row`` (``store.platform_row(key)``) puts the platform's settings and
    fingerprint into the LPM's meta. ``report``: n_train, n_val, epochs, fit_s, mean_latency_ms and
    ``metrics['validation']`` (MAPE, τ, ... on the early-stopping split; use :func:`evaluate` on held-out data
    for an unbiased figure).
    """
    return fit_dataset(dataset_from_records(records), seed=seed, platform_row=platform_row, config=config,
                       device=device, progress=progress)


def seen_architectures(lpm: LPM) -> set[str]:
    """Every architecture whose latency shaped ``lpm``: its own training set and, for a transferred or few-shot
    LPM, its sources' (measured on other platforms). Scoring on any of them flatters it: platforms share much of
    what makes one architecture slower than another."""
    training = lpm.meta.get("training") or {}
    return set(training.get("arch_hashes") or []) | set(training.get("source_arch_hashes") or [])


def evaluate_lpm(lpm: LPM, records: Sequence[Any], exclude_seen: bool = True) -> dict[str, Any]:
    """Metrics of ``lpm`` on ``records``, leaving out architectures it or its sources were fitted on (and saying
    how many). ``sources_unknown``: a transferred LPM saved before ladarts recorded its sources' architectures,
    so they could not be left out and the metrics may flatter it."""
    data = dataset_from_records(records)
    seen = seen_architectures(lpm) if exclude_seen else set()
    keep = [i for i, h in enumerate(data.hashes) if h not in seen]
    excluded = len(data) - len(keep)
    if not keep:
        raise UserInputError(f"all {len(data)} architectures were used to fit this LPM; nothing left to evaluate")
    sub = data.subset(keep)
    pred = lpm.predict_encodings(sub.encodings)
    training = lpm.meta.get("training") or {}
    sources_unknown = exclude_seen and "transfer" in lpm.meta and "source_arch_hashes" not in training
    return json_safe({"platform": data.platform, "runs": data.runs, "n_archs": len(data),
                      "n_excluded_seen": excluded, "sources_unknown": sources_unknown,
                      "metrics": regression_metrics(pred, sub.latency_ms)})
