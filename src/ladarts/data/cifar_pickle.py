"""Read the CIFAR-10 python batches without executing anything in them.

The dataset ships as Python pickles of dicts holding one NumPy uint8 array (``data``) and lists. A plain
``pickle.load`` would run whatever a tampered file asks for, so this unpickler resolves **no** global: the three
names a pickled ndarray refers to (``_reconstruct``, ``ndarray``, ``dtype``) are mapped to inert records defined
here, every other global is refused, and the records are turned into an array by :func:`numpy.frombuffer` only
when they describe a plain, C-ordered, integer array.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ladarts.errors import UserInputError

_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy")
_ALLOWED_DTYPES = {"u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8"}


class _DTypeRecord:
    """Stands in for ``numpy.dtype`` while unpickling: records the type code, creates nothing."""

    def __init__(self, code: Any = None, align: Any = False, copy: Any = True):
        if isinstance(code, bytes):
            code = code.decode("ascii", "replace")
        if not isinstance(code, str) or code not in _ALLOWED_DTYPES:
            raise pickle.UnpicklingError(f"array dtype {code!r} is not an integer type")
        self.code = code
        self.byteorder = "|"

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) >= 2 and isinstance(state[1], (str, bytes)):
            bo = state[1].decode() if isinstance(state[1], bytes) else state[1]
            if bo not in "<>|=":
                raise pickle.UnpicklingError(f"bad byte order {bo!r}")
            self.byteorder = bo


class _NDArrayType:
    """Stands in for ``numpy.ndarray`` (only ever passed as the first argument of ``_reconstruct``)."""


class _ArrayRecord:
    """Stands in for an ndarray: ``_reconstruct(ndarray, shape, typecode)`` then ``__setstate__(state)``."""

    def __init__(self, cls: Any = None, shape: Any = None, typecode: Any = None):
        if cls is not _NDArrayType:
            raise pickle.UnpicklingError("_reconstruct called with something other than ndarray")
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def to_numpy(self) -> np.ndarray:
        st = self.state
        if not (isinstance(st, tuple) and len(st) == 5):
            raise pickle.UnpicklingError("array state is not (version, shape, dtype, fortran, data)")
        _, shape, dtype, fortran, raw = st
        if not isinstance(dtype, _DTypeRecord) or fortran or not isinstance(raw, (bytes, bytearray)):
            raise pickle.UnpicklingError("array state is not a C-ordered integer buffer")
        if not (isinstance(shape, tuple) and all(isinstance(s, int) and s >= 0 for s in shape)):
            raise pickle.UnpicklingError("bad array shape")
        order = "<" if dtype.byteorder in "|=" else dtype.byteorder
        arr = np.frombuffer(bytes(raw), dtype=np.dtype(order + dtype.code))
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise pickle.UnpicklingError("array buffer size does not match its shape")
        return arr.reshape(shape)


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves no global; the ndarray names become the inert records above, anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if module in _NUMPY_MODULES:
            if name == "_reconstruct":
                return _ArrayRecord
            if name == "ndarray":
                return _NDArrayType
            if name == "dtype":
                return _DTypeRecord
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refusing persistent ids")


def _plain(obj: Any) -> Any:
    if isinstance(obj, _ArrayRecord):
        return obj.to_numpy()
    if isinstance(obj, dict):
        return {(k.decode() if isinstance(k, bytes) else k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    if isinstance(obj, (_DTypeRecord, _NDArrayType)):
        raise pickle.UnpicklingError("stray numpy record outside an array")
    return obj


def safe_load_batch(path: str | Path) -> dict[str, Any]:
    """Load one CIFAR-10 batch file as ``{"data": uint8 (N, 3072), "labels": list[int], ...}``, safely."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        obj = _plain(RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load())
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise UserInputError(f"{path}: not a CIFAR-10 python batch ({e})") from None
    if not isinstance(obj, dict) or "data" not in obj or "labels" not in obj:
        raise UserInputError(f"{path}: not a CIFAR-10 python batch (no data/labels)")
    data, labels = obj["data"], obj["labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise UserInputError(f"{path}: CIFAR-10 data must be uint8 of shape (N, 3072)")
    labels = np.asarray(labels.tolist() if isinstance(labels, np.ndarray) else labels)
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise UserInputError(f"{path}: CIFAR-10 labels must be N integers")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise UserInputError(f"{path}: CIFAR-10 labels must lie in 0..9")
    return {"data": data, "labels": labels.astype(np.int64)}
