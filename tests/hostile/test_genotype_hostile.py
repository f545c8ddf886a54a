"""Hostile genotypes: oversized, deeply nested, or carrying code. Each is refused with one line, quickly, and
nothing in it runs."""

import json
import time
import tracemalloc

import pytest

from conftest import assert_one_line_error
from ladarts.errors import UserInputError
from ladarts.space import ZOO, Genotype, resolve_genotype
from ladarts.space.genotype import MAX_NODES, MAX_TEXT_CHARS

V2 = ZOO["DARTS_V2"].to_dict()


def _cell(nodes: int) -> list:
    return [["sep_conv_3x3", i] for k in range(2, 2 + nodes) for i in (0, k - 1)]


def _refused_quickly(spec: str, match: str | None) -> str:
    """resolve_genotype refuses ``spec`` with one line, within a bound of the order of a normal genotype's."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(UserInputError, match=match) as e:
            resolve_genotype(spec)
    finally:
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert seconds < 1.0 and peak < 50 << 20, (seconds, peak)
    assert "\n" not in str(e.value)
    return str(e.value)


@pytest.fixture
def huge_genotype(tmp_path):
    """The fault-injection file: 800 nodes in the normal cell (6.7 GB and > 300 s to build before the bound)."""
    path = tmp_path / "huge.json"
    path.write_text(json.dumps({**V2, "normal": _cell(800), "normal_concat": list(range(2, 802))},
                               separators=(",", ":")))
    assert path.stat().st_size < MAX_TEXT_CHARS  # refused for its nodes, not its size
    return path


def test_an_800_node_genotype_is_refused(huge_genotype):
    message = _refused_quickly(str(huge_genotype), "at most 5")
    assert message == (f"{huge_genotype}: genotype normal: 800 nodes; at most 5 are supported "
                       "(the DARTS space has 4, NASNet/AmoebaNet 5)")


def test_an_800_node_genotype_is_refused_by_the_cli(huge_genotype, run_cli):
    proc = run_cli("info", str(huge_genotype), timeout=120)
    assert_one_line_error(proc, 2)
    assert "800 nodes; at most 5" in proc.stderr


def test_the_node_bound_admits_the_zoo_and_nothing_larger():
    assert MAX_NODES == max(len(g.normal) // 2 for g in ZOO.values()) == 5
    assert len(Genotype.from_dict({**V2, "reduce": _cell(5), "reduce_concat": [2, 3, 4, 5, 6]}).reduce) == 10
    with pytest.raises(UserInputError, match="reduce: 6 nodes; at most 5"):
        Genotype.from_dict({**V2, "reduce": _cell(6), "reduce_concat": [2]})


def test_an_oversized_file_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.json"
    path.write_text(json.dumps(V2) + " " * MAX_TEXT_CHARS)
    _refused_quickly(str(path), "too large")


@pytest.mark.parametrize("opener,closer", [("[", "]"), ('{"a":', "}")])
def test_deeply_nested_json_is_refused(tmp_path, opener, closer):
    depth = (MAX_TEXT_CHARS - 100) // (len(opener) + len(closer))
    path = tmp_path / "deep.json"
    path.write_text('{"normal": ' + opener * depth + "0" + closer * depth + "}")
    _refused_quickly(str(path), None)


def test_deeply_nested_darts_text_is_refused(tmp_path):
    path = tmp_path / "deep.txt"
    path.write_text("Genotype(normal=" + "[" * 30_000 + "]" * 30_000 + ")")
    _refused_quickly(str(path), "genotype text")


def test_code_in_darts_text_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    texts = [
        f"Genotype(normal={payload}, normal_concat=[2], reduce=[], reduce_concat=[2])",
        f"Genotype(normal=[('sep_conv_3x3', {payload})], normal_concat=[2], reduce=[], reduce_concat=[2])",
        f"Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=range({payload}), reduce=[], reduce_concat=[2])",
        payload,
    ]
    for i, text in enumerate(texts):
        path = tmp_path / f"evil_{i}.txt"
        path.write_text(text)
        _refused_quickly(str(path), None)
        if "Genotype(" in text:  # given inline, as the text itself
            _refused_quickly(text, "genotype text")
    assert not marker.exists()


@pytest.mark.parametrize("concat", ["range(2, 1000000000)", "range(10**9)", "range(2, 6) + list(range(10**9))",
                                    "[2] * 10**9"])
def test_huge_concat_is_refused(concat):
    cell = "[" + ", ".join(f"('sep_conv_3x3', {i})" for _, i in _cell(4)) + "]"
    text = f"Genotype(normal={cell}, normal_concat={concat}, reduce={cell}, reduce_concat=[2, 3, 4, 5])"
    _refused_quickly(text, "genotype text")
