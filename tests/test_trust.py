"""What a user sees must not mislead: report rows checked against the LPM, the demo's verdict with its CI,
progress in a log file, extrapolation warnings, input sizes a network cannot take."""

import json

import numpy as np
import pytest

from conftest import assert_one_line_error
from ladarts.hardware import Platform
from ladarts.predict import LPMConfig, fit_lpm, synthetic_records
from ladarts.space import ZOO, Genotype, network_config

TINY = network_config("cifar", channels=4, cells=3, input_size=8)


@pytest.fixture(scope="module")
def tiny_lpm(tmp_path_factory):
    """An LPM whose platform is this machine's CPU on the tiny network (fitted on synthetic latencies)."""
    platform = Platform(network=TINY)
    row = {"key": platform.key, "settings": platform.settings(), "fingerprint": {}, "ref_name": None, "ref_ms": None}
    records = [r.__class__(**{**r.__dict__, "platform": platform.key}) for r in synthetic_records(80, seed=0)]
    lpm, _ = fit_lpm(records, platform_row=row, config=LPMConfig(depth=1, width=16, max_epochs=40))
    path = tmp_path_factory.mktemp("lpm") / "lpm"
    lpm.save(path)
    return path


def test_report_refuses_a_genotype_on_another_network_than_the_lpms(tiny_lpm, run_cli):
    proc = run_cli("report", "DARTS_V2", "--lpm", str(tiny_lpm), "--channels", "8", "--pairs", "2")
    assert_one_line_error(proc)
    assert "fitted on" in proc.stderr and "c8" in proc.stderr


def test_report_measures_on_the_lpms_network_by_default_and_checks_every_row(tiny_lpm, run_cli, tmp_path):
    proc = run_cli("report", "DARTS_V2", "PC_DARTS_cifar", "--lpm", str(tiny_lpm), "--pairs", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert {r["platform"] for r in rows} == {Platform(network=TINY).key}
    assert all(r["predicted_ms"] is not None and not r["lpm_platform_mismatch"] for r in rows)
    # a finished run on another network in second place is caught too, not only the first target
    run = tmp_path / "run"
    run.mkdir()
    (run / "report.json").write_text(json.dumps({"genotype": ZOO["DARTS_V2"].to_dict(),
                                                 "network": network_config("cifar", channels=6, cells=3,
                                                                           input_size=8).to_dict(),
                                                 "test_acc": 0.5}))
    assert_one_line_error(run_cli("report", "DARTS_V2", str(run), "--lpm", str(tiny_lpm), "--pairs", "2"))
    marked = run_cli("report", "DARTS_V2", str(run), "--lpm", str(tiny_lpm), "--pairs", "2",
                     "--allow-platform-mismatch")
    assert marked.returncode == 0, marked.stderr
    assert "run *" in marked.stdout and "another platform" in marked.stdout
    warnings = [l for l in marked.stderr.splitlines() if l.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("ladarts: warning:")


def test_paired_reduction_has_a_distribution_free_interval_over_sittings(monkeypatch):
    from ladarts.hardware import paired
    from ladarts.hardware.paired import busy_warning, describe_sittings, format_reduction, paired_reduction

    monkeypatch.setattr(paired, "other_runnable", lambda: 0)  # an idle machine

    skip = Genotype.from_dict({"normal": [["skip_connect", 0], ["skip_connect", 1]] * 4, "normal_concat": [2, 3, 4, 5],
                               "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1]] * 4, "reduce_concat": [2, 3, 4, 5]})
    slept = []
    res = paired_reduction(ZOO["PC_DARTS_cifar"], skip, Platform(network=TINY), sittings=8, pairs=4, gap_s=0.25,
                           sleep=slept.append)
    assert slept == [0.25] * 7 and res["pairs"] == 32 and len(res["sitting_ratios"]) == 8
    ratios = sorted(res["sitting_ratios"])
    assert res["reduction_pct"] == pytest.approx(100 * (1 - (ratios[3] + ratios[4]) / 2)) and res["reduction_pct"] > 0
    lo, hi = res["ci_pct"]
    # n = 8: the 95% interval of a median runs from the 1st to the 8th order statistic (coverage 99.2%; the 2nd to
    # 7th covers only 93%)
    assert (lo, hi) == pytest.approx((100 * (1 - ratios[7]), 100 * (1 - ratios[0])))
    assert format_reduction(res).endswith("%)") and "95% CI" in format_reduction(res)
    assert describe_sittings(res).startswith("8 sittings of 4 interleaved pairs over") and "on" in describe_sittings(res)
    assert res["busy_sittings"] == 0 and busy_warning(res) is None


@pytest.mark.parametrize("busy, used", [([0] * 6 + [1, 2], 6), ([0] * 4 + [1] * 4, 8)])
def test_sittings_beside_busy_processes_are_left_out_when_enough_were_idle(monkeypatch, busy, used):
    from ladarts.hardware import paired

    counts = iter(n for b in busy for n in (0, b))  # sampled before and after each sitting
    monkeypatch.setattr(paired, "other_runnable", lambda: next(counts))
    res = paired.paired_reduction(ZOO["PC_DARTS_cifar"], ZOO["DARTS_V1"], Platform(network=TINY), sittings=8,
                                  pairs=3, gap_s=0, sleep=lambda s: None)
    assert res["sitting_neighbours"] == busy and res["busy_sittings"] == sum(b > 0 for b in busy)
    assert res["sittings_used"] == used
    kept = sorted(r for r, b in zip(res["sitting_ratios"], busy) if b == 0 or used == 8)
    assert res["ratio"] == pytest.approx(float(np.median(kept)))
    warning = paired.busy_warning(res)
    if used == 6:  # left out, and said where the figure came from; nothing to warn about
        assert warning is None and "2 beside busy processes left out" in paired.describe_sittings(res)
    else:
        assert warning.startswith("4 of 8 sittings ran beside other busy processes, too few idle ones")
        assert "left out" not in paired.describe_sittings(res)


@pytest.mark.parametrize("kw", [{"sittings": 5}, {"pairs": 0}, {"gap_s": -1}, {"sittings": 6, "confidence": 0.99}])
def test_paired_reduction_refuses_settings_that_cannot_give_an_interval(kw):
    from ladarts.errors import UserInputError
    from ladarts.hardware.paired import paired_reduction

    with pytest.raises(UserInputError):
        paired_reduction(ZOO["DARTS_V2"], ZOO["DARTS_V1"], Platform(network=TINY), **kw)


def test_search_progress_reaches_a_log_file(run_cli, tmp_path):
    log = tmp_path / "log"
    with open(log, "w") as err:
        import subprocess
        import sys

        proc = subprocess.run([sys.executable, "-m", "ladarts", "search", "--dataset", "synthetic", "--epochs", "2",
                               "--channels", "4", "--cells", "3", "--batch-size", "96", "--threads", "1",
                               "--out", str(tmp_path / "run")], stdout=subprocess.DEVNULL, stderr=err, timeout=300)
    assert proc.returncode == 0
    lines = [l for l in log.read_text().splitlines() if l.startswith("search:")]
    assert len(lines) == 2 and "ETA" in lines[0] and "val acc" in lines[-1]


@pytest.mark.parametrize("argv", [
    ["info", "DARTS_V2", "--input-size", "30"],
    ["info", "DARTS_V2", "--input-size", "1"],
    ["info", "DARTS_V2", "--network", "imagenet", "--input-size", "100"],
])
def test_input_sizes_the_network_cannot_take_are_one_line(argv, cli):
    proc = cli(*argv)
    assert_one_line_error(proc)
    assert "divisible by" in proc.stderr


def test_predict_warns_when_a_genotype_lies_outside_the_lpms_support(tiny_lpm, run_cli, tmp_path):
    lpm_meta = json.loads((tiny_lpm / "meta.json").read_text())
    lo, hi = lpm_meta["support"]["parameter_free"]["normal"]
    assert 0 <= lo <= hi <= 8
    all_free = {"normal": [["skip_connect", 0], ["max_pool_3x3", 1]] * 4, "normal_concat": [2, 3, 4, 5],
                "reduce": [["skip_connect", 0], ["avg_pool_3x3", 1]] * 4, "reduce_concat": [2, 3, 4, 5]}
    path = tmp_path / "g.json"
    path.write_text(json.dumps(all_free))
    proc = run_cli("predict", "--lpm", str(tiny_lpm), str(path))
    assert proc.returncode == 0, proc.stderr
    assert hi < 8  # the uniform sampler's 80 architectures (seed 0) never reach 8 parameter-free edges
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "extrapolation" in lines[0] and lines[0].startswith("ladarts: warning:")
