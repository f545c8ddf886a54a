"""Cell drawings: a PNG of a genotype's normal and reduction cells, drawn as layered DAGs.

As in the DARTS repo's visualize.py, the inputs c_{k-2} and c_{k-1} are on the left, the intermediate nodes
0..n-1 follow in order and the output c_{k} is on the right, with each operation written on its own edge.
Graphviz's ``dot`` lays the graph out when the binary is installed; otherwise matplotlib draws it with the layered
layout below, so a drawing never needs a system package:

* each intermediate node has its own column, alternately above and below the middle row, so an edge to any
  later node can pass between the nodes it skips;
* an edge leaves its source's right side and enters its target's left side level, as dot's splines do, through a
  waypoint raised or lowered until the curve clears every node box, preferring curves that do not run alongside
  edges already drawn; two edges between the same nodes (NASNet reads one input twice) keep well apart;
* a label sits on its own edge, slid along it to the spot nearest the middle whose box overlaps no other label
  and no node, preferring spots no other edge crosses. If a label finds no such spot, the whole cell is spread
  wider and laid out again.

Lengths are in inches and one data unit is one inch, so measured text sizes need no conversion.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from ladarts.errors import LadartsError
from ladarts.io import atomic_write
from ladarts.plotting import figure, save_png
from ladarts.space.genotype import Genotype, Pair

ENGINES = ("auto", "graphviz", "matplotlib")
_COLOURS = {"sep": "#4C72B0", "dil": "#55A868", "max": "#C44E52", "avg": "#DD8452", "ski": "#8172B3",
            "con": "#937860"}
_CONCAT_COLOUR = "#9a9a9a"

_COLUMN = 1.9  # distance between node columns, before any spreading
_ROW = 0.6  # intermediate nodes alternate at ±_ROW
_INPUT_ROW = 1.25  # c_{k-2} above, c_{k-1} below
_NODE_W, _NODE_H = 0.62, 0.36
_GAP = 0.05  # clearance between an edge or a label and anything it must not touch
_BENDS = tuple(0.12 * i for i in range(-20, 21))  # how far an edge's waypoint is lifted above its chord's middle
_TWINS_APART = 0.3  # the least difference in bend between two edges joining the same nodes
_CROWDED = 0.15  # an edge closer than this to another runs alongside it
_CROWDING_COST, _BEND_COST = 1.0, 0.6  # how much running alongside other edges weighs against bending
_PORT_STEP, _PORT_INSET = 0.07, 0.06  # spacing of the edge ends along a node's side, kept off its corners
_SLIDES = tuple(0.5 + d for step in range(9) for d in ((0.0,) if step == 0 else (-0.05 * step, 0.05 * step)))
_SPREADS = (1.0, 1.2, 1.45, 1.75)  # column-spacing factors tried in turn when labels do not fit
_LABEL_PT, _NODE_PT, _TITLE_PT = 8.5, 11.0, 12.0
_LABEL_PAD = 0.25  # label box padding, as a fraction of the font size (matplotlib's boxstyle pad)
_MARGIN = 0.15  # around each cell's drawing
_TITLE_SPACE = 0.45  # above each cell, for its title


def _colour(op: str) -> str:
    return _COLOURS[op[:3]]


def _name(node: int, n_nodes: int) -> str:
    """DARTS names: the inputs, intermediate nodes from 0, and the output (node index ``n_nodes + 2``)."""
    if node == n_nodes + 2:
        return "c_{k}"
    return {0: "c_{k-2}", 1: "c_{k-1}"}.get(node, str(node - 2))


# ---- graphviz ------------------------------------------------------------------------------------------------
def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot(pairs: tuple[Pair, ...], concat: tuple[int, ...], title: str) -> str:
    """DOT source of one cell: left to right, one labelled edge per (op, input) pair, concat nodes into c_{k}."""
    n = len(pairs) // 2
    out = _quote(_name(n + 2, n))
    lines = [f"digraph {_quote(title)} {{", "rankdir=LR;", f"label={_quote(title)}; labelloc=t; fontname=Helvetica;",
             'node [shape=box, style="rounded,filled", fontname=Helvetica, penwidth=1.2];',
             "edge [fontname=Helvetica, fontsize=11];",
             f"{{ rank=same; {_quote(_name(0, n))} [fillcolor=darkseagreen2]; "
             f"{_quote(_name(1, n))} [fillcolor=darkseagreen2]; "
             f"{_quote(_name(0, n))} -> {_quote(_name(1, n))} [style=invis]; }}"]  # c_{k-2} above c_{k-1}
    lines += [f"{_quote(_name(k, n))} [fillcolor=lightblue];" for k in range(2, n + 2)]
    lines.append(f"{out} [fillcolor=palegoldenrod];")
    for i, (op, src) in enumerate(pairs):
        lines.append(f"{_quote(_name(src, n))} -> {_quote(_name(2 + i // 2, n))} "
                     f"[label={_quote(op)}, color={_quote(_colour(op))}, fontcolor={_quote(_colour(op))}];")
    lines += [f"{_quote(_name(k, n))} -> {out} [color=gray60];" for k in concat]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _draw_graphviz(genotype: Genotype, path: Path, title: str) -> None:
    for kind, reduction in (("normal", False), ("reduce", True)):
        pairs, concat = genotype.cell(reduction)
        src = _dot(pairs, concat, f"{title} {'reduction' if reduction else 'normal'} cell".strip())
        try:
            proc = subprocess.run(["dot", "-Tpng"], input=src.encode("utf-8"), capture_output=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise LadartsError(f"graphviz 'dot' could not draw the cells ({e.__class__.__name__})") from None
        if proc.returncode != 0:
            detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise LadartsError(f"graphviz 'dot' failed: {detail[-1] if detail else f'exit {proc.returncode}'}")
        atomic_write(path.with_name(f"{path.stem}_{kind}.png"), lambda tmp: Path(tmp).write_bytes(proc.stdout))


# ---- matplotlib layout: geometry ------------------------------------------------------------------------------
Box = tuple[float, float, float, float]  # x0, y0, x1, y1
_T = np.linspace(0.0, 1.0, 49)


def _inflate(box: Box, by: float) -> Box:
    return box[0] - by, box[1] - by, box[2] + by, box[3] + by


def _inside(points: np.ndarray, box: Box) -> np.ndarray:
    """Which of ``points`` (..., 2) lie strictly inside ``box``."""
    x, y = points[..., 0], points[..., 1]
    return (x > box[0]) & (x < box[2]) & (y > box[1]) & (y < box[3])


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _bezier(ctrl: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Points of cubic Béziers: ctrl (..., 4, 2), t (T,) -> (..., T, 2)."""
    t = t[:, None]
    basis = [(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3]
    return sum(w * ctrl[..., i, None, :] for i, w in enumerate(basis))


def _sample(ctrl: np.ndarray) -> np.ndarray:
    """Points along edges made of two cubic Béziers: ctrl (..., 7, 2) -> (..., 2 * len(_T) - 1, 2)."""
    return np.concatenate([_bezier(ctrl[..., :4, :], _T), _bezier(ctrl[..., 3:, :], _T)[..., 1:, :]], axis=-2)


def _curves(p0: np.ndarray, p3: np.ndarray, bends: np.ndarray) -> np.ndarray:
    """Edges from p0 to p3 through a waypoint ``bend`` above (or below) their midpoint, so they can pass above or
    below the nodes in between. Like dot's splines they leave and enter nodes level, and cross the waypoint
    along the chord: with no bend the two halves make one smooth S."""
    mid = (p0 + p3) / 2
    slope = (p3[1] - p0[1]) / (p3[0] - p0[0])
    reach = 0.45 * (mid[0] - p0[0])
    ctrl = np.empty((len(bends), 7, 2))
    ctrl[:, 0], ctrl[:, 6] = p0, p3
    ctrl[:, 1], ctrl[:, 5] = p0 + [reach, 0.0], p3 - [reach, 0.0]
    ctrl[:, 3] = mid
    ctrl[:, 3, 1] += bends
    ctrl[:, 2], ctrl[:, 4] = ctrl[:, 3] - [reach, reach * slope], ctrl[:, 3] + [reach, reach * slope]
    return ctrl


@dataclass
class _Edge:
    src: int
    dst: int
    op: str | None  # None: a concat edge into c_{k}
    ctrl: np.ndarray  # two cubic Béziers (7 points) from the source box's right side to the target's left side
    points: np.ndarray  # samples of it, evenly spaced in t


@dataclass
class _CellLayout:
    n_nodes: int
    nodes: dict[int, tuple[float, float]]  # node index -> centre
    edges: list[_Edge]  # the op edges in pair order, then the concat edges
    labels: list[tuple[float, float]]  # centre of each op edge's label, in pair order
    bounds: Box


def _node_box(centre: tuple[float, float]) -> Box:
    x, y = centre
    return x - _NODE_W / 2, y - _NODE_H / 2, x + _NODE_W / 2, y + _NODE_H / 2


def _node_centres(n: int, column: float) -> dict[int, tuple[float, float]]:
    nodes = {0: (0.0, _INPUT_ROW), 1: (0.0, -_INPUT_ROW)}
    for k in range(2, n + 2):
        nodes[k] = ((k - 1) * column, _ROW if k % 2 == 0 else -_ROW)
    nodes[n + 2] = ((n + 1) * column, 0.0)
    return nodes


def _route(p0: np.ndarray, p3: np.ndarray, src: int, dst: int, boxes: dict[int, Box], drawn: np.ndarray,
           twins: list[float]) -> tuple[float, np.ndarray]:
    """The bend and control points of the edge from p0 to p3: first clear of every node box, then least
    alongside the edges already ``drawn`` (sample points), then least bent.

    ``twins``: the bends of earlier edges between the same two nodes, which this one must keep well away from.
    """
    bends = np.array(_BENDS)
    for twin in twins:
        bends = bends[np.abs(bends - twin) >= _TWINS_APART - 1e-9]
    ctrl = _curves(p0, p3, bends)
    pts = _sample(ctrl)
    hits = np.zeros(len(bends), dtype=int)
    for k, box in boxes.items():
        if k in (src, dst):
            hits += _inside(pts[:, 1:-1], box).any(axis=1)
        else:
            hits += _inside(pts, _inflate(box, _GAP)).any(axis=1)
    crowding = np.zeros(len(bends))
    if len(drawn):
        inner = pts[:, 8:-8]  # away from the ends, where edges of one node meet anyway
        dist, _ = cKDTree(drawn).query(inner.reshape(-1, 2), distance_upper_bound=_CROWDED)
        crowding = np.isfinite(dist).reshape(inner.shape[:2]).mean(axis=1)
    outward = 1.0 if p0[1] + p3[1] >= 0 else -1.0
    cost = _CROWDING_COST * crowding + _BEND_COST * np.abs(bends) + 1e-3 * (bends * outward < 0)
    best = int(np.lexsort((cost, hits))[0])
    return float(bends[best]), ctrl[best]


def _ports(centre: tuple[float, float], side: float, count: int) -> list[np.ndarray]:
    """``count`` points spread down one side (-1 left, +1 right) of a node box, top first."""
    spread = min(_PORT_STEP * (count - 1), _NODE_H - 2 * _PORT_INSET)
    ys = centre[1] + spread / 2 - (np.arange(count) * spread / (count - 1) if count > 1 else np.zeros(1))
    return [np.array([centre[0] + side * _NODE_W / 2, y]) for y in ys]


def _route_all(wanted: list[tuple[int, int, str | None]], nodes: dict[int, tuple[float, float]]) -> list[_Edge]:
    """Route every edge twice: from side centres, then from ports ordered the way the first curves leave and
    arrive, so edges of one node do not cross where they meet it."""
    boxes = {k: _node_box(c) for k, c in nodes.items()}
    order = sorted(range(len(wanted)), key=lambda i: (nodes[wanted[i][1]][0] - nodes[wanted[i][0]][0], i))
    starts = [np.array([nodes[s][0] + _NODE_W / 2, nodes[s][1]]) for s, _, _ in wanted]
    ends = [np.array([nodes[d][0] - _NODE_W / 2, nodes[d][1]]) for _, d, _ in wanted]
    for final in (False, True):
        ctrls: dict[int, np.ndarray] = {}
        bends: dict[tuple[int, int], list[float]] = {}
        drawn = np.zeros((0, 2))
        for i in order:
            src, dst, _ = wanted[i]
            bend, ctrls[i] = _route(starts[i], ends[i], src, dst, boxes, drawn, bends.setdefault((src, dst), []))
            bends[(src, dst)].append(bend)
            drawn = np.vstack([drawn, _sample(ctrls[i])[::3]])
        if final:
            break
        near = [_sample(ctrls[i])[[len(_T) // 5, -len(_T) // 5]] for i in range(len(wanted))]
        for k, centre in nodes.items():
            leaving = sorted((i for i, w in enumerate(wanted) if w[0] == k), key=lambda i: -near[i][0][1])
            for i, port in zip(leaving, _ports(centre, 1.0, len(leaving))):
                starts[i] = port
            arriving = sorted((i for i, w in enumerate(wanted) if w[1] == k), key=lambda i: -near[i][1][1])
            for i, port in zip(arriving, _ports(centre, -1.0, len(arriving))):
                ends[i] = port
    return [_Edge(s, d, op, ctrls[i], _sample(ctrls[i])) for i, (s, d, op) in enumerate(wanted)]


def _arc_positions(points: np.ndarray) -> np.ndarray:
    """Fraction of the arc length at each sample."""
    steps = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))]
    return steps / steps[-1]


def _label_box(centre: np.ndarray, size: tuple[float, float]) -> Box:
    w, h = size
    return centre[0] - w / 2, centre[1] - h / 2, centre[0] + w / 2, centre[1] + h / 2


def _place_labels(edges: list[_Edge], sizes: list[tuple[float, float]], node_boxes: list[Box],
                  strict: bool) -> list[tuple[float, float]] | None:
    """Centres for the op edges' labels (edges[:len(sizes)]), each on its own edge; None if one finds no room.

    Greedy, shortest edge first (it has the fewest spots): a spot is allowed when its box clears the other
    labels and every node; among allowed spots the one crossed by fewest other edges, then nearest the middle of
    its edge, wins. With ``strict`` off a label that finds no allowed spot takes its best one anyway.
    """
    lengths = [float(np.linalg.norm(np.diff(e.points, axis=0), axis=1).sum()) for e in edges[: len(sizes)]]
    every_edge = np.stack([e.points for e in edges])
    weights = np.array([3 if e.op else 1 for e in edges])  # hiding an op edge is worse than hiding a concat edge
    placed: dict[int, Box] = {}
    centres: dict[int, tuple[float, float]] = {}
    for i in sorted(range(len(sizes)), key=lambda i: (lengths[i], i)):
        edge, frac = edges[i], _arc_positions(edges[i].points)
        best = None
        for slide in _SLIDES:
            centre = edge.points[int(np.argmin(np.abs(frac - slide)))]
            box = _label_box(centre, sizes[i])
            padded = _inflate(box, _GAP / 2)
            blocked = sum(_overlap(padded, other) for other in placed.values())
            blocked += sum(_overlap(padded, nb) for nb in node_boxes)
            crossing = _inside(every_edge, padded).any(axis=1)
            crossing[i] = False
            crossed = int(weights[crossing].sum())
            cost = (blocked, crossed, abs(slide - 0.5))
            if best is None or cost < best[0]:
                best = (cost, box, centre)
        assert best is not None
        if best[0][0] and strict:
            return None
        placed[i], centres[i] = best[1], (float(best[2][0]), float(best[2][1]))
    return [centres[i] for i in range(len(sizes))]


def _lay_out_cell(pairs: tuple[Pair, ...], concat: tuple[int, ...],
                  label_sizes: list[tuple[float, float]]) -> _CellLayout:
    n = len(pairs) // 2
    wanted = [(src, 2 + i // 2, op) for i, (op, src) in enumerate(pairs)] + [(k, n + 2, None) for k in concat]
    for attempt, spread in enumerate(_SPREADS):
        nodes = _node_centres(n, _COLUMN * spread)
        edges = _route_all(wanted, nodes)
        node_boxes = [_inflate(_node_box(c), _GAP / 2) for c in nodes.values()]
        labels = _place_labels(edges, label_sizes, node_boxes, strict=attempt < len(_SPREADS) - 1)
        if labels is not None:
            break
    extents = [_node_box(c) for c in nodes.values()] + [_label_box(np.array(c), s) for c, s in zip(labels, label_sizes)]
    everything = np.vstack([np.array(extents).reshape(-1, 2)] + [e.points for e in edges])
    lo, hi = everything.min(axis=0) - _MARGIN, everything.max(axis=0) + _MARGIN
    return _CellLayout(n, nodes, edges, labels, (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])))


# ---- matplotlib layout: drawing -------------------------------------------------------------------------------
@dataclass
class CellArtists:
    """What was drawn for one cell, so a test can measure the rendered figure."""

    ax: Any
    nodes: list[Any]  # FancyBboxPatch per node: inputs, intermediate nodes, output
    edges: list[Any]  # FancyArrowPatch per edge: the op edges in pair order, then the concat edges
    labels: list[Any]  # Text per op edge, in pair order (labels[i] names edges[i])


@dataclass
class CellsFigure:
    """Both cells on one figure; ``draw_genotype`` saves it, a test measures it."""

    fig: Any
    cells: list[CellArtists]  # normal, then reduction


def _draw_cell(ax: Any, layout: _CellLayout, labels: list[Any]) -> CellArtists:
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from matplotlib.path import Path as MplPath

    n = layout.n_nodes
    node_patches = []
    for k, (x, y) in layout.nodes.items():
        fill = "#d8eed8" if k < 2 else "#fbf3c9" if k == n + 2 else "#dbe9f6"
        patch = FancyBboxPatch((x - _NODE_W / 2, y - _NODE_H / 2), _NODE_W, _NODE_H, zorder=3, fc=fill, ec="#555555",
                               lw=1.1, boxstyle="round,pad=0,rounding_size=0.07")
        ax.add_patch(patch)
        node_patches.append(patch)
        ax.text(x, y, f"${_name(k, n)}$" if k < 2 or k == n + 2 else _name(k, n), ha="center", va="center",
                fontsize=_NODE_PT, zorder=4)
    edge_patches = []
    for edge in layout.edges:
        colour = _colour(edge.op) if edge.op else _CONCAT_COLOUR
        path = MplPath(edge.ctrl, [MplPath.MOVETO] + [MplPath.CURVE4] * 6)
        patch = FancyArrowPatch(path=path, arrowstyle="-|>,head_length=0.5,head_width=0.22", mutation_scale=14,
                                color=colour, lw=1.5 if edge.op else 1.1, zorder=1)
        ax.add_patch(patch)
        edge_patches.append(patch)
    for text, (x, y) in zip(labels, layout.labels):
        text.set_position((x, y))
    x0, y0, x1, y1 = layout.bounds
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.axis("off")
    return CellArtists(ax, node_patches, edge_patches, labels)


def draw_cells_figure(genotype: Genotype, title: str = "", dpi: int = 110) -> CellsFigure:
    """Lay out and draw both cells, normal above reduction, on one matplotlib figure (not saved, not closed)."""
    fig, axes = figure(2, 1, dpi=dpi)
    renderer = fig.canvas.get_renderer()
    pad = 2 * _LABEL_PAD * _LABEL_PT / 72  # inches the box adds to the text, both sides together
    layouts, texts = [], []
    for ax, reduction in zip(axes, (False, True)):
        pairs, concat = genotype.cell(reduction)
        cell_texts = [ax.text(0, 0, op, ha="center", va="center", fontsize=_LABEL_PT, color=_colour(op), zorder=2,
                              bbox=dict(boxstyle=f"round,pad={_LABEL_PAD}", fc="white", ec=_colour(op), lw=0.6))
                      for op, _ in pairs]
        sizes = []
        for text in cell_texts:
            extent = text.get_window_extent(renderer)
            sizes.append((extent.width / dpi + pad, extent.height / dpi + pad))
        layouts.append(_lay_out_cell(pairs, concat, sizes))
        texts.append(cell_texts)
    spans = [(lay.bounds[2] - lay.bounds[0], lay.bounds[3] - lay.bounds[1]) for lay in layouts]
    width = max(w for w, _ in spans)
    height = sum(h + _TITLE_SPACE for _, h in spans)
    fig.set_size_inches(width, height)
    top = height
    cells = []
    for ax, (w, h), layout, cell_texts, kind in zip(axes, spans, layouts, texts, ("normal", "reduction")):
        top -= _TITLE_SPACE
        ax.set_position([(width - w) / 2 / width, (top - h) / height, w / width, h / height])
        ax.set_title(f"{title} {kind} cell".strip(), fontsize=_TITLE_PT, parse_math=False)  # a name may hold $
        cells.append(_draw_cell(ax, layout, cell_texts))
        top -= h
    return CellsFigure(fig, cells)


# ---- entry point ---------------------------------------------------------------------------------------------
def draw_genotype(genotype: Genotype, path: str | Path, title: str = "", engine: str = "auto") -> str:
    """Draw both cells. Returns the engine used: ``graphviz`` or ``matplotlib``.

    Graphviz writes one PNG per cell (``<stem>_normal.png``, ``<stem>_reduce.png``); matplotlib writes both cells
    to ``path``. ``auto`` uses graphviz when its ``dot`` binary is on the PATH.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    path = Path(path)
    if engine == "graphviz" or (engine == "auto" and shutil.which("dot") is not None):
        _draw_graphviz(genotype, path, title)
        return "graphviz"
    drawing = draw_cells_figure(genotype, title)
    save_png(drawing.fig, path, dpi=drawing.fig.dpi, tight=False)
    return "matplotlib"
