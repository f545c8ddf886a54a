import json

from ladarts.report import draw_genotype
from ladarts.space import ZOO


def test_cell_drawing_with_matplotlib(tmp_path):
    assert draw_genotype(ZOO["DARTS_V2"], tmp_path / "c.png", "DARTS_V2", engine="matplotlib") == "matplotlib"
    data = (tmp_path / "c.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert draw_genotype(ZOO["NASNet"], tmp_path / "n.png", engine="matplotlib") == "matplotlib"


def test_report_cli_measures_genotypes(run_cli, tmp_path):
    proc = run_cli("report", "DARTS_V2", "PC_DARTS_cifar", "--channels", "4", "--cells", "3", "--input-size", "8",
                   "--pairs", "3", "--out", str(tmp_path / "rep"), "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["name"] for r in rows] == ["DARTS_V2", "PC_DARTS_cifar"]
    assert all(r["measured_ms"] > 0 and r["predicted_ms"] is None and r["params_m"] > 0 for r in rows)
    assert (tmp_path / "rep" / "report.md").read_text().startswith("| genotype")
    assert (tmp_path / "rep" / "cells_DARTS_V2.png").exists()
