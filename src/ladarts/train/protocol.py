"""The DARTS evaluation protocol: train a discrete genotype from scratch.

CIFAR-10 defaults are the reference ``train.py``'s: C=36, 20 cells, batch 96, SGD lr 0.025 with cosine decay
(to 0), momentum 0.9, weight decay 3e-4, 600 epochs, gradient clip 5, cutout 16, auxiliary head at weight 0.4,
drop path 0.2 ramped linearly over the epochs.

Digits (8×8 images, 1,437 training images after the fixed 20% test split) gets its own: upsampled to 16 px, a
C=16 × 8-cell network, batch 64, 30 epochs, cutout 4, drop path 0.1, and no auxiliary head (the reference head
needs a 32 px input). ImageNet (a local folder) takes the ImageNet-mobile protocol of PC-DARTS, or of DARTS with
``protocol="imagenet-darts"``: see :data:`PROTOCOLS`. Every field can be overridden.

``batch_size`` is the batch of one step over all processes (under torchrun each takes an equal part), so a protocol
means the same on one GPU or eight; the learning rate is never rescaled behind the user's back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ladarts import limits
from ladarts.errors import UserInputError
from ladarts.limits import check_float, check_int, check_run_fields

#: The optimiser of the CIFAR protocol (DARTS train.py), kept by every dataset without its own.
_CIFAR_OPTIM = dict(lr=0.025, weight_decay=3e-4, grad_clip=5.0, label_smoothing=0.0, lr_schedule="cosine",
                    warmup_epochs=0)

#: The ImageNet (mobile setting) protocol as published in PC-DARTS train_imagenet.py (github.com/yuhuixu1993/PC-DARTS
#: at b74702f; its README trains with --auxiliary), for its batch of 1024 on 8 GPUs. DARTS cnn/train_imagenet.py
#: (github.com/quark0/darts at f276dd3) has the same values where not noted.
IMAGENET_PC_DARTS: dict[str, Any] = dict(
    channels=48,  # --init_channels, PC-DARTS line 30 (DARTS line 31)
    cells=14,  # --layers, line 31 (DARTS 32)
    input_size=224,  # RandomResizedCrop(224) / CenterCrop(224) (DARTS lines 116, 130)
    batch_size=1024,  # --batch_size, line 24 (DARTS: 128, line 24)
    lr=0.5,  # --learning_rate, line 25 (DARTS: 0.1, line 25)
    lr_schedule="linear",  # --lr_scheduler linear, line 40; adjust_lr, lines 186-191 (DARTS: step, see below)
    warmup_epochs=5,  # lines 156-158: lr·(epoch+1)/5 in the first 5 epochs when the batch is over 256 (DARTS: none)
    weight_decay=3e-5,  # --weight_decay, line 27 (DARTS 27); momentum 0.9, line 26
    epochs=250,  # --epochs, line 29 (DARTS 30)
    label_smoothing=0.1,  # --label_smooth, line 39 (DARTS 40), for the auxiliary loss too
    auxiliary_weight=0.4,  # --auxiliary_weight, line 33 (DARTS 34)
    grad_clip=5.0,  # --grad_clip, line 38 (DARTS 39)
    drop_path=0.0,  # --drop_path_prob, line 34 (DARTS 35)
    cutout=0,  # no cutout on ImageNet
)
#: DARTS cnn/train_imagenet.py as published (github.com/quark0/darts at f276dd3): batch 128 on one GPU, lr 0.1
#: (lines 24-25) multiplied by 0.97 after every epoch (StepLR, line 141, gamma 0.97 and period 1, lines 41-42).
IMAGENET_DARTS: dict[str, Any] = {**IMAGENET_PC_DARTS, "batch_size": 128, "lr": 0.1, "lr_schedule": "step",
                                  "warmup_epochs": 0}
#: Named protocols a run can pick instead of its dataset's defaults.
PROTOCOLS: dict[str, dict[str, Any]] = {"imagenet-pc-darts": IMAGENET_PC_DARTS, "imagenet-darts": IMAGENET_DARTS}
LR_SCHEDULES = ("cosine", "step", "linear")
#: The step schedule's factor per epoch (DARTS cnn/train_imagenet.py line 41).
STEP_GAMMA = 0.97

DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "cifar10": dict(channels=36, cells=20, batch_size=96, epochs=600, cutout=16, auxiliary_weight=0.4,
                    drop_path=0.2, input_size=32, **_CIFAR_OPTIM),
    "digits": dict(channels=16, cells=8, batch_size=64, epochs=30, cutout=4, auxiliary_weight=0.0,
                   drop_path=0.1, input_size=16, **_CIFAR_OPTIM),
    "synthetic": dict(channels=8, cells=3, batch_size=32, epochs=6, cutout=0, auxiliary_weight=0.0,
                      drop_path=0.0, input_size=8, **_CIFAR_OPTIM),
    "imagenet": IMAGENET_PC_DARTS,
}


@dataclass
class TrainConfig:
    """Everything a training run needs; ``None`` fields take the dataset's default (see DATASET_DEFAULTS)."""

    genotype: dict  # Genotype.to_dict()
    out: str
    genotype_name: str = "custom"
    dataset: str = "digits"
    data_dir: str | None = None
    seed: int = 0
    channels: int | None = None
    cells: int | None = None
    input_size: int | None = None
    batch_size: int | None = None
    epochs: int | None = None
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    grad_clip: float | None = None
    cutout: int | None = None
    auxiliary_weight: float | None = None
    drop_path: float | None = None
    label_smoothing: float | None = None
    lr_schedule: str | None = None
    warmup_epochs: int | None = None
    protocol: str | None = None
    threads: int | None = None
    subset: int | None = None
    device: str = "cpu"
    amp: str | None = None
    sync_bn: bool = False
    workers: int | None = None

    def resolved(self) -> "TrainConfig":
        from ladarts.runs import check_precision  # here, not at the top: the CLI's help must not load PyTorch

        if self.dataset not in DATASET_DEFAULTS:
            raise UserInputError(f"unknown dataset {self.dataset!r}; choose one of {', '.join(DATASET_DEFAULTS)}")
        if self.protocol is not None and self.protocol not in PROTOCOLS:
            raise UserInputError(f"unknown protocol {self.protocol!r}; choose one of {', '.join(PROTOCOLS)}")
        defaults = PROTOCOLS[self.protocol] if self.protocol is not None else DATASET_DEFAULTS[self.dataset]
        cfg = replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})
        check_run_fields(cfg)
        check_int("--cutout", cfg.cutout, (0, limits.INPUT_SIZE[1]))
        check_float("--lr", cfg.lr, hi=10.0, lo_open=True)
        check_float("momentum", cfg.momentum, hi=1.0)
        check_float("weight_decay", cfg.weight_decay)
        check_float("grad_clip", cfg.grad_clip, lo_open=True)
        check_float("--auxiliary-weight", cfg.auxiliary_weight)
        check_float("--drop-path", cfg.drop_path, hi=0.99)
        check_float("--label-smoothing", cfg.label_smoothing, hi=1.0)
        check_int("--warmup-epochs", cfg.warmup_epochs, (0, cfg.epochs))
        check_int("--workers", cfg.workers, (0, 256), optional=True)
        if cfg.lr_schedule not in LR_SCHEDULES:
            raise UserInputError(f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, got {cfg.lr_schedule!r}")
        if cfg.warmup_epochs and cfg.lr_schedule == "cosine":
            raise UserInputError("--warmup-epochs works with --lr-schedule linear or step (the references warm up "
                                 "with the linear schedule only)")
        check_precision(cfg.amp, cfg.sync_bn, cfg.device)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def lr_factor(schedule: str, epoch: int, epochs: int, warmup_epochs: int = 0) -> float:
    """The learning rate of ``epoch`` over the initial one, for the step and linear schedules (cosine is torch's
    CosineAnnealingLR). ``linear`` is PC-DARTS's adjust_lr (train_imagenet.py lines 186-191): down to 0, with a
    gentler slope over the last 5 epochs; the warm-up (lines 156-158) replaces the first epochs' rate by
    (epoch+1)/warmup of the initial one."""
    if epoch < warmup_epochs:
        return (epoch + 1) / warmup_epochs
    if schedule == "step":
        return STEP_GAMMA ** epoch
    if schedule == "linear":
        if epochs <= 10:  # too short for the reference's gentler last 5 epochs: a plain line to 0
            return (epochs - epoch) / epochs
        if epochs - epoch > 5:
            return (epochs - 5 - epoch) / (epochs - 5)
        return (epochs - epoch) / ((epochs - 5) * 5)
    raise ValueError(f"no closed form for the {schedule!r} schedule")


def defaults_help() -> str:
    """The per-dataset defaults, for the CLI's help text."""
    return "; ".join(
        f"{name}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in d.items() if k not in _CIFAR_OPTIM)
        for name, d in DATASET_DEFAULTS.items() if name not in ("synthetic", "imagenet")
    )
