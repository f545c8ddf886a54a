import csv
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import assert_one_line_error
from ladarts.errors import UserInputError
from ladarts.hardware import LatencyStore, MeasureConfig, Measurer, Platform, agreement, campaign_items, integrity_ok
from ladarts.hardware.campaign import check_stream
from ladarts.hardware.noise import concordant_share
from ladarts.hardware.runtimes import load
from ladarts.hardware.timer import summarize, time_interleaved
from ladarts.space import ZOO, network_config

TINY = dict(channels=4, cells=3, input_size=8)
TINY_NET = ["--channels", "4", "--cells", "3", "--input-size", "8", "--no-progress"]
TINY_ARGS = [*TINY_NET, "--pairs", "3"]
FAST = MeasureConfig(pairs=2, warmup=0, calibration=3, drift_every=4, drift_repeats=2)


def tiny_platform(**kw) -> Platform:
    return Platform(network=network_config("cifar", **TINY), **kw)


def test_platform_key_is_stable_and_readable():
    p = tiny_platform()
    assert p.key == tiny_platform().key
    assert p.key.startswith("torch-cpu-t1-b1-float32/cifar-c4-l3-k10-8px-in3/")
    assert tiny_platform(threads=2).key != p.key
    assert tiny_platform(runtime="onnxruntime").key != p.key
    assert Platform.from_settings(json.loads(json.dumps(p.settings()))) == p
    fp = p.fingerprint()
    assert fp["torch"] == torch.__version__ and fp["cpu_count"] >= 1 and fp["cpu_model"]


AMD_ZEN3 = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\n" \
           "stepping\t: 1\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\n"


def test_a_masked_cpu_brand_is_told_apart_by_its_signature():
    from ladarts.hardware.platform import cpu_signature, cpuinfo_fields, fingerprint_mismatch

    assert cpu_signature(cpuinfo_fields(AMD_ZEN3)) == "AuthenticAMD 25/1/1"  # the first processor's block only
    assert cpu_signature(cpuinfo_fields("processor\t: 0\nBogoMIPS\t: 50.00\nCPU part\t: 0xd0c\n")) is None
    zen3 = {"cpu_model": "AMD EPYC", "cpu_signature": "AuthenticAMD 25/1/1", "torch": "2.13.0"}
    zen4 = dict(zen3, cpu_signature="AuthenticAMD 25/17/1")
    assert fingerprint_mismatch(zen3, zen4) == ["cpu_signature AuthenticAMD 25/1/1 → AuthenticAMD 25/17/1"]
    legacy = {"cpu_model": "AMD EPYC", "torch": "2.13.0"}  # a database from before the signature was recorded
    assert fingerprint_mismatch(legacy, zen4) == []
    assert "cpu_signature" in tiny_platform().fingerprint()


@pytest.mark.parametrize("kw", [dict(runtime="tensorrt"), dict(device="gpu"), dict(threads=0),
                                dict(runtime="onnxruntime", device="cuda:0"), dict(dtype="float16")])
def test_bad_platform_settings_are_refused(kw):
    with pytest.raises(UserInputError):
        tiny_platform(**kw)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_platform_without_a_gpu_is_a_clear_error():
    with pytest.raises(UserInputError, match="no CUDA GPU"):
        tiny_platform(device="cuda:0").key


def test_timer_synchronises_around_every_timed_forward():
    events = []
    timing = time_interleaved(lambda: events.append("a"), lambda: events.append("r"), lambda: events.append("s"),
                              pairs=4, warmup=1, ref_ms=10.0)
    timed = events[3:]  # after warm-up (a, r) and its sync
    ref_first, arch_first = ["s", "r", "s", "s", "a", "s"], ["s", "a", "s", "s", "r", "s"]
    assert timed == (ref_first + arch_first) * 2  # each forward between two syncs; the order alternates
    assert timing.repeats == 4 and timing.warmup == 1


def test_summary_uses_the_median_pair_ratio():
    arch = [0.020, 0.022, 0.040, 0.021]
    ref = [0.010, 0.011, 0.020, 0.010]  # the machine slowed down for pair 3: the ratio does not
    t = summarize(arch, ref, ref_ms=12.0, warmup=0)
    assert t.ratio == pytest.approx(2.0, rel=0.03)
    assert t.latency_ms == pytest.approx(24.0, rel=0.03)
    assert t.min_ms == pytest.approx(20.0) and t.median_ms == pytest.approx(21.5)


def test_onnx_and_torch_runtimes_compute_the_same_network():
    g = ZOO["DARTS_V2"]
    t = load(g, tiny_platform())
    o = load(g, tiny_platform(runtime="onnxruntime"))
    assert o.export_s > 0
    np.testing.assert_allclose(o.forward()[0], t.forward().numpy(), rtol=1e-4, atol=1e-5)


def test_store_round_trip_resume_and_retime(tmp_path):
    db = tmp_path / "lat.db"
    with LatencyStore.open_or_create(db) as store:
        m = Measurer(store, tiny_platform(), FAST)
        items = campaign_items(6, seed=3)
        r1 = m.run(items[:4], progress=False)
        r2 = m.run(items, progress=False)  # resumes: only the two new ones
        assert (r1.measured, r2.measured, r2.skipped) == (4, 2, 4)
        recs = store.records(m.key, run="main")
        assert [r.genotype for r in recs] == [g for _, g in items]
        assert all(r.latency_ms > 0 and r.repeats == 2 and r.min_ms <= r.median_ms for r in recs)
        r3 = m.run([(r.seq, r.genotype) for r in recs], run="b", progress=False)
        assert r3.measured == 6 and set(store.runs(m.key)) == {"main", "b"}
        drift = [t for t in store.reference_timings(m.key) if t["kind"] == "drift"]
        assert len(drift) >= 3  # after record 4 of run main, for each drift reference
        ref = store.reference(m.key)
        assert ref.sessions == 1 and ref.timings >= 2 and store.platform_row(m.key)["ref_ms"] == ref.ms > 0
        assert all(r.latency_ms == pytest.approx(r.ratio * ref.ms) for r in store.records(m.key))
    assert integrity_ok(db)


def test_opening_never_creates_and_refuses_foreign_files(tmp_path):
    missing = tmp_path / "typo.db"
    with pytest.raises(UserInputError, match="no such"):
        LatencyStore.open(missing)
    assert not missing.exists()
    text = tmp_path / "notes.db"
    text.write_text("hello, not a database\n" * 100)
    with pytest.raises(UserInputError, match="not a ladarts"):
        LatencyStore.open(text)
    with pytest.raises(UserInputError, match="not a ladarts"):
        LatencyStore.open_or_create(text)
    assert text.read_text().startswith("hello")
    foreign = tmp_path / "other.db"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    before = hashlib.sha256(foreign.read_bytes()).hexdigest()
    with pytest.raises(UserInputError, match="not a ladarts"):
        LatencyStore.open_or_create(foreign)
    assert hashlib.sha256(foreign.read_bytes()).hexdigest() == before


def test_other_schema_version_is_refused(tmp_path):
    db = tmp_path / "old.db"
    LatencyStore.open_or_create(db).close()
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(UserInputError, match="schema version 99"):
        LatencyStore.open(db)


def test_export_csv_and_parquet(tmp_path):
    db = tmp_path / "lat.db"
    with LatencyStore.open_or_create(db) as store:
        Measurer(store, tiny_platform(), FAST).run(campaign_items(3, 0), progress=False)
        assert store.export(tmp_path / "x.csv") == 3
        assert store.export(tmp_path / "x.parquet") == 3
        with pytest.raises(UserInputError):
            store.export(tmp_path / "x.xlsx")
    rows = list(csv.DictReader(open(tmp_path / "x.csv")))
    assert len(rows) == 3 and float(rows[0]["latency_ms"]) > 0 and json.loads(rows[0]["genotype"])["normal"]
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "x.parquet").num_rows == 3


def test_agreement_metrics():
    a = {str(i): float(v) for i, v in enumerate([10, 20, 30, 40])}
    same = agreement(a, dict(a))
    assert same["mape_sym_pct"] == 0 and same["kendall_tau_b"] == pytest.approx(1) and same["concordant_share"] == 1
    rev = agreement(a, {k: 100 - v for k, v in a.items()})
    assert rev["kendall_tau_b"] == pytest.approx(-1) and rev["concordant_share"] == 0
    scaled = agreement(a, {k: v * 1.1 for k, v in a.items()})
    assert scaled["mape_sym_pct"] == pytest.approx(100 * 0.1 / 1.05)
    assert concordant_share(np.array([1.0, 2, 3]), np.array([1.0, 3, 2])) == pytest.approx(2 / 3)
    with pytest.raises(UserInputError):
        agreement({"x": 1.0}, {"x": 1.0})


# ---- through the CLI ----------------------------------------------------------------------------------------
def test_cli_measure_stats_noise_merge(cli, tmp_path):
    db = str(tmp_path / "lat.db")
    assert cli("measure", "--db", db, "--n", "4", *TINY_ARGS).returncode == 0
    assert cli("measure", "--db", db, "--from-run", "main", "--run", "b", *TINY_ARGS).returncode == 0
    stats = json.loads(cli("db", "stats", db, "--json").stdout)
    assert stats["platforms"][0]["records"] == 8
    noise = json.loads(cli("db", "noise", db, "--json").stdout)
    assert noise["latency_ms"]["n"] == 4 and noise["a"]["run"] == "main" and noise["b"]["run"] == "b"
    assert os.path.exists(db + ".measure-config.json")
    s0, s1, merged = (str(tmp_path / f) for f in ("s0.db", "s1.db", "m.db"))
    assert cli("measure", "--db", s0, "--n", "5", "--shard", "0/2", *TINY_ARGS).returncode == 0
    assert cli("measure", "--db", s1, "--n", "5", "--shard", "1/2", *TINY_ARGS).returncode == 0
    assert cli("db", "merge", merged, s0, s1).returncode == 0
    with LatencyStore.open(merged) as store:
        recs = store.records()
        assert sorted(r.seq for r in recs) == [0, 1, 2, 3, 4]
    assert cli("db", "merge", merged, s0, s1).returncode == 0  # idempotent
    with LatencyStore.open(merged) as store:
        assert len(store.records()) == 5


def test_a_run_grows_only_from_its_own_sample_stream(cli, run_cli, tmp_path):
    db = str(tmp_path / "lat.db")
    assert cli("measure", "--db", db, "--n", "2", "--seed", "1", "--shard", "1/2", *TINY_ARGS).returncode == 0
    assert cli("measure", "--db", db, "--n", "2", "--seed", "1", "--shard", "0/2", *TINY_ARGS).returncode == 0
    config = open(db + ".measure-config.json").read()
    for other in (["--seed", "2"], ["--seed", "1", "--sampler", "uniform"]):  # another stream under the same name
        assert_one_line_error(cli("measure", "--db", db, "--n", "3", *other, *TINY_ARGS), 2)
    assert _count(db) == 2 and open(db + ".measure-config.json").read() == config  # refused before any write
    # another run name, or the same name on another platform, is another stream's to start
    assert cli("measure", "--db", db, "--n", "1", "--seed", "2", "--run", "c", *TINY_ARGS).returncode == 0
    # in a subprocess: two threads set in this process would outlive the call
    assert run_cli("measure", "--db", db, "--n", "1", "--seed", "2", "--threads", "2", *TINY_ARGS).returncode == 0
    key = tiny_platform().key
    with LatencyStore.open_or_create(db) as store:
        assert store.first_in_stream(key, "latency", "main")[0] == 0
        check_stream(store, key, "main", campaign_items(5, 1, sampler="stratified"))
        with pytest.raises(UserInputError, match="another sample stream"):
            Measurer(store, tiny_platform(), FAST).run(campaign_items(5, 3, sampler="stratified"), progress=False)
        assert len(store.records(key, run="main")) == 2


@pytest.mark.parametrize(
    "args",
    [
        ["measure", "--db", "{tmp}/new.db", "--n", "2", "--runtime", "tensorrt"],
        ["measure", "--db", "{tmp}/new.db", "--n", "2", "--device", "tpu"],
        ["measure", "--db", "{tmp}/new.db", "--n", "2", "--shard", "3/2"],
        ["measure", "--db", "{tmp}/new.db", "--n", "2", "--channels", "5"],
        ["measure", "--db", "{tmp}/new.db"],
        ["db", "stats", "{tmp}/typo.db"],
        ["db", "stats", "{tmp}/notes.txt"],
        ["db", "merge", "{tmp}/new.db", "{tmp}/notes.txt"],
        ["db", "export", "{tmp}/typo.db", "--out", "{tmp}/x.csv"],
        ["measure", "--db", "{tmp}/new.db", "--n", "2", "--pairs", "0"],
        ["measure", "--db", "{tmp}/new.db", "--n", "2", "--pairs", "1001"],
        ["measure", "--db", "{tmp}/new.db", "--n", "2", "--warmup", "-5"],
        ["measure", "--db", "{tmp}/new.db", "--n", "2", "--warmup", "101"],
        ["measure", "--db", "{tmp}/new.db", "--n", "-1"],
        ["measure", "--db", "{tmp}/new.db", "--n", "2e9"],
        ["measure", "--db", "{tmp}/new.db", "--n", "1.5"],
        ["measure", "--db", "{tmp}/new.db", "--n", "2", "--threads", "0"],
        ["measure", "--db", "{tmp}/new.db", "--n", "2", "--threads", "5000"],
        ["measure", "--db", "{tmp}/new.db", "--n", "2", "--batch-size", "0"],
        ["measure", "--db", "{tmp}/new.db", "--n", "2", "--batch-size", "5000"],
        ["measure", "--db", "{tmp}/new.db", "--n", "2", "--seed", "-1"],
        ["measure", "--db", "{tmp}/new.db", "--n", "2", "--max-slowdown", "1"],
        ["measure", "--db", "{tmp}/new.db", "--n", "2", "--max-slowdown", "nan"],
        ["measure", "--db", "{tmp}/new.db", "--n", "2", "--ray", "auto", "--per-node", "0"],
        ["measure", "--db", "{tmp}/new.db", "--n", "2", "--ray", "auto", "--ray-resource", "nonsense"],
    ],
)
def test_cli_bad_input_is_one_line_and_writes_nothing(cli, tmp_path, args):
    (tmp_path / "notes.txt").write_text("not a database")
    proc = cli(*[a.format(tmp=tmp_path) for a in args])
    assert_one_line_error(proc, 2)
    assert not (tmp_path / "new.db").exists() and not (tmp_path / "typo.db").exists()
    assert not (tmp_path / "x.csv").exists()
    assert (tmp_path / "notes.txt").read_text() == "not a database"


def _count(db) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT count(*) FROM measurements").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0  # not created yet, or the schema is being written


def test_kill_9_at_random_moments_then_resume(tmp_path):
    """A campaign killed with SIGKILL several times ends with exactly N unique records and a sound file.

    Each kill waits for a random number of records to be committed (so it lands mid-campaign however fast the
    machine is), then a random few milliseconds more, to hit the writer anywhere in its cycle.
    """
    n = 40
    db = tmp_path / "lat.db"
    cmd = [sys.executable, "-m", "ladarts", "measure", "--db", str(db), "--n", str(n), "--seed", "5", *TINY_NET,
           "--pairs", "10"]
    rng = random.Random(0)
    partial = []
    for target in sorted(rng.sample(range(1, n - 5), 4)):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while proc.poll() is None and _count(db) < target and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert integrity_ok(db)
        partial.append(_count(db))
    assert sum(0 < k < n for k in partial) >= 3, partial  # the kills landed mid-campaign
    assert partial == sorted(partial)  # nothing committed was lost
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    assert integrity_ok(db)
    with LatencyStore.open(db) as store:
        recs = store.records()
    assert len(recs) == n == len({r.arch_hash for r in recs})
    expected = [g for _, g in campaign_items(n, 5, sampler="stratified")]  # `measure` samples stratified
    assert sorted(r.seq for r in recs) == list(range(n)) and {r.genotype for r in recs} == set(expected)


# ---- bounded work, clean failures ----------------------------------------------------------------------------
def test_campaign_items_are_generated_lazily():
    t0 = time.perf_counter()
    items = campaign_items(10**8, 0)
    assert len(items) == 10**8
    from ladarts.space import sample_genotypes

    first = sample_genotypes(5, 0)
    assert [g for _, g in items[:3]] == first[:3] and items[4] == (4, first[4])
    assert next(iter(items)) == (0, first[0])
    shard = campaign_items(10, 0, (1, 3))
    assert len(shard) == 3 and [s for s, _ in shard] == [1, 4, 7] and shard[-1][0] == 7
    assert [s for s, _ in shard[1:]] == [4, 7]
    assert time.perf_counter() - t0 < 10  # nothing of the 1e8 was built


def test_a_huge_campaign_starts_at_once_and_resumes(tmp_path):
    class Stop(Exception):
        pass

    def stop_after(k):
        def hook(result):
            if result.measured >= k:
                raise Stop

        return hook

    items = campaign_items(10**8, 4)
    with LatencyStore.open_or_create(tmp_path / "lat.db") as store:
        m = Measurer(store, tiny_platform(), FAST)
        with pytest.raises(Stop):
            m.run(items, progress=False, on_record=stop_after(3))
        seen = []
        with pytest.raises(Stop):
            m.run(items, progress=False, on_record=lambda r: (seen.append(r.skipped), stop_after(2)(r)))
        recs = store.records(m.key)
    assert seen[0] == 3 and [r.seq for r in recs] == [0, 1, 2, 3, 4]  # skipped the done 3, no duplicates


def test_measure_cli_with_n_1e8_starts_at_once(tmp_path):
    db = tmp_path / "lat.db"
    proc = subprocess.Popen([sys.executable, "-m", "ladarts", "measure", "--db", str(db), "--n", "1e8", *TINY_ARGS],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while proc.poll() is None and _count(db) < 2 and time.time() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None and _count(db) >= 2
    finally:
        proc.kill()
        proc.wait()
    assert integrity_ok(db)


def test_a_failed_measure_leaves_no_empty_platform(tmp_path, monkeypatch):
    import ladarts.hardware.campaign as campaign

    def fail(*a, **k):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(campaign, "time_alone", fail)
    db = tmp_path / "lat.db"
    with LatencyStore.open_or_create(db) as store:
        with pytest.raises(RuntimeError):
            Measurer(store, tiny_platform(), FAST)
        assert store.platforms() == []
    monkeypatch.undo()
    with LatencyStore.open_or_create(db) as store:
        Measurer(store, tiny_platform(), FAST).run(campaign_items(2, 0), progress=False)
    with LatencyStore.open(db) as store:
        assert store.resolve_platform(None) == tiny_platform().key  # fit would not ask for --platform


def test_a_slow_session_is_refused_before_it_adds_to_the_platform(tmp_path, monkeypatch, cli):
    """With ``max_slowdown``, a session whose reference runs slower than that multiple of the platform's scale
    times nothing and stores nothing, its calibration included; within it, or without the option, it measures."""
    import ladarts.hardware.campaign as campaign

    db = tmp_path / "lat.db"
    with LatencyStore.open_or_create(db) as store:
        Measurer(store, tiny_platform(), FAST).run(campaign_items(2, 0, sampler="stratified"), progress=False)
        scale = store.reference(tiny_platform().key)
    calibrate = campaign.DeviceTimer.calibrate

    def slower(factor):
        def timed(self):
            return {**calibrate(self), "median_ms": factor * scale.ms}
        return timed

    monkeypatch.setattr(campaign.DeviceTimer, "calibrate", slower(1.5))
    with LatencyStore.open_or_create(db) as store:
        with pytest.raises(campaign.LadartsError, match=r"1\.50x the platform's .* beyond --max-slowdown 1\.2"):
            Measurer(store, tiny_platform(), MeasureConfig(**{**FAST.to_dict(), "max_slowdown": 1.2}))
        assert store.reference(tiny_platform().key).sessions == scale.sessions == 1
        campaign.check_speed(store, "another-platform", 100.0, 1.2)  # nothing to compare with: no refusal
    args = ["measure", "--db", str(db), "--n", "4", *TINY_ARGS, "--seed", "0"]
    proc = cli(*args, "--max-slowdown", "1.2")
    assert_one_line_error(proc, 1)
    assert "this machine is slower or busier than the one that measured it" in proc.stderr
    with LatencyStore.open(db) as store:
        assert len(store.records()) == 2 and store.reference(tiny_platform().key).sessions == 1

    monkeypatch.setattr(campaign.DeviceTimer, "calibrate", slower(1.1))
    assert cli(*args, "--max-slowdown", "1.2").returncode == 0
    monkeypatch.setattr(campaign.DeviceTimer, "calibrate", slower(3.0))
    assert cli(*args, "--n", "5").returncode == 0  # no --max-slowdown: never refused
    with LatencyStore.open(db) as store:
        assert len(store.records()) == 5 and store.reference(tiny_platform().key).sessions == 3


def test_ray_without_ray_installed_says_how_to_install(run_cli, tmp_path):
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "__init__.py").write_text("raise ImportError('no ray here')\n")
    env_path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "ladarts", "measure", "--db", str(tmp_path / "f.db"), "--n", "3",
                           "--ray", "auto", *TINY_ARGS], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=env_path))
    assert_one_line_error(proc, 2)
    assert proc.stderr.strip() == "ladarts: error: --ray needs Ray: pip install 'ladarts[fleet]'"
    assert not (tmp_path / "f.db").exists()
