"""Read the CIFAR-10 python batches without unpickling them.

Each batch is a pickle (protocol 2, written by Python 2's cPickle) of one dict: ``batch_label`` (bytes), ``labels``
(N ints in 0..9), ``data`` (an N×3072 uint8 ndarray) and ``filenames`` (N bytes). A general unpickler builds
whatever object graph a tampered file describes: shared references make exponential work for anything that walks
the result, deep nesting a RecursionError, and globals run code. So nothing here unpickles. The opcodes are
decoded (never executed) by :func:`pickletools.genops` and fed to a small stack machine that accepts only the
shapes a batch has, with every size capped at what a real batch needs, so time and memory stay linear in a file
that is itself capped. The few globals a pickled ndarray or bytes object names are matched by name to inert
records; nothing in the file is ever called.
"""

from __future__ import annotations

import os
import pickletools
from pathlib import Path
from typing import Any

import numpy as np

from ladarts.errors import UserInputError

MAX_ROWS = 10_000  # every real batch (data_batch_1..5, test_batch) holds exactly 10000 images
ROW_BYTES = 3 * 32 * 32
# A real batch file is 31 MB; Python 3 at protocol 2 stores the pixels as UTF-8 text, about 47 MB.
MAX_FILE_BYTES = 64 << 20
# Python 3 at protocol 2 spends 9 opcodes per file name (the most of any writer); a real batch about 2 per row.
MAX_OPS = 12 * MAX_ROWS
MAX_STACK = 4_096  # pickle writes lists 1000 items at a time
MAX_MARKS = 8  # a batch nests dict items > array state > dtype state: 3 open marks at most
MAX_TUPLE = 8  # the longest tuple in a batch is a dtype's 8-field state
KEYS = ("batch_label", "labels", "data", "filenames")

_NUMPY = {"numpy", "numpy.core.multiarray", "numpy._core.multiarray"}
# (module, name) → the role the name plays in a batch. Python 3 at protocol 2 writes bytes as
# ``_codecs.encode(text, "latin1")`` (``bytes()`` when empty); protocol 5 writes arrays as ``_frombuffer``.
_GLOBALS = {
    **{(m, n): n for m in _NUMPY for n in ("_reconstruct", "ndarray", "dtype")},
    **{(m, "_frombuffer"): "_frombuffer" for m in ("numpy.core.numeric", "numpy._core.numeric")},
    ("_codecs", "encode"): "encode",
    ("__builtin__", "bytes"): "bytes",
    ("builtins", "bytes"): "bytes",
}
_PUSH = {
    "NONE": lambda a: None, "NEWTRUE": lambda a: True, "NEWFALSE": lambda a: False,
    "BININT": int, "BININT1": int, "BININT2": int,
    # Python 2 ``str``: raw bytes (what ``pickle.load(..., encoding="bytes")`` gives); genops decodes latin-1.
    "SHORT_BINSTRING": lambda a: a.encode("latin-1"), "BINSTRING": lambda a: a.encode("latin-1"),
    "SHORT_BINBYTES": bytes, "BINBYTES": bytes, "BINBYTES8": bytes, "BYTEARRAY8": bytearray,
    "SHORT_BINUNICODE": str, "BINUNICODE": str, "BINUNICODE8": str,
    "EMPTY_LIST": lambda a: [], "EMPTY_DICT": lambda a: {}, "EMPTY_TUPLE": lambda a: (),
}
_SCALARS = (type(None), bool, int, bytes, bytearray, str)


class _Refused(Exception):
    """Why a file is not a CIFAR-10 batch."""


class _Global:
    """A global the file names: only its role is kept, the real object is never looked up."""

    __slots__ = ("role",)

    def __init__(self, role: str):
        self.role = role


class _DType:
    """``numpy.dtype("u1")`` as a record; only uint8 is ever accepted, so there is nothing else to keep."""

    __slots__ = ("built",)

    def __init__(self) -> None:
        self.built = False


class _Array:
    """The pixel array as a record: its shape and raw buffer once known (after BUILD, or at once for
    ``_frombuffer``)."""

    __slots__ = ("shape", "raw")

    def __init__(self, shape: tuple | None = None, raw: bytes | bytearray | None = None):
        self.shape, self.raw = shape, raw


def _kind(x: Any) -> str:
    return {_Global: "global", _DType: "dtype", _Array: "array"}.get(type(x), type(x).__name__)


def _check_pixels(shape: Any, raw: Any) -> tuple[tuple[int, int], bytes | bytearray]:
    """The array's declared shape must be N×3072 with N ≤ 10000 and its buffer exactly that long."""
    if not isinstance(raw, (bytes, bytearray)):
        raise _Refused("the pixel buffer is not bytes")
    if not (isinstance(shape, tuple) and len(shape) == 2 and all(type(s) is int for s in shape)
            and 1 <= shape[0] <= MAX_ROWS and shape[1] == ROW_BYTES):
        raise _Refused(f"data has shape {shape!r:.60}; a batch holds N×{ROW_BYTES} pixels with 1 ≤ N ≤ {MAX_ROWS}")
    if len(raw) != shape[0] * ROW_BYTES:
        raise _Refused(f"data declares shape {shape} but holds {len(raw)} bytes")
    return shape, raw


class _Batch:
    """The stack machine: one method per kind of opcode, each refusing anything a real batch does not hold."""

    def __init__(self) -> None:
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}
        self.encoded = 0  # bytes made by ``_codecs.encode``: one memoised text could otherwise be copied at will

    # ---- the stack ------------------------------------------------------------------------------------------
    def push(self, value: Any) -> None:
        if len(self.stack) >= MAX_STACK:
            raise _Refused(f"more than {MAX_STACK} values on the pickle stack")
        self.stack.append(value)

    def _base(self) -> int:
        return self.marks[-1] if self.marks else 0

    def top(self) -> Any:
        if len(self.stack) <= self._base():
            raise _Refused("pickle stack underflow")
        return self.stack[-1]

    def pop(self) -> Any:
        value = self.top()
        self.stack.pop()
        return value

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise _Refused("no MARK to close")
        k = self.marks.pop()
        items = self.stack[k:]
        del self.stack[k:]
        return items

    def mark(self) -> None:
        if len(self.marks) >= MAX_MARKS:
            raise _Refused(f"nested deeper than {MAX_MARKS} levels")
        self.marks.append(len(self.stack))

    # ---- containers -----------------------------------------------------------------------------------------
    @staticmethod
    def tuple_of(items: list[Any]) -> tuple:
        # A batch's tuples hold scalars, the numpy records, or (for a shape) a tuple of scalars: depth 2 at most.
        if len(items) > MAX_TUPLE:
            raise _Refused(f"a tuple of {len(items)} items (a batch has at most {MAX_TUPLE})")
        for x in items:
            if isinstance(x, tuple):
                if not all(isinstance(y, _SCALARS) for y in x):
                    raise _Refused("tuples nested deeper than a batch's")
            elif not isinstance(x, (*_SCALARS, _Global, _DType)):
                raise _Refused(f"a tuple holds a {_kind(x)}")
        return tuple(items)

    def extend(self, items: list[Any]) -> None:
        target = self.top()
        if not isinstance(target, list):
            raise _Refused(f"APPEND to a {_kind(target)}")
        # A batch's lists are flat (labels: ints, filenames: bytes), so no shared or nested structure can form.
        for x in items:
            if type(x) is not int and not isinstance(x, (bytes, str)):
                raise _Refused(f"a list holds a {_kind(x)}; a batch's lists hold only labels and names")
        if len(target) + len(items) > MAX_ROWS:
            raise _Refused(f"a list of more than {MAX_ROWS} items")
        target.extend(items)

    def set_items(self, items: list[Any]) -> None:
        target = self.top()
        if not isinstance(target, dict) or len(items) % 2:
            raise _Refused("SETITEMS outside the batch dict")
        expected = {"batch_label": (bytes, str), "labels": list, "data": _Array, "filenames": list}
        for key, value in zip(items[::2], items[1::2]):
            name = key.decode("latin-1") if isinstance(key, bytes) else key
            if not isinstance(name, str) or name not in expected:
                raise _Refused(f"unexpected key {key!r:.40}; a batch has {', '.join(KEYS)}")
            if name in target:
                raise _Refused(f"key {name!r} given twice")
            if not isinstance(value, expected[name]):
                raise _Refused(f"{name} is a {_kind(value)}")
            target[name] = value

    # ---- globals, REDUCE and BUILD --------------------------------------------------------------------------
    @staticmethod
    def find(module: Any, name: Any) -> _Global:
        role = _GLOBALS.get((module, name)) if isinstance(module, str) and isinstance(name, str) else None
        if role is None:
            raise _Refused(f"refusing to load global {module}.{name}")
        return _Global(role)

    def reduce(self, func: Any, args: Any) -> Any:
        if not isinstance(func, _Global) or not isinstance(args, tuple):
            raise _Refused("REDUCE of something other than a known global")
        role = func.role
        if role == "_reconstruct":
            if len(args) != 3 or not (isinstance(args[0], _Global) and args[0].role == "ndarray"):
                raise _Refused("_reconstruct called with something other than ndarray")
            return _Array()
        if role == "dtype":
            code = args[0] if args else None
            if (code.decode("latin-1") if isinstance(code, bytes) else code) != "u1":
                raise _Refused(f"array dtype {code!r:.20} is not uint8")
            return _DType()
        if role == "_frombuffer":
            if len(args) != 4 or not isinstance(args[1], _DType) or args[3] != "C":
                raise _Refused("_frombuffer called with something other than a C-ordered uint8 buffer")
            return _Array(*_check_pixels(args[2], args[0]))
        if role == "encode":
            if len(args) != 2 or not isinstance(args[0], str) or args[1] not in ("latin1", "latin-1"):
                raise _Refused("_codecs.encode called with something other than latin-1 text")
            self.encoded += len(args[0])
            if self.encoded > MAX_FILE_BYTES:
                raise _Refused(f"more than {MAX_FILE_BYTES} bytes of text")
            try:
                return args[0].encode("latin-1")
            except UnicodeEncodeError:
                raise _Refused("_codecs.encode of text that is not latin-1") from None
        if role == "bytes" and args == ():
            return b""
        raise _Refused(f"{role} called with unexpected arguments")

    def build(self, state: Any) -> None:
        target = self.top()
        if isinstance(target, _DType) and not target.built and isinstance(state, tuple):
            target.built = True
        elif isinstance(target, _Array) and target.raw is None and isinstance(state, tuple) and len(state) == 5:
            _, shape, dtype, fortran, raw = state
            if not isinstance(dtype, _DType) or fortran:
                raise _Refused("array state is not a C-ordered uint8 array")
            target.shape, target.raw = _check_pixels(shape, raw)
        else:
            raise _Refused(f"BUILD of a {_kind(target)} with a {_kind(state)}")

    # ---- the opcodes ----------------------------------------------------------------------------------------
    def step(self, name: str, arg: Any) -> None:
        if name in _PUSH:
            self.push(_PUSH[name](arg))
        elif name == "MARK":
            self.mark()
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            items = [self.pop() for _ in range(n)][::-1]
            self.push(self.tuple_of(items))
        elif name == "TUPLE":
            self.push(self.tuple_of(self.pop_mark()))
        elif name == "APPEND":
            self.extend([self.pop()])
        elif name == "APPENDS":
            self.extend(self.pop_mark())
        elif name == "SETITEM":
            value = self.pop()
            self.set_items([self.pop(), value])
        elif name == "SETITEMS":
            self.set_items(self.pop_mark())
        elif name == "GLOBAL":
            module, _, attr = arg.partition(" ")
            self.push(self.find(module, attr))
        elif name == "STACK_GLOBAL":
            attr = self.pop()
            self.push(self.find(self.pop(), attr))
        elif name == "REDUCE":
            args = self.pop()
            self.push(self.reduce(self.pop(), args))
        elif name == "BUILD":
            state = self.pop()
            self.build(state)
        elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            self.memo[len(self.memo) if name == "MEMOIZE" else arg] = self.top()  # a reference, never a copy
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if arg not in self.memo:
                raise _Refused(f"memo entry {arg} read before it was written")
            self.push(self.memo[arg])
        elif name in ("NEXT_BUFFER", "READONLY_BUFFER"):
            raise _Refused("out-of-band buffers (pickle protocol 5 with a buffer_callback)")
        elif name != "FRAME":
            raise _Refused(f"opcode {name} is not used by a CIFAR-10 batch")

    def result(self) -> dict[str, np.ndarray]:
        if self.marks or len(self.stack) != 1 or not isinstance(self.stack[0], dict):
            raise _Refused("the pickle does not end with the batch dict")
        batch = self.stack[0]
        if "data" not in batch or "labels" not in batch:
            raise _Refused("no data/labels")
        array, labels = batch["data"], batch["labels"]
        if array.raw is None:
            raise _Refused("the pixel array has no contents")
        n = array.shape[0]
        if len(labels) != n or not all(type(v) is int and 0 <= v <= 9 for v in labels):
            raise _Refused(f"labels must be {n} integers in 0..9, one per row")
        if "filenames" in batch and len(batch["filenames"]) != n:
            raise _Refused(f"{len(batch['filenames'])} file names for {n} rows")
        data = np.frombuffer(array.raw, dtype=np.uint8).reshape(array.shape)
        return {"data": data, "labels": np.array(labels, dtype=np.int64)}


def _decode(raw: bytes) -> dict[str, np.ndarray]:
    machine = _Batch()
    ops = pickletools.genops(raw)
    first, arg, _ = next(ops)
    if first.name != "PROTO" or not 2 <= arg <= 5:
        raise _Refused("not a pickle of protocol 2 to 5 (CIFAR-10 batches use protocol 2)")
    for count, (op, arg, _) in enumerate(ops, start=2):  # genops ends at STOP or raises ValueError
        if count > MAX_OPS:
            raise _Refused(f"more than {MAX_OPS} pickle opcodes")
        if op.name != "STOP":
            machine.step(op.name, arg)
    return machine.result()


def safe_load_batch(path: str | Path) -> dict[str, np.ndarray]:
    """Load one CIFAR-10 batch file as ``{"data": uint8 (N, 3072), "labels": int64 (N,)}``, safely.

    Raises :class:`UserInputError` with one line for anything that is not a batch; nothing in the file runs.
    """
    path = Path(path)
    with open(path, "rb") as f:
        # sized before reading; the read is capped too, for what fstat cannot size (a pipe)
        too_big = os.fstat(f.fileno()).st_size > MAX_FILE_BYTES
        raw = b"" if too_big else f.read(MAX_FILE_BYTES + 1)
    try:
        if too_big or len(raw) > MAX_FILE_BYTES:
            raise _Refused(f"larger than {MAX_FILE_BYTES >> 20} MB")
        return _decode(raw)
    except (_Refused, ValueError) as e:  # genops raises ValueError on a truncated or unknown opcode
        raise UserInputError(f"{path}: not a CIFAR-10 python batch ({e})") from None
