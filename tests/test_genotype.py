import json

import pytest

from ladarts.errors import UserInputError
from ladarts.space import ZOO, Genotype, parse_darts_text, resolve_genotype

V2 = ZOO["DARTS_V2"]


def test_json_round_trip_for_every_zoo_genotype():
    for g in ZOO.values():
        assert Genotype.from_json(g.to_json()) == g
        assert parse_darts_text(g.to_darts_text()) == g


def test_darts_repo_text_form_is_parsed_without_eval():
    text = (
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
        "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
        "normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
        "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
        "reduce_concat=[2, 3, 4, 5])"
    )
    assert parse_darts_text(text) == V2
    assert parse_darts_text("DARTS_V2 = " + text) == V2
    assert parse_darts_text(text.replace("Genotype(", "genotypes.Genotype(")) == V2


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('echo pwned')",
        "Genotype(normal=__import__('os').listdir('.'), normal_concat=[2], reduce=[], reduce_concat=[2])",
        "Genotype(normal=[('sep_conv_3x3', 0)] * 8, normal_concat=[2], reduce=[], reduce_concat=[2])",
        "Genotype(normal=[(op, 0)], normal_concat=[2], reduce=[], reduce_concat=[2])",
        "Genotype(normal=[('a', 0)], normal_concat=range(10**9), reduce=[], reduce_concat=[2])",
        "Genotype(" + "[" * 5000 + "]" * 5000 + ")",
        "Genotype(normal=[], **kw)",
        "lambda: 0",
        "",
        "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], normal_concat=[2])",
    ],
)
def test_malicious_or_malformed_text_is_refused(text):
    with pytest.raises(UserInputError):
        parse_darts_text(text)


def _with(**changes):
    d = V2.to_dict()
    d.update(changes)
    return d


@pytest.mark.parametrize(
    "data,message",
    [
        (_with(normal=[["sep_conv_9x9", 0]] + V2.to_dict()["normal"][1:]), "unknown primitive"),
        (_with(normal=[["sep_conv_3x3", 2]] + V2.to_dict()["normal"][1:]), "only inputs 0..1"),
        (_with(normal=V2.to_dict()["normal"][:3]), "two inputs"),
        (_with(normal_concat=[2, 3, 4, 9]), "not a node index"),
        (_with(normal_concat=[2, 2]), "repeated"),
        (_with(normal=[["none", 0]] + V2.to_dict()["normal"][1:]), "'none'"),
        (_with(normal=[["sep_conv_3x3", "0"]] + V2.to_dict()["normal"][1:]), "integer"),
        (_with(normal=[["sep_conv_3x3", True]] + V2.to_dict()["normal"][1:]), "integer"),
        (_with(extra=1), "unknown key"),
        ({"normal": []}, "missing"),
        ([1, 2], "expected an object"),
    ],
)
def test_validation_messages(data, message):
    with pytest.raises(UserInputError, match=message):
        Genotype.from_dict(data)


def test_any_number_of_nodes_is_allowed():
    assert len(ZOO["NASNet"].normal) == 10
    assert ZOO["AmoebaNet"].reduce_concat == (3, 4, 6)


def test_resolve_genotype(tmp_path):
    assert resolve_genotype("DARTS_V2") == ("DARTS_V2", V2)
    assert resolve_genotype("darts_v2")[1] == V2
    assert resolve_genotype("DARTS")[1] == V2
    f = tmp_path / "g.json"
    f.write_text(json.dumps(V2.to_dict()))
    assert resolve_genotype(str(f)) == ("g", V2)
    t = tmp_path / "g.txt"
    t.write_text(V2.to_darts_text())
    assert resolve_genotype(str(t))[1] == V2
    assert resolve_genotype(V2.to_json())[1] == V2
    with pytest.raises(UserInputError, match="unknown genotype"):
        resolve_genotype("DARTS_V3")
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe{not json")
    with pytest.raises(UserInputError):
        resolve_genotype(str(bad))
    with pytest.raises(UserInputError, match="not a file"):
        resolve_genotype(str(tmp_path))
