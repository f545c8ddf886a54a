"""Hostile CIFAR-10 batch files: each is refused with one line, in time and memory of the order of a real batch.

The reader decodes pickle opcodes into a fixed shape and never unpickles; these files try to make it build an
object graph (shared-list bombs, deep nesting), allocate what a header declares, or accept a wrong batch.
"""

import pickle
import signal
import struct
import tracemalloc
from contextlib import contextmanager

import numpy as np
import pytest

from ladarts.data.cifar_pickle import MAX_FILE_BYTES, MAX_ROWS, ROW_BYTES, safe_load_batch
from ladarts.errors import UserInputError


@contextmanager
def _bounded(seconds: float = 2.0, megabytes: int = 200):
    """Fail if the block runs longer than ``seconds`` (interrupted, so a regression cannot hang the suite) or its
    Python allocations peak above ``megabytes``."""

    def interrupt(*_):
        raise TimeoutError(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    tracemalloc.start()
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < megabytes << 20, f"peak allocation {peak >> 20} MB"


def _refused(path, match: str | None = None) -> str:
    with _bounded():
        with pytest.raises(UserInputError, match=match) as e:
            safe_load_batch(path)
    message = str(e.value)
    assert message.startswith(f"{path}: not a CIFAR-10 python batch (") and "\n" not in message
    return message


# ---- the real format, as Python 2's cPickle.dump(batch, f, 2) writes it --------------------------------------
class _Py2Pickle:
    """Assembles protocol-2 opcodes the way cPickle does for a CIFAR-10 batch (str → U/T, every string memoised)."""

    def __init__(self):
        self.out = [b"\x80\x02"]
        self.n_memo = 0

    def put(self):
        self.n_memo += 1
        i = self.n_memo
        self.out.append(b"q" + bytes([i]) if i < 256 else b"r" + struct.pack("<I", i))

    def raw(self, *chunks: bytes):
        self.out.extend(chunks)

    def str_(self, s: bytes):
        self.raw(b"U" + bytes([len(s)]) + s if len(s) < 256 else b"T" + struct.pack("<i", len(s)) + s)
        self.put()

    def int_(self, v: int):
        if 0 <= v < 256:
            self.raw(b"K" + bytes([v]))
        elif 0 <= v < 65536:
            self.raw(b"M" + struct.pack("<H", v))
        else:
            self.raw(b"J" + struct.pack("<i", v))

    def list_(self, items, write):
        self.raw(b"]")
        self.put()
        for start in range(0, len(items), 1000):
            self.raw(b"(")
            for v in items[start:start + 1000]:
                write(v)
            self.raw(b"e")


def _py2_batch(raw: bytes, shape: tuple, labels: list, filenames: list, batch_label: bytes = b"training batch 1 of 5",
               dtype: bytes = b"u1") -> bytes:
    p = _Py2Pickle()
    p.raw(b"}")
    p.put()
    p.raw(b"(")
    p.str_(b"data")
    p.raw(b"cnumpy.core.multiarray\n_reconstruct\n")
    p.put()
    p.raw(b"cnumpy\nndarray\n")
    p.put()
    p.raw(b"K\x00\x85")
    p.str_(b"b")
    p.raw(b"\x87R")
    p.put()
    p.raw(b"(K\x01")
    if not 1 <= len(shape) <= 3:
        p.raw(b"(")
    for s in shape:
        p.int_(s)
    p.raw(b"\x85\x86\x87"[len(shape) - 1:len(shape)] if 1 <= len(shape) <= 3 else b"t")
    p.put()
    p.raw(b"cnumpy\ndtype\n")
    p.put()
    p.str_(dtype)
    p.raw(b"K\x00K\x01\x87R")
    p.put()
    p.raw(b"(K\x03")
    p.str_(b"|")
    p.raw(b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t")
    p.put()
    p.raw(b"b\x89")
    p.str_(raw)
    p.raw(b"t")
    p.put()
    p.raw(b"b")
    p.str_(b"labels")
    p.list_(labels, p.int_)
    p.str_(b"batch_label")
    p.str_(batch_label)
    p.str_(b"filenames")
    p.list_(filenames, p.str_)
    p.raw(b"u.")
    return b"".join(p.out)


def _batch(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, ROW_BYTES), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, size=n)]
    filenames = [f"image_{i:05d}.png".encode() for i in range(n)]
    return data, labels, filenames


def test_a_full_size_batch_in_the_real_python2_format_loads(tmp_path):
    data, labels, filenames = _batch(MAX_ROWS)
    blob = _py2_batch(data.tobytes(), data.shape, labels, filenames)
    reference = pickle.loads(blob, encoding="bytes")  # our own bytes: shows they are the pickle a batch is
    assert np.array_equal(reference[b"data"], data) and reference[b"filenames"] == filenames
    path = tmp_path / "data_batch_1"
    path.write_bytes(blob)
    with _bounded(seconds=10, megabytes=200):  # 31 MB of pixels: the scale every hostile file is held to
        out = safe_load_batch(path)
    assert out["data"].dtype == np.uint8 and np.array_equal(out["data"], data)
    assert out["labels"].dtype == np.int64 and out["labels"].tolist() == labels


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_what_pickle_dump_writes_loads_at_every_protocol(tmp_path, protocol):
    data, labels, filenames = _batch(50, seed=protocol)
    path = tmp_path / "test_batch"
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"testing batch 1 of 1", b"labels": labels, b"data": data,
                     b"filenames": filenames}, f, protocol=protocol)
    out = safe_load_batch(path)
    assert np.array_equal(out["data"], data) and out["labels"].tolist() == labels


def test_protocol5_out_of_band_buffers_are_refused(tmp_path):
    data, labels, _ = _batch(4)
    path = tmp_path / "b"
    path.write_bytes(pickle.dumps({b"data": data, b"labels": labels}, protocol=5, buffer_callback=lambda b: False))
    _refused(path, "out-of-band")


def _shared_list_bomb(levels: int) -> object:
    a = []
    for _ in range(levels):
        a = [a, a]  # 2**levels paths to the innermost list in a few bytes per level
    return a


def test_shared_list_bomb_as_pickle_writes_it(tmp_path):
    data, _, _ = _batch(4)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": data, b"labels": _shared_list_bomb(30)}, protocol=3))
    _refused(path)


def test_shared_list_bomb_without_nested_marks(tmp_path):
    # Every level is its own list [previous, previous] read back from the memo: flat opcodes, exponential graph.
    ops = [b"\x80\x03]q\x00"]
    for level in range(1, 31):
        ops.append(b"]q" + bytes([level]) + b"(h" + bytes([level - 1]) + b"h" + bytes([level - 1]) + b"e")
    ops.append(b"}(C\x06labelsh\x1eu.")
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"".join(ops))
    assert "a list holds a list" in _refused(path)


@pytest.mark.parametrize(
    "body",
    [
        b"]" * 200_000 + b"a" * 199_999,  # 200,000 nested lists
        b"K\x00" + b"\x85" * 200_000,  # 200,000 nested 1-tuples on a stack of one
        b"(" * 200_000 + b"t" * 200_000,  # 200,000 open marks
        b"}" * 200_000,  # 200,000 dicts
    ],
    ids=["lists", "tuples", "marks", "dicts"],
)
def test_deep_nesting_is_refused(tmp_path, body):
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"\x80\x02" + body + b".")
    _refused(path)


def test_oversized_and_mismatched_arrays_are_refused(tmp_path):
    data, labels, filenames = _batch(8)
    raw = data.tobytes()
    cases = {
        "declares 10**6 rows": (raw, (10**6, ROW_BYTES), "shape"),
        "declares one row too many": (raw, (MAX_ROWS + 1, ROW_BYTES), "shape"),
        "declares more bytes than it holds": (raw, (9, ROW_BYTES), "holds"),
        "rows of 3071 pixels": (raw[:8 * 3071], (8, 3071), "shape"),
        "one flat row": (raw, (8 * ROW_BYTES,), "shape"),
        "three dimensions": (raw, (8, 3, 1024), "shape"),
    }
    for name, (buf, shape, match) in cases.items():
        path = tmp_path / name.replace(" ", "_")
        path.write_bytes(_py2_batch(buf, shape, labels, filenames))
        _refused(path, match)
    wide = tmp_path / "int16"
    wide.write_bytes(_py2_batch(raw, (4, ROW_BYTES), labels[:4], filenames[:4], dtype=b"i2"))
    _refused(wide, "not uint8")


def test_huge_declared_lengths_are_refused(tmp_path):
    for name, header in {
        "bytes8": b"\x80\x04\x8e" + struct.pack("<Q", 1 << 62),  # BINBYTES8 of 4 EiB
        "string4": b"\x80\x02}(U\x04dataT" + struct.pack("<i", 2**31 - 1),  # a 2 GB Python 2 str
        "bytearray8": b"\x80\x05\x96" + struct.pack("<Q", (1 << 63) - 1),
    }.items():
        path = tmp_path / name
        path.write_bytes(header + b"\x00" * 64)
        _refused(path)


def test_a_file_larger_than_any_batch_is_refused_before_decoding(tmp_path):
    path = tmp_path / "data_batch_1"
    with open(path, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk
    _refused(path, "larger than")


def test_wrong_labels_and_names_are_refused(tmp_path):
    data, labels, filenames = _batch(8)
    raw = data.tobytes()
    for name, (labs, names, match) in {
        "label 10": ([10] + labels[1:], filenames, "0..9"),
        "label -1": ([-1] + labels[1:], filenames, "0..9"),
        "seven labels": (labels[:7], filenames, "0..9"),
        "nine names": (labels, filenames + [b"x"], "9 file names for 8 rows"),
    }.items():
        path = tmp_path / name.replace(" ", "_")
        path.write_bytes(_py2_batch(raw, data.shape, labs, names))
        _refused(path, match)


def test_truncated_files_are_refused(tmp_path):
    data, labels, filenames = _batch(8)
    blob = _py2_batch(data.tobytes(), data.shape, labels, filenames)
    for cut in (0, 1, 2, 40, len(blob) // 2, len(blob) - 1):
        path = tmp_path / f"cut_{cut}"
        path.write_bytes(blob[:cut])
        _refused(path)


def test_other_structures_and_globals_are_refused(tmp_path):
    data, labels, filenames = _batch(4)
    cases = {
        "stack_global": (pickle.dumps({b"data": data, b"labels": [print]}, protocol=4), "refusing to load global"),
        "int64 data": (pickle.dumps({b"data": data.astype(np.int64), b"labels": labels}, protocol=3), "not uint8"),
        "fortran data": (pickle.dumps({b"data": np.asfortranarray(data), b"labels": labels}, protocol=3), "C-order"),
        "ndarray labels": (pickle.dumps({b"data": data, b"labels": np.array(labels)}, protocol=3), "not uint8"),
        "unknown key": (pickle.dumps({b"data": data, b"labels": labels, b"extra": 1}, protocol=3), "unexpected key"),
        "nested dict": (pickle.dumps({b"data": data, b"labels": labels, b"batch_label": {}}, protocol=3), None),
        "list not dict": (pickle.dumps([data, labels], protocol=3), None),
        "no data": (pickle.dumps({b"labels": labels}, protocol=3), "no data"),
        "protocol 0": (pickle.dumps({b"labels": labels}, protocol=0), "protocol"),
        "float label": (pickle.dumps({b"data": data, b"labels": [0.5] * 4}, protocol=3), "opcode BINFLOAT"),
    }
    for name, (blob, match) in cases.items():
        path = tmp_path / name.replace(" ", "_")
        path.write_bytes(blob)
        _refused(path, match)
