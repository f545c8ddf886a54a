"""The closed loop (`search --refine K`): rounds measure where the search is, add it to the database, refit the
LPM the search is charged with, and resume without measuring twice."""

import json

import pytest

from conftest import assert_one_line_error
from ladarts.hardware import LatencyStore, MeasureConfig, Measurer, Platform, campaign_items
from ladarts.predict import LPM, LPMConfig, fit_lpm
from ladarts.refine import RefineConfig, refine_epochs, run_refined_search
from ladarts.search import SearchConfig
from ladarts.space import Genotype, arch_hash, network_config, neighbours

TINY = network_config("cifar", channels=4, cells=3, input_size=8)
LPM_CONFIG = LPMConfig(depth=1, width=16, max_epochs=30)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A database of 40 architectures timed on this CPU's tiny network, and the LPM fitted on it."""
    d = tmp_path_factory.mktemp("refine")
    platform = Platform(network=TINY)
    with LatencyStore.open_or_create(d / "lat.db") as store:
        Measurer(store, platform, MeasureConfig(pairs=2, calibration=5)).run(
            campaign_items(40, 0, sampler="stratified"), run="a", progress=False)
        lpm, _ = fit_lpm(store.records(platform.key, run="a"), platform_row=store.platform_row(platform.key),
                         config=LPM_CONFIG)
    lpm.save(d / "lpm")
    return d


def _search(out, **kw) -> SearchConfig:
    return SearchConfig(out=str(out), dataset="synthetic", epochs=4, channels=4, cells=3, batch_size=96, threads=1,
                        lam=1.0, progress=False, **kw)


def _copy_db(measured, tmp_path):
    db = tmp_path / "lat.db"
    db.write_bytes((measured / "lat.db").read_bytes())
    return db


def test_rounds_are_spread_over_the_epochs_that_update_alpha_and_never_after_the_last():
    assert refine_epochs(6, 0, 3) == [1, 2, 4]
    assert refine_epochs(10, 4, 2) == [5, 7]
    assert refine_epochs(4, 0, 3) == [0, 1, 2]
    for epochs, warmup, k in [(6, 0, 5), (50, 15, 7), (3, 1, 1)]:
        due = refine_epochs(epochs, warmup, k)
        assert len(set(due)) == k and min(due) >= warmup and max(due) < epochs - 1


def test_neighbours_are_distinct_one_edge_mutants():
    g = Genotype.from_dict({"normal": [["skip_connect", 0], ["sep_conv_3x3", 1]] * 4, "normal_concat": [2, 3, 4, 5],
                            "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1]] * 4, "reduce_concat": [2, 3, 4, 5]})
    ns = neighbours(g, 20, seed=3)
    assert len({arch_hash(n) for n in ns}) == 20 and arch_hash(g) not in {arch_hash(n) for n in ns}
    for n in ns:
        diff = [(a, b) for a, b in zip(g.normal + g.reduce, n.normal + n.reduce) if a != b]
        assert len(diff) == 1 and diff[0][0][1] == diff[0][1][1] and diff[0][1][0] != "none"
    assert neighbours(g, 20, seed=3) == ns and len(neighbours(g, 10_000, seed=0)) == 16 * 6


def test_refinement_adds_measurements_and_refits_the_lpm_the_search_is_charged_with(measured, tmp_path):
    db = _copy_db(measured, tmp_path)
    lpm = LPM.load(measured / "lpm")
    rounds = []
    res = run_refined_search(_search(tmp_path / "run"), lpm, RefineConfig(rounds=2, db=str(db), neighbours=2,
                                                                          pairs=2), on_round=rounds.append)
    assert [r["round"] for r in rounds] == [1, 2] and [r["epoch"] for r in rounds] == refine_epochs(4, 0, 2)
    state = json.loads((res.out / "refine" / "state.json").read_text())
    assert state["rounds"] == rounds
    with LatencyStore.open(db) as store:
        key = Platform(network=TINY).key
        refined = {r.arch_hash for r in store.records(key, run="refine")}
    assert refined == {h for r in rounds for h in r["measured"]} and 2 <= len(refined) <= 6
    last = LPM.load(res.out / "refine" / rounds[-1]["lpm"])
    trained_on = set(last.meta["training"]["arch_hashes"])
    assert refined <= trained_on and set(lpm.meta["training"]["arch_hashes"]) <= trained_on
    assert rounds[-1]["n_train"] == len(trained_on) == len(lpm.meta["training"]["arch_hashes"] + list(refined))
    # the epochs after the last round were charged with the refitted LPM: its prediction of the derived genotype
    log = [json.loads(l) for l in (res.out / "log.jsonl").read_text().splitlines()]
    final = Genotype.from_dict(log[-1]["genotype"])
    assert log[-1]["lat_derived_ms"] == pytest.approx(float(last.predict([final])[0]), rel=1e-5)
    assert log[-1]["lat_derived_ms"] != pytest.approx(float(lpm.predict([final])[0]), rel=1e-3)


def test_an_interrupted_refined_search_resumes_without_measuring_twice(measured, tmp_path):
    db = _copy_db(measured, tmp_path)
    refine = RefineConfig(rounds=2, db=str(db), neighbours=2, pairs=2)

    def stop(r):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_refined_search(_search(tmp_path / "run"), LPM.load(measured / "lpm"), refine, on_round=stop)
    first = json.loads((tmp_path / "run" / "refine" / "state.json").read_text())["rounds"]
    assert len(first) == 1
    res = run_refined_search(_search(tmp_path / "run", resume=True), LPM.load(measured / "lpm"), refine)
    rounds = json.loads((res.out / "refine" / "state.json").read_text())["rounds"]
    assert rounds[0] == first[0] and len(rounds) == 2
    with LatencyStore.open(db) as store:
        recs = store.records(Platform(network=TINY).key, run="refine")
    assert len(recs) == len({r.arch_hash for r in recs}) == len({h for r in rounds for h in r["measured"]})


def test_refine_refuses_an_lpm_of_another_platform_in_one_line(measured, tmp_path, run_cli):
    db = _copy_db(measured, tmp_path)
    base = ["search", "--dataset", "synthetic", "--epochs", "4", "--channels", "4", "--cells", "3",
            "--batch-size", "96", "--lambda", "1", "--out", str(tmp_path / "run")]
    other = tmp_path / "other-lpm"
    lpm = LPM.load(measured / "lpm")
    settings = {**lpm.meta["platform"]["settings"], "threads": 2}
    lpm.meta["platform"] = {**lpm.meta["platform"], "settings": settings,
                            "key": Platform.from_settings(settings).key}
    lpm.save(other)
    proc = run_cli(*base, "--lpm", str(other), "--refine", "1", "--db", str(db))
    assert_one_line_error(proc)
    assert_one_line_error(run_cli(*base, "--lpm", str(measured / "lpm"), "--refine", "1"))  # no --db
    proc = run_cli(*base, "--lpm", str(measured / "lpm"), "--refine", "4", "--db", str(db))
    assert_one_line_error(proc)
    assert "K <" in proc.stderr
