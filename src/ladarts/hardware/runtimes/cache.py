"""Exported networks, cached by architecture: a campaign loads the reference and the drift references again and
again, re-timed runs load the same architectures again, and several platforms read the same ONNX export.

Two levels: an LRU of a few entries in memory (any artefact, a compiled module too), and, for artefacts that are
plain bytes (ONNX, ExecuTorch programs: parsed, never unpickled), a folder on disk shared between processes:
``$LADARTS_EXPORT_CACHE``, else ``$XDG_CACHE_HOME/ladarts/exports`` (``~/.cache/ladarts/exports``). Files are
written atomically; past ``$LADARTS_EXPORT_CACHE_GB`` (default 2) the least recently used are removed.
``LADARTS_EXPORT_CACHE=off`` turns the disk level off.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

from ladarts.errors import UserInputError
from ladarts.io import atomic_write

MEMORY_ENTRIES = 4  # a C=36 x 20 network's ONNX export is about 13 MB


def cache_dir() -> Path | None:
    """The disk cache folder, or None when it is turned off."""
    env = os.environ.get("LADARTS_EXPORT_CACHE")
    if env is not None:
        return None if env.strip().lower() in ("", "0", "off", "none") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ladarts" / "exports"


def _limit_bytes() -> float:
    text = os.environ.get("LADARTS_EXPORT_CACHE_GB", "2")
    try:
        return float(text) * 2**30
    except ValueError:
        raise UserInputError(f"LADARTS_EXPORT_CACHE_GB={text!r}: expected a number of GiB") from None


def cache_key(parts: dict[str, Any]) -> str:
    """A file-name-safe digest of everything an artefact depends on."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


class ExportCache:
    def __init__(self, entries: int = MEMORY_ENTRIES):
        self.entries = entries
        self._memory: OrderedDict[str, Any] = OrderedDict()

    def clear_memory(self) -> None:
        self._memory.clear()

    def get(self, key: str, suffix: str, persistent: bool) -> tuple[Any, str]:
        """``(artefact, "memory" | "disk")``, or ``(None, "")`` on a miss."""
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key], "memory"
        folder = cache_dir()
        if persistent and folder is not None:
            path = folder / f"{key}.{suffix}"
            try:
                blob = path.read_bytes()
                os.utime(path)  # recently used: evicted last
            except OSError:
                return None, ""
            self._remember(key, blob)
            return blob, "disk"
        return None, ""

    def on_disk(self, key: str, suffix: str) -> bool:
        """Whether the artefact is in the disk cache (marked recently used: exported ahead, it is read soon)."""
        folder = cache_dir()
        if folder is None:
            return False
        try:
            os.utime(folder / f"{key}.{suffix}")
        except OSError:
            return False
        return True

    def put(self, key: str, suffix: str, artefact: Any, persistent: bool, remember: bool = True) -> None:
        """Keep ``artefact`` in memory (unless ``remember`` is False: exported for another process) and, when it
        is ``persistent`` bytes, on disk."""
        if remember:
            self._remember(key, artefact)
        folder = cache_dir()
        if persistent and folder is not None:
            try:
                atomic_write(folder / f"{key}.{suffix}", lambda tmp: Path(tmp).write_bytes(artefact))
                _evict(folder, _limit_bytes())
            except OSError:
                pass  # a read-only or full cache folder costs exports, not the measurement

    def _remember(self, key: str, artefact: Any) -> None:
        self._memory[key] = artefact
        self._memory.move_to_end(key)
        while len(self._memory) > self.entries:
            self._memory.popitem(last=False)


def _evict(folder: Path, limit: float) -> None:
    files = []
    for p in folder.iterdir():
        if p.name.startswith("."):
            continue  # another process's write in flight
        try:
            st = p.stat()
        except OSError:
            continue  # removed by another process meanwhile
        files.append((st.st_mtime, st.st_size, p))
    total = sum(size for _, size, _ in files)
    for _, size, path in sorted(files):
        if total <= limit:
            break
        path.unlink(missing_ok=True)
        total -= size
