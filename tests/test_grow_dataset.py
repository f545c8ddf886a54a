"""The dataset campaign's deadline: what ``grow_dataset.py --until`` means, since a wrong one wastes hours of timing."""

import importlib
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ladarts.errors import UserInputError

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def parse_until(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("grow_dataset").parse_until


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
