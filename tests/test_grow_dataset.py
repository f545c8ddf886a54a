"""The dataset campaign's deadline: what ``grow_dataset.py --until`` means, since a wrong one wastes hours of timing;
and its export-ahead mode, which prepares the timing without timing anything."""

import importlib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ladarts.errors import UserInputError

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def grow(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("grow_dataset")


@pytest.fixture
def parse_until(grow):
    return grow.parse_until


def _at(hh: int, mm: int) -> float:
    return datetime(2026, 11, 29, hh, mm, tzinfo=timezone.utc).timestamp()


def test_clock_time_later_today(parse_until):
    assert parse_until("13:15", now=_at(12, 0)) == _at(13, 15)


def test_clock_time_already_passed_means_tomorrow(parse_until):
    # 01:15 typed at 23:18 is tonight, 1 h 57 min away, as ``shutdown 01:15`` reads it.
    assert parse_until("01:15", now=_at(23, 18)) - _at(23, 18) == pytest.approx((60 + 57) * 60)


def test_minutes_and_iso(parse_until):
    now = _at(12, 0)
    assert parse_until("90m", now=now) == now + 5400
    assert parse_until("2026-11-30T01:15", now=now) == datetime(2026, 11, 30, 1, 15, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize("text", ["25:00", "12:60", "soon", "2026-11-29T11:00"])
def test_bad_or_past_deadline_is_one_line(parse_until, text):
    with pytest.raises(UserInputError, match="--until"):
        parse_until(text, now=_at(12, 0))


def test_export_ahead_exports_the_next_architectures_and_times_nothing(grow, tmp_path, monkeypatch, capsys):
    """The base group's ONNX runtimes share one export: ONNX Runtime makes it, OpenVINO finds it cached; eager,
    which exports nothing, is passed over. No database is written, the run is logged beside where it would be."""
    import json

    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    monkeypatch.setenv("LADARTS_EXPORT_CACHE", str(tmp_path / "cache"))
    db = tmp_path / "data" / "lat.db"
    db.parent.mkdir()
    assert grow.main(["--db", str(db), "--export-ahead", "1", "--jobs", "1", "--shares",
                      "base=1,threads2=0,batch8=0,inductor=0,executorch=0"]) == 0
    log = json.loads((db.parent / "export-ahead-log.json").read_text())
    assert [(e["name"], e["exported"], e["cached"]) for e in log] == [("ort-t1", 1, 0), ("openvino-t1", 0, 1)]
    assert [e["references"] for e in log] == [{"exported": 3}, {"cached": 3}]  # the timing session's references
    assert len(list((tmp_path / "cache").glob("*.onnx"))) == 1 + 3 and not db.exists()
    capsys.readouterr()
    assert grow.main(["--db", str(db)]) == 2
    assert "--until is required" in capsys.readouterr().err


def test_session_ends_once_every_grown_group_is_done(grow, tmp_path, monkeypatch, capsys):
    """A session whose groups are all at --n-max (and their run b at --b-cap) stops after one plan instead of
    planning empty rounds until the credit check gives up; a group still short is counted as room left."""
    import argparse
    import time

    args = argparse.Namespace(db=str(tmp_path / "lat.db"), seed=0, n_max=10, b_cap=5, round_s=60.0, pairs=1,
                              max_slowdown=grow.MAX_SLOWDOWN, shares={"executorch": 1.0})
    growth = grow.Growth(args, deadline=time.time() + 3600)
    at = {("executorch-t1", "main"): 10, ("executorch-t1", "b"): 5,  # the others stay within the base prefix
          **{(name, "main"): 10 for name in ("eager-t1", "ort-t1", "openvino-t1")}}
    monkeypatch.setattr(growth, "prefixes", lambda: dict(at))
    monkeypatch.setattr(growth, "cost", lambda spec, run: 1.0)
    assert growth.room() == 0
    growth.run()
    out = capsys.readouterr().out
    assert out.count("round plan") == 1 and "round 1" not in out and "failed: none" in out

    at[("executorch-t1", "main")], at[("executorch-t1", "b")] = 8, 3
    assert growth.room() == (10 - 8) + (5 - 3)


def test_a_platform_slower_than_its_scale_is_dropped_for_the_session(grow, tmp_path, capsys):
    """A worker whose reference runs beyond --max-slowdown times the platform's stored scale times nothing, and
    stores nothing: the platform is dropped for this growth session, with the reason on the console and in the
    growth log."""
    import argparse
    import json
    import time

    from ladarts.hardware import LatencyStore, Platform
    from ladarts.hardware.campaign import REFERENCE
    from ladarts.hardware.store import new_session

    db = tmp_path / "lat.db"
    platform = Platform(runtime="torch", threads=1, batch_size=1)  # the dataset's eager-t1
    with LatencyStore.open_or_create(db) as store:  # a scale no machine reaches for the C=36 x 20-cell network
        store.add_calibration(platform.key, platform.settings(), platform.fingerprint(), REFERENCE, new_session(),
                              {"median_ms": 0.1, "min_ms": 0.1, "iqr_ms": 0.0, "n": 1}, time.time())
    args = argparse.Namespace(db=str(db), seed=0, n_max=10, b_cap=5, round_s=60.0, pairs=1,
                              max_slowdown=grow.MAX_SLOWDOWN, shares={"base": 1.0})
    growth = grow.Growth(args, deadline=time.time() + 600)
    try:
        assert growth.chunk(next(s for s in grow.SPECS if s.name == "eager-t1"), "main", 1) is None
    finally:
        growth.workers.close()
    assert f"beyond --max-slowdown {grow.MAX_SLOWDOWN:g}" in growth.failed["eager-t1"]
    assert "eager-t1 main: FAILED, dropped for this session" in capsys.readouterr().out
    log = json.loads((tmp_path / "growth-log.json").read_text())
    assert "this machine is slower or busier" in log["errors"][0]["error"]
    assert growth.config()["timer"]["max_slowdown"] == grow.MAX_SLOWDOWN
    with LatencyStore.open(db) as store:
        assert store.records() == [] and store.reference(platform.key).sessions == 1
