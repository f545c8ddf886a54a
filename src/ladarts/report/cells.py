"""Cell drawings: a PNG of a genotype's normal and reduction cells.

Graphviz's ``dot`` draws them when the binary is installed (as the DARTS repo's visualize.py does); otherwise
matplotlib draws the same graph with a layered layout, so a drawing never needs a system package.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from ladarts.io import atomic_write
from ladarts.space.genotype import Genotype, Pair

_COLOURS = {"sep": "#4C72B0", "dil": "#55A868", "max": "#C44E52", "avg": "#DD8452", "ski": "#8172B3",
            "con": "#937860", "non": "#999999"}


def _label(node: int) -> str:
    return {0: "c_{k-2}", 1: "c_{k-1}"}.get(node, str(node - 2))


def _dot(pairs: tuple[Pair, ...], concat: tuple[int, ...], title: str) -> str:
    lines = [f'digraph "{title}" {{', "rankdir=LR;", f'label="{title}"; labelloc=t;',
             'node [shape=box, style="rounded,filled", fontname=Helvetica, fillcolor="#f3f3f3"];',
             'edge [fontname=Helvetica, fontsize=10];']
    for k in range(2, 2 + len(pairs) // 2):
        for op, i in pairs[2 * (k - 2): 2 * (k - 2) + 2]:
            lines.append(f'"{_label(i)}" -> "{_label(k)}" [label="{op}", color="{_COLOURS[op[:3]]}"];')
    for k in concat:
        lines.append(f'"{_label(k)}" -> "c_{{k}}" [color=gray];')
    lines.append("}")
    return "\n".join(lines)


def _draw_matplotlib(ax, pairs: tuple[Pair, ...], concat: tuple[int, ...], title: str) -> None:
    n_nodes = len(pairs) // 2
    pos = {0: (0.0, 0.75), 1: (0.0, 0.25)}
    for k in range(2, 2 + n_nodes):
        pos[k] = (1.0 + 0.9 * (k - 2) / max(1, n_nodes - 1) * 2, 0.9 - 0.8 * (k - 2) / max(1, n_nodes - 1))
    out_xy = (max(x for x, _ in pos.values()) + 1.0, 0.5)
    for k in range(2, 2 + n_nodes):
        for j, (op, i) in enumerate(pairs[2 * (k - 2): 2 * (k - 2) + 2]):
            (x0, y0), (x1, y1) = pos[i], pos[k]
            rad = 0.25 if j else -0.25
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=dict(
                arrowstyle="-|>", color=_COLOURS[op[:3]], lw=1.6, shrinkA=14, shrinkB=14,
                connectionstyle=f"arc3,rad={rad}"))
            mx, my = (x0 + x1) / 2, (y0 + y1) / 2 + (0.06 if j else -0.06)
            ax.text(mx, my, op, fontsize=7, ha="center", va="center", color=_COLOURS[op[:3]],
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
    for k in concat:
        ax.annotate("", xy=out_xy, xytext=pos[k], arrowprops=dict(arrowstyle="-|>", color="gray", lw=1,
                                                                  shrinkA=14, shrinkB=14))
    for k, (x, y) in {**pos, "out": out_xy}.items():
        text = "c_{k}" if k == "out" else _label(k)
        ax.text(x, y, text, ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round,pad=0.35", fc="#f3f3f3" if k != "out" else "#dde8f5", ec="#555555"))
    ax.set_title(title, fontsize=11)
    ax.set_xlim(-0.4, out_xy[0] + 0.4)
    ax.set_ylim(-0.05, 1.05)
    ax.axis("off")


def draw_genotype(genotype: Genotype, path: str | Path, title: str = "", engine: str = "auto") -> str:
    """Write a PNG with both cells. Returns the engine used: ``graphviz`` or ``matplotlib``."""
    path = Path(path)
    use_dot = engine == "graphviz" or (engine == "auto" and shutil.which("dot") is not None)
    if use_dot:
        for kind in ("normal", "reduce"):
            pairs, concat = genotype.cell(kind == "reduce")
            dot_src = _dot(pairs, concat, f"{title} {kind} cell".strip())
            target = path.with_name(f"{path.stem}_{kind}.png")
            with tempfile.TemporaryDirectory() as tmp:
                src = Path(tmp) / "cell.dot"
                src.write_text(dot_src)
                png = subprocess.run(["dot", "-Tpng", str(src)], capture_output=True, check=True).stdout
            atomic_write(target, lambda t: Path(t).write_bytes(png))
        return "graphviz"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
    for ax, kind in zip(axes, ("normal", "reduce")):
        pairs, concat = genotype.cell(kind == "reduce")
        _draw_matplotlib(ax, pairs, concat, f"{title} {kind} cell".strip())
    fig.tight_layout()
    atomic_write(path, lambda t: fig.savefig(t, dpi=110, format="png"))
    plt.close(fig)
    return "matplotlib"
