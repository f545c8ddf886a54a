"""The latency store: one scale per platform, merge as a set union, read-only reads, migration, race-free creation.

Most databases here are synthetic (records written through the store API with made-up ratios), so the tests
take milliseconds and check the store's logic, not the timer.
"""

import hashlib
import json
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import time

import pytest

from conftest import assert_one_line_error
from ladarts.errors import LadartsError, UserInputError
from ladarts.hardware.campaign import campaign_items
from ladarts.hardware.noise import agreement, compare_runs, scale_free
from ladarts.hardware.platform import Platform
from ladarts.hardware.store import (
    NATURAL_KEYS,
    LatencyStore,
    common_reference,
    estimate_reference,
    integrity_ok,
    merge_databases,
    new_session,
)
from ladarts.space import network_config

PLATFORM = Platform(network=network_config("cifar", channels=4, cells=3, input_size=8))
KEY, SETTINGS, FP = PLATFORM.key, PLATFORM.settings(), PLATFORM.fingerprint()

#: The version-1 schema (ladarts 0.1), kept to build old databases and check that they migrate.
V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE platforms (key TEXT PRIMARY KEY, settings TEXT NOT NULL, fingerprint TEXT NOT NULL, ref_name TEXT,
    ref_ms REAL, created REAL NOT NULL);
CREATE TABLE architectures (arch_hash TEXT PRIMARY KEY, genotype TEXT NOT NULL);
CREATE TABLE measurements (
    id INTEGER PRIMARY KEY,
    arch_hash TEXT NOT NULL REFERENCES architectures(arch_hash),
    platform TEXT NOT NULL REFERENCES platforms(key),
    metric TEXT NOT NULL, run TEXT NOT NULL, seq INTEGER, latency_ms REAL NOT NULL,
    ratio REAL, median_ms REAL, min_ms REAL, iqr_ms REAL, mean_ms REAL, ref_median_ms REAL,
    repeats INTEGER NOT NULL, warmup INTEGER, build_s REAL, export_s REAL, timed_s REAL,
    samples TEXT, fingerprint TEXT, created REAL NOT NULL,
    UNIQUE (arch_hash, platform, metric, run)
);
CREATE INDEX measurements_by_run ON measurements (platform, metric, run);
CREATE TABLE drift (id INTEGER PRIMARY KEY, platform TEXT NOT NULL REFERENCES platforms(key), run TEXT NOT NULL,
    ref_name TEXT NOT NULL, after_records INTEGER, median_ms REAL, min_ms REAL, iqr_ms REAL, n INTEGER,
    created REAL NOT NULL);
CREATE TABLE op_timings (id INTEGER PRIMARY KEY, platform TEXT NOT NULL REFERENCES platforms(key),
    cell_kind TEXT NOT NULL, cell_index INTEGER NOT NULL, edge_stride INTEGER NOT NULL, op TEXT NOT NULL,
    channels INTEGER NOT NULL, height INTEGER NOT NULL, width INTEGER NOT NULL, median_ms REAL NOT NULL,
    min_ms REAL, iqr_ms REAL, n INTEGER, created REAL NOT NULL, UNIQUE (platform, cell_index, edge_stride, op));
"""


def ratio_of(h: str, salt: str = "") -> float:
    return 0.5 + int(hashlib.sha256((h + salt).encode()).hexdigest()[:8], 16) / 2**32


def fake_db(path, n=10, seed=0, start=0, ref_ms=10.0, run="main", fingerprint=None, salt="", drift_every=4):
    """A database as a campaign would leave it, without timing anything: one session, calibrated at ``ref_ms``,
    records ``start..n-1`` of the seed's stream with ratios from their hash (``salt`` changes them)."""
    from ladarts.space import arch_hash

    fp = fingerprint or FP
    session = new_session()
    with LatencyStore.open_or_create(path) as s:
        s.add_calibration(KEY, SETTINGS, fp, "DARTS_V2", session, {"median_ms": ref_ms, "min_ms": ref_ms, "n": 5})
        for k, (seq, g) in enumerate(campaign_items(n, seed)[start:]):
            r = ratio_of(arch_hash(g), salt)
            stats = {"ratio": r, "median_ms": r * ref_ms, "min_ms": r * ref_ms, "iqr_ms": 0.0, "mean_ms": r * ref_ms,
                     "ref_median_ms": ref_ms, "repeats": 3, "warmup": 0, "timed_s": 0.01,
                     "samples": {"arch": [r * ref_ms] * 3, "ref": [ref_ms] * 3}}
            drift = [{"ref_name": "DARTS_V2", "kind": "drift", "run": run, "after_records": k + 1,
                      "median_ms": ref_ms * 1.01, "n": 3}] if (k + 1) % drift_every == 0 else []
            s.add_measurement(g, KEY, "latency", run, seq, stats, fp, session=session, ref_timings=drift)
        s.add_op_timing(KEY, "normal", 0, 1, "sep_conv_3x3", (4, 8, 8), {"median_ms": 0.1, "min_ms": 0.1,
                                                                          "iqr_ms": 0.0, "n": 3})
    return path


def content(path, meta: bool = True) -> dict:
    """Every table's rows without the surrogate ids, sorted: what a database holds."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        out = {}
        for t in ("meta", *NATURAL_KEYS):
            if t == "meta" and not meta:
                continue
            cols = [r[1] for r in con.execute(f"PRAGMA table_info({t})") if r[1] != "id"]
            out[t] = sorted(tuple(r) for r in con.execute(f"SELECT {', '.join(cols)} FROM {t}"))
        return out
    finally:
        con.close()


def fingerprint_of_file(path) -> tuple:
    st = os.stat(path)
    return hashlib.sha256(open(path, "rb").read()).hexdigest(), st.st_mtime_ns, st.st_size


def no_side_files(path) -> bool:
    return not any(os.path.exists(f"{path}{s}") for s in ("-wal", "-shm", "-journal"))


# ---- one scale per platform -------------------------------------------------------------------------------------
def test_estimator_is_the_median_of_session_medians():
    timings = [("a", 10.0), ("a", 10.2), ("a", 30.0), ("b", 11.0), ("c", 50.0), ("c", 52.0)]
    ms, medians = estimate_reference(timings)
    assert medians == {"a": 10.2, "b": 11.0, "c": 51.0} and ms == 11.0
    # a long session under load gets one vote, like any other
    assert estimate_reference([("a", 10.0), ("b", 10.4)] + [("loaded", 40.0)] * 50)[0] == 10.4


def test_records_are_ratio_times_the_platform_scale(tmp_path):
    db = fake_db(tmp_path / "a.db", n=8, ref_ms=10.0)
    with LatencyStore.open(db) as s:
        ref = s.reference(KEY)
        assert ref.name == "DARTS_V2" and ref.sessions == 1 and ref.timings == 3  # calibration + 2 drift
        assert ref.ms == pytest.approx(10.1)
        recs = s.records(KEY)
        assert all(r.latency_ms == pytest.approx(r.ratio * ref.ms) for r in recs)
        assert [r.latency_ms for r in s.records(KEY, ref_ms=1.0)] == [r.ratio for r in recs]
        raw = s.raw_samples(KEY, "main")
        assert set(raw) == {r.arch_hash for r in recs} and all(len(v["arch"]) == len(v["ref"]) == 3
                                                               for v in raw.values())
        st = s.stats()["platforms"][0]
        assert st["reference"]["timings"] == 3 and st["ref_ms"] == ref.ms and st["drift_checks"] == 2


def test_two_calibrations_one_common_scale_after_merge(tmp_path):
    a = fake_db(tmp_path / "a.db", n=10, ref_ms=10.0, drift_every=100)
    b = fake_db(tmp_path / "b.db", n=10, ref_ms=20.0, drift_every=100, run="rerun")
    with LatencyStore.open(a) as sa, LatencyStore.open(b) as sb:
        assert sa.reference(KEY).ms == 10.0 and sb.reference(KEY).ms == 20.0
        apart = compare_runs(sa, KEY, "main", KEY, "main", store_b=None)["latency_ms"]
        across = compare_runs(sa, KEY, "main", KEY, "rerun", store_b=sb)
        assert across["scale"]["common_ref_ms"] == pytest.approx(15.0) == common_reference([sa, sb], KEY).ms
        assert across["latency_ms"]["mape_sym_pct"] == pytest.approx(0, abs=1e-9)  # same ratios, one scale
        assert apart["mape_sym_pct"] == 0
        a_alone = {r.arch_hash: r.latency_ms for r in sa.records(KEY)}
        b_alone = {r.arch_hash: r.latency_ms for r in sb.records(KEY)}
        two_scales = agreement(a_alone, b_alone)
        assert two_scales["mape_sym_pct"] > 60  # 10 vs 20 ms: what the issue saw
        assert two_scales["mape_sym_scaled_pct"] == pytest.approx(0, abs=1e-9) and two_scales["scale_factor"] == 0.5
        assert two_scales["kendall_tau_b"] == pytest.approx(1)
    out = tmp_path / "m.db"
    merge_databases(out, [a, b])
    with LatencyStore.open(out) as s:
        ref = s.reference(KEY)
        assert ref.sessions == 2 and ref.ms == pytest.approx(15.0)
        recs = s.records(KEY)
        assert len(recs) == 20 and all(r.latency_ms == pytest.approx(15.0 * r.ratio) for r in recs)


def test_scale_free_figures():
    y = [10.0, 20.0, 30.0, 40.0]
    sf = scale_free(y, [2 * v for v in y])
    assert sf["scale_factor"] == 0.5 and sf["mape_scaled_pct"] == pytest.approx(0) and sf["kendall_tau_b"] == 1


# ---- run selection ----------------------------------------------------------------------------------------------
def test_pick_run_and_noise_runs(tmp_path):
    db = tmp_path / "a.db"
    fake_db(db, n=6)
    fake_db(db, n=4, run="b", salt="x")
    other = fake_db(tmp_path / "o.db", n=4, run="main")
    with LatencyStore.open(db) as s, LatencyStore.open(other) as o:
        assert s.pick_run(KEY) == "main" and s.pick_run(KEY, "b") == "b"
        with pytest.raises(UserInputError, match="runs: main, b"):
            s.pick_run(KEY, "nope")
        assert s.noise_runs(KEY) == ("main", "b")
        assert s.noise_runs(KEY, run_a="b") == ("b", "main")
        assert s.noise_runs(KEY, store_b=o) == ("main", "main")
        with pytest.raises(UserInputError, match="runs: main"):
            s.noise_runs(KEY, run_b="b", store_b=o)
    with LatencyStore.open(other) as o:
        with pytest.raises(UserInputError, match="has one run; re-time it first"):
            o.noise_runs(KEY)


# ---- read-only reads --------------------------------------------------------------------------------------------
def test_reads_never_change_the_file(run_cli, tmp_path):
    db = tmp_path / "a.db"
    fake_db(db, n=6)
    fake_db(db, n=6, run="b", salt="x")
    before = fingerprint_of_file(db)
    assert no_side_files(db)
    time.sleep(0.01)
    with LatencyStore.open(db) as s:
        s.records()
        s.stats()
        with pytest.raises(UserInputError, match="read-only"):
            s.add_ref_timing(KEY, "x", "DARTS_V2", "drift", None, None, {"median_ms": 1.0})
    for args in (["db", "stats", str(db)], ["db", "noise", str(db)], ["db", "export", str(db), "--out",
                                                                       str(tmp_path / "x.csv")],
                 ["db", "merge", str(tmp_path / "out.db"), str(db)]):
        assert run_cli(*args).returncode == 0, args
    assert fingerprint_of_file(db) == before and no_side_files(db)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_error_says_what_failed(tmp_path):
    text = tmp_path / "text.db"
    text.write_text("hello, not a database\n" * 100)
    with pytest.raises(UserInputError, match="not an SQLite file"):
        LatencyStore.open(text)
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as con:
        con.execute("CREATE TABLE t (x)")
    with pytest.raises(UserInputError, match="without ladarts' meta table"):
        LatencyStore.open(foreign)
    corrupt = tmp_path / "corrupt.db"
    fake_db(corrupt, n=40)
    data = bytearray(corrupt.read_bytes())
    data[4096:8192] = os.urandom(4096)  # page 2: the first table's root
    corrupt.write_bytes(bytes(data))
    with pytest.raises(UserInputError, match="corrupt|not an SQLite"):
        with LatencyStore.open(corrupt) as s:
            s.records()
            assert s.validate() == []
    with pytest.raises(UserInputError, match="corrupt"):
        merge_databases(tmp_path / "out.db", [corrupt])
    assert not (tmp_path / "out.db").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file regardless of its mode")
def test_permission_denied_is_named(tmp_path):
    db = fake_db(tmp_path / "a.db", n=2)
    os.chmod(db, 0)
    try:
        with pytest.raises(UserInputError, match="permission denied"):
            LatencyStore.open(db)
    finally:
        os.chmod(db, 0o644)


@pytest.fixture
def immutable(tmp_path):
    """A database file nobody may write, not even root (chattr +i); skipped where that is not allowed."""
    db = fake_db(tmp_path / "ro.db", n=2)
    if subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i not permitted here")
    try:
        yield db
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)


def test_a_read_only_file_fails_before_any_timing(immutable, run_cli):
    before = fingerprint_of_file(immutable)
    with pytest.raises(UserInputError, match="cannot write"):
        LatencyStore.open_or_create(immutable)
    t0 = time.perf_counter()
    proc = run_cli("measure", "--db", str(immutable), "--n", "3", "--channels", "4", "--cells", "3",
                   "--input-size", "8", "--no-progress")
    assert_one_line_error(proc, 2)
    assert "cannot write" in proc.stderr and time.perf_counter() - t0 < 60
    with LatencyStore.open(immutable) as s:  # reading it is fine
        assert len(s.records()) == 2
    assert fingerprint_of_file(immutable) == before


def _open_and_calibrate(path: str, i: int, barrier) -> None:
    barrier.wait(timeout=30)
    with LatencyStore.open_or_create(path) as s:
        s.add_calibration(KEY, SETTINGS, FP, "DARTS_V2", f"session-{i}", {"median_ms": 10.0 + i})


def test_creating_one_database_from_many_processes_at_once(tmp_path):
    path = str(tmp_path / "new.db")
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(12)
    procs = [ctx.Process(target=_open_and_calibrate, args=(path, i, barrier)) for i in range(12)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=90)
    codes = [p.exitcode for p in procs]
    for p in procs:
        if p.is_alive():
            p.kill()
    assert codes == [0] * 12
    assert integrity_ok(path)
    with LatencyStore.open(path) as s:
        assert s.reference(KEY).sessions == 12 and s.platforms() == [KEY]


# ---- migration from version 1 -----------------------------------------------------------------------------------
def make_v1(path, ref_ms=40.0, broken: bool = False):
    """A version-1 database in WAL mode: 2 platforms, 6 records in two runs, drift rows (one doubled by an old
    merge), an op timing; ``broken``: a record without a ratio on a platform without a calibration."""
    from ladarts.space import arch_hash

    con = sqlite3.connect(path)
    con.executescript(V1_SCHEMA)
    con.executemany("INSERT INTO meta VALUES (?, ?)",
                    [("app", "ladarts-latency-db"), ("schema_version", "1"), ("created", str(time.time()))])
    other = KEY.replace("torch-", "onnxruntime-")
    con.execute("INSERT INTO platforms VALUES (?, ?, ?, 'DARTS_V2', ?, 1.0)",
                (KEY, json.dumps(SETTINGS), json.dumps(FP), ref_ms))
    con.execute("INSERT INTO platforms VALUES (?, ?, ?, ?, ?, 2.0)",
                (other, json.dumps(SETTINGS), json.dumps(FP), None if broken else "DARTS_V2",
                 None if broken else 9.0))
    for i, (seq, g) in enumerate(campaign_items(6, 1)):
        h, r = arch_hash(g), ratio_of(arch_hash(g))
        key = other if (broken and i == 5) else KEY
        con.execute("INSERT OR IGNORE INTO architectures VALUES (?, ?)", (h, g.to_json()))
        con.execute("INSERT INTO measurements (arch_hash, platform, metric, run, seq, latency_ms, ratio, median_ms, "
                    "repeats, samples, fingerprint, created) VALUES (?, ?, 'latency', ?, ?, ?, ?, ?, 5, ?, ?, ?)",
                    (h, key, "a" if i < 3 else "b", seq, r * ref_ms, None if key == other else r, r * ref_ms,
                     json.dumps({"arch": [1.0], "ref": [1.0]}), json.dumps(FP), 10.0 + i))
    drift = [(KEY, "a", "DARTS_V2", 2, 41.0, 100.0), (KEY, "a", "PC_DARTS_cifar", 2, 30.0, 101.0),
             (KEY, "b", "DARTS_V2", 2, 80.0, 102.0)]
    con.executemany("INSERT INTO drift (platform, run, ref_name, after_records, median_ms, created) "
                    "VALUES (?, ?, ?, ?, ?, ?)", drift + drift[:1])
    con.execute("INSERT INTO op_timings (platform, cell_kind, cell_index, edge_stride, op, channels, height, width, "
                "median_ms, created) VALUES (?, 'normal', 0, 1, 'skip_connect', 4, 8, 8, 0.01, 3.0)", (KEY,))
    con.execute("PRAGMA journal_mode=WAL")
    con.commit()
    con.close()
    return path


def test_v1_reads_in_memory_and_migrates_in_place_losing_nothing(tmp_path):
    db = make_v1(tmp_path / "v1.db")
    with sqlite3.connect(db) as con:
        old = {r[0]: (r[1], r[2]) for r in con.execute("SELECT arch_hash || run, ratio, latency_ms FROM measurements")}
    before = fingerprint_of_file(db)
    with LatencyStore.open(db) as s:  # read-only: migrated in memory, the file untouched
        ref = s.reference(KEY)
        # sessions: the calibration (40), run a (41), run b (80): the median is 41
        assert (ref.sessions, ref.timings, ref.ms) == (3, 3, 41.0)
        in_memory = {r.arch_hash + r.run: r.ratio for r in s.records(KEY)}
        assert in_memory == {k: v[0] for k, v in old.items()}
        assert len(s.reference_timings(KEY)) == 3 + 1  # 3 distinct drift rows (the double collapsed) + calibration
        with pytest.raises(UserInputError, match="read-only"):
            s.add_ref_timing(KEY, "x", "DARTS_V2", "drift", None, None, {"median_ms": 1.0})
    assert fingerprint_of_file(db)[0] == before[0]
    LatencyStore.open_or_create(db).close()
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "2"
        migrated = {r[0]: r[1] for r in con.execute("SELECT arch_hash || run, ratio FROM measurements")}
        assert con.execute("SELECT count(*) FROM op_timings").fetchone()[0] == 1
    assert migrated == {k: v[0] for k, v in old.items()}
    assert all(abs(v[0] * 40.0 - v[1]) < 1e-9 for v in old.values())  # v1 latency = ratio × its calibration
    with LatencyStore.open(db) as s:
        assert s.reference(KEY).ms == 41.0 and len(s.records()) == 6
    assert integrity_ok(db)


def test_v1_migration_is_all_or_nothing(tmp_path):
    db = make_v1(tmp_path / "v1.db", broken=True)
    with pytest.raises(LadartsError, match="would lose data"):
        LatencyStore.open_or_create(db)
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "1"
        assert con.execute("SELECT count(*) FROM measurements WHERE latency_ms > 0").fetchone()[0] == 6
        assert con.execute("SELECT count(*) FROM drift").fetchone()[0] == 4


def test_v1_merges_like_v2(tmp_path):
    v1 = make_v1(tmp_path / "v1.db")
    out = tmp_path / "out.db"
    merge_databases(out, [v1])
    once = content(out)
    migrated = tmp_path / "mig.db"
    shutil.copy(v1, migrated)
    LatencyStore.open_or_create(migrated).close()
    merge_databases(out, [migrated])  # the same data, migrated in place: nothing new
    assert content(out) == once


# ---- merge as a set union ---------------------------------------------------------------------------------------
@pytest.fixture
def shards(tmp_path):
    """Two shards of one platform that overlap on 5 records measured differently, and a third one."""
    a = fake_db(tmp_path / "a.db", n=10, ref_ms=10.0)
    b = fake_db(tmp_path / "b.db", n=15, start=5, ref_ms=12.0, salt="b")
    c = fake_db(tmp_path / "c.db", n=20, start=15, ref_ms=11.0)
    return a, b, c


def test_merge_thrice_is_merge_once_in_every_table(shards, tmp_path):
    out = tmp_path / "out.db"
    merge_databases(out, shards)
    once = content(out)
    assert len(once["measurements"]) == 10 + 10 + 5 and len(once["ref_timings"]) > 3
    for _ in range(2):
        report = merge_databases(out, shards)
        assert report.added == {} and report.conflicting_runs == {}
        assert content(out) == once


def test_merge_order_does_not_change_the_content(shards, tmp_path):
    a, b, c = shards
    merge_databases(tmp_path / "ab.db", [a, b, c])
    merge_databases(tmp_path / "ba.db", [c, b])
    merge_databases(tmp_path / "ba.db", [a])
    assert content(tmp_path / "ab.db", meta=False) == content(tmp_path / "ba.db", meta=False)


def test_conflicting_records_are_kept_as_their_own_run_and_counted(shards, tmp_path, run_cli):
    a, b, _ = shards
    out = tmp_path / "out.db"
    proc = run_cli("db", "merge", str(out), str(a), str(b))
    assert proc.returncode == 0 and "5 record(s) measured differently" in proc.stderr
    report = merge_databases(out, [b])
    assert report.conflicting_runs == {} and report.present["measurements"] == 10
    with LatencyStore.open(out) as s:
        runs = s.runs(KEY)
        assert runs["main"] == 15 and sum(runs.values()) == 20
        (alt,) = [r for r in runs if r != "main"]
        assert alt.startswith("main@") and runs[alt] == 5
        merged = {(r.arch_hash, r.ratio) for r in s.records()}
    measured = set()
    for src in (a, b):
        with LatencyStore.open(src) as s:
            measured |= {(r.arch_hash, r.ratio) for r in s.records()}
    assert merged == measured and len(measured) == 20  # nothing lost: both measurements of the 5 are kept


def test_merge_refuses_measurements_without_their_architecture(tmp_path):
    a = fake_db(tmp_path / "a.db", n=10)
    with sqlite3.connect(a) as con:
        con.execute("DELETE FROM architectures WHERE arch_hash IN (SELECT arch_hash FROM measurements LIMIT 2)")
    out = fake_db(tmp_path / "out.db", n=3, start=0, seed=9)
    before = content(out)
    with pytest.raises(UserInputError, match="2 measurement.s. have no architecture row"):
        merge_databases(out, [a])
    assert content(out) == before


def test_a_source_corrupted_past_its_header_writes_nothing(tmp_path, run_cli):
    src = fake_db(tmp_path / "big.db", n=150)
    data = bytearray(src.read_bytes())
    half = len(data) // 2
    data[half:half + len(data) // 4] = os.urandom(len(data) // 4)
    src.write_bytes(bytes(data))
    out = fake_db(tmp_path / "out.db", n=3, seed=9)
    before = content(out)
    proc = run_cli("db", "merge", str(out), str(src))
    assert_one_line_error(proc, 2)
    assert "corrupt" in proc.stderr
    assert content(out) == before


def test_library_version_differences_are_reported(tmp_path, run_cli):
    a = fake_db(tmp_path / "a.db", n=4)
    b = fake_db(tmp_path / "b.db", n=8, start=4, fingerprint=dict(FP, torch="0.0.1-other"))
    report = merge_databases(tmp_path / "out.db", [a, b])
    assert any("torch" in line and "0.0.1-other" in line for line in report.fingerprint_changes)
    proc = run_cli("db", "merge", str(tmp_path / "out2.db"), str(a), str(b))
    assert proc.returncode == 0 and "0.0.1-other" in proc.stderr


@pytest.mark.parametrize("spelling", ["relative", "absolute", "symlink", "dotted"])
def test_self_merge_is_detected_by_file_identity(tmp_path, run_cli, spelling):
    db = fake_db(tmp_path / "x.db", n=4)
    (tmp_path / "link.db").symlink_to(db)
    (tmp_path / "sub").mkdir()
    source = {"relative": "./x.db", "absolute": str(db), "symlink": "link.db", "dotted": "sub/../x.db"}[spelling]
    before = fingerprint_of_file(db)
    proc = run_cli("db", "merge", "x.db", source, cwd=tmp_path)
    assert_one_line_error(proc, 2)
    assert "output database itself" in proc.stderr
    assert fingerprint_of_file(db) == before


def test_merge_inputs_stay_byte_identical_and_in_their_journal_mode(tmp_path):
    a = fake_db(tmp_path / "a.db", n=5)
    before = fingerprint_of_file(a)
    merge_databases(tmp_path / "out.db", [a])
    assert fingerprint_of_file(a) == before and no_side_files(a)


def test_records_given_in_ms_need_a_reference_and_keep_their_values(tmp_path):
    from ladarts.space import sample_genotypes

    g = sample_genotypes(2, 5)
    with LatencyStore.open_or_create(tmp_path / "ms.db") as s:
        s.register_platform(PLATFORM)
        with pytest.raises(UserInputError, match="needs a ratio"):
            s.add_measurement(g[0], KEY, "latency", "main", 0, {"latency_ms": 12.5, "repeats": 1})
        s.add_calibration(KEY, SETTINGS, FP, "DARTS_V2", "imported", {"median_ms": 1.0})
        s.add_measurement(g[0], KEY, "latency", "main", 0, {"latency_ms": 12.5, "repeats": 1})
        s.add_measurement(g[1], KEY, "latency", "main", 1, {"latency_ms": 7.25, "repeats": 1})
        assert [r.latency_ms for r in s.records(KEY)] == [12.5, 7.25]
