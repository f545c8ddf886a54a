"""The ImageNet-style folder reader and the ImageNet protocol, on a tiny folder of generated JPEGs."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import assert_one_line_error
from ladarts.data.imagefolder import IMAGENET_MEAN, IMAGENET_STD, folder_batches, load_imagefolder
from ladarts.errors import LadartsError, UserInputError
from ladarts.train import TrainConfig, run_train
from ladarts.train.protocol import lr_factor
from ladarts.train.trainer import make_scheduler

CLASSES = ("cat", "dog", "fox")
COLOURS = {"cat": (200, 30, 30), "dog": (30, 200, 30), "fox": (30, 30, 200)}


def make_folder(root, per_class=4, val_per_class=2, size=40):
    """3 classes × 4 training and 2 validation JPEGs of 40×40 px: a class colour plus noise."""
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("val", val_per_class)):
        for c in CLASSES:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                px = np.clip(np.array(COLOURS[c]) + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(px).save(root / split / c / f"{i}.jpg", quality=95)
    return root


def test_reads_classes_decodes_and_normalises(tmp_path):
    root = make_folder(tmp_path / "imgs")
    Image.new("RGB", (50, 30), (120, 60, 240)).save(root / "val" / "dog" / "flat.jpg", quality=100)
    data = load_imagefolder(root, input_size=32)
    assert data.train.classes == list(CLASSES) and data.num_classes == 3
    assert len(data.train) == 12 and len(data.test) == 7
    assert data.train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    x, label = data.test[[i for i, (p, _) in enumerate(data.test.samples) if p.name == "flat.jpg"][0]]
    assert x.shape == (3, 32, 32) and label == 1
    want = (torch.tensor([120, 60, 240]) / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(x.mean(dim=(1, 2)), want, atol=0.05)  # a flat colour survives JPEG, resize and crop


def test_training_samples_depend_on_seed_epoch_and_index_only(tmp_path):
    data = load_imagefolder(make_folder(tmp_path / "imgs"), input_size=24)
    a, b = data.train[(3, 1)][0], data.train[(3, 1)][0]
    assert torch.equal(a, b) and a.shape == (3, 24, 24)
    assert not torch.equal(a, data.train[(3, 2)][0])  # another epoch, another crop and jitter
    batches = [[0, 5, 7], [11, 2]]
    serial = [x for x, _ in folder_batches(data.train, batches, 4, workers=0, pin_memory=False)]
    parallel = [x for x, _ in folder_batches(data.train, batches, 4, workers=2, pin_memory=False)]
    assert all(torch.equal(s, p) for s, p in zip(serial, parallel))
    assert [y.tolist() for _, y in folder_batches(data.train, batches, 4, 0, False)] == [[0, 1, 1], [2, 0]]


def test_bad_folders_are_refused(tmp_path, run_cli):
    with pytest.raises(UserInputError, match="train and val"):
        load_imagefolder(tmp_path)
    root = make_folder(tmp_path / "imgs")
    (root / "val" / "wolf").mkdir()
    with pytest.raises(UserInputError, match="wolf"):
        load_imagefolder(root)
    (root / "val" / "wolf").rmdir()
    (root / "train" / "cat" / "0.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(LadartsError, match="0.jpg: cannot decode"):
        load_imagefolder(root).train[0]
    assert_one_line_error(run_cli("train", "DARTS_V2", "--dataset", "imagenet", "--out", str(tmp_path / "r")))
    from ladarts.search import SearchConfig, run_search

    with pytest.raises(UserInputError, match="in memory"):
        run_search(SearchConfig(out=str(tmp_path / "s"), dataset="imagenet", data_dir=str(root), threads=1))


def test_the_imagenet_protocols_are_the_references():
    pc = TrainConfig(genotype={}, out="x", dataset="imagenet").resolved()
    assert (pc.channels, pc.cells, pc.input_size, pc.batch_size, pc.lr, pc.weight_decay, pc.epochs) == \
        (48, 14, 224, 1024, 0.5, 3e-5, 250)
    assert (pc.label_smoothing, pc.auxiliary_weight, pc.grad_clip, pc.lr_schedule, pc.warmup_epochs) == \
        (0.1, 0.4, 5.0, "linear", 5)
    darts = TrainConfig(genotype={}, out="x", dataset="imagenet", protocol="imagenet-darts").resolved()
    assert (darts.batch_size, darts.lr, darts.lr_schedule, darts.warmup_epochs) == (128, 0.1, "step", 0)
    # PC-DARTS: lr·(e+1)/5 for 5 epochs, then lr·(245−e)/245, then a gentler slope over the last 5 epochs
    assert [lr_factor("linear", e, 250, 5) for e in range(5)] == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert math.isclose(lr_factor("linear", 5, 250, 5), 240 / 245)
    assert math.isclose(lr_factor("linear", 249, 250, 5), 1 / (245 * 5))
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    sched = make_scheduler(darts, opt)
    lrs = []
    for _ in range(3):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert all(math.isclose(a, 0.1 * 0.97 ** e) for e, a in enumerate(lrs))
    with pytest.raises(UserInputError, match="warmup"):
        TrainConfig(genotype={}, out="x", dataset="imagenet", epochs=3).resolved()  # 5 warm-up epochs of 3


def test_train_on_the_folder(tmp_path):
    from ladarts.space import ZOO

    root = make_folder(tmp_path / "imgs")
    cfg = TrainConfig(genotype=ZOO["DARTS_V2"].to_dict(), out=str(tmp_path / "run"), dataset="imagenet",
                      data_dir=str(root), input_size=32, channels=8, cells=3, batch_size=4, epochs=2,
                      warmup_epochs=0, lr=0.05, auxiliary_weight=0.0, workers=2, threads=1)
    res = run_train(cfg, progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [0, 1] and 0.0 <= res.test_acc <= 1.0
    assert log[0]["lr"] == 0.05 and log[1]["lr"] < 0.05  # PC-DARTS's linear decay
    conf = json.loads((tmp_path / "run" / "config.json").read_text())
    assert conf["network"]["preset"] == "imagenet" and conf["label_smoothing"] == 0.1
    assert conf["dataset_meta"]["classes"] == 3 and res.report["onnx"]["max_rel_error"] < 1e-4
