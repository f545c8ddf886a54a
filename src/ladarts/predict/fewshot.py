"""Few-shot LPM for a platform it has never seen: a prior learned on the other platforms, adapted with K measurements.

Method. One LPM per source platform; the new platform's latency is modelled as a mix of theirs plus a per-primitive
cost correction, ``t(ŷ) = b + Σ wᵢ·t(ŷᵢ(x)) + v·x`` (x the encoding; v a cost per primitive and cell group, refined
per edge) with t the identity (ms, where ops add up; the default) or log (where platforms differ by a factor),
fitted on the K target measurements by ridge regression on the relative error: the source weights w are pulled
towards an equal mix, the correction towards zero, the strengths chosen by exact leave-one-out over the K alone,
and by default ("auto") so is the head itself: sources + correction unless sources only or correction only is
clearly better (by more than one standard error). The fitted head is folded into one ordinary LPM (the source MLPs
side by side), so the result is differentiable, saved, loaded and searched with like any LPM.

Why this and not meta-learning: HELP conditions a meta-learned predictor on a hardware embedding (latencies of
reference architectures on the device); NASFLAT and MultiPredict pretrain one predictor on many devices with a
learned device embedding. Those embeddings are learned from dozens of devices; with 5–8 source platforms a learned
embedding or a MAML trunk has almost nothing to generalise from. Here the embedding is w, how much each source
platform explains the target (HELP's idea, with platforms rather than architectures as the reference set), and it
is fitted in closed form: few parameters for K = 10 (m weights, 24 per-primitive costs), strengths from the K, and
an unrelated source gets a weight near zero instead of distorting a shared trunk. The heads and spaces are compared
by a nested leave-one-platform-out evaluation in benchmarks/bench_fewshot.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ladarts.errors import UserInputError
from ladarts.io import json_safe
from ladarts.predict.fit import LatencyDataset, fit_dataset, fitted_support, platform_meta, seen_architectures
from ladarts.predict.lpm import LPM, N_FEATURES, LPMConfig, pooling_matrix
from ladarts.predict.metrics import regression_metrics
from ladarts.predict.transfer import check_k, few_shot_split
from ladarts.space.encoding import ENCODING_VERSION

#: A source platform needs this many architectures for its LPM to carry information worth mixing in.
MIN_SOURCE_ARCHS = 50
#: ``transfer`` mixes platforms by default from this many sources on; with fewer it fine-tunes ``--lpm`` if given.
MIN_SOURCES = 2
#: Heads: "sources" mixes the source platforms; "sources+ops" adds a per-primitive cost correction (per cell group,
#: refined per edge); "ops" is that correction alone (a ridge lookup table from the K: what the K say without the
#: prior). "auto" chooses between them by leave-one-out on the K (:func:`choose_head`).
VARIANTS = ("auto", "sources+ops", "sources", "ops")
DEFAULT_VARIANT = "auto"
#: The head "auto" keeps unless another is clearly better: its grid holds the sources alone (no correction), and its
#: weakest pull lets the sources' weights fall towards zero, close to the correction alone.
NESTED_VARIANT = "sources+ops"
#: The space the head mixes the sources in: log-latency (platforms differ by a factor) or ms (ops add up in ms).
SPACES = ("ms", "log")
DEFAULT_SPACE = "ms"
#: Ridge strengths per K-sample (×K in the penalty): ∞ holds the source weights at their mean / drops the correction.
GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, math.inf)
#: The per-edge refinement's strength as a multiple of the per-group costs' (a primitive costs about the same on
#: every edge of a group, so the refinement is shrunk harder; the LPM's own fit uses a large ratio too).
EDGE_GRID = (10.0, 100.0, math.inf)


@dataclass
class PlatformPrior:
    """The source platforms' LPMs (one architecture, one output space), in the order of ``keys``."""

    lpms: list[LPM]
    keys: list[str]
    n_archs: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.lpms:
            raise UserInputError("a multi-platform prior needs at least one source platform")
        c0 = self.lpms[0].config
        for lpm, key in zip(self.lpms, self.keys):
            c = lpm.config
            if (c.output, c.depth, c.activation, c.pooled, c.linear_on, c.linear_skip) != \
                    (c0.output, c0.depth, c0.activation, c0.pooled, c0.linear_on, c0.linear_skip):
                raise UserInputError(f"source LPM of {key} cannot join the prior: the sources must share the "
                                     "output space, depth, activation and the pooled linear term")

    @property
    def space(self) -> str:
        """Where the head mixes the sources: ``"log"`` (log-ms) or ``"ms"``, the sources' output space."""
        return self.lpms[0].config.output

    def features(self, encodings: torch.Tensor) -> np.ndarray:
        """(N, m) each source LPM's prediction for each architecture, in the prior's space (log-ms or ms)."""
        if not len(encodings):
            return np.zeros((0, len(self.lpms)))
        ms = np.stack([lpm.predict_encodings(encodings) for lpm in self.lpms], axis=1)
        return np.log(ms) if self.space == "log" else ms

    def seen(self) -> set[str]:
        """Every architecture a source LPM was fitted on (on its own platform)."""
        return set().union(*(seen_architectures(lpm) for lpm in self.lpms))

    def subset(self, keys: list[str]) -> "PlatformPrior":
        pos = [self.keys.index(k) for k in keys]
        return PlatformPrior([self.lpms[i] for i in pos], [self.keys[i] for i in pos],
                             [self.n_archs[i] for i in pos] if self.n_archs else [])


def source_config(config: LPMConfig | None = None, space: str = DEFAULT_SPACE) -> LPMConfig:
    """The LPM recipe of a source platform: ``config`` (default: the default LPM) with the prior's output space."""
    return LPMConfig(**{**(config or LPMConfig()).to_dict(), "output": space})


def fit_prior(sources: dict[str, LatencyDataset], *, seed: int = 0, rows: dict[str, dict[str, Any]] | None = None,
              config: LPMConfig | None = None, space: str = DEFAULT_SPACE, device: str = "cpu",
              progress: bool = False) -> PlatformPrior:
    """Fit one source LPM per platform in ``sources`` (platform key → its architectures)."""
    from ladarts.runs import progress_bar

    lpms = []
    bar = progress_bar(len(sources), "fit source LPMs", progress, unit="platform")
    for key, data in sources.items():
        lpm, _ = fit_dataset(data, seed=seed, platform_row=(rows or {}).get(key), config=source_config(config, space),
                             device=device)
        lpms.append(lpm)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return PlatformPrior(lpms, list(sources), [len(d) for d in sources.values()])


def edge_features(encodings: torch.Tensor) -> np.ndarray:
    """(N, 224) the flattened encodings: which primitive sits on which edge (what the per-op correction sees)."""
    return encodings.reshape(len(encodings), N_FEATURES).double().numpy()


@dataclass
class Head:
    """``t = bias + w·s + v·x`` in the prior's space t (log-ms or ms): s the sources' predictions there, x the
    flattened encoding (v: a per-primitive cost per cell group, refined per edge); chosen by leave-one-out."""

    variant: str
    space: str
    bias: float
    w: np.ndarray
    v: np.ndarray
    alpha: float  # pull of w towards the equal mix (∞: held there)
    beta: float  # shrinkage of the per-group primitive costs (∞: none)
    gamma: float  # shrinkage of their per-edge refinement, as a multiple of beta (∞: none)
    loo_error: float  # leave-one-out RMS relative error on the K (log-ratio in log space)
    loo: np.ndarray  # its K leave-one-out residuals (weighted as the fit): heads are compared sample by sample
    grid: dict[str, float]

    def predict(self, s: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Latency in ms from the sources' predictions ``s`` (prior's space) and :func:`edge_features` ``x``."""
        t = self.bias + s @ self.w + x @ self.v
        return np.exp(t) if self.space == "log" else t


def fit_head(s: np.ndarray, x: np.ndarray, y_ms: np.ndarray, variant: str = DEFAULT_VARIANT,
             space: str = DEFAULT_SPACE) -> Head:
    """Ridge fit of the head on K samples (latency ``y_ms``), its strengths chosen on a grid by exact leave-one-out.

    Three blocks of features, each with its own strength: the sources' predictions (pulled towards an equal mix),
    the count of each primitive per cell group (the LPM's pooled lookup table, shrunk towards zero) and the
    per-edge one-hots (refining that table edge by edge, shrunk harder); the intercept is free (a platform's
    overall speed is what K measurements pin down first). In ms space each sample weighs 1/y² (relative error, as
    the LPM's loss) and each source is scaled by its mean over the K, so one grid serves both spaces. The fit runs
    in the K×K dual, so a grid point costs one K×K solve whatever the number of features. ``"auto"``: the head of
    another variant only where it beats the nested one clearly (:func:`choose_head`; an unrelated set of sources then
    drops out entirely)."""
    if variant not in VARIANTS:
        raise UserInputError(f"unknown few-shot head {variant!r}; choose one of {', '.join(VARIANTS)}")
    if space not in SPACES:
        raise UserInputError(f"unknown few-shot space {space!r}; choose one of {', '.join(SPACES)}")
    if variant == "auto":
        heads = [fit_head(s, x, y_ms, v, space) for v in VARIANTS if v != "auto"]
        best = choose_head(heads)
        best.grid = {f"{h.variant}:{key}": val for h in heads for key, val in h.grid.items()}
        return best
    k, m = s.shape
    if space == "log":
        unit, col, t, root_w = 1.0, np.ones(m), np.log(y_ms), np.ones(k)
    else:  # t = y / ȳ ≈ bias + Σ w'ᵢ sᵢ/s̄ᵢ + ..., weighted by (ȳ/y)²: the residual is a relative error
        unit, col = float(np.mean(y_ms)), np.mean(s, axis=0)
        col = np.where(np.abs(col) > 0, col, 1.0)
        t, root_w = y_ms / unit, unit / y_ms
    sn = s / col
    pool = pooling_matrix().double().numpy()
    w0 = np.full(m, 1.0 / m) if variant != "ops" else np.zeros(m)
    # the intercept is projected out (weighted), so only the penalised blocks enter the K×K kernels
    u = root_w / np.linalg.norm(root_w)
    proj = np.eye(k) - np.outer(u, u)
    y = proj @ ((t - sn @ w0) * root_w)
    blocks = {"s": proj @ (sn * root_w[:, None]), "c": proj @ ((x @ pool) * root_w[:, None]),
              "e": proj @ (x * root_w[:, None])}
    gram = {name: z @ z.T for name, z in blocks.items()}
    alphas = GRID if variant != "ops" else (math.inf,)
    betas = GRID[:-1] if variant == "ops" else GRID if variant == "sources+ops" else (math.inf,)
    found: tuple[float, dict[str, float], np.ndarray] | None = None
    grid = {}
    for alpha in alphas:
        for beta in betas:
            for gamma in EDGE_GRID if beta < math.inf else (math.inf,):
                pens = {"s": alpha * k, "c": beta * k, "e": gamma * beta * k}
                g = sum(gram[n] / p for n, p in pens.items() if p < math.inf) + np.zeros((k, k))
                dual = np.linalg.solve(g + np.eye(k), np.column_stack([y, g]))  # (G+I)⁻¹ [y, G]
                fitted = g @ dual[:, 0]
                hat = np.diag(dual[:, 1:]) + u ** 2  # G(G+I)⁻¹ and the intercept's own leverage
                loo = (y - fitted) / np.clip(1.0 - hat, 1e-9, None)  # exact leave-one-out residuals
                err = float(np.sqrt(np.mean(loo ** 2)))
                grid[f"alpha={alpha:g},beta={beta:g},gamma={gamma:g}"] = err
                if found is None or err < found[0] - 1e-12:
                    found = (err, pens, dual[:, 0], loo)
    err, pens, a, loo = found
    theta = {n: (blocks[n].T @ a) / p if p < math.inf else np.zeros(blocks[n].shape[1]) for n, p in pens.items()}
    w = w0 + theta["s"]
    v = pool @ theta["c"] + theta["e"]
    resid = (t - sn @ w - x @ v) * root_w
    bias = float(root_w @ resid / (root_w @ root_w))
    alpha, beta = pens["s"] / k, pens["c"] / k
    gamma = pens["e"] / pens["c"] if pens["c"] < math.inf else math.inf
    return Head(variant, space, bias * unit, w / col * unit, v * unit, alpha, beta, gamma, err, loo, grid)


def choose_head(heads: list[Head]) -> Head:
    """The nested head (``sources+ops``) unless another beats it by more than one standard error: its mean squared
    leave-one-out residual lower than the nested head's by more than the standard error of their paired
    difference over the K (Breiman's one-SE rule, turned towards the nested form); of several such, the lowest.

    Why not simply the lowest error: each head's error is already the minimum over its own grid, so at small K the
    difference between heads is mostly selection noise, and the lowest one dropped every source on draws where the
    sources were worth keeping (inductor held out at K = 20, benchmarks/RESULTS.md); where the correction alone is
    right the nested head, which can weight the sources down, comes close to it."""
    nested = next((h for h in heads if h.variant == NESTED_VARIANT), None)
    if nested is None:
        return min(heads, key=lambda h: h.loo_error)
    clear = []
    for h in heads:
        d = h.loo ** 2 - nested.loo ** 2
        if h is not nested and len(d) > 1 and d.mean() + d.std(ddof=1) / math.sqrt(len(d)) < 0:
            clear.append(h)
    return min(clear, key=lambda h: h.loo_error) if clear else nested


def fold(prior: PlatformPrior, head: Head, y_mean: float, y_std: float) -> LPM:
    """One LPM computing exactly ``head`` on top of the sources: their MLPs side by side (the hidden layers
    block-diagonal), their linear terms and the per-op correction summed, in the prior's output space.
    ``y_mean``/``y_std``: its output normalisation (the K's, as a fit would set it)."""
    c0 = prior.lpms[0].config
    width = sum(lpm.config.width for lpm in prior.lpms) if c0.depth else c0.width
    out = LPM(LPMConfig(**{**c0.to_dict(), "width": width, "output": prior.space}))
    scale = [float(wi) * float(lpm.y_std) / y_std for wi, lpm in zip(head.w, prior.lpms)]
    with torch.no_grad():
        out.y_mean.fill_(y_mean)
        out.y_std.fill_(y_std)
        bias = head.bias + sum(float(wi) * float(lpm.y_mean) for wi, lpm in zip(head.w, prior.lpms)) - y_mean
        if out.linear is not None:
            weight = sum(k * lpm.linear.weight.double() for k, lpm in zip(scale, prior.lpms))
            if c0.pooled and c0.linear_on == "pooled" and np.any(head.v):
                raise UserInputError("the source LPMs' linear term sees pooled counts only; the per-op correction "
                                     "needs linear_on='all'")
            if np.any(head.v):  # onto the per-edge weights, whatever else the linear term sees
                weight[0, :N_FEATURES] += torch.from_numpy(head.v) / y_std
            out.linear.weight.copy_(weight)
            bias += sum(k * float(lpm.linear.bias) for k, lpm in zip(scale, prior.lpms)) * y_std
            out.linear.bias.fill_(bias / y_std)
        elif np.any(head.v):
            raise UserInputError("the source LPMs have no linear term to carry the per-op correction")
        if out.mlp is not None:
            layers = [[m for m in lpm.mlp if isinstance(m, torch.nn.Linear)] for lpm in prior.lpms]
            mine = [m for m in out.mlp if isinstance(m, torch.nn.Linear)]
            for j, dst in enumerate(mine):
                if j == len(mine) - 1:
                    dst.weight.copy_(torch.cat([k * ls[j].weight for k, ls in zip(scale, layers)], dim=1))
                    dst.bias.fill_(sum(k * float(ls[j].bias) for k, ls in zip(scale, layers)))
                else:
                    dst.weight.copy_(torch.cat([ls[j].weight for ls in layers]) if j == 0
                                     else torch.block_diag(*[ls[j].weight for ls in layers]))
                    dst.bias.copy_(torch.cat([ls[j].bias for ls in layers]))
        if out.linear is None:  # the constant goes into the MLP's last bias instead
            out.mlp[-1].bias.add_(bias / y_std)
    return out.eval()


def adapt_prior(prior: PlatformPrior, shots: LatencyDataset, *, variant: str = DEFAULT_VARIANT, seed: int = 0,
                platform_row: dict[str, Any] | None = None) -> tuple[LPM, dict[str, Any]]:
    """The few-shot LPM for the platform of ``shots`` (its K measured architectures), from ``prior``."""
    if len(shots) < 4:
        raise UserInputError(f"need at least 4 target-platform architectures to adapt to, got {len(shots)}")
    if shots.platform is not None and shots.platform in prior.keys:
        raise UserInputError(f"{shots.platform} is one of the prior's source platforms; hold it out to adapt to it")
    head = fit_head(prior.features(shots.encodings), edge_features(shots.encodings), shots.latency_ms, variant,
                    prior.space)
    t = np.log(shots.latency_ms) if prior.space == "log" else shots.latency_ms
    lpm = fold(prior, head, float(t.mean()), float(t.std()) if t.std() > 0 else 1.0)
    pm = platform_meta(platform_row, shots.platform)
    support = fitted_support(shots)
    for src in prior.lpms:  # the sources saw more architectures than the K: the support is the union
        for kind, (lo, hi) in ((src.meta.get("support") or {}).get("parameter_free") or {}).items():
            mine = support["parameter_free"][kind]
            support["parameter_free"][kind] = [min(mine[0], lo), max(mine[1], hi)]
    info = {"method": "multi-platform prior: the source platforms' LPMs mixed by a ridge head fitted on the K",
            "variant": head.variant, "space": head.space, "k": len(shots), "alpha": head.alpha, "beta": head.beta,
            "gamma": head.gamma, "loo_relative_error": head.loo_error,
            "sources": [{"key": key, "weight": float(wi), "n_archs": n}
                        for key, wi, n in zip(prior.keys, head.w, prior.n_archs or [None] * len(prior.keys))],
            "op_correction_norm": float(np.linalg.norm(head.v))}
    lpm.meta = json_safe({
        "platform": pm, "network": (pm.get("settings") or {}).get("network"), "encoding_version": ENCODING_VERSION,
        "target": "latency_ms: the store's drift-corrected latency, in ms",
        "mean_latency_ms": float(np.mean(shots.latency_ms)), "support": support,
        "training": {"runs": shots.runs, "arch_hashes": shots.hashes, "n_archs": len(shots), "seed": seed,
                     "finetuned_from": None, "source_arch_hashes": sorted(prior.seen())},
        "metrics": {"train": regression_metrics(lpm.predict_encodings(shots.encodings), shots.latency_ms)},
        "transfer": info,
    })
    return lpm, json_safe(info)


def fewshot_experiment(prior: PlatformPrior, target: LatencyDataset, k: int, *, seed: int = 0,
                       platform_row: dict[str, Any] | None = None, variant: str = DEFAULT_VARIANT,
                       scratch_config: LPMConfig | None = None, device: str = "cpu") -> dict[str, Any]:
    """K random target records adapt the prior; the rest that no source LPM saw evaluate it beside an LPM trained
    on the K alone (the split and the scratch recipe of :func:`ladarts.predict.transfer_experiment`)."""
    shots, rest = few_shot_split(target, k, seed=seed, seen=prior.seen())
    lpm, info = adapt_prior(prior, shots, variant=variant, seed=seed, platform_row=platform_row)
    scratch, _ = fit_dataset(shots, seed=seed, platform_row=platform_row,
                             config=scratch_config or LPMConfig(val_fraction=0.2), device=device)
    y = rest.latency_ms
    rows = {"fewshot": regression_metrics(lpm.predict_encodings(rest.encodings), y),
            "scratch": regression_metrics(scratch.predict_encodings(rest.encodings), y)}
    lpm.meta["metrics"]["transfer_heldout"] = json_safe(rows["fewshot"])
    return {"k": k, "seed": seed, "n_eval": len(rest), "n_excluded_seen": len(target) - k - len(rest),
            "prior": "multi-platform", "sources": prior.keys,
            "target_platform": target.platform, "metrics": json_safe(rows), "transfer": info, "lpm": lpm}


__all__ = ["DEFAULT_SPACE", "DEFAULT_VARIANT", "Head", "MIN_SOURCES", "MIN_SOURCE_ARCHS", "NESTED_VARIANT",
           "PlatformPrior", "SPACES", "VARIANTS", "adapt_prior", "check_k", "choose_head", "edge_features",
           "fewshot_experiment", "fit_head", "fit_prior", "fold", "source_config"]
