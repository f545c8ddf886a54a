"""Cell drawings a person can read: measured on the rendered matplotlib figure, not on the layout's own numbers."""

import re
import shutil
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from ladarts.plotting import pyplot
from ladarts.report.cells import _dot, draw_cells_figure, draw_genotype
from ladarts.space import ZOO, sample_genotypes

NEAR_EDGE_PX = 3.0  # a label's centre sits on its edge; allow for curve flattening


def _edge_points(patch) -> np.ndarray:
    """Display-space points along a drawn edge (curve and arrow head), curves evaluated, not just control points."""
    path = patch.get_transform().transform_path(patch.get_path())
    return np.vstack([seg(np.linspace(0.0, 1.0, 200)) for seg, _ in path.iter_bezier()])


def _inside(points: np.ndarray, bbox, shrink: float) -> np.ndarray:
    return ((points[:, 0] > bbox.x0 + shrink) & (points[:, 0] < bbox.x1 - shrink)
            & (points[:, 1] > bbox.y0 + shrink) & (points[:, 1] < bbox.y1 - shrink))


def _problems(drawing, full_draw: bool = True) -> list[str]:
    """What makes the figure hard to read: overlapping labels, labels on nodes or away from their edge, edges
    through nodes, anything outside the figure."""
    fig = drawing.fig
    if full_draw:
        fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    problems = []
    for c, cell in enumerate(drawing.cells):
        nodes = [p.get_window_extent(renderer) for p in cell.nodes]
        labels = []
        for text in cell.labels:
            text.update_bbox_position_size(renderer)
            labels.append(text.get_bbox_patch().get_window_extent(renderer))
        edges = [_edge_points(p) for p in cell.edges]
        for i, box in enumerate(labels):
            name = f"cell {c} label {i} {cell.labels[i].get_text()}"
            problems += [f"{name} overlaps label {j}" for j in range(i) if box.overlaps(labels[j])]
            problems += [f"{name} overlaps node {k}" for k, nb in enumerate(nodes) if box.overlaps(nb)]
            centre = np.array([(box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2])
            gap = np.linalg.norm(edges[i] - centre, axis=1).min()
            if gap > NEAR_EDGE_PX:
                problems.append(f"{name} is {gap:.1f}px from its edge")
        for e, pts in enumerate(edges):
            problems += [f"cell {c} edge {e} passes through node {k}" for k, nb in enumerate(nodes)
                         if _inside(pts, nb, shrink=1.0).any()]
        for what, boxes in (("label", labels), ("node", nodes)):
            problems += [f"cell {c} {what} {i} is outside the figure" for i, b in enumerate(boxes)
                         if b.x0 < 0 or b.y0 < 0 or b.x1 > fig.bbox.x1 or b.y1 > fig.bbox.y1]
    return problems


def _check(genotype, dpi: int, full_draw: bool = True) -> list[str]:
    drawing = draw_cells_figure(genotype, "title", dpi=dpi)
    try:
        return _problems(drawing, full_draw)
    finally:
        pyplot().close(drawing.fig)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_cells_are_readable(name):
    genotype = ZOO[name]
    drawing = draw_cells_figure(genotype, name, dpi=80)
    try:
        for cell, reduction in zip(drawing.cells, (False, True)):
            pairs, concat = genotype.cell(reduction)
            assert [t.get_text() for t in cell.labels] == [op for op, _ in pairs]
            assert len(cell.edges) == len(pairs) + len(concat)
            assert len(cell.nodes) == len(pairs) // 2 + 3
        assert _problems(drawing) == []
    finally:
        pyplot().close(drawing.fig)


def test_sampled_cells_are_readable():
    # bbox positions are updated without rasterising, so 50 genotypes stay fast; the zoo test does full draws
    problems = {i: p for i, g in enumerate(sample_genotypes(50, seed=0)) if (p := _check(g, dpi=40, full_draw=False))}
    assert problems == {}


def test_the_check_sees_overlaps():
    drawing = draw_cells_figure(ZOO["DARTS_V2"], dpi=40)
    try:
        first, second = drawing.cells[0].labels[:2]
        second.set_position(first.get_position())
        problems = _problems(drawing)
    finally:
        pyplot().close(drawing.fig)
    assert any("overlaps label 0" in p for p in problems)
    assert any("label 1" in p and "from its edge" in p for p in problems)


def test_draw_genotype_writes_one_png_atomically(tmp_path):
    out = tmp_path / "cells.png"
    assert draw_genotype(ZOO["AmoebaNet"], out, "AmoebaNet", engine="matplotlib") == "matplotlib"
    assert [p.name for p in tmp_path.iterdir()] == ["cells.png"]  # no temp file left behind
    with Image.open(out) as img:
        assert img.format == "PNG"
        img.verify()
    with Image.open(out) as img:
        width, height = img.size
    assert width > 600 and height > 400


def test_unknown_engine_is_refused(tmp_path):
    with pytest.raises(ValueError, match="engine"):
        draw_genotype(ZOO["DARTS_V2"], tmp_path / "c.png", engine="svg")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["DARTS_V2", "NASNet", "AmoebaNet"])
def test_dot_source_has_one_labelled_edge_per_pair(name):
    genotype = ZOO[name]
    pairs, concat = genotype.cell(True)
    src = _dot(pairs, concat, f'{name} "reduction" cell')
    n = len(pairs) // 2
    names = {0: "c_{k-2}", 1: "c_{k-1}", **{k: str(k - 2) for k in range(2, n + 2)}}
    assert "rankdir=LR;" in src
    assert f'digraph "{name} \\"reduction\\" cell" {{' in src
    for node in ("c_{k-2}", "c_{k-1}", "c_{k}", *map(str, range(n))):  # inputs, intermediate nodes, output
        assert f'"{node}" [fillcolor=' in src
    labelled = Counter(re.findall(r'^"([^"]+)" -> "([^"]+)" \[label="([^"]+)"', src, re.M))
    assert labelled == Counter((names[i], names[2 + j // 2], op) for j, (op, i) in enumerate(pairs))
    into_output = re.findall(r'^"([^"]+)" -> "c_\{k\}" \[color=', src, re.M)
    assert into_output == [names[k] for k in concat]


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz dot is not installed")
def test_graphviz_writes_one_png_per_cell(tmp_path):
    assert draw_genotype(ZOO["NASNet"], tmp_path / "c.png", "NASNet", engine="graphviz") == "graphviz"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c_normal.png", "c_reduce.png"]
    for p in tmp_path.iterdir():
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
