"""Discrete networks built from a genotype: the CIFAR and ImageNet-mobile networks of the DARTS evaluation.

Module structure follows the reference code so that parameter counts match it exactly. Deviations, each
parameter-free: the ImageNet global pool is adaptive (identical to the reference's 7×7 pool at 224 px, and
it lets the input size vary), and ``forward`` returns logits only; ``forward_train`` also returns the
auxiliary logits, so that a deployed or exported network has a single output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from ladarts.errors import UserInputError
from ladarts.space.genotype import Genotype
from ladarts.space.geometry import edge_stride, reduction_indices
from ladarts.space.primitives import FactorizedReduce, Identity, ReLUConvBN, build_op


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Drop a whole sample's path with probability ``drop_prob`` and rescale the survivors (reference rule)."""
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class Cell(nn.Module):
    def __init__(self, genotype: Genotype, c_prev_prev: int, c_prev: int, c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = FactorizedReduce(c_prev_prev, c) if reduction_prev else ReLUConvBN(c_prev_prev, c, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_prev, c, 1, 1, 0)
        pairs, concat = genotype.cell(reduction)
        self._indices = [i for _, i in pairs]
        self._concat = list(concat)
        self.multiplier = len(concat)
        self._ops = nn.ModuleList(build_op(op, c, edge_stride(reduction, i)) for op, i in pairs)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for k in range(len(self._ops) // 2):
            hs = []
            for j in (2 * k, 2 * k + 1):
                op = self._ops[j]
                h = op(states[self._indices[j]])
                if self.training and drop_prob > 0.0 and not isinstance(op, Identity):
                    h = drop_path(h, drop_prob)
                hs.append(h)
            states.append(hs[0] + hs[1])
        return torch.cat([states[i] for i in self._concat], dim=1)


class AuxiliaryHead(nn.Module):
    """The reference auxiliary heads: CIFAR (pool 5/3, with BN after the 2×2 conv) and ImageNet (pool 5/2, none)."""

    def __init__(self, c: int, num_classes: int, imagenet: bool):
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReLU(inplace=True),
            nn.AvgPool2d(5, stride=2 if imagenet else 3, padding=0, count_include_pad=False),
            nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
        ]
        if not imagenet:  # the reference ImageNet head omits this BN ("due to a typo"); kept for fidelity
            layers.append(nn.BatchNorm2d(768))
        layers.append(nn.ReLU(inplace=True))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


@dataclass(frozen=True)
class NetworkConfig:
    """The discrete network a genotype is deployed in. ``preset`` picks the stem and the defaults."""

    preset: str = "cifar"
    channels: int = 36
    cells: int = 20
    classes: int = 10
    in_channels: int = 3
    input_size: int = 32
    auxiliary: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, NetworkConfig] = {
    "cifar": NetworkConfig("cifar", channels=36, cells=20, classes=10, in_channels=3, input_size=32),
    "imagenet": NetworkConfig("imagenet", channels=48, cells=14, classes=1000, in_channels=3, input_size=224),
}


INPUT_STEP = {"cifar": 4, "imagenet": 32}


def network_config(preset: str = "cifar", **overrides: Any) -> NetworkConfig:
    """A preset with some fields overridden (``None`` values are ignored, so CLI flags pass straight through)."""
    if preset not in PRESETS:
        raise UserInputError(f"unknown network {preset!r}; choose one of {', '.join(PRESETS)}")
    cfg = replace(PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})
    for name in ("channels", "cells", "classes", "in_channels", "input_size"):
        if getattr(cfg, name) < 1:
            raise UserInputError(f"network {name} must be positive, got {getattr(cfg, name)}")
    if cfg.cells < 3:
        raise UserInputError(f"network needs at least 3 cells (two are reduction cells), got {cfg.cells}")
    if cfg.channels % 2:
        raise UserInputError(f"network channels must be even (FactorizedReduce halves them), got {cfg.channels}")
    # FactorizedReduce needs an even map at each halving: the CIFAR net halves twice, the ImageNet net five times.
    step = INPUT_STEP[cfg.preset]
    if cfg.input_size % step or cfg.input_size < step:
        raise UserInputError(f"the {cfg.preset} network takes input sizes divisible by {step} (it halves the map "
                             f"{step.bit_length() - 1} times), got {cfg.input_size} px")
    return cfg


class Network(nn.Module):
    """A stack of cells from one genotype, with the CIFAR or the ImageNet-mobile stem."""

    def __init__(self, genotype: Genotype, config: NetworkConfig):
        super().__init__()
        self.genotype = genotype
        self.config = config
        self.drop_path_prob = 0.0
        c, imagenet = config.channels, config.preset == "imagenet"
        if imagenet:
            self.stem0 = nn.Sequential(
                nn.Conv2d(config.in_channels, c // 2, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c // 2),
                nn.ReLU(inplace=True),
                nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c),
            )
            self.stem1 = nn.Sequential(
                nn.ReLU(inplace=True),
                nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c),
            )
            c_prev_prev, c_prev, c_curr, reduction_prev = c, c, c, True  # first cell sees the reduced stem0 output
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(config.in_channels, 3 * c, 3, padding=1, bias=False), nn.BatchNorm2d(3 * c)
            )
            c_prev_prev, c_prev, c_curr, reduction_prev = 3 * c, 3 * c, c, False
        reductions = reduction_indices(config.cells)
        self._aux_after = reductions[1]
        self.cells = nn.ModuleList()
        c_aux = c_prev
        for i in range(config.cells):
            reduction = i in reductions
            if reduction:
                c_curr *= 2
            cell = Cell(genotype, c_prev_prev, c_prev, c_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, cell.multiplier * c_curr
            if i == self._aux_after:
                c_aux = c_prev
        if config.auxiliary:
            self._check_aux_input()
            self.auxiliary_head = AuxiliaryHead(c_aux, config.classes, imagenet)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, config.classes)

    def _check_aux_input(self) -> None:
        size = self.config.input_size
        size = (size + 7) // 8 if self.config.preset == "imagenet" else size  # three stride-2 stem convs
        for _ in range(2):
            size = (size + 1) // 2
        k, s = (5, 2) if self.config.preset == "imagenet" else (5, 3)
        if size < k or (size - k) // s + 1 != 2:
            preset_px = PRESETS[self.config.preset].input_size
            raise UserInputError(
                f"the auxiliary head must pool the map after the second reduction to 2×2, but a "
                f"{self.config.input_size} px input gives a {size}×{size} map; use {preset_px} px or no auxiliary head"
            )

    def _stem(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.preset == "imagenet":
            s0 = self.stem0(x)
            return s0, self.stem1(s0)
        s = self.stem(x)
        return s, s

    def forward_train(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits and, in training with the auxiliary head on, the auxiliary logits (else None)."""
        aux = None
        s0, s1 = self._stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self._aux_after and self.config.auxiliary and self.training:
                aux = self.auxiliary_head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        return logits, aux

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_train(x)[0]


def build_network(genotype: Genotype, config: NetworkConfig | None = None, **overrides: Any) -> Network:
    """Build the discrete network for ``genotype`` (default: the CIFAR network, C=36 × 20 cells)."""
    if config is None:
        config = network_config(overrides.pop("preset", "cifar"), **overrides)
    elif overrides:
        config = replace(config, **overrides)
    return Network(genotype, config)


def count_params(model: nn.Module) -> int:
    """Trainable parameters excluding the auxiliary head, as the reference ``count_parameters_in_MB`` counts."""
    return sum(p.numel() for name, p in model.named_parameters() if "auxiliary" not in name)


def count_macs(model: nn.Module, input_size: int | None = None, in_channels: int | None = None) -> int:
    """Multiply-adds at batch 1 in eval mode: half the FLOPs that ``torch.utils.flop_counter`` reports."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg: NetworkConfig = getattr(model, "config", NetworkConfig())
    size = input_size or cfg.input_size
    x = torch.zeros(1, in_channels or cfg.in_channels, size, size)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


__all__ = [
    "Network", "NetworkConfig", "PRESETS", "network_config", "build_network", "count_params", "count_macs",
    "drop_path", "reduction_indices",
]
