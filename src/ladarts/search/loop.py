"""The search run: data, supernet, bilevel loop, per-epoch log and checkpoint, resume.

``run_search(SearchConfig(...), cost=...)`` is the Python API (the CLI is a thin layer over it: it loads the LPM
and passes it as ``cost``). A run folder (:mod:`ladarts.runs`) holds ``config.json`` (resolved, including the
cost used), ``log.jsonl`` (one record per epoch), ``checkpoint.pt`` and, at the end, ``genotype.json``.

Under torchrun (:mod:`ladarts.distributed`) each rank takes its shard of every epoch's two permutations
(DistributedSampler's drop_last semantics) and an equal part of each step's batch (``batch_size`` is the batch of all
processes together); the weight step goes through DDP, the α step averages its gradients across ranks (see
:mod:`ladarts.search.architect`), and α, β and the weights are checked bit-identical on every rank after each epoch.
BatchNorm keeps per-rank batch statistics, as the reference (one GPU, or DataParallel) did, unless ``sync_bn`` (CUDA
only); the running statistics are rank 0's (DDP broadcasts them before each forward). Rank 0 writes the folder.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

import torch

from ladarts.distributed import setup
from ladarts.errors import UserInputError
from ladarts.limits import check_float, check_int, check_run_fields
from ladarts.runs import (
    NonFiniteLoss,
    Precision,
    RunFolder,
    check_precision,
    epoch_generator,
    evaluate_classifier,
    is_terminal,
    progress_bar,
    rank_generator,
    seed_rank,
    set_threads,
    to_device,
    use_fast_kernels,
)
from ladarts.search.architect import Architect, weight_step
from ladarts.search.objectives import DEFAULT_SOFT_MODE, Cost, LatencyObjective, check_objective, genotype_latency
from ladarts.space.genotype import Genotype
from ladarts.space.supernet import METHODS, Supernet

#: Reference defaults per method (DARTS train_search.py; PC-DARTS train_search.py).
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "darts": {"batch_size": 64, "lr": 0.025, "lr_min": 0.001, "arch_lr": 3e-4, "warmup_fraction": 0.0},
    "pc-darts": {"batch_size": 256, "lr": 0.1, "lr_min": 0.0, "arch_lr": 6e-4, "warmup_fraction": 15 / 50},
}


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
    lam: float = 0.0
    target_ms: float | None = None
    soft_mode: str = DEFAULT_SOFT_MODE
    tau: float = 0.05
    latency_scale_ms: float | None = None
    resume: bool = False
    progress: bool = True
    threads: int | None = None
    device: str = "cpu"
    amp: str | None = None
    sync_bn: bool = False
    cost_info: dict[str, Any] = field(default_factory=dict)

    def resolved(self) -> "SearchConfig":
        """Fill the method defaults and validate; raises UserInputError on bad values."""
        if self.method not in METHODS:
            raise UserInputError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.order not in (1, 2):
            raise UserInputError(f"--order must be 1 or 2, got {self.order}")
        check_objective(self.lam, self.target_ms, self.soft_mode)
        check_run_fields(self, optional={"threads", "subset", "batch_size", "input_size"})  # None: the default
        if self.input_size is not None and self.input_size % 4:
            raise UserInputError(f"--input-size must be divisible by 4 (the supernet halves it twice), got "
                                 f"{self.input_size}")
        check_int("partial_channels", self.partial_channels, (1, 64))
        check_int("--warmup-epochs", self.warmup_epochs, (0, self.epochs), optional=True)
        for name in ("lr", "lr_min", "arch_lr"):
            check_float(name, getattr(self, name), optional=True)
        check_float("momentum", self.momentum, hi=1.0)
        check_float("weight_decay", self.weight_decay)
        check_float("arch_weight_decay", self.arch_weight_decay)
        check_float("grad_clip", self.grad_clip, lo_open=True)
        check_float("tau", self.tau, lo_open=True)
        check_float("latency_scale_ms", self.latency_scale_ms, lo_open=True, optional=True)
        check_precision(self.amp, self.sync_bn, self.device, self.order)
        if self.dataset == "imagenet":
            raise UserInputError("search holds its data in memory; the imagenet folder is streamed for `ladarts "
                                 "train` only")
        d = METHOD_DEFAULTS[self.method]
        k = self.partial_channels if self.method == "pc-darts" else 1
        if self.channels % k:
            raise UserInputError(f"--channels {self.channels} is not divisible by the partial-channel K={k}")
        r = replace(
            self,
            batch_size=d["batch_size"] if self.batch_size is None else self.batch_size,
            lr=d["lr"] if self.lr is None else self.lr,
            lr_min=d["lr_min"] if self.lr_min is None else self.lr_min,
            arch_lr=d["arch_lr"] if self.arch_lr is None else self.arch_lr,
            warmup_epochs=(int(round(d["warmup_fraction"] * self.epochs)) if self.warmup_epochs is None
                           else self.warmup_epochs),
            arch_betas=tuple(self.arch_betas),
        )
        if not r.lr > 0 or not r.arch_lr > 0:
            raise UserInputError(f"the learning rates must be positive, got lr {r.lr}, arch lr {r.arch_lr}")
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


def _round_list(t: torch.Tensor | None, nd: int = 6) -> Any:
    return None if t is None else [[round(float(v), nd) for v in row]
                                   for row in t.detach().cpu().reshape(-1, t.shape[-1])]


def _batches(n: int, batch_size: int, perm: torch.Tensor) -> list[torch.Tensor]:
    idx = [perm[i:i + batch_size] for i in range(0, n, batch_size)]
    return [b for b in idx if len(b) >= 2]  # a batch of one would break train-mode BN


EpochHook = Callable[[int, dict[str, Any]], None]


def run_search(config: SearchConfig, cost: Cost | None = None, on_epoch_end: EpochHook | None = None,
               on_step: Callable[[int, int], None] | None = None) -> SearchResult:
    """Run (or resume) a search and return its derived genotype and per-epoch log.

    ``cost``: the hardware cost (:class:`~ladarts.search.objectives.Cost`: an LPM, a
    :class:`~ladarts.search.TableCost`, ...); without it the search is plain DARTS / PC-DARTS. ``on_epoch_end(epoch,
    record)`` is called after each epoch's checkpoint; ``on_step(epoch, step)`` before each step (for tests).
    """
    from ladarts.data import load_dataset, split_search, subset

    cfg = config.resolved()
    if cost is not None and not isinstance(cost, Cost):
        raise TypeError(f"cost must follow the Cost protocol (call, meta, describe()), got {type(cost).__name__}")
    if cost is None and (cfg.lam > 0 or cfg.target_ms is not None):
        raise UserInputError("--lambda/--target-ms need a latency model: pass --lpm DIR")
    objective = (LatencyObjective(cost, cfg.lam, cfg.soft_mode, cfg.target_ms, cfg.latency_scale_ms, cfg.tau)
                 if cost is not None else None)
    cfg = replace(cfg, cost_info=objective.describe() if objective is not None else {})
    set_threads(cfg.threads)
    ctx = setup(cfg.device)
    use_fast_kernels(ctx.device)
    world = ctx.world_size
    if cfg.batch_size % world or cfg.batch_size // world < 2:
        raise UserInputError(f"--batch-size {cfg.batch_size} is the batch of all {world} processes together: it must "
                             f"split into equal parts of at least 2")
    batch = cfg.batch_size // world  # this rank's part of each step's batch
    run_config = {**cfg.to_dict(), "world_size": world}

    folder = RunFolder(cfg.out, "search", final="genotype.json", ctx=ctx)
    ckpt = folder.start(run_config, cfg.resume)
    start_epoch = int(ckpt["epoch"]) if ckpt is not None else 0
    records = folder.read_log(start_epoch) if ckpt is not None else []
    out = folder.out
    folder.write_json("config.json", {**run_config, "data_split_seed": 0, "batch_per_process": batch})

    ds = load_dataset(cfg.dataset, cfg.data_dir, seed=0, input_size=cfg.input_size)
    train = subset(ds.train, cfg.subset, cfg.seed)
    w_part, a_part = split_search(train, cfg.seed)
    xw, yw = w_part.tensors
    xa, ya = a_part.tensors

    torch.manual_seed(cfg.seed)
    model = Supernet(cfg.channels, ds.num_classes, cfg.cells, ds.in_channels, cfg.method, cfg.partial_channels)
    seed_rank(cfg.seed, ctx.rank)
    if cfg.sync_bn and ctx.enabled:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(ctx.device)
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=cfg.lr, momentum=cfg.momentum,
                            weight_decay=cfg.weight_decay)
    precision = Precision(cfg.amp, ctx.device)
    architect = Architect(model, cfg.arch_lr, cfg.arch_betas, cfg.arch_weight_decay, cfg.order, objective,
                          cfg.momentum, cfg.weight_decay, average=ctx.average_, precision=precision)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        w_opt.load_state_dict(ckpt["w_optimizer"])
        architect.optimizer.load_state_dict(ckpt["arch_optimizer"])
        precision.load_state_dict(ckpt.get("scaler"))
        folder.restore_rng(ckpt)
    forward = ctx.wrap(model, exclude=model.arch_parameters())  # DDP averages w's gradients; α's: the architect
    model.train()
    show = cfg.progress and ctx.is_main
    # On a terminal a bar per epoch's steps; in a log file one line per epoch, with the time left.
    epoch_lines = progress_bar(cfg.epochs, "search", show and not is_terminal(), initial=start_epoch,
                               unit="epoch", lines=True)

    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        lr = lr_at(epoch, cfg.epochs, cfg.lr, cfg.lr_min)
        for group in w_opt.param_groups:
            group["lr"] = lr
        g = epoch_generator(cfg.seed, epoch)
        w_batches = _batches(len(yw) // world, batch, ctx.shard(torch.randperm(len(yw), generator=g)))
        a_perm = ctx.shard(torch.randperm(len(ya), generator=g))
        g = rank_generator(cfg.seed, epoch, ctx.rank, g)
        update_arch = epoch >= cfg.warmup_epochs
        sums = {"train_loss": 0.0, "correct": 0, "seen": 0, "arch_loss": 0.0, "arch_steps": 0}
        bar = progress_bar(len(w_batches), f"epoch {epoch + 1}/{cfg.epochs}", show and is_terminal())
        try:
            for step, bw in enumerate(w_batches):
                if on_step is not None:
                    on_step(epoch, step)
                xb = to_device(ds.augment(xw[bw], cutout=0, generator=g), ctx.device)
                yb = to_device(yw[bw], ctx.device)
                if update_arch:
                    ba = a_perm.roll(-step * batch)[:batch]
                    xv = to_device(ds.augment(xa[ba], cutout=0, generator=g), ctx.device)
                    st = architect.step(xv, to_device(ya[ba], ctx.device), xb, yb, lr, w_opt)
                    sums["arch_loss"] += st.loss
                    sums["arch_steps"] += 1
                loss, correct = weight_step(model, w_opt, xb, yb, cfg.grad_clip, forward, precision)
                sums["train_loss"] += loss * len(bw)
                sums["correct"] += correct
                sums["seen"] += len(bw)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.3f}")
        except NonFiniteLoss as e:
            where = (f"the last good checkpoint (after epoch {epoch}) is {folder.checkpoint_path}; continue with "
                     "--resume" if epoch > 0 and folder.checkpoint_path.exists() else "no checkpoint was written yet")
            raise NonFiniteLoss(f"search stopped at epoch {epoch + 1}, step {step + 1}: {e}; {where} "
                                f"(or lower the learning rate or λ)") from None
        finally:
            if bar is not None:
                bar.close()
        ctx.check_identical({"α and β": model.arch_parameters(), "the weights": model.weight_parameters()},
                            f"after epoch {epoch + 1}")
        ctx.broadcast_buffers_(model)  # evaluate (and checkpoint) rank 0's BN statistics on every rank
        val_loss, val_acc = evaluate_classifier(model, xa, ya, cfg.batch_size, ctx)
        if not math.isfinite(val_loss):
            raise NonFiniteLoss(f"search stopped after epoch {epoch + 1}: the validation loss is {val_loss}; "
                                f"the last good checkpoint is {folder.checkpoint_path}")
        if ctx.enabled:
            keys = list(sums)
            sums = dict(zip(keys, ctx.sum([sums[k] for k in keys])))
            sums["arch_steps"] /= world  # each rank counted the same steps
        genotype = model.genotype()
        record: dict[str, Any] = {
            "epoch": epoch, "lr": lr, "arch_updated": update_arch,
            "train_loss": sums["train_loss"] / max(1, sums["seen"]), "train_acc": sums["correct"] / max(1, sums["seen"]),
            "arch_loss": sums["arch_loss"] / sums["arch_steps"] if sums["arch_steps"] else None,
            "val_loss": val_loss, "val_acc": val_acc,
        }
        if objective is not None:
            with torch.no_grad():
                term, lat = architect.latency()
            record.update(lat_alpha_ms=float(lat), lat_term=float(term),
                          lat_derived_ms=genotype_latency(objective.cost, genotype))
        record.update(genotype=genotype.to_dict(), alphas_normal=_round_list(model.alphas_normal),
                      alphas_reduce=_round_list(model.alphas_reduce),
                      betas_normal=None if model.betas_normal is None else _round_list(model.betas_normal.view(1, -1))[0],
                      betas_reduce=None if model.betas_reduce is None else _round_list(model.betas_reduce.view(1, -1))[0],
                      seconds=round(time.perf_counter() - t0, 3))
        records.append(record)
        folder.write_log(records)
        state = {"model": model.state_dict(), "w_optimizer": w_opt.state_dict(),
                 "arch_optimizer": architect.optimizer.state_dict()}
        if precision.scaler is not None:
            state["scaler"] = precision.state_dict()
        folder.save_checkpoint(epoch + 1, run_config, state)
        if epoch_lines is not None:
            lat = f", derived {record['lat_derived_ms']:.2f} ms" if objective is not None else ""
            epoch_lines.set_postfix_str(f"train loss {record['train_loss']:.3f}, val acc "
                                        f"{100 * val_acc:.1f}%{lat}")
            epoch_lines.update(1)
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)

    genotype = model.genotype()
    folder.write_json("genotype.json", genotype.to_dict())
    return SearchResult(genotype, out, records, cfg)
