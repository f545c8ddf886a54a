import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import assert_one_line_error
from ladarts.data import CIFAR_MEAN, CIFAR_STD, load_dataset, split_search, subset
from ladarts.data.cifar_pickle import safe_load_batch
from ladarts.errors import UserInputError


def test_digits_fixed_stratified_test_split():
    ds = load_dataset("digits")
    x, y = ds.train.tensors
    xt, yt = ds.test.tensors
    assert (len(y), len(yt)) == (1437, 360)
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape[1:] == (1, 32, 32)
    assert ds.num_classes == 10 and ds.in_channels == 1 and ds.input_size == 32
    # stratified: every class holds out 20% ± one image
    counts_all = torch.bincount(torch.cat([y, yt]), minlength=10)
    assert (torch.bincount(yt, minlength=10) - 0.2 * counts_all).abs().max() <= 1
    # normalised on the training part; fixed: a second load gives the same split
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3
    again = load_dataset("digits")
    assert torch.equal(again.test.tensors[0], xt)
    assert not torch.equal(load_dataset("digits", seed=1).test.tensors[1], yt)
    assert load_dataset("digits", input_size=16).train.tensors[0].shape[1:] == (1, 16, 16)


def test_split_search_halves_are_disjoint_stratified_and_seeded():
    ds = load_dataset("digits", input_size=8)
    w, a = split_search(ds, seed=0)
    assert abs(len(w.tensors[1]) - len(a.tensors[1])) <= 1
    assert len(w.tensors[1]) + len(a.tensors[1]) == len(ds.train.tensors[1])
    diff = torch.bincount(w.tensors[1], minlength=10) - torch.bincount(a.tensors[1], minlength=10)
    assert diff.abs().max() <= 1
    # disjoint: no training image lands in both halves (compare flattened rows)
    rows_w = {tuple(r.tolist()) for r in w.tensors[0].flatten(1)}
    rows_a = {tuple(r.tolist()) for r in a.tensors[0].flatten(1)}
    rows_tr = [tuple(r.tolist()) for r in ds.train.tensors[0].flatten(1)]
    assert len(rows_w & rows_a) <= len(rows_tr) - len(set(rows_tr))  # only true duplicates in the data itself
    w2, _ = split_search(ds, seed=0)
    w3, _ = split_search(ds, seed=1)
    assert torch.equal(w.tensors[0], w2.tensors[0]) and not torch.equal(w.tensors[0], w3.tensors[0])
    small = subset(ds.train, 100, seed=0)
    assert len(small.tensors[1]) == 100 and torch.bincount(small.tensors[1]).min() >= 9


def test_augment_is_reference_crop_flip_cutout():
    ds = load_dataset("synthetic", input_size=8)
    ds.pad, ds.flip = 2, False
    x = torch.randn(16, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    out = ds.augment(x, generator=g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))  # synthetic: mean 0, std 1 → pad value 0
    g = torch.Generator().manual_seed(0)
    dy = torch.randint(0, 5, (16,), generator=g)
    dx = torch.randint(0, 5, (16,), generator=g)
    for i in range(16):
        assert torch.equal(out[i], padded[i, :, dy[i]:dy[i] + 8, dx[i]:dx[i] + 8])
    ds.pad, ds.flip = 0, True
    flipped = ds.augment(x, generator=torch.Generator().manual_seed(1))
    n_flipped = sum(torch.equal(flipped[i], x[i].flip(2)) for i in range(16))
    n_same = sum(torch.equal(flipped[i], x[i]) for i in range(16))
    assert n_flipped + n_same == 16 and 0 < n_flipped < 16
    ds.flip = False
    cut = ds.augment(torch.ones(8, 3, 8, 8), cutout=4, generator=torch.Generator().manual_seed(2))
    zeros = (cut == 0).all(1).sum((1, 2))
    assert zeros.max() <= 16 and zeros.min() >= 4  # a 4×4 square, clipped at the border at worst to 2×2


def test_digits_pad_value_is_a_black_pixel():
    ds = load_dataset("digits")
    assert not ds.flip
    out = ds.augment(torch.full((4, 1, 32, 32), 100.0), generator=torch.Generator().manual_seed(0))
    black = (0.0 - ds.mean[0]) / ds.std[0]
    assert torch.isclose(out, torch.tensor(black)).any()  # some crop of the seeded draw shows the padding


def _write_batch(path: Path, n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, size=n)]
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"x", b"labels": labels, b"data": data, b"filenames": [b"a"] * n}, f, protocol=3)
    return data, labels


@pytest.fixture
def fake_cifar(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    batches = [_write_batch(root / f"data_batch_{i}", 20, i) for i in range(1, 6)]
    _write_batch(root / "test_batch", 10, 9)
    return tmp_path, batches


def test_cifar_loads_through_the_restricted_unpickler(fake_cifar):
    root, batches = fake_cifar
    ds = load_dataset("cifar10", data_dir=root)
    x, y = ds.train.tensors
    assert x.shape == (100, 3, 32, 32) and len(ds.test.tensors[1]) == 10
    assert y.tolist() == sum((b[1] for b in batches), [])
    first = torch.from_numpy(batches[0][0][0].reshape(3, 32, 32).astype(np.float32) / 255)
    expect = (first - torch.tensor(CIFAR_MEAN).view(3, 1, 1)) / torch.tensor(CIFAR_STD).view(3, 1, 1)
    assert torch.allclose(x[0], expect, atol=1e-6)
    assert ds.flip and ds.pad == 4 and ds.cutout == 16


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_a_malicious_pickle(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "data_batch_1"
    evil.write_bytes(pickle.dumps({b"data": _Evil(marker), b"labels": [1]}, protocol=2))
    with pytest.raises(UserInputError, match="refusing to load global"):
        safe_load_batch(evil)
    assert not marker.exists()
    # the allowed numpy names only build inert records: abusing _reconstruct with another class is refused
    sneaky = b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\ndtype\nK\x00\x85U\x01b\x87R."

    p = tmp_path / "b"
    p.write_bytes(sneaky)
    with pytest.raises(UserInputError, match="other than ndarray"):
        safe_load_batch(p)


def test_cli_refuses_a_malicious_cifar_folder(fake_cifar, run_cli):
    root, _ = fake_cifar
    marker = root / "pwned"
    (root / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps(_Evil(marker), protocol=2))
    proc = run_cli("search", "--dataset", "cifar10", "--data-dir", str(root), "--epochs", "1", "--out",
                   str(root / "run"))
    assert_one_line_error(proc, 2)
    assert "refusing" in proc.stderr and not marker.exists()


def test_bad_dataset_inputs():
    with pytest.raises(UserInputError, match="data-dir"):
        load_dataset("cifar10")
    with pytest.raises(UserInputError, match="not a cifar-10-batches-py"):
        load_dataset("cifar10", data_dir="/nonexistent")
    with pytest.raises(UserInputError, match="unknown dataset"):
        load_dataset("mnist")
