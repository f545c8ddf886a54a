"""Atomic file writes: a reader never sees a half-written artefact, and an interrupted write leaves the old one."""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a temp file in the target folder, fsync it, then rename it over ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a written artefact gets the usual permissions
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(path, write)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def json_safe(obj: Any) -> Any:
    """JSON-serialisable copy: NaN/inf become None, numpy scalars plain numbers, tuples lists."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) or _is_numpy(obj, "floating"):
        f = float(obj)
        return f if math.isfinite(f) else None
    if _is_numpy(obj, "integer"):
        return int(obj)
    if _is_numpy(obj, "ndarray"):
        return json_safe(obj.tolist())
    return obj


def _is_numpy(obj: Any, kind: str) -> bool:
    """numpy type checks without importing numpy here (io is imported by every command, numpy is not needed)."""
    np = sys.modules.get("numpy")
    return np is not None and isinstance(obj, getattr(np, kind))
