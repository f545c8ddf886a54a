"""Datasets shared by search and training: CIFAR-10 (local python batches), scikit-learn digits, synthetic, and a
local ImageNet-style folder (:mod:`ladarts.data.imagefolder`, for training).

Every in-memory dataset comes as float32 N×C×H×W tensors, already normalised, with int64 labels, split into ``train``
and a ``test`` part that search never sees. Augmentation runs on batches of tensors (no torchvision here). The folder
dataset is decoded image by image in loader workers instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from ladarts.data.imagefolder import FolderData, ImageFolder, load_imagefolder
from ladarts.errors import UserInputError

DATASETS = ("digits", "cifar10", "synthetic", "imagenet")
#: The reference DARTS normalisation for CIFAR-10.
CIFAR_MEAN = (0.49139968, 0.48215827, 0.44653124)
CIFAR_STD = (0.24703233, 0.24348505, 0.26158768)
CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FRACTION = 0.2
#: digits are upsampled from 8×8 to this size by default: 32 px lets the CIFAR network and its auxiliary head
#: (which needs an 8×8 map after two reductions) apply unchanged; pass input_size=16 for a 4× cheaper search.
DIGITS_DEFAULT_SIZE = 32


@dataclass
class ImageDataset:
    """A normalised image dataset with its train-time augmentation.

    ``pad`` is the random-crop padding in pixels (CIFAR: 4 at 32 px), ``flip`` whether horizontal flips are
    label-preserving (not for digits), ``cutout`` the recommended cutout length for training (0 = none), and
    ``pad_value`` the per-channel value of a black pixel after normalisation (what the reference pads with).
    """

    name: str
    train: TensorDataset
    test: TensorDataset
    num_classes: int
    in_channels: int
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pad: int = 4
    flip: bool = True
    cutout: int = 16
    meta: dict = field(default_factory=dict)

    @property
    def pad_value(self) -> torch.Tensor:
        return -torch.tensor(self.mean) / torch.tensor(self.std)

    def augment(self, x: torch.Tensor, cutout: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Random crop (zero-padded in pixel space), horizontal flip if ``self.flip``, then cutout of ``cutout``
        px on the normalised tensor: the reference train transform, per sample, on a batch."""
        return augment_batch(x, self.pad, self.flip, cutout, self.pad_value, generator)


def augment_batch(x: torch.Tensor, pad: int, flip: bool, cutout: int, pad_value: torch.Tensor,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    n, c, h, w = x.shape
    out = x
    if pad > 0:
        padded = pad_value.to(x).view(1, c, 1, 1).expand(n, c, h + 2 * pad, w + 2 * pad).clone()
        padded[:, :, pad:pad + h, pad:pad + w] = x
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
        rows = (dy.view(n, 1) + torch.arange(h).view(1, h))  # (n, h)
        cols = (dx.view(n, 1) + torch.arange(w).view(1, w))  # (n, w)
        idx_n = torch.arange(n).view(n, 1, 1)
        out = padded.permute(0, 2, 3, 1)[idx_n, rows.view(n, h, 1), cols.view(n, 1, w)].permute(0, 3, 1, 2)
    if flip:
        do = torch.rand(n, generator=generator) < 0.5
        out = torch.where(do.view(n, 1, 1, 1), out.flip(3), out)
    if cutout > 0:
        # Reference Cutout: a square of side ``cutout`` centred uniformly in the image, clipped at the border.
        cy = torch.randint(0, h, (n,), generator=generator).view(n, 1, 1)
        cx = torch.randint(0, w, (n,), generator=generator).view(n, 1, 1)
        ys = torch.arange(h).view(1, h, 1)
        xs = torch.arange(w).view(1, 1, w)
        half = cutout // 2
        inside = ((ys >= cy - half) & (ys < cy + half) & (xs >= cx - half) & (xs < cx + half))
        out = out * (~inside).unsqueeze(1).to(out.dtype)
    return out.contiguous()


def _stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    a, b = train_test_split(idx, test_size=fraction, random_state=seed, stratify=labels)
    return np.sort(a), np.sort(b)


def _tensor_ds(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> TensorDataset:
    return TensorDataset(torch.as_tensor(x, dtype=torch.float32).contiguous(), torch.as_tensor(y, dtype=torch.int64))


def _normalise(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    c = x.shape[1]
    return (x - torch.tensor(mean).view(1, c, 1, 1)) / torch.tensor(std).view(1, c, 1, 1)


def load_cifar10(data_dir: str | Path | None, input_size: int | None = None) -> ImageDataset:
    """CIFAR-10 from a local ``cifar-10-batches-py`` folder (or its parent). Train = the 5 training batches,
    test = the official ``test_batch``."""
    from ladarts.data.cifar_pickle import safe_load_batch

    if data_dir is None:
        raise UserInputError("cifar10 needs --data-dir: a folder holding the cifar-10-batches-py files "
                             "(nothing is downloaded)")
    root = Path(data_dir)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    missing = [f for f in (*CIFAR_FILES, "test_batch") if not (root / f).is_file()]
    if missing:
        raise UserInputError(f"{root}: not a cifar-10-batches-py folder (missing {', '.join(missing)})")

    def load(files: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        batches = [safe_load_batch(root / f) for f in files]
        data = np.concatenate([b["data"] for b in batches]).reshape(-1, 3, 32, 32)
        labels = np.concatenate([b["labels"] for b in batches])
        x = _normalise(torch.from_numpy(data.astype(np.float32) / 255.0), CIFAR_MEAN, CIFAR_STD)
        return _resize(x, input_size), torch.from_numpy(labels)

    xtr, ytr = load(CIFAR_FILES)
    xte, yte = load(("test_batch",))
    size = int(xtr.shape[-1])
    return ImageDataset("cifar10", _tensor_ds(xtr, ytr), _tensor_ds(xte, yte), 10, 3, size, CIFAR_MEAN, CIFAR_STD,
                   pad=max(1, round(4 * size / 32)), flip=True, cutout=round(16 * size / 32),
                   meta={"source": str(root), "test": "official test_batch"})


def _resize(x: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None or size == x.shape[-1]:
        return x
    if size < 8:
        raise UserInputError(f"input size must be at least 8 px, got {size}")
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def load_digits(seed: int = 0, input_size: int | None = None) -> ImageDataset:
    """scikit-learn's digits (1,797 grayscale 8×8 images, 10 classes), upsampled bilinearly to ``input_size``
    (default 32 px). Crop padding scales with the size (4 px at 32), no flips (a mirrored 2 is not a 2),
    cutout 8 px at 32 (a quarter of the side, as CIFAR's 16 of 32 would erase most of a thin digit)."""
    from sklearn.datasets import load_digits as sk_digits

    size = DIGITS_DEFAULT_SIZE if input_size is None else int(input_size)
    d = sk_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)
    y = d.target.astype(np.int64)
    tr, te = _stratified_split(y, TEST_FRACTION, seed)
    x = _resize(x, size)
    mean, std = (float(x[tr].mean()),), (float(x[tr].std()),)
    x = _normalise(x, mean, std)
    return ImageDataset("digits", _tensor_ds(x[tr], y[tr]), _tensor_ds(x[te], y[te]), 10, 1, size, mean, std,
                   pad=max(1, round(4 * size / 32)), flip=False, cutout=round(8 * size / 32),
                   meta={"test": f"stratified {TEST_FRACTION:.0%} split, seed {seed}", "upsampled_from": 8})


def load_synthetic(seed: int = 0, input_size: int | None = None, n: int = 240, num_classes: int = 4,
                   in_channels: int = 3) -> ImageDataset:
    """A tiny learnable dataset for tests: each class is a fixed random pattern plus noise."""
    size = 8 if input_size is None else int(input_size)
    g = torch.Generator().manual_seed(12345)  # the classes are the same for every seed; the split is seeded
    templates = torch.randn(num_classes, in_channels, size, size, generator=g)
    y = torch.arange(n) % num_classes
    x = templates[y] + 0.8 * torch.randn(n, in_channels, size, size, generator=g)
    tr, te = _stratified_split(y.numpy(), TEST_FRACTION, seed)
    mean = tuple(0.0 for _ in range(in_channels))
    std = tuple(1.0 for _ in range(in_channels))
    return ImageDataset("synthetic", _tensor_ds(x[tr], y[tr]), _tensor_ds(x[te], y[te]), num_classes, in_channels, size,
                   mean, std, pad=1, flip=False, cutout=0, meta={"test": f"stratified 20% split, seed {seed}"})


def load_dataset(name: str, data_dir: str | Path | None = None, seed: int = 0,
                 input_size: int | None = None) -> ImageDataset | FolderData:
    """Load a dataset by name. ``seed`` fixes the stratified test split (digits, synthetic); keep it at 0 so
    that every search and training run holds out the same test images. ``imagenet`` is a local folder
    (:func:`ladarts.data.imagefolder.load_imagefolder`), streamed rather than held in memory."""
    if name == "imagenet":
        return load_imagefolder(data_dir, input_size)
    if name == "digits":
        return load_digits(seed, input_size)
    if name == "cifar10":
        return load_cifar10(data_dir, input_size)
    if name == "synthetic":
        return load_synthetic(seed, input_size)
    raise UserInputError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def subset(ds: TensorDataset | ImageFolder, n: int | None, seed: int) -> TensorDataset | ImageFolder:
    """A stratified random subset of ``n`` samples (all of them when ``n`` is None or ≥ the size)."""
    y = torch.from_numpy(ds.labels) if isinstance(ds, ImageFolder) else ds.tensors[1]
    if n is None or n >= len(y):
        return ds
    if n < 2 * int(y.max()) + 2:
        raise UserInputError(f"--subset {n} is too small: need at least 2 images per class")
    keep, _ = _stratified_split(y.numpy(), 1 - n / len(y), seed)
    keep = keep[:n]
    if isinstance(ds, ImageFolder):
        return ds.subset(keep)
    x = ds.tensors[0]
    return _tensor_ds(x[keep], y[keep])


def split_search(ds: ImageDataset | TensorDataset, seed: int) -> tuple[TensorDataset, TensorDataset]:
    """The search's two halves of the training data, stratified and seeded: (w part, α part)."""
    train = ds.train if isinstance(ds, ImageDataset) else ds
    x, y = train.tensors
    a, b = _stratified_split(y.numpy(), 0.5, seed)
    return _tensor_ds(x[a], y[a]), _tensor_ds(x[b], y[b])
