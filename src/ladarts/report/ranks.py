"""The cross-platform rank table and its heat map (what ``hardware.ranks.rank_consistency`` computed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def short_name(key: str) -> str:
    """The settings part of a platform key (``openvino2026.4-cpu-t1-b1-float32``): the rest is shared."""
    return key.split("/", 1)[0]


def ranks_markdown(result: dict[str, Any]) -> str:
    lines = ["| platform A | platform B | architectures | Kendall τ-b | Spearman ρ | concordant pairs |",
             "|---|---|---:|---:|---:|---:|"]
    for p in result["pairs"]:
        lines.append(f"| {short_name(p['a'])} | {short_name(p['b'])} | {p['n']} | {p['kendall_tau_b']:.3f} | "
                     f"{p['spearman_rho']:.3f} | {100 * p['concordant_share']:.1f}% |")
    left = result.get("left_out") or []
    if left:
        lines += ["", f"Left out, fewer than {result.get('min_common')} architectures in common: "
                  + "; ".join(f"{short_name(p['a'])} / {short_name(p['b'])} ({p['n']})" for p in left) + "."]
    return "\n".join(lines) + "\n"


def ranks_heatmap(result: dict[str, Any], path: str | Path, metric: str = "kendall_tau_b") -> None:
    """A heat map of ``metric`` between every pair of platforms, annotated with the values."""
    import numpy as np

    from ladarts.plotting import figure, save_png

    names = [short_name(k) for k in result["platforms"]]
    m = np.asarray(result["matrices"][metric], dtype=float)
    size = 1.1 * len(names) + 2.5
    fig, ax = figure(figsize=(size, size * 0.85))
    im = ax.imshow(m, vmin=-1 if metric != "concordant_share" else 0, vmax=1, cmap="RdYlGn")
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for i in range(len(names)):
        for j in range(len(names)):
            if not np.isnan(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title({"kendall_tau_b": "Kendall τ-b", "spearman_rho": "Spearman ρ",
                  "concordant_share": "concordant share"}[metric] + " between platforms", fontsize=10)
    save_png(fig, path, dpi=110)
