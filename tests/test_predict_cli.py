"""End to end: ladarts fit / predict / evaluate / transfer on a small synthetic database (no timing)."""

import json

import numpy as np
import pytest

from conftest import assert_one_line_error
from ladarts.hardware import LatencyStore, Platform
from ladarts.predict import LPM, additive_table
from ladarts.predict.synthetic import additive_latency
from ladarts.space import encode_many, network_config, sample_genotypes

TINY_NET = network_config("cifar", channels=4, cells=3, input_size=8)
FAST = ["--max-epochs", "80", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """Torch platform: run 'main' (240 archs) and an independent noisy re-run of 60 of them; an ONNX Runtime
    platform whose latency is a different additive function of the same architectures (run 'main', 80 archs)."""
    path = tmp_path_factory.mktemp("db") / "lat.db"
    torch_p, onnx_p = Platform(network=TINY_NET), Platform(runtime="onnxruntime", network=TINY_NET)
    gens = sample_genotypes(240, seed=0)
    enc = encode_many(gens).numpy()
    lat_t = additive_latency(enc, additive_table(0), 20.0)
    lat_o = additive_latency(enc, 0.3 * additive_table(0) + 0.05 * additive_table(3), 4.0)
    rng = np.random.default_rng(0)
    with LatencyStore.open_or_create(path) as store:
        for p in (torch_p, onnx_p):
            store.add_calibration(p.key, p.settings(), p.fingerprint(), "DARTS_V2", "synthetic", {"median_ms": 1.0})
        for i, g in enumerate(gens):
            store.add_measurement(g, torch_p.key, "latency", "main", i, {"latency_ms": float(lat_t[i]), "repeats": 10})
            if i < 60:
                noisy = float(lat_t[i] * (1 + 0.02 * rng.standard_normal()))
                store.add_measurement(g, torch_p.key, "latency", "rerun", i, {"latency_ms": noisy, "repeats": 10})
            if i < 80:
                store.add_measurement(g, onnx_p.key, "latency", "main", i, {"latency_ms": float(lat_o[i]),
                                                                             "repeats": 10})
    return path, torch_p.key, onnx_p.key


@pytest.fixture(scope="module")
def fitted(db, tmp_path_factory, run_cli_module):
    path, tkey, _ = db
    out = tmp_path_factory.mktemp("fit") / "lpm"
    proc = run_cli_module("fit", "--db", str(path), "--platform", "torch-cpu", "--out", str(out), "--seed", "1",
                          "--json", *FAST)
    assert proc.returncode == 0, proc.stderr
    return out, json.loads(proc.stdout)


@pytest.fixture(scope="module")
def run_cli_module():
    import os
    import subprocess
    import sys

    def run(*args, timeout=300):
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        return subprocess.run([sys.executable, "-m", "ladarts", *args], capture_output=True, text=True, env=env,
                              timeout=timeout)

    return run


def test_fit_reports_baselines_and_the_rerun_and_writes_its_files(db, fitted):
    _, tkey, _ = db
    out, rep = fitted
    assert rep["platform"] == tkey and rep["run"] == "main"  # the largest run by default
    assert rep["n_test"] == 48 and rep["n_train"] == 192
    assert {"lpm", "constant", "macs_params_linear", "gbdt", "ridge_encoding"} <= set(rep["test"])
    assert rep["test"]["lpm"]["mape_pct"] < rep["test"]["constant"]["mape_pct"]
    rerun = rep["reruns"]["rerun"]
    assert 0 < rerun["n"] <= 48 and "noise_floor (test run predicts re-run)" in rerun["vs_rerun"]
    for name in ("model.safetensors", "meta.json", "config.json", "predicted_vs_measured.png"):
        assert (out / name).is_file(), name
    assert (out / "predicted_vs_measured.png").read_bytes()[:4] == b"\x89PNG"
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["seed"] == 1 and cfg["platform"] == tkey and cfg["lpm_config"]["max_epochs"] == 80


def test_predict_prints_latency_in_ms(fitted, cli):
    out, _ = fitted
    proc = cli("predict", "--lpm", str(out), "DARTS_V2", "PC_DARTS_cifar", "--json")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert [p["genotype"] for p in rep["predictions"]] == ["DARTS_V2", "PC_DARTS_cifar"]
    assert all(10 < p["latency_ms"] < 200 for p in rep["predictions"]) and rep["mean_latency_ms"] > 0
    text = cli("predict", "--lpm", str(out), "DARTS_V2")
    assert text.returncode == 0 and " ms" in text.stdout


def test_evaluate_excludes_what_it_was_fitted_on(db, fitted, cli):
    path, tkey, okey = db
    out, rep = fitted
    proc = cli("evaluate", "--lpm", str(out), "--db", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    ev = json.loads(proc.stdout)
    assert ev["platform"] == tkey and ev["n_excluded_seen"] == rep["n_train"]
    assert ev["metrics"]["n"] == 240 - rep["n_train"] and ev["metrics"]["mape_pct"] < 10
    bad = cli("evaluate", "--lpm", str(out), "--db", str(path), "--platform", "onnxruntime")
    assert_one_line_error(bad)
    assert "fitted on platform" in bad.stderr
    ok = cli("evaluate", "--lpm", str(out), "--db", str(path), "--platform", "onnxruntime",
                        "--allow-platform-mismatch", "--json")
    assert ok.returncode == 0 and "warning" in ok.stderr


def test_transfer_fine_tunes_and_saves_an_lpm_for_the_target(db, fitted, cli, tmp_path):
    path, _, okey = db
    out, _ = fitted
    proc = cli("transfer", "--lpm", str(out), "--db", str(path), "--platform", "onnxruntime",
                          "--k", "20", "--out", str(tmp_path / "t"), "--seed", "0", "--json", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    # scored only on the 60 architectures outside the K that the source LPM was not fitted on
    assert rep["k"] == 20 and rep["target_platform"] == okey
    assert rep["n_eval"] + rep["n_excluded_seen"] == 60 and 0 < rep["n_eval"] < 60
    assert {"source_as_is", "recalibrated", "finetuned", "scratch"} == set(rep["metrics"])
    meta = json.loads((tmp_path / "t" / "meta.json").read_text())
    assert meta["platform"]["key"] == okey and meta["transfer"]["k"] == 20
    ev = cli("evaluate", "--lpm", str(tmp_path / "t"), "--db", str(path), "--platform", "onnxruntime",
                        "--json")
    assert ev.returncode == 0, ev.stderr
    current = json.loads(ev.stdout)
    assert current["n_excluded_seen"] == 20 + rep["n_excluded_seen"]
    assert current["sources_unknown"] is False and "older ladarts" not in ev.stderr
    # an LPM transferred before its sources' architectures were recorded: scored on them, and told so
    lpm = LPM.load(tmp_path / "t")
    del lpm.meta["training"]["source_arch_hashes"]
    lpm.save(tmp_path / "old")
    old = cli("evaluate", "--lpm", str(tmp_path / "old"), "--db", str(path), "--platform", "onnxruntime", "--json")
    assert old.returncode == 0, old.stderr
    legacy = json.loads(old.stdout)
    assert legacy["sources_unknown"] is True and legacy["n_excluded_seen"] == 20 and "older ladarts" in old.stderr


def test_bad_inputs_are_one_line_errors(db, fitted, cli, run_cli_module, tmp_path):
    path, _, _ = db
    out, _ = fitted
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("model.safetensors", "meta.json"):
        (broken / name).write_bytes((out / name).read_bytes())
    (broken / "model.safetensors").write_bytes((out / "model.safetensors").read_bytes()[:-10])
    cases = [
        ("fit", "--db", str(tmp_path / "none.db"), "--out", str(tmp_path / "x")),
        ("fit", "--db", str(path), "--platform", "torch-cpu", "--out", str(tmp_path / "x"), "--train-size", "9999"),
        ("fit", "--db", str(path), "--out", str(tmp_path / "x")),  # two platforms: which one?
        ("fit", "--db", str(path), "--platform", "torch-cpu", "--run", "nope", "--out", str(tmp_path / "x")),
        ("fit", "--db", str(path), "--platform", "torch-cpu", "--out", str(tmp_path / "x"), "--depth", "-1"),
        ("predict", "--lpm", str(tmp_path / "nowhere"), "DARTS_V2"),
        ("predict", "--lpm", str(out), "NASNet"),
        ("predict", "--lpm", str(broken), "DARTS_V2"),
        ("evaluate", "--lpm", str(broken), "--db", str(path)),
        ("transfer", "--lpm", str(out), "--db", str(path), "--platform", "onnxruntime", "--k", "2",
         "--out", str(tmp_path / "y")),
        ("transfer", "--lpm", str(out), "--db", str(path), "--platform", "torch-cpu", "--k", "20",
         "--out", str(tmp_path / "y")),
        ("fit", "--db", str(path), "--out", str(tmp_path / "x"), "--seed", "x"),
    ]
    for args in cases:
        assert_one_line_error(cli(*args))
    assert_one_line_error(run_cli_module(*cases[7]))  # and as a user sees it: a real process, exit code 2
