"""What every benchmark JSON records about where and how it ran: the machine (not its hostname, which says nothing
about the hardware) and the exact command line, so that a figure can be traced to its run and compared across
machines."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from datetime import datetime, timezone
from importlib import metadata
from typing import Any, Sequence

#: Distributions whose versions change a timing or a fit; the ones not installed are left out.
LIBRARIES = ("torch", "numpy", "scipy", "onnxruntime", "ladarts")


def machine() -> dict[str, Any]:
    """CPU model and CPUID signature, core count, load average (1, 5, 15 min) now, OS and library versions."""
    from ladarts.hardware.platform import cpu_model, cpu_signature

    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return {"cpu": cpu_model(), "cpu_signature": cpu_signature(), "cpu_count": os.cpu_count(),
            "load_avg": [round(v, 2) for v in os.getloadavg()], "os": platform.platform(), "versions": versions}


def stamp(argv: Sequence[str] | None = None) -> dict[str, str]:
    """The UTC date and the command line exactly as run (``sys.argv`` by default), shell-quoted."""
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": shlex.join(sys.argv if argv is None else argv)}
