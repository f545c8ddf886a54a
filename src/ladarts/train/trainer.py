"""Train a genotype with the DARTS evaluation protocol; checkpoint every epoch; resume after any interruption.

A run folder holds ``config.json`` (resolved), ``log.jsonl`` (one record per epoch), ``checkpoint.pt``
(after every epoch; loads with ``torch.load(weights_only=True)``), and at the end ``model.safetensors``,
``model.onnx`` and ``report.json``. Each epoch's shuffling and augmentation come from a generator seeded by
(seed, epoch) and the global RNG state (drop path) is checkpointed, so a resumed run on CPU replays exactly
what the uninterrupted run would have done.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ladarts.errors import LadartsError, UserInputError
from ladarts.io import atomic_write, atomic_write_json, atomic_write_text
from ladarts.space.genotype import Genotype
from ladarts.space.networks import Network, build_network, count_macs, count_params, network_config
from ladarts.train.protocol import TrainConfig

CHECKPOINT_VERSION = 1
_RESUME_FREE = {"threads", "out"}


@dataclass
class TrainResult:
    out: Path
    test_acc: float
    epochs: int
    seconds: float
    report: dict[str, Any]


def build_model(cfg: TrainConfig, in_channels: int, num_classes: int) -> Network:
    net_cfg = network_config("cifar", channels=cfg.channels, cells=cfg.cells, classes=num_classes,
                             in_channels=in_channels, input_size=cfg.input_size,
                             auxiliary=cfg.auxiliary_weight > 0)
    return build_network(Genotype.from_dict(cfg.genotype), net_cfg)


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of a classifier in eval mode (its train/eval mode is restored after)."""
    was_training = model.training
    model.eval()
    loss, correct = 0.0, 0
    try:
        with torch.no_grad():
            for i in range(0, len(y), batch_size):
                logits = model(x[i:i + batch_size])
                loss += float(F.cross_entropy(logits, y[i:i + batch_size], reduction="sum"))
                correct += int((logits.argmax(1) == y[i:i + batch_size]).sum())
    finally:
        model.train(was_training)
    return loss / len(y), correct / len(y)


def _load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure means an unusable checkpoint
        raise UserInputError(f"{path}: not a loadable training checkpoint ({e.__class__.__name__})") from None


def _check_resumable(out: Path, cfg: TrainConfig) -> dict[str, Any] | None:
    ckpt_path = out / "checkpoint.pt"
    if not ckpt_path.exists():
        return None
    ckpt = _load_checkpoint(ckpt_path)
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise UserInputError(f"{ckpt_path}: checkpoint version {ckpt.get('version')}, expected {CHECKPOINT_VERSION}")
    old = json.loads(ckpt["config_json"])
    new = cfg.to_dict()
    diff = sorted(k for k in new if k not in _RESUME_FREE and old.get(k) != new[k])
    if diff:
        raise UserInputError(f"{out}: --resume with different settings ({', '.join(diff)}); use a new --out")
    return ckpt


def run_train(config: TrainConfig, resume: bool = False, progress: bool = True,
              on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None) -> TrainResult:
    """Train (or resume) and return the test accuracy; writes the run folder described in the module docstring."""
    from ladarts.data import load_dataset, subset

    cfg = config.resolved()
    out = Path(cfg.out)
    if out.exists() and any(out.iterdir()) and not resume:
        raise UserInputError(f"{out}: folder exists and is not empty; pass --resume to continue it or a new --out")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    ds = load_dataset(cfg.dataset, cfg.data_dir, seed=0, input_size=cfg.input_size)  # seed 0: the fixed test split
    x_tr, y_tr = subset(ds.train, cfg.subset, cfg.seed).tensors
    x_te, y_te = ds.test.tensors
    torch.manual_seed(cfg.seed)
    # NHWC: oneDNN's depthwise and pooling kernels are faster in it on the CPU (about 18% per step here); the
    # weights are made contiguous again when saved.
    model = build_model(cfg, ds.in_channels, ds.num_classes).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, float(cfg.epochs))
    start, log = 0, []
    ckpt = _check_resumable(out, cfg) if resume else None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["rng_torch"])
        start = int(ckpt["epoch"])
        log = [r for r in _read_jsonl(out / "log.jsonl") if r["epoch"] < start]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", {**cfg.to_dict(), "dataset_meta": ds.meta,
                                            "network": model.config.to_dict()})
    bar = _progress(cfg.epochs, start, progress)
    t0 = time.perf_counter()
    for epoch in range(start, cfg.epochs):
        model.train()
        model.drop_path_prob = cfg.drop_path * epoch / cfg.epochs  # the reference's linear ramp
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        perm = torch.randperm(len(y_tr), generator=gen)
        loss_sum, correct, seen = 0.0, 0, 0
        for i in range(0, len(perm), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            if len(idx) < 2:
                continue  # a batch of one would break train-mode batch norm
            x = ds.augment(x_tr[idx], cutout=cfg.cutout, generator=gen).contiguous(memory_format=torch.channels_last)
            y = y_tr[idx]
            logits, aux = model.forward_train(x)
            loss = F.cross_entropy(logits, y)
            if aux is not None:
                loss = loss + cfg.auxiliary_weight * F.cross_entropy(aux, y)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise LadartsError(f"non-finite training loss at epoch {epoch}; the last good checkpoint is "
                                   f"{out / 'checkpoint.pt'}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            loss_sum += loss_value * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        lr = opt.param_groups[0]["lr"]
        sched.step()
        test_loss, test_acc = evaluate(model, x_te, y_te)
        record = {"epoch": epoch, "lr": lr, "drop_path": model.drop_path_prob, "train_loss": loss_sum / seen,
                  "train_acc": correct / seen, "test_loss": test_loss, "test_acc": test_acc,
                  "seconds": time.perf_counter() - t0}
        log.append(record)
        state = {"version": CHECKPOINT_VERSION, "epoch": epoch + 1, "model": model.state_dict(),
                 "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng_torch": torch.get_rng_state(),
                 "config_json": json.dumps(cfg.to_dict(), sort_keys=True)}
        atomic_write_text(out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in log))
        atomic_write(out / "checkpoint.pt", lambda tmp: torch.save(state, tmp))
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"loss {record['train_loss']:.3f}, test acc {100 * test_acc:.2f}%")
        if on_epoch_end:
            on_epoch_end(epoch, record)
    if bar is not None:
        bar.close()
    return _finish(model, cfg, out, log, time.perf_counter() - t0)


def _finish(model: Network, cfg: TrainConfig, out: Path, log: list[dict[str, Any]], seconds: float) -> TrainResult:
    from safetensors.torch import save_file

    from ladarts.train.export import export_and_check

    model.eval()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    atomic_write(out / "model.safetensors", lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
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


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _progress(total: int, start: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=start, unit="epoch", dynamic_ncols=True)
