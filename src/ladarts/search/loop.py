"""The search run: data, supernet, bilevel loop, per-epoch log and checkpoint, resume.

``run_search(SearchConfig(...))`` is the Python API (the CLI is a thin layer over it). A run folder holds
``config.json`` (resolved, including the cost used), ``log.jsonl`` (one record per epoch), ``checkpoint.pt``
(written after every epoch; loads with ``torch.load(weights_only=True)``) and, at the end, ``genotype.json``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

import torch

from ladarts.errors import LadartsError, UserInputError
from ladarts.io import atomic_write, atomic_write_json, atomic_write_text
from ladarts.search.architect import Architect, NonFiniteLoss, weight_step
from ladarts.search.objectives import DEFAULT_SOFT_MODE, Cost, LatencyObjective, genotype_latency
from ladarts.space.genotype import Genotype
from ladarts.space.soft import SOFT_MODES
from ladarts.space.supernet import METHODS, Supernet
from ladarts.train.trainer import evaluate

CHECKPOINT_VERSION = 1
#: Reference defaults per method (DARTS train_search.py; PC-DARTS train_search.py).
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "darts": {"batch_size": 64, "lr": 0.025, "lr_min": 0.001, "arch_lr": 3e-4, "warmup_fraction": 0.0},
    "pc-darts": {"batch_size": 256, "lr": 0.1, "lr_min": 0.0, "arch_lr": 6e-4, "warmup_fraction": 15 / 50},
}
# Fields that may differ between a run and its resumption.
_RESUME_FREE = {"resume", "progress", "threads", "out"}


@dataclass
class SearchConfig:
    """Everything a search needs; ``None`` means "the method's reference default" (see :data:`METHOD_DEFAULTS`)."""

    out: str
    method: str = "darts"
    order: int = 1
    dataset: str = "digits"
    data_dir: str | None = None
    subset: int | None = None
    input_size: int | None = None
    epochs: int = 50
    seed: int = 0
    channels: int = 16
    cells: int = 8
    partial_channels: int = 4
    batch_size: int | None = None
    lr: float | None = None
    lr_min: float | None = None
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    arch_lr: float | None = None
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3
    warmup_epochs: int | None = None
    lpm: str | None = None
    lam: float = 0.0
    target_ms: float | None = None
    soft_mode: str = DEFAULT_SOFT_MODE
    tau: float = 0.05
    latency_scale_ms: float | None = None
    resume: bool = False
    progress: bool = False
    threads: int | None = None
    cost_info: dict[str, Any] = field(default_factory=dict)

    def resolved(self) -> "SearchConfig":
        """Fill the method defaults and validate; raises UserInputError on bad values."""
        if self.method not in METHODS:
            raise UserInputError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.order not in (1, 2):
            raise UserInputError(f"--order must be 1 or 2, got {self.order}")
        if self.soft_mode not in SOFT_MODES:
            raise UserInputError(f"unknown soft encoding {self.soft_mode!r}; choose one of {', '.join(SOFT_MODES)}")
        for name in ("epochs", "channels", "cells"):
            if getattr(self, name) < 1:
                raise UserInputError(f"--{name} must be positive, got {getattr(self, name)}")
        if self.cells < 3:
            raise UserInputError(f"--cells must be at least 3 (the supernet has two reduction cells), got {self.cells}")
        if self.lam < 0 or not math.isfinite(self.lam):
            raise UserInputError(f"--lambda must be a non-negative number, got {self.lam}")
        if self.target_ms is not None and not self.target_ms > 0:
            raise UserInputError(f"--target-ms must be positive, got {self.target_ms}")
        if self.subset is not None and self.subset < 1:
            raise UserInputError(f"--subset must be positive, got {self.subset}")
        d = METHOD_DEFAULTS[self.method]
        k = self.partial_channels if self.method == "pc-darts" else 1
        if self.channels % k or (2 * self.channels) % k:
            raise UserInputError(f"--channels {self.channels} is not divisible by the partial-channel K={k}")
        r = replace(
            self,
            batch_size=self.batch_size or d["batch_size"],
            lr=d["lr"] if self.lr is None else self.lr,
            lr_min=d["lr_min"] if self.lr_min is None else self.lr_min,
            arch_lr=d["arch_lr"] if self.arch_lr is None else self.arch_lr,
            warmup_epochs=(int(round(d["warmup_fraction"] * self.epochs)) if self.warmup_epochs is None
                           else self.warmup_epochs),
            arch_betas=tuple(self.arch_betas),
        )
        if r.batch_size < 2:
            raise UserInputError(f"--batch-size must be at least 2, got {r.batch_size}")
        return r

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["arch_betas"] = list(self.arch_betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SearchConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: (tuple(v) if k == "arch_betas" else v) for k, v in d.items() if k in names})


@dataclass
class SearchResult:
    genotype: Genotype
    out: Path
    log: list[dict[str, Any]]
    config: SearchConfig

    @property
    def final(self) -> dict[str, Any]:
        return self.log[-1] if self.log else {}


def lr_at(epoch: int, epochs: int, lr: float, lr_min: float) -> float:
    """Cosine annealing from ``lr`` to ``lr_min`` over the run, evaluated at the start of ``epoch``."""
    return lr_min + (lr - lr_min) * (1 + math.cos(math.pi * epoch / epochs)) / 2


def load_cost(lpm_dir: str) -> Any:
    """Load an LPM folder (``ladarts.predict``, imported only here)."""
    try:
        from ladarts.predict import LPM
    except ImportError as e:  # pragma: no cover - depends on the predict package being installed
        raise LadartsError(f"--lpm needs ladarts.predict, which is not available ({e})") from None
    if not Path(lpm_dir).is_dir():
        raise UserInputError(f"--lpm {lpm_dir}: not a folder")
    return LPM.load(lpm_dir)


def _describe_cost(cost: Any, lpm_dir: str | None) -> dict[str, Any]:
    meta = dict(getattr(cost, "meta", {}) or {})
    info: dict[str, Any] = {"kind": "lpm" if lpm_dir else type(cost).__name__, "path": lpm_dir,
                            "mean_latency_ms": meta.get("mean_latency_ms")}
    if hasattr(cost, "platform_key"):
        info["platform_key"] = str(cost.platform_key)
    if "kind" in meta:
        info["name"] = meta["kind"]
    return info


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """Each epoch's shuffling and augmentation draw from their own seeded stream, so a resumed run replays them."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def _batches(n: int, batch_size: int, perm: torch.Tensor) -> list[torch.Tensor]:
    idx = [perm[i:i + batch_size] for i in range(0, n, batch_size)]
    return [b for b in idx if len(b) >= 2]  # a batch of one would break train-mode BN


def _save_checkpoint(path: Path, epoch: int, model: Supernet, w_opt: torch.optim.Optimizer,
                     architect: Architect, config: SearchConfig) -> None:
    state = {
        "version": CHECKPOINT_VERSION,
        "epoch": epoch,  # epochs completed
        "model": model.state_dict(),
        "w_optimizer": w_opt.state_dict(),
        "arch_optimizer": architect.optimizer.state_dict(),
        "rng_torch": torch.get_rng_state(),
        "config_json": json.dumps(config.to_dict(), sort_keys=True),
    }
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A search checkpoint, loaded without unpickling anything but tensors and plain containers."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure here means an unusable file
        raise UserInputError(f"{path}: not a loadable search checkpoint ({e.__class__.__name__}: {e})") from None


def _read_log(path: Path, upto_epoch: int) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r["epoch"] < upto_epoch]


def _write_log(path: Path, records: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))


def _round_list(t: torch.Tensor | None, nd: int = 6) -> Any:
    return None if t is None else [[round(float(v), nd) for v in row] for row in t.detach().reshape(-1, t.shape[-1])]


EpochHook = Callable[[int, dict[str, Any]], None]


def run_search(config: SearchConfig, cost: Cost | None = None, on_epoch_end: EpochHook | None = None,
               on_step: Callable[[int, int], None] | None = None) -> SearchResult:
    """Run (or resume) a search and return its derived genotype and per-epoch log.

    ``cost``: any differentiable ``cost(encoding) -> ms`` (an LPM, a :class:`~ladarts.search.TableCost`, ...);
    if None, ``config.lpm`` is loaded; with neither, the search is plain DARTS / PC-DARTS. ``on_epoch_end(epoch,
    record)`` is called after each epoch's checkpoint; ``on_step(epoch, step)`` before each step (for tests).
    """
    from ladarts.data import load_dataset, split_search, subset

    cfg = config.resolved()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cost is None and cfg.lpm:
        cost = load_cost(cfg.lpm)
    if cost is None and (cfg.lam > 0 or cfg.target_ms is not None):
        raise UserInputError("--lambda/--target-ms need a latency model: pass --lpm DIR")
    cfg = replace(cfg, cost_info=_describe_cost(cost, cfg.lpm) if cost is not None else {})
    objective = (LatencyObjective(cost, cfg.lam, cfg.soft_mode, cfg.target_ms, cfg.latency_scale_ms, cfg.tau)
                 if cost is not None else None)
    if objective is not None:
        cfg.cost_info.update(objective.describe())

    out = Path(cfg.out)
    ckpt_path, log_path, cfg_path = out / "checkpoint.pt", out / "log.jsonl", out / "config.json"
    start_epoch, records = 0, []
    if cfg.resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        old = SearchConfig.from_dict(json.loads(ckpt["config_json"]))
        diff = [k for k, v in cfg.to_dict().items() if k not in _RESUME_FREE and old.to_dict().get(k) != v]
        if diff:
            raise UserInputError(f"--resume: the run in {out} was started with different {', '.join(diff)}")
        start_epoch = int(ckpt["epoch"])
        records = _read_log(log_path, start_epoch)
    elif not cfg.resume and (ckpt_path.exists() or (out / "genotype.json").exists()):
        raise UserInputError(f"{out} already holds a search run; pass --resume or choose another --out")
    else:
        ckpt = None
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cfg_path, {**cfg.to_dict(), "data_split_seed": 0})

    ds = load_dataset(cfg.dataset, cfg.data_dir, seed=0, input_size=cfg.input_size)
    train = subset(ds.train, cfg.subset, cfg.seed)
    w_part, a_part = split_search(train, cfg.seed)
    xw, yw = w_part.tensors
    xa, ya = a_part.tensors

    torch.manual_seed(cfg.seed)
    model = Supernet(cfg.channels, ds.num_classes, cfg.cells, ds.in_channels, cfg.method, cfg.partial_channels)
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=cfg.lr, momentum=cfg.momentum,
                            weight_decay=cfg.weight_decay)
    architect = Architect(model, cfg.arch_lr, cfg.arch_betas, cfg.arch_weight_decay, cfg.order, objective,
                          cfg.momentum, cfg.weight_decay)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        w_opt.load_state_dict(ckpt["w_optimizer"])
        architect.optimizer.load_state_dict(ckpt["arch_optimizer"])
        torch.set_rng_state(ckpt["rng_torch"])
    model.train()

    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        lr = lr_at(epoch, cfg.epochs, cfg.lr, cfg.lr_min)
        for group in w_opt.param_groups:
            group["lr"] = lr
        g = _epoch_generator(cfg.seed, epoch)
        w_batches = _batches(len(yw), cfg.batch_size, torch.randperm(len(yw), generator=g))
        a_perm = torch.randperm(len(ya), generator=g)
        update_arch = epoch >= cfg.warmup_epochs
        sums = {"train_loss": 0.0, "correct": 0, "seen": 0, "arch_loss": 0.0, "arch_steps": 0}
        bar = _progress(len(w_batches), f"epoch {epoch + 1}/{cfg.epochs}", cfg.progress)
        try:
            for step, bw in enumerate(w_batches):
                if on_step is not None:
                    on_step(epoch, step)
                xb = ds.augment(xw[bw], cutout=0, generator=g)
                if update_arch:
                    ba = a_perm.roll(-step * cfg.batch_size)[: cfg.batch_size]
                    xv = ds.augment(xa[ba], cutout=0, generator=g)
                    st = architect.step(xv, ya[ba], xb, yw[bw], lr, w_opt)
                    sums["arch_loss"] += st.loss
                    sums["arch_steps"] += 1
                loss, correct = weight_step(model, w_opt, xb, yw[bw], cfg.grad_clip)
                sums["train_loss"] += loss * len(bw)
                sums["correct"] += correct
                sums["seen"] += len(bw)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.3f}")
        except NonFiniteLoss as e:
            where = (f"the last good checkpoint (after epoch {epoch}) is {ckpt_path}; continue with --resume"
                     if epoch > 0 and ckpt_path.exists() else "no checkpoint was written yet")
            raise NonFiniteLoss(f"search stopped at epoch {epoch + 1}, step {step + 1}: {e}; {where} "
                                f"(or lower the learning rate or λ)") from None
        finally:
            if bar is not None:
                bar.close()
        val_loss, val_acc = evaluate(model, xa, ya, cfg.batch_size)
        if not math.isfinite(val_loss):
            raise NonFiniteLoss(f"search stopped after epoch {epoch + 1}: the validation loss is {val_loss}; "
                                f"the last good checkpoint is {ckpt_path}")
        genotype = model.genotype()
        record: dict[str, Any] = {
            "epoch": epoch, "lr": lr, "arch_updated": update_arch,
            "train_loss": sums["train_loss"] / max(1, sums["seen"]), "train_acc": sums["correct"] / max(1, sums["seen"]),
            "arch_loss": sums["arch_loss"] / sums["arch_steps"] if sums["arch_steps"] else None,
            "val_loss": val_loss, "val_acc": val_acc,
        }
        if objective is not None:
            with torch.no_grad():
                term, lat = objective(*model.arch_tensors())
            record.update(lat_alpha_ms=float(lat), lat_term=float(term),
                          lat_derived_ms=genotype_latency(objective.cost, genotype))
        record.update(genotype=genotype.to_dict(), alphas_normal=_round_list(model.alphas_normal),
                      alphas_reduce=_round_list(model.alphas_reduce),
                      betas_normal=None if model.betas_normal is None else _round_list(model.betas_normal.view(1, -1))[0],
                      betas_reduce=None if model.betas_reduce is None else _round_list(model.betas_reduce.view(1, -1))[0],
                      seconds=round(time.perf_counter() - t0, 3))
        records.append(record)
        _write_log(log_path, records)
        _save_checkpoint(ckpt_path, epoch + 1, model, w_opt, architect, cfg)
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)

    genotype = model.genotype()
    atomic_write_json(out / "genotype.json", genotype.to_dict())
    return SearchResult(genotype, out, records, cfg)


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
