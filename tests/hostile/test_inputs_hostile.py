"""Hostile or careless inputs to fit, LPM folders, search and train: each is refused with one line (exit 2), or
fails with one line (exit 1), and nothing is left half-done."""

import hashlib
import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import assert_one_line_error
from ladarts.errors import UserInputError
from ladarts.predict import LPM, LPMConfig, dataset_from_records, fit_lpm, synthetic_records
from ladarts.predict.lpm_format import FORMAT, MODEL_FILE, _meta_hash
from ladarts.search import SearchConfig, run_search


@pytest.fixture(scope="module")
def lpm_dir(tmp_path_factory):
    lpm, _ = fit_lpm(synthetic_records(60, seed=0), config=LPMConfig(depth=1, width=8, max_epochs=40))
    path = tmp_path_factory.mktemp("lpm") / "lpm"
    lpm.save(path)
    return path


def resign(src, dst, tensors=None, meta_edit=None):
    """Copy an LPM folder with edited weights or meta.json and hashes recomputed, as an attacker who knows the
    format would: the integrity checks pass, only meaning checks can catch it."""
    dst.mkdir()
    meta = json.loads((src / "meta.json").read_text())
    state = load_file(src / MODEL_FILE)
    if tensors:
        state.update(tensors(state))
    if meta_edit:
        meta_edit(meta)
    core = {k: v for k, v in meta.items() if k != "files"}
    save_file(state, dst / MODEL_FILE, metadata={"format": FORMAT, "meta_sha256": _meta_hash(core)})
    blob = (dst / MODEL_FILE).read_bytes()
    meta["files"] = {MODEL_FILE: {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}}
    (dst / "meta.json").write_text(json.dumps(meta))
    return dst


@pytest.mark.parametrize("attack,match", [
    (dict(tensors=lambda s: {"y_std": -s["y_std"]}), "scale"),  # inverts every ranking
    (dict(tensors=lambda s: {"y_mean": torch.tensor(-1e6)}), "predicts"),  # negative milliseconds
    (dict(tensors=lambda s: {k: v.to(torch.int64) for k, v in s.items()}), "floats"),  # predicts a constant
    (dict(meta_edit=lambda m: m["config"].update(width=4096)), "do not fit"),  # 2.2 GB of layers from 130 KB
    (dict(meta_edit=lambda m: m["config"].update(width=10**9)), "width"),
    (dict(tensors=lambda s: {k: -v if k.startswith("linear") else v for k, v in s.items()}), "wrong way round"),
])
def test_harmful_lpm_folders_are_refused(lpm_dir, tmp_path, attack, match):
    bad = resign(lpm_dir, tmp_path / "bad", **attack)
    with pytest.raises(UserInputError, match=match) as e:
        LPM.load(bad)
    assert "\n" not in str(e.value)


def test_a_deep_meta_json_is_refused(lpm_dir, tmp_path, run_cli):
    bad = tmp_path / "deep"
    bad.mkdir()
    (bad / MODEL_FILE).write_bytes((lpm_dir / MODEL_FILE).read_bytes())
    (bad / "meta.json").write_text("[" * 200_000 + "]" * 200_000)
    assert_one_line_error(run_cli("predict", "--lpm", str(bad), "DARTS_V2"))


def test_saving_non_finite_weights_fails(tmp_path):
    lpm = LPM(LPMConfig(depth=1, width=4))
    with torch.no_grad():
        lpm.linear.weight[0, 0] = float("nan")
    with pytest.raises(Exception, match="non-finite"):
        lpm.save(tmp_path / "nan")
    assert not (tmp_path / "nan" / "meta.json").exists()


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 1e300, 1e-300, -3.0, 0.0, "NaN"])
def test_fit_refuses_impossible_latencies(value):
    records = synthetic_records(30, seed=0)
    records[7] = replace(records[7], latency_ms=value)
    with pytest.raises(UserInputError, match=r"1 of 30 records have impossible latencies") as e:
        dataset_from_records(records)
    assert records[7].arch_hash in str(e.value)


def _search_cfg(tmp_path, **kw):
    base = dict(out=str(tmp_path / "run"), dataset="synthetic", epochs=1, channels=4, cells=3, batch_size=96,
                threads=1, progress=False)
    base.update(kw)
    return SearchConfig(**base)


@pytest.mark.parametrize("kw,match", [
    (dict(seed=-1), "--seed"), (dict(seed=2**70), "--seed"), (dict(batch_size=0), "--batch-size"),
    (dict(threads=0), "--threads"), (dict(lr=float("nan")), "lr"), (dict(epochs=10**9), "--epochs"),
    (dict(input_size=30), "divisible by 4"), (dict(lam=float("inf")), "--lambda"),
])
def test_search_settings_outside_their_range_are_refused_before_any_work(tmp_path, kw, match):
    with pytest.raises(UserInputError, match=match):
        run_search(_search_cfg(tmp_path, **kw))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv", [
    ["search", "--dataset", "synthetic", "--seed", "-1"],
    ["search", "--dataset", "synthetic", "--seed", str(2**70)],
    ["search", "--dataset", "synthetic", "--batch-size", "0"],
    ["search", "--dataset", "synthetic", "--threads", "0"],
    ["train", "DARTS_V2", "--dataset", "synthetic", "--seed", "-1"],
    ["train", "DARTS_V2", "--dataset", "synthetic", "--lr", "nan"],
    ["train", "DARTS_V2", "--dataset", "synthetic", "--threads", "0"],
    ["info", "DARTS_V2", "--input-size", "1"],
])
def test_cli_ranges_are_one_line(argv, cli, tmp_path):
    out = [] if argv[0] == "info" else ["--out", str(tmp_path / "r")]
    assert_one_line_error(cli(*argv, *out))
    assert not (tmp_path / "r").exists()


def test_fit_seed_out_of_range_is_one_line():
    with pytest.raises(UserInputError, match="--seed"):
        fit_lpm(synthetic_records(20, seed=0), seed=-1)


def test_stale_temporary_checkpoints_are_removed_on_the_next_run(tmp_path):
    cfg = _search_cfg(tmp_path, epochs=2)
    run = tmp_path / "run"
    run.mkdir()
    stale = run / ".checkpoint.pt.abc123.tmp"  # what a kill during torch.save leaves behind
    stale.write_bytes(b"\0" * 4096)
    run_search(cfg)
    assert not stale.exists()
    assert not list(run.glob(".*.tmp"))


def test_an_unexpected_failure_is_one_line_and_debug_shows_the_traceback(monkeypatch, capsys):
    from ladarts import cli
    from ladarts.cli import space

    def boom(args):
        raise RuntimeError("something inside broke\nsecond line")

    monkeypatch.setattr(space, "cmd_zoo", boom)
    assert cli.main(["zoo"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "zoo failed: RuntimeError: something inside broke" in err
    monkeypatch.setenv("LADARTS_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli.main(["zoo"])
