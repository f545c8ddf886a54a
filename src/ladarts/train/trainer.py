"""Train a genotype with the DARTS evaluation protocol; checkpoint every epoch; resume after any interruption.

The run folder (:mod:`ladarts.runs`) holds ``config.json`` (resolved), ``log.jsonl`` (one record per epoch),
``checkpoint.pt`` (after every epoch), and at the end ``model.safetensors``, ``model.onnx`` and ``report.json``. A
resumed run on the CPU replays exactly what the uninterrupted run would have done, with one process or several.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ladarts.data.imagefolder import FolderData, ImageFolder, folder_batches
from ladarts.distributed import Context, setup
from ladarts.errors import UserInputError
from ladarts.io import atomic_write, atomic_write_json
from ladarts.runs import (
    Precision,
    RunFolder,
    check_finite,
    epoch_generator,
    evaluate_classifier,
    progress_bar,
    rank_generator,
    seed_rank,
    set_threads,
    to_device,
    use_fast_kernels,
)
from ladarts.space.genotype import Genotype
from ladarts.space.networks import Network, build_network, count_macs, count_params, network_config
from ladarts.train.protocol import TrainConfig, lr_factor


@dataclass
class TrainResult:
    out: Path
    test_acc: float
    epochs: int
    seconds: float
    report: dict[str, Any]


def build_model(cfg: TrainConfig, in_channels: int, num_classes: int) -> Network:
    preset = "imagenet" if cfg.dataset == "imagenet" else "cifar"
    net_cfg = network_config(preset, channels=cfg.channels, cells=cfg.cells, classes=num_classes,
                             in_channels=in_channels, input_size=cfg.input_size,
                             auxiliary=cfg.auxiliary_weight > 0)
    return build_network(Genotype.from_dict(cfg.genotype), net_cfg)


class _TrainForward(nn.Module):
    """DDP wraps ``forward``; a training step needs ``forward_train`` (logits and auxiliary logits)."""

    def __init__(self, net: Network):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.net.forward_train(x)


def make_scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, float(cfg.epochs))
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda epoch: lr_factor(cfg.lr_schedule, epoch, cfg.epochs, cfg.warmup_epochs))


def run_train(config: TrainConfig, resume: bool = False, progress: bool = True,
              on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None) -> TrainResult:
    """Train (or resume) and return the test accuracy; writes the run folder described in the module docstring.

    Under torchrun every rank trains on its shard of each epoch (DDP averages the gradients); rank 0 writes."""
    from ladarts.data import load_dataset, subset

    cfg = config.resolved()
    set_threads(cfg.threads)
    ctx = setup(cfg.device)
    use_fast_kernels(ctx.device)
    world = ctx.world_size
    if cfg.batch_size % world or cfg.batch_size // world < 2:
        raise UserInputError(f"--batch-size {cfg.batch_size} is the batch of all {world} processes together: it must "
                             "split into equal parts of at least 2")
    batch = cfg.batch_size // world
    run_config = {**cfg.to_dict(), "world_size": world}
    folder = RunFolder(cfg.out, "training", final="report.json", require_empty=True, ctx=ctx)
    ckpt = folder.start(run_config, resume)
    out = folder.out
    ds = load_dataset(cfg.dataset, cfg.data_dir, seed=0, input_size=cfg.input_size)  # seed 0: the fixed test split
    streamed = isinstance(ds, FolderData)
    if streamed:
        ds.train.seed = cfg.seed  # the per-sample augmentation stream
    train_set = subset(ds.train, cfg.subset, cfg.seed)
    n_train = len(train_set)
    torch.manual_seed(cfg.seed)
    # NHWC: oneDNN's depthwise and pooling kernels are faster in it on the CPU (about 18% per step here); the
    # weights are made contiguous again when saved.
    model = build_model(cfg, ds.in_channels, ds.num_classes).to(memory_format=torch.channels_last)
    seed_rank(cfg.seed, ctx.rank)
    if cfg.sync_bn and ctx.enabled:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(ctx.device)
    opt = torch.optim.SGD(model.parameters(), cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = make_scheduler(cfg, opt)
    precision = Precision(cfg.amp, ctx.device)
    start, log = 0, []
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        precision.load_state_dict(ckpt.get("scaler"))
        folder.restore_rng(ckpt)
        start = int(ckpt["epoch"])
        log = folder.read_log(start)
    step_forward = ctx.wrap(_TrainForward(model))  # DDP averages the gradients under torchrun
    folder.write_json("config.json", {**run_config, "batch_per_process": batch, "dataset_meta": ds.meta,
                                      "network": model.config.to_dict()})
    workers = _workers(cfg, world) if streamed else 0
    bar = progress_bar(cfg.epochs, "train", progress and ctx.is_main, initial=start, unit="epoch")
    t0 = time.perf_counter()
    for epoch in range(start, cfg.epochs):
        model.train()
        model.drop_path_prob = cfg.drop_path * epoch / cfg.epochs  # the reference's linear ramp
        gen = epoch_generator(cfg.seed, epoch)
        perm = ctx.shard(torch.randperm(n_train, generator=gen))
        idx_batches = [b for b in (perm[i:i + batch] for i in range(0, len(perm), batch))
                       if len(b) >= 2]  # a batch of one would break train-mode batch norm
        if streamed:
            batches = folder_batches(train_set, idx_batches, epoch, workers, ctx.device.type == "cuda")
        else:
            x_tr, y_tr = train_set.tensors
            aug = rank_generator(cfg.seed, epoch, ctx.rank, gen)
            batches = ((ds.augment(x_tr[idx], cutout=cfg.cutout, generator=aug), y_tr[idx]) for idx in idx_batches)
        loss_sum, correct, seen = 0.0, 0, 0
        for x, y in batches:
            x = to_device(x, ctx.device).contiguous(memory_format=torch.channels_last)
            y = to_device(y, ctx.device)
            with precision.autocast():
                logits, aux = step_forward(x)
                loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                if aux is not None:
                    loss = loss + cfg.auxiliary_weight * F.cross_entropy(aux, y, label_smoothing=cfg.label_smoothing)
            loss_value = loss.item()
            check_finite(loss_value, f"the training loss at epoch {epoch + 1} (the last good checkpoint is "
                                     f"{folder.checkpoint_path}; lower the learning rate)")
            opt.zero_grad(set_to_none=True)
            precision.scale(loss).backward()
            precision.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            precision.step(opt)
            precision.update()
            loss_sum += loss_value * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        lr = opt.param_groups[0]["lr"]
        sched.step()
        if ctx.enabled:
            loss_sum, correct, seen = ctx.sum([loss_sum, correct, seen])
        ctx.check_identical({"the weights": list(model.parameters())}, f"after epoch {epoch + 1}")
        ctx.broadcast_buffers_(model)  # evaluate (and checkpoint) rank 0's BN statistics on every rank
        if streamed:
            test_loss, test_acc = _evaluate_folder(model, ds.test, cfg.batch_size, workers, ctx)
        else:
            x_te, y_te = ds.test.tensors
            test_loss, test_acc = evaluate_classifier(model, x_te, y_te, ctx=ctx)
        record = {"epoch": epoch, "lr": lr, "drop_path": model.drop_path_prob, "train_loss": loss_sum / seen,
                  "train_acc": correct / seen, "test_loss": test_loss, "test_acc": test_acc,
                  "seconds": time.perf_counter() - t0}
        log.append(record)
        folder.write_log(log)
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
        if precision.scaler is not None:
            state["scaler"] = precision.state_dict()
        folder.save_checkpoint(epoch + 1, run_config, state)
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"loss {record['train_loss']:.3f}, test acc {100 * test_acc:.2f}%")
        if on_epoch_end:
            on_epoch_end(epoch, record)
    if bar is not None:
        bar.close()
    if not ctx.is_main:
        last = log[-1] if log else {}
        return TrainResult(out, float(last.get("test_acc", float("nan"))), cfg.epochs, time.perf_counter() - t0, {})
    return _finish(model, cfg, out, log, time.perf_counter() - t0)


def _workers(cfg: TrainConfig, world: int) -> int:
    """Loader processes per rank: ``--workers``, else this node's cores shared by its ranks (at most 8)."""
    if cfg.workers is not None:
        return cfg.workers
    return max(1, min(8, (os.cpu_count() or 1) // world - 1))


def _evaluate_folder(model: Network, test: ImageFolder, batch_size: int, workers: int,
                     ctx: Context) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on the folder's val split, each rank on every world-th image."""
    idx = torch.arange(len(test))[ctx.rank::ctx.world_size]
    batches = [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
    loader = folder_batches(test, batches, 0, workers, ctx.device.type == "cuda")
    was_training = model.training
    model.eval()
    loss, correct, n = 0.0, 0, 0
    try:
        with torch.no_grad():
            for x, y in loader:
                x = to_device(x, ctx.device).contiguous(memory_format=torch.channels_last)
                y = to_device(y, ctx.device)
                logits = model(x)
                loss += float(F.cross_entropy(logits, y, reduction="sum"))
                correct += int((logits.argmax(1) == y).sum())
                n += len(y)
    finally:
        model.train(was_training)
    loss, correct, n = ctx.sum([loss, correct, n])
    return loss / n, correct / n


def _finish(model: Network, cfg: TrainConfig, out: Path, log: list[dict[str, Any]], seconds: float) -> TrainResult:
    from safetensors.torch import save

    from ladarts.train.export import export_and_check

    model.eval()
    # bytes written into atomic_write's temp file (save_file would replace it with a 0600 file of its own)
    blob = save({k: v.contiguous() for k, v in model.state_dict().items()}, metadata={"format": "pt"})
    atomic_write(out / "model.safetensors", lambda tmp: Path(tmp).write_bytes(blob))
    onnx = export_and_check(model, out / "model.onnx")
    last = log[-1] if log else {}
    report = {
        "genotype_name": cfg.genotype_name,
        "genotype": cfg.genotype,
        "dataset": cfg.dataset,
        "network": model.config.to_dict(),
        "epochs": cfg.epochs,
        "test_acc": last.get("test_acc"),
        "test_loss": last.get("test_loss"),
        "params": count_params(model),
        "macs": count_macs(model),
        "train_seconds_total": last.get("seconds"),
        "onnx": onnx,
    }
    atomic_write_json(out / "report.json", report)
    return TrainResult(out, float(last.get("test_acc", float("nan"))), cfg.epochs, seconds, report)


def load_trained(run: str | Path) -> tuple[Network, dict[str, Any]]:
    """A finished run's network (weights from ``model.safetensors``) and its report."""
    from safetensors.torch import load_file

    run = Path(run)
    try:
        report = json.loads((run / "report.json").read_text())
        state = load_file(run / "model.safetensors")
    except (OSError, ValueError) as e:
        raise UserInputError(f"{run}: not a finished training run ({e.__class__.__name__})") from None
    net = build_network(Genotype.from_dict(report["genotype"]), network_config(**report["network"]))
    net.load_state_dict(state)
    return net.eval(), report

