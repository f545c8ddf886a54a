"""A local ImageNet-style folder, decoded with Pillow: ``<root>/train/<class>/*.jpg`` and ``<root>/val/<class>/*.jpg``.

The layout the references read (DARTS and PC-DARTS ``train_imagenet.py``: ``<data>/train``, ``<data>/val``, one
subfolder per class, torchvision's ImageFolder). Classes are the sorted subfolder names of ``train``. The transforms
are the references' (DARTS cnn/train_imagenet.py:113-131, as published): for training RandomResizedCrop(size) (area
8–100%, aspect 3/4–4/3), a horizontal flip, ColorJitter(brightness 0.4, contrast 0.4, saturation 0.4, hue 0.2); for
evaluation the short side resized to size·256/224 and the centre cropped; both normalised with the ImageNet mean and
std. A training sample's randomness comes from (seed, epoch, index) alone, so an epoch is the same whatever the
number of loader workers or processes, and a resumed run replays it. Nothing is downloaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ladarts.errors import LadartsError, UserInputError

#: The reference normalisation (DARTS cnn/train_imagenet.py:112, as published).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
JITTER = (0.4, 0.4, 0.4, 0.2)  # brightness, contrast, saturation, hue


class ImageFolder(Dataset):
    """One split of the folder. ``dataset[(index, epoch)]`` is the augmented training sample of that epoch (a plain
    index means epoch 0); in evaluation (``train=False``) the epoch is ignored."""

    def __init__(self, root: str | Path, size: int, train: bool, classes: Sequence[str] | None = None, seed: int = 0):
        self.root, self.size, self.train, self.seed = Path(root), int(size), train, int(seed)
        if not self.root.is_dir():
            raise UserInputError(f"{self.root}: no such folder (an ImageNet-style folder has train/ and val/, "
                                 "one subfolder per class)")
        found = sorted(d.name for d in self.root.iterdir() if d.is_dir())
        self.classes = list(classes) if classes is not None else found
        if not self.classes:
            raise UserInputError(f"{self.root}: no class subfolders")
        unknown = sorted(set(found) - set(self.classes))
        if unknown:
            raise UserInputError(f"{self.root}: class folder(s) {', '.join(unknown[:3])} are not in the training "
                                 "split's classes")
        self.samples = [(p, k) for k, c in enumerate(self.classes) if (self.root / c).is_dir()
                        for p in sorted((self.root / c).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
        if not self.samples:
            raise UserInputError(f"{self.root}: no JPEG or PNG images in its class folders")
        self._mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    @property
    def labels(self) -> np.ndarray:
        return np.array([k for _, k in self.samples], dtype=np.int64)

    def subset(self, indices: Sequence[int]) -> "ImageFolder":
        out = object.__new__(ImageFolder)
        out.__dict__.update(self.__dict__)
        out.samples = [self.samples[int(i)] for i in indices]
        return out

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        path, label = self.samples[index]
        img = _open(path)
        if self.train:
            rng = np.random.default_rng([self.seed, epoch, index])
            img = random_resized_crop(img, self.size, rng)
            if rng.random() < 0.5:
                img = img.transpose(_pil().Image.Transpose.FLIP_LEFT_RIGHT)
            img = color_jitter(img, rng)
        else:
            img = resize_center_crop(img, self.size)
        x = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)
        return (x - self._mean) / self._std, label


def _pil():  # Pillow on first use: importing ladarts.data must not need it
    import PIL.Image
    import PIL.ImageEnhance

    return PIL


def _open(path: Path):
    PIL = _pil()
    try:
        with PIL.Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, PIL.Image.DecompressionBombError) as e:
        raise LadartsError(f"{path}: cannot decode this image ({e.__class__.__name__})") from None


def random_resized_crop(img, size: int, rng: np.random.Generator, scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)):
    """A random box of ``scale`` of the area and ``ratio`` aspect, resized to size×size (torchvision's algorithm:
    ten tries, then the largest centred box within the ratio range)."""
    w, h = img.size
    area = w * h
    box = None
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            box = (left, top, left + cw, top + ch)
            break
    if box is None:
        in_ratio = w / h
        cw, ch = (w, int(round(w / ratio[0]))) if in_ratio < ratio[0] else (
            (int(round(h * ratio[1])), h) if in_ratio > ratio[1] else (w, h))
        cw, ch = min(cw, w), min(ch, h)
        left, top = (w - cw) // 2, (h - ch) // 2
        box = (left, top, left + cw, top + ch)
    return img.resize((size, size), _pil().Image.Resampling.BILINEAR, box=box)


def resize_center_crop(img, size: int):
    """The evaluation transform: short side to round(size·256/224), then the centred size×size crop."""
    short = int(round(size * 256 / 224))
    w, h = img.size
    nw, nh = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    img = img.resize((nw, nh), _pil().Image.Resampling.BILINEAR)
    left, top = int(round((nw - size) / 2)), int(round((nh - size) / 2))
    return img.crop((left, top, left + size, top + size))


def color_jitter(img, rng: np.random.Generator, strength: tuple[float, float, float, float] = JITTER):
    """Brightness, contrast and saturation factors in [1−s, 1+s] and a hue shift in [−h, h] turns, applied in a
    random order (as torchvision's ColorJitter)."""
    PIL = _pil()
    b, c, s, hue = strength
    ops = [
        lambda im: PIL.ImageEnhance.Brightness(im).enhance(rng.uniform(1 - b, 1 + b)),
        lambda im: PIL.ImageEnhance.Contrast(im).enhance(rng.uniform(1 - c, 1 + c)),
        lambda im: PIL.ImageEnhance.Color(im).enhance(rng.uniform(1 - s, 1 + s)),
        lambda im: _shift_hue(im, rng.uniform(-hue, hue)),
    ]
    for i in rng.permutation(len(ops)):
        img = ops[i](img)
    return img


def _shift_hue(img, turns: float):
    hsv = np.array(img.convert("HSV"), dtype=np.uint8)
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(round(turns * 255))) % 256
    return _pil().Image.fromarray(hsv, "HSV").convert("RGB")


@dataclass
class FolderData:
    """A folder dataset's two splits (``train``: augmented; ``test``: the ``val`` folder, centre crops)."""

    name: str
    train: ImageFolder
    test: ImageFolder
    num_classes: int
    in_channels: int = 3
    input_size: int = 224
    meta: dict = field(default_factory=dict)


def load_imagefolder(data_dir: str | Path | None, input_size: int | None = None, seed: int = 0) -> FolderData:
    """``data_dir`` holding ``train/`` and ``val/``. ``seed`` seeds the training augmentation."""
    if data_dir is None:
        raise UserInputError("imagenet needs --data-dir: a folder with train/ and val/, one subfolder per class "
                             "(nothing is downloaded)")
    root = Path(data_dir)
    missing = [s for s in ("train", "val") if not (root / s).is_dir()]
    if missing:
        raise UserInputError(f"{root}: an ImageNet-style folder needs {' and '.join(missing)}/ (one subfolder per "
                             "class)")
    size = 224 if input_size is None else int(input_size)
    train = ImageFolder(root / "train", size, train=True, seed=seed)
    test = ImageFolder(root / "val", size, train=False, classes=train.classes)
    return FolderData("imagenet", train, test, len(train.classes), 3, size,
                      meta={"source": str(root), "classes": len(train.classes), "train_images": len(train),
                            "val_images": len(test), "test": "the val/ folder"})


def folder_batches(dataset: ImageFolder, batches: Sequence[Sequence[int]], epoch: int, workers: int,
                   pin_memory: bool) -> DataLoader:
    """The given batches of indices, decoded and augmented for ``epoch`` by ``workers`` processes, in order."""
    keys = [[(int(i), epoch) for i in b] for b in batches]
    return DataLoader(dataset, batch_sampler=keys, num_workers=workers, pin_memory=pin_memory,
                      persistent_workers=False)
