import json

import pytest

from conftest import assert_one_line_error


def test_info_json_reports_params_and_macs(run_cli):
    proc = run_cli("info", "DARTS_V2", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["params"] == 3_349_342 and abs(info["params_m"] - 3.349342) < 1e-9
    assert 500 < info["macs_m"] < 560 and info["encodable"]


def test_info_imagenet_and_text(run_cli):
    proc = run_cli("info", "PC_DARTS_image", "--network", "imagenet")
    assert proc.returncode == 0 and "5.342464 M params" in proc.stdout


def test_sample_prints_json_lines(run_cli, tmp_path):
    proc = run_cli("sample", "--n", "3", "--seed", "4")
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and len(lines) == 3
    assert all(set(json.loads(l)) == {"normal", "normal_concat", "reduce", "reduce_concat"} for l in lines)
    out = tmp_path / "s.jsonl"
    assert run_cli("sample", "--n", "3", "--seed", "4", "--out", str(out)).returncode == 0
    assert out.read_text().splitlines() == lines
    g = tmp_path / "g.json"
    g.write_text(lines[0])
    assert run_cli("info", str(g), "--json").returncode == 0


@pytest.mark.parametrize(
    "args",
    [
        ["info", "DARTS_V3"],
        ["info", '{"normal": [["sep_conv_9x9", 0]], "normal_concat": [2], "reduce": [], "reduce_concat": [2]}'],
        ["info", "Genotype(normal=[('sep_conv_3x3', 7), ('sep_conv_3x3', 1)], normal_concat=[2], "
                 "reduce=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1)], reduce_concat=[2])"],
        ["info", "__import__('os').system('touch /tmp/ladarts-pwned')"],
        ["info", "{not json"],
        ["info", "DARTS_V2", "--network", "mobile"],
        ["info", "DARTS_V2", "--channels", "7"],
        ["sample", "--n", "x"],
        ["sample", "--n", "-1"],
        ["nonsense"],
    ],
)
def test_bad_input_is_one_line_exit_2(cli, args):
    assert_one_line_error(cli(*args), 2)


def test_python_m_and_help(run_cli):
    proc = run_cli("--help")
    assert proc.returncode == 0 and "info" in proc.stdout and "sample" in proc.stdout
