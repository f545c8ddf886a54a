"""The one place ladarts talks to matplotlib: a headless figure and an atomic PNG write.

Every plot (the LPM scatter, the search-time front, the demo's front, the cell drawings) goes through here, so the
backend is chosen once (Agg: no display needed) and a reader never sees a half-written PNG.
"""

from __future__ import annotations

import os
from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (imported on first use: matplotlib is slow to import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """``plt.subplots(*args, **kwargs)`` on the Agg backend: (figure, axes)."""
    return pyplot().subplots(*args, **kwargs)


def save_png(fig: Any, path: str | os.PathLike, dpi: int | None = None, tight: bool = True) -> None:
    """Write ``fig`` to ``path`` as PNG atomically, then close it (also when the write fails)."""
    from ladarts.io import atomic_write

    try:
        if tight:
            fig.tight_layout()
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    finally:
        pyplot().close(fig)
