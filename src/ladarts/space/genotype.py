"""Genotype: a discrete DARTS cell pair, its validation, JSON form, and the DARTS-repo text form.

The DARTS text form (``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), ...)``) is parsed
with :mod:`ast` and a whitelist of node types, never evaluated: a genotype file is untrusted input.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from typing import Any, Iterable

from ladarts.errors import UserInputError
from ladarts.space.primitives import OPS, PRIMITIVES

Pair = tuple[str, int]
FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")
MAX_TEXT_CHARS = 64 << 10  # a genotype is a few hundred characters; refuse anything absurd before parsing
# The most intermediate nodes a cell may have: the DARTS space has 4, the NASNet and AmoebaNet zoo cells 5. Network
# size grows with the node count, so an unbounded one (800 nodes took 6.7 GB to build) is refused up front.
MAX_NODES = 5


def _check_cell(kind: str, pairs: Any, concat: Any) -> tuple[tuple[Pair, ...], tuple[int, ...]]:
    if not isinstance(pairs, (list, tuple)) or not pairs:
        raise UserInputError(f"genotype {kind}: expected a non-empty list of (primitive, input) pairs")
    if len(pairs) > 2 * MAX_NODES:
        raise UserInputError(f"genotype {kind}: {(len(pairs) + 1) // 2} nodes; at most {MAX_NODES} are supported "
                             "(the DARTS space has 4, NASNet/AmoebaNet 5)")
    if len(pairs) % 2:
        raise UserInputError(f"genotype {kind}: {len(pairs)} pairs, but every node takes exactly two inputs")
    checked: list[Pair] = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise UserInputError(f"genotype {kind}[{i}]: expected a (primitive, input) pair, got {pair!r:.60}")
        op, idx = pair
        if not isinstance(op, str) or op not in OPS:
            raise UserInputError(f"genotype {kind}[{i}]: unknown primitive {op!r:.60}; known: {', '.join(OPS)}")
        if op == "none":
            raise UserInputError(f"genotype {kind}[{i}]: 'none' is not an operation a derived cell can use")
        if isinstance(idx, bool) or not isinstance(idx, int):
            raise UserInputError(f"genotype {kind}[{i}]: input index must be an integer, got {idx!r:.60}")
        node = 2 + i // 2
        if not 0 <= idx < node:
            raise UserInputError(
                f"genotype {kind}[{i}]: node {node} reads input {idx}, but only inputs 0..{node - 1} exist"
            )
        checked.append((op, idx))
    n_nodes = len(pairs) // 2
    if not isinstance(concat, (list, tuple, range)) or len(concat) == 0:
        raise UserInputError(f"genotype {kind}_concat: expected a non-empty list of node indices")
    out_concat = tuple(concat)
    for c in out_concat:
        if isinstance(c, bool) or not isinstance(c, int) or not 2 <= c < 2 + n_nodes:
            raise UserInputError(f"genotype {kind}_concat: {c!r:.60} is not a node index in 2..{1 + n_nodes}")
    if len(set(out_concat)) != len(out_concat):
        raise UserInputError(f"genotype {kind}_concat: repeated node in {list(out_concat)}")
    return tuple(checked), out_concat


@dataclass(frozen=True)
class Genotype:
    """A normal and a reduction cell: (primitive, input) pairs, two per node, plus the nodes concatenated.

    Inputs 0 and 1 are the two previous cells' outputs; node ``k`` (from 2) may read any input below ``k``.
    Up to ``MAX_NODES`` nodes are allowed (NASNet and AmoebaNet have 5); the DARTS search space has 4.
    """

    normal: tuple[Pair, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Pair, ...]
    reduce_concat: tuple[int, ...]

    def __post_init__(self) -> None:
        normal, normal_concat = _check_cell("normal", self.normal, self.normal_concat)
        reduce, reduce_concat = _check_cell("reduce", self.reduce, self.reduce_concat)
        object.__setattr__(self, "normal", normal)
        object.__setattr__(self, "normal_concat", normal_concat)
        object.__setattr__(self, "reduce", reduce)
        object.__setattr__(self, "reduce_concat", reduce_concat)

    def cell(self, reduction: bool) -> tuple[tuple[Pair, ...], tuple[int, ...]]:
        return (self.reduce, self.reduce_concat) if reduction else (self.normal, self.normal_concat)

    # ---- JSON -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, list]:
        return {
            "normal": [list(p) for p in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [list(p) for p in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(", ", ": "))

    @classmethod
    def from_dict(cls, data: Any) -> "Genotype":
        if not isinstance(data, dict):
            raise UserInputError("genotype JSON: expected an object with keys " + ", ".join(FIELDS))
        extra = set(data) - set(FIELDS) - {"name"}
        missing = [k for k in FIELDS if k not in data]
        if missing or extra:
            what = f"missing {', '.join(missing)}" if missing else f"unknown key(s) {', '.join(sorted(extra))}"
            raise UserInputError(f"genotype JSON: {what}; expected keys {', '.join(FIELDS)}")
        return cls(**{k: data[k] for k in FIELDS})

    @classmethod
    def from_json(cls, text: str) -> "Genotype":
        if len(text) > MAX_TEXT_CHARS:
            raise UserInputError("genotype JSON: text is too long to be a genotype")
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as e:
            raise UserInputError(f"genotype JSON: not valid JSON ({e.__class__.__name__})") from None
        return cls.from_dict(data)

    # ---- DARTS text form --------------------------------------------------------------------------------
    def to_darts_text(self) -> str:
        def pairs(ps: Iterable[Pair]) -> str:
            return "[" + ", ".join(f"({op!r}, {i})" for op, i in ps) + "]"

        return (
            f"Genotype(normal={pairs(self.normal)}, normal_concat={list(self.normal_concat)}, "
            f"reduce={pairs(self.reduce)}, reduce_concat={list(self.reduce_concat)})"
        )


# ---- safe parser for the DARTS text form -----------------------------------------------------------------
_ASSIGN_PREFIX = re.compile(r"^\s*[A-Za-z_][A-Za-z_0-9]*\s*=\s*(?=[A-Za-z_])")


class _Refused(Exception):
    pass


def _literal_int(node: ast.AST) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_literal_int(node.operand)
    raise _Refused("expected an integer")


def _pairs(node: ast.AST) -> list[Pair]:
    if not isinstance(node, (ast.List, ast.Tuple)):
        raise _Refused("expected a list of (primitive, input) pairs")
    out = []
    for elt in node.elts:
        if not isinstance(elt, (ast.Tuple, ast.List)) or len(elt.elts) != 2:
            raise _Refused("expected a (primitive, input) pair")
        op, idx = elt.elts
        if not (isinstance(op, ast.Constant) and isinstance(op.value, str)):
            raise _Refused("a primitive must be a quoted name")
        out.append((op.value, _literal_int(idx)))
    return out


def _concat(node: ast.AST) -> list[int]:
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal_int(e) for e in node.elts]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "range"
        and not node.keywords
        and 1 <= len(node.args) <= 2
    ):
        bounds = [_literal_int(a) for a in node.args]
        lo, hi = (0, bounds[0]) if len(bounds) == 1 else bounds
        if hi - lo > 64:
            raise _Refused("range() too long for a concat list")
        return list(range(lo, hi))
    raise _Refused("a concat must be a list of integers or range(a, b)")


def parse_darts_text(text: str) -> Genotype:
    """Parse ``Genotype(normal=[...], normal_concat=range(2, 6), reduce=[...], reduce_concat=[...])``.

    Also accepts a leading ``NAME = `` and positional arguments. Only literals, lists, tuples and ``range`` with
    integer arguments are accepted; nothing is evaluated.
    """
    if len(text) > MAX_TEXT_CHARS:
        raise UserInputError("genotype text is too long to be a genotype")
    body = _ASSIGN_PREFIX.sub("", text.strip(), count=1)
    try:
        tree = ast.parse(body, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise UserInputError("genotype text: not of the form Genotype(normal=[...], normal_concat=..., ...)") from None
    call = tree.body
    try:
        if not isinstance(call, ast.Call):
            raise _Refused("expected Genotype(...)")
        fname = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)
        if fname != "Genotype":
            raise _Refused("expected Genotype(...)")
        if len(call.args) > 4 or any(k.arg is None for k in call.keywords):
            raise _Refused("unexpected arguments")
        given: dict[str, ast.AST] = dict(zip(FIELDS, call.args))
        for kw in call.keywords:
            if kw.arg not in FIELDS or kw.arg in given:
                raise _Refused(f"unexpected or repeated argument {kw.arg!r}")
            given[kw.arg] = kw.value
        missing = [f for f in FIELDS if f not in given]
        if missing:
            raise _Refused(f"missing {', '.join(missing)}")
        values = {f: (_concat if f.endswith("concat") else _pairs)(given[f]) for f in FIELDS}
    except _Refused as e:
        raise UserInputError(f"genotype text: {e}") from None
    except RecursionError:
        raise UserInputError("genotype text: nested too deeply") from None
    return Genotype(**values)


__all__ = ["Genotype", "Pair", "PRIMITIVES", "parse_darts_text"]
