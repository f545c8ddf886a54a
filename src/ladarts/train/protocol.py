"""The DARTS evaluation protocol: train a discrete genotype from scratch.

CIFAR-10 defaults are the reference ``train.py``'s: C=36, 20 cells, batch 96, SGD lr 0.025 with cosine decay
(to 0), momentum 0.9, weight decay 3e-4, 600 epochs, gradient clip 5, cutout 16, auxiliary head at weight 0.4,
drop path 0.2 ramped linearly over the epochs.

Digits (8×8 images, 1,437 training images after the fixed 20% test split) gets its own: upsampled to 16 px, a
C=16 × 8-cell network, batch 64, 30 epochs, cutout 4, drop path 0.1, and no auxiliary head (the reference head
needs a 32 px input). Every field can be overridden.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ladarts.errors import UserInputError

DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "cifar10": dict(channels=36, cells=20, batch_size=96, epochs=600, cutout=16, auxiliary_weight=0.4,
                    drop_path=0.2, input_size=32),
    "digits": dict(channels=16, cells=8, batch_size=64, epochs=30, cutout=4, auxiliary_weight=0.0,
                   drop_path=0.1, input_size=16),
    "synthetic": dict(channels=8, cells=3, batch_size=32, epochs=6, cutout=0, auxiliary_weight=0.0,
                      drop_path=0.0, input_size=8),
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
    lr: float = 0.025
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    cutout: int | None = None
    auxiliary_weight: float | None = None
    drop_path: float | None = None
    threads: int | None = None
    subset: int | None = None

    def resolved(self) -> "TrainConfig":
        if self.dataset not in DATASET_DEFAULTS:
            raise UserInputError(f"unknown dataset {self.dataset!r}; choose one of {', '.join(DATASET_DEFAULTS)}")
        defaults = DATASET_DEFAULTS[self.dataset]
        cfg = replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})
        for name in ("channels", "cells", "batch_size", "epochs", "input_size"):
            if getattr(cfg, name) < 1:
                raise UserInputError(f"--{name.replace('_', '-')} must be at least 1")
        if cfg.batch_size < 2:
            raise UserInputError("--batch-size must be at least 2 (batch norm in training)")
        if cfg.lr <= 0 or not 0 <= cfg.drop_path < 1 or cfg.auxiliary_weight < 0 or cfg.cutout < 0:
            raise UserInputError("need lr > 0, 0 <= drop path < 1, auxiliary weight >= 0, cutout >= 0")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def defaults_help() -> str:
    """The per-dataset defaults, for the CLI's help text."""
    return "; ".join(
        f"{name}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in d.items())
        for name, d in DATASET_DEFAULTS.items() if name != "synthetic"
    )
