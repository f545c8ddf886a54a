"""The latency store: an embedded SQLite database, one row per (architecture, platform, metric, run).

What is stored is each architecture's *ratio* to the interleaved reference, and every timing of the reference
itself (each session's calibration and drift re-timings). A latency in ms is computed when read:
``ratio × the platform's reference latency``, one robust estimate over all of the platform's reference
timings (:func:`estimate_reference`). So every record of a platform shares one scale, merged or not, and the
scale sharpens as sessions accumulate.

Every table has a natural unique key, so merging is a set union (:meth:`LatencyStore.merge_from`). A writer
holds the file in WAL mode with one transaction per record (``kill -9`` loses at most the record in flight);
closing it returns the file to rollback-journal mode, so a reader opens it read-only (``mode=ro``) without
side files and never changes it. Version-1 databases are migrated in one transaction when opened for writing,
and in memory when opened for reading.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
import sqlite3
import statistics
import time
import uuid
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar
from urllib.parse import quote

from ladarts.errors import LadartsError, UserInputError
from ladarts.hardware.platform import Platform, fingerprint_mismatch
from ladarts.hardware.records import RECORD_FIELDS, Record
from ladarts.space.encoding import arch_hash
from ladarts.space.genotype import Genotype

T = TypeVar("T")
APP_ID = "ladarts-latency-db"
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS platforms (
    key TEXT PRIMARY KEY,
    settings TEXT NOT NULL,          -- JSON: Platform.settings()
    fingerprint TEXT NOT NULL,       -- JSON: of the earliest registration
    ref_name TEXT,                   -- the interleaved reference (NULL while the platform holds op timings only)
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS architectures (arch_hash TEXT PRIMARY KEY, genotype TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY,
    arch_hash TEXT NOT NULL REFERENCES architectures(arch_hash),
    platform TEXT NOT NULL REFERENCES platforms(key),
    metric TEXT NOT NULL,
    run TEXT NOT NULL,
    seq INTEGER,                     -- position in the sample stream (NULL outside one: refine's)
    session TEXT NOT NULL,           -- the measuring session (a process or a fleet actor) that timed it
    ratio REAL NOT NULL,             -- median per-pair t_arch / t_ref: the stored truth
    median_ms REAL, min_ms REAL, iqr_ms REAL, mean_ms REAL, ref_median_ms REAL,
    repeats INTEGER NOT NULL, warmup INTEGER,
    build_s REAL, export_s REAL, timed_s REAL,
    samples TEXT,                    -- JSON {"arch": [ms...], "ref": [ms...]}: raw pairs, to re-derive estimators
    fingerprint TEXT,                -- JSON, this record's library versions
    created REAL NOT NULL,
    UNIQUE (arch_hash, platform, metric, run)
);
CREATE INDEX IF NOT EXISTS measurements_by_run ON measurements (platform, metric, run);
CREATE TABLE IF NOT EXISTS ref_timings (
    id INTEGER PRIMARY KEY,
    platform TEXT NOT NULL REFERENCES platforms(key),
    session TEXT NOT NULL,
    ref_name TEXT NOT NULL,          -- the platform's reference, or another drift reference
    kind TEXT NOT NULL,              -- calibration | drift
    run TEXT,                        -- the run being measured when a drift re-timing was taken
    after_records INTEGER,           -- records of that run measured by then
    median_ms REAL NOT NULL, min_ms REAL, iqr_ms REAL, n INTEGER,
    created REAL NOT NULL,
    UNIQUE (platform, session, ref_name, created)
);
CREATE TABLE IF NOT EXISTS op_timings (
    id INTEGER PRIMARY KEY,
    platform TEXT NOT NULL REFERENCES platforms(key),
    cell_kind TEXT NOT NULL,         -- normal | reduce
    cell_index INTEGER NOT NULL,     -- position of the cell in the network
    edge_stride INTEGER NOT NULL,
    op TEXT NOT NULL,
    channels INTEGER NOT NULL, height INTEGER NOT NULL, width INTEGER NOT NULL,
    median_ms REAL NOT NULL, min_ms REAL, iqr_ms REAL, n INTEGER,
    created REAL NOT NULL,
    UNIQUE (platform, cell_index, edge_stride, op)
);
"""

#: Natural key of each table: what makes two rows "the same row" in a merge.
NATURAL_KEYS = {
    "platforms": ("key",),
    "architectures": ("arch_hash",),
    "measurements": ("arch_hash", "platform", "metric", "run"),
    "ref_timings": ("platform", "session", "ref_name", "created"),
    "op_timings": ("platform", "cell_index", "edge_stride", "op"),
}
_COLUMNS = {
    "measurements": ("arch_hash", "platform", "metric", "run", "seq", "session", "ratio", "median_ms", "min_ms",
                     "iqr_ms", "mean_ms", "ref_median_ms", "repeats", "warmup", "build_s", "export_s", "timed_s",
                     "samples", "fingerprint", "created"),
    "ref_timings": ("platform", "session", "ref_name", "kind", "run", "after_records", "median_ms", "min_ms",
                    "iqr_ms", "n", "created"),
    "op_timings": ("platform", "cell_kind", "cell_index", "edge_stride", "op", "channels", "height", "width",
                   "median_ms", "min_ms", "iqr_ms", "n", "created"),
}

@dataclass(frozen=True)
class Reference:
    """A platform's reference latency: the scale of all its latencies (see :func:`estimate_reference`)."""

    name: str
    ms: float
    timings: int  # reference timings behind the estimate
    sessions: int  # measuring sessions they came from
    session_min_ms: float
    session_max_ms: float
    spread_pct: float  # interquartile range of the session medians, in % of the estimate

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate_reference(timings: Sequence[tuple[str, float]]) -> tuple[float, dict[str, float]]:
    """The median over sessions of each session's median reference timing; also returns the session medians.

    Why this estimator: timings within one session share its load, process and memory layout, so the session,
    not the timing, is the independent unit; taking each session's median first gives a long session (many drift
    re-timings) one vote like a short one. The median over sessions then tolerates up to half of them measured
    under load (load only ever slows the reference, 2× and more on a shared machine), and a timing burst inside a
    session moves its median little. A minimum would be biased by lucky single timings and unstable as sessions
    are added; a mean would follow every loaded session.
    """
    by_session: dict[str, list[float]] = {}
    for session, ms in timings:
        by_session.setdefault(session, []).append(ms)
    medians = {s: statistics.median(v) for s, v in by_session.items()}
    return statistics.median(medians.values()), medians


def new_session() -> str:
    """The identity of one measuring session: a process's Measurer, or one fleet actor."""
    return uuid.uuid4().hex


def _reads(method: Callable[..., T]) -> Callable[..., T]:
    """A read whose SQLite error (a page found corrupt only now) becomes the one line that says so."""
    @functools.wraps(method)
    def wrapper(self: "LatencyStore", *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as e:
            raise _explain(self.path, e) from None

    return wrapper


class LatencyStore:
    """A ladarts latency database. :meth:`open` reads an existing one (read-only); :meth:`open_or_create` writes."""

    def __init__(self, conn: sqlite3.Connection, path: Path, readonly: bool):
        self.conn = conn
        self.path = path
        self.readonly = readonly
        self.session = new_session()  # of records written without a session of their own

    # ---- opening ---------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike) -> "LatencyStore":
        """Open an existing database read-only; the file is never changed (no journal-mode switch, no migration
        written: a version-1 database is migrated in memory)."""
        p = Path(path)
        if not p.is_file():
            raise UserInputError(f"{path}: no such latency database")
        if not os.access(p, os.R_OK):
            raise UserInputError(f"{path}: permission denied (cannot read it)")
        uri = _uri(p, "ro")
        if _is_wal(p) and not os.access(p.parent, os.W_OK) and not Path(f"{p}-wal").exists():
            uri += "&immutable=1"  # WAL needs a -shm file it cannot create here; with no -wal no writer can be active
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
        except sqlite3.Error as e:
            raise _explain(p, e) from None
        try:
            conn.row_factory = sqlite3.Row
            version = _check_ours(conn, p)
            if version == 1:
                mem = sqlite3.connect(":memory:", isolation_level=None)
                conn.backup(mem)
                conn.close()
                conn = mem
                conn.row_factory = sqlite3.Row
                with _begin(conn):
                    _migrate_v1(conn)
                conn.execute("PRAGMA query_only = ON")
        except LadartsError:
            conn.close()
            raise
        except sqlite3.Error as e:
            conn.close()
            raise _explain(p, e) from None
        return cls(conn, p, readonly=True)

    @classmethod
    def open_or_create(cls, path: str | os.PathLike) -> "LatencyStore":
        """Open for writing, creating the database if missing and migrating an old one in place.

        Race-free: the schema is created (``IF NOT EXISTS``) or checked inside one ``BEGIN IMMEDIATE``
        transaction, so processes opening one new path at once serialise. A file that cannot be written fails
        here, before any timing starts.
        """
        p = Path(path)
        if p.exists() and not p.is_file():
            raise UserInputError(f"{path}: not a file")
        if not p.parent.is_dir():
            raise UserInputError(f"{path}: folder {p.parent} does not exist")
        if p.exists() and not os.access(p, os.R_OK | os.W_OK):
            raise UserInputError(f"{path}: permission denied (cannot write it)")
        try:
            conn = sqlite3.connect(_uri(p, "rwc"), uri=True, timeout=30, isolation_level=None)
        except sqlite3.Error as e:
            raise _explain(p, e) from None
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = OFF")  # a migration rebuilds tables; switched on below
            migrated = False
            with _begin(conn):
                empty = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
                if empty:
                    _create_schema(conn)
                elif _check_ours(conn, p) == 1:
                    _migrate_v1(conn)
                    migrated = True
                else:  # a write probe: a read-only file fails now, not after minutes of timing
                    conn.execute("UPDATE meta SET value = value WHERE key = 'app'")
            if migrated:
                try:
                    conn.execute("VACUUM")  # give back the pages of the rebuilt tables
                except sqlite3.OperationalError:
                    pass  # another connection has the file open: it only stays larger
            try:
                conn.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError:
                pass  # another connection holds the file: stay in rollback-journal mode, equally crash-safe
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: an application crash never corrupts
            conn.execute("PRAGMA foreign_keys = ON")
        except LadartsError:
            conn.close()
            raise
        except sqlite3.Error as e:
            conn.close()
            raise _explain(p, e) from None
        return cls(conn, p, readonly=False)

    def close(self) -> None:
        if not self.readonly:
            try:  # back to rollback-journal mode at rest, so read-only opens need no side files
                self.conn.execute("PRAGMA busy_timeout = 0")
                self.conn.execute("PRAGMA journal_mode = DELETE")
            except sqlite3.Error:
                pass  # another connection still has it open: it stays in WAL mode
        self.conn.close()

    def __enter__(self) -> "LatencyStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self.readonly:
            raise UserInputError(f"{self.path}: opened read-only")
        try:
            with _begin(self.conn):
                yield
        except sqlite3.Error as e:
            raise _explain(self.path, e) from None

    # ---- platforms -------------------------------------------------------------------------------------------
    def register_platform(self, platform: Platform) -> dict[str, Any]:
        """Add the platform if new (for op timings; a latency campaign registers it with its calibration, see
        :meth:`add_calibration`); warn if its library versions changed since it was first measured."""
        with self._transaction():
            self._ensure_platform(platform.key, platform.settings(), platform.fingerprint(), None)
        return self.platform_row(platform.key)  # type: ignore[return-value]

    def add_calibration(self, key: str, settings: dict[str, Any], fingerprint: dict[str, Any], ref_name: str,
                        session: str, stats: dict[str, float], created: float | None = None) -> None:
        """Register the platform (if new) together with a session's calibration of its reference, atomically:
        a campaign that fails before calibrating leaves no empty platform behind."""
        with self._transaction():
            self._ensure_platform(key, settings, fingerprint, ref_name)
            self._insert_ref_timing(key, session, ref_name, "calibration", None, None, stats, created)

    def _ensure_platform(self, key: str, settings: dict[str, Any], fingerprint: dict[str, Any],
                         ref_name: str | None) -> None:
        row = self.conn.execute("SELECT fingerprint, ref_name FROM platforms WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.conn.execute("INSERT INTO platforms (key, settings, fingerprint, ref_name, created) "
                              "VALUES (?, ?, ?, ?, ?)",
                              (key, json.dumps(settings), json.dumps(fingerprint), ref_name, time.time()))
            return
        if ref_name is not None:
            if row["ref_name"] is None:
                self.conn.execute("UPDATE platforms SET ref_name = ? WHERE key = ?", (ref_name, key))
            elif row["ref_name"] != ref_name:
                raise UserInputError(f"platform {key} is measured against reference {row['ref_name']}, "
                                     f"not {ref_name}")
        changed = fingerprint_mismatch(json.loads(row["fingerprint"]), fingerprint)
        if changed:
            warnings.warn(f"platform {key}: versions or CPU changed since its first measurement: "
                          f"{'; '.join(changed)}",
                          stacklevel=4)

    @_reads
    def platform_row(self, key: str) -> dict[str, Any] | None:
        """The platform's settings, fingerprint, reference name and current reference latency ``ref_ms``."""
        r = self.conn.execute("SELECT * FROM platforms WHERE key = ?", (key,)).fetchone()
        if r is None:
            return None
        d = dict(r)
        d["settings"] = json.loads(d["settings"])
        d["fingerprint"] = json.loads(d["fingerprint"])
        ref = self.reference(key)
        d["ref_ms"] = ref.ms if ref else None
        d["reference"] = ref.to_dict() if ref else None
        return d

    @_reads
    def platforms(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT key FROM platforms ORDER BY created, key")]

    def resolve_platform(self, key: str | None) -> str:
        """The platform a command means: the given key (or a unique substring of one), or the only one that holds
        data (a platform row with no records and no timings carries no data)."""
        keys = self.platforms()
        if key is None:
            with_data = [k for k in keys if self._holds_data(k)]
            if len(keys) == 1 or len(with_data) == 1:
                return keys[0] if len(keys) == 1 else with_data[0]
            raise UserInputError(f"{self.path}: holds {len(keys)} platforms; choose one with --platform "
                                 f"({', '.join(keys) or 'none'})")
        if key in keys:
            return key
        hits = [k for k in keys if key in k]
        if len(hits) == 1:
            return hits[0]
        raise UserInputError(f"platform {key!r} {'is ambiguous' if hits else 'not in ' + str(self.path)}; "
                             f"stored: {', '.join(keys) or 'none'}")

    def _holds_data(self, key: str) -> bool:
        return any(self.conn.execute(f"SELECT 1 FROM {t} WHERE platform = ? LIMIT 1", (key,)).fetchone()
                   for t in ("measurements", "ref_timings", "op_timings"))

    # ---- the reference and its scale --------------------------------------------------------------------------
    def reference(self, key: str) -> Reference | None:
        """The platform's reference latency over all its stored reference timings (None if it has none)."""
        return _reference(self.reference_timings(key, reference_only=True))

    @_reads
    def reference_timings(self, key: str | None = None, reference_only: bool = False) -> list[dict[str, Any]]:
        """Stored timings of the reference and the drift references (``reference_only``: the platform's own)."""
        q = "SELECT t.* FROM ref_timings t JOIN platforms p ON p.key = t.platform"
        where, args = [], []
        if key is not None:
            where.append("t.platform = ?")
            args.append(key)
        if reference_only:
            where.append("t.ref_name = p.ref_name")
        q += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY t.created, t.id"
        return [dict(r) for r in self.conn.execute(q, args)]

    def add_ref_timing(self, platform: str, session: str, ref_name: str, kind: str, run: str | None,
                       after_records: int | None, stats: dict[str, float], created: float | None = None) -> None:
        with self._transaction():
            self._insert_ref_timing(platform, session, ref_name, kind, run, after_records, stats, created)

    def _insert_ref_timing(self, platform: str, session: str, ref_name: str, kind: str, run: str | None,
                           after_records: int | None, stats: dict[str, float], created: float | None) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO ref_timings (platform, session, ref_name, kind, run, after_records, median_ms, "
            "min_ms, iqr_ms, n, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (platform, session, ref_name, kind, run, after_records, stats["median_ms"], stats.get("min_ms"),
             stats.get("iqr_ms"), stats.get("n"), time.time() if created is None else created),
        )

    # ---- measurements ----------------------------------------------------------------------------------------
    @_reads
    def done_hashes(self, platform: str, metric: str, run: str) -> set[str]:
        cur = self.conn.execute("SELECT arch_hash FROM measurements WHERE platform=? AND metric=? AND run=?",
                                (platform, metric, run))
        return {r[0] for r in cur}

    @_reads
    def first_in_stream(self, platform: str, metric: str, run: str) -> tuple[int, str] | None:
        """(seq, arch_hash) of the run's record earliest in its sample stream, or None (refine's have no seq)."""
        row = self.conn.execute("SELECT seq, arch_hash FROM measurements WHERE platform=? AND metric=? AND run=? "
                                "AND seq IS NOT NULL ORDER BY seq LIMIT 1", (platform, metric, run)).fetchone()
        return None if row is None else (row[0], row[1])

    def add_measurement(self, genotype: Genotype, platform: str, metric: str, run: str, seq: int | None,
                        stats: dict[str, Any], fingerprint: dict[str, Any] | None = None, *,
                        session: str | None = None, ref_timings: Sequence[dict[str, Any]] = ()) -> bool:
        """Insert one record (and the reference timings taken with it) in one transaction.

        ``stats`` is a :class:`~ladarts.hardware.timer.Timing` dict: its ``ratio`` is what is kept. A record given
        in ms only (``latency_ms``, no ``ratio``: imported or synthetic data) is stored as its ratio to the
        platform's current reference latency, so the platform needs a reference timing first
        (:meth:`add_calibration`; a 1 ms calibration keeps such values as they are). ``session``: the measuring
        session (default: this connection's). Returns False if the record was already there (no duplicate).
        """
        h = arch_hash(genotype)
        stats = dict(stats)
        if stats.get("ratio") is None:
            ref = self.reference(platform)
            if ref is None or stats.get("latency_ms") is None:
                raise UserInputError(f"a record of platform {platform} needs a ratio, or a latency in ms and a "
                                     f"reference timing of the platform (add_calibration)")
            stats["ratio"] = stats["latency_ms"] / ref.ms
        cols = ("ratio", "median_ms", "min_ms", "iqr_ms", "mean_ms", "ref_median_ms", "repeats", "warmup",
                "build_s", "export_s", "timed_s", "samples")
        session = session or self.session
        with self._transaction():
            self.conn.execute("INSERT OR IGNORE INTO architectures VALUES (?, ?)", (h, genotype.to_json()))
            cur = self.conn.execute(
                f"INSERT OR IGNORE INTO measurements (arch_hash, platform, metric, run, seq, session, "
                f"{', '.join(cols)}, fingerprint, created) VALUES ({', '.join('?' * (len(cols) + 8))})",
                (h, platform, metric, run, seq, session, *[_column(stats.get(c)) for c in cols],
                 json.dumps(fingerprint) if fingerprint else None, time.time()),
            )
            for t in ref_timings:
                self._insert_ref_timing(platform, session, t["ref_name"], t["kind"], t.get("run"),
                                        t.get("after_records"), t, t.get("created"))
            return cur.rowcount == 1

    def add_op_timing(self, platform: str, cell_kind: str, cell_index: int, edge_stride: int, op: str,
                      shape: tuple[int, int, int], stats: dict[str, float]) -> None:
        with self._transaction():
            self.conn.execute(
                "INSERT OR REPLACE INTO op_timings (platform, cell_kind, cell_index, edge_stride, op, channels, "
                "height, width, median_ms, min_ms, iqr_ms, n, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (platform, cell_kind, cell_index, edge_stride, op, *shape, stats["median_ms"], stats["min_ms"],
                 stats["iqr_ms"], stats["n"], time.time()),
            )

    @_reads
    def op_timings(self, platform: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute("SELECT * FROM op_timings WHERE platform = ? ORDER BY id",
                                                   (platform,))]

    def iter_records(self, platform: str | None = None, metric: str = "latency", run: str | None = None,
                     ref_ms: float | None = None) -> Iterator[Record]:
        """Records in measuring order; ``latency_ms`` is ratio × the platform's reference latency, or × ``ref_ms``
        when given (e.g. the scale an LPM was fitted on, ``lpm.meta['platform']['ref_ms']``, or a common scale of
        several databases, :func:`common_reference`)."""
        where, args = ["m.metric = ?"], [metric]
        if platform is not None:
            where.append("m.platform = ?")
            args.append(platform)
        if run is not None:
            where.append("m.run = ?")
            args.append(run)
        q = (f"SELECT m.*, a.genotype FROM measurements m JOIN architectures a USING (arch_hash) "
             f"WHERE {' AND '.join(where)} ORDER BY m.id")
        scales: dict[str, float] = {}
        try:
            for r in self.conn.execute(q, args):
                d = dict(r)
                key = d["platform"]
                if key not in scales:
                    scales[key] = ref_ms if ref_ms is not None else self._scale(key)
                d["latency_ms"] = d["ratio"] * scales[key]
                yield Record(genotype=Genotype.from_json(d["genotype"]), **{k: d[k] for k in RECORD_FIELDS})
        except sqlite3.DatabaseError as e:
            raise _explain(self.path, e) from None

    def records(self, platform: str | None = None, metric: str = "latency", run: str | None = None,
                ref_ms: float | None = None) -> list[Record]:
        return list(self.iter_records(platform, metric, run, ref_ms))

    def _scale(self, key: str) -> float:
        ref = self.reference(key)
        if ref is None:
            raise LadartsError(f"{self.path}: platform {key} has records but no timing of its reference")
        return ref.ms

    @_reads
    def raw_samples(self, platform: str, run: str, metric: str = "latency") -> dict[str, dict[str, list[float]]]:
        """arch_hash → the raw per-pair timings ``{"arch": [ms...], "ref": [ms...]}`` of a run (where stored), to
        re-derive other estimators from the same samples."""
        q = ("SELECT arch_hash, samples FROM measurements WHERE platform = ? AND metric = ? AND run = ? "
             "AND samples IS NOT NULL ORDER BY id")
        return {h: json.loads(text) for h, text in self.conn.execute(q, (platform, metric, run))}

    @_reads
    def runs(self, platform: str, metric: str = "latency") -> dict[str, int]:
        cur = self.conn.execute("SELECT run, count(*) FROM measurements WHERE platform=? AND metric=? GROUP BY run "
                                "ORDER BY min(id)", (platform, metric))
        return {r[0]: r[1] for r in cur}

    def pick_run(self, key: str, run: str | None = None, metric: str = "latency") -> str:
        """``run`` if the platform has it, else a one-line error listing its runs; by default the largest run
        (the others can serve as re-runs)."""
        runs = self.runs(key, metric)
        if not runs:
            raise UserInputError(f"platform {key} has no {metric} records in {self.path}")
        if run is None:
            return max(runs, key=lambda r: runs[r])
        if run not in runs:
            raise UserInputError(f"run {run!r} not in {self.path} for {key}; runs: {', '.join(runs)}")
        return run

    def noise_runs(self, platform_a: str, platform_b: str | None = None, run_a: str | None = None,
                   run_b: str | None = None, *, store_b: "LatencyStore | None" = None) -> tuple[str, str]:
        """The two runs a noise comparison means. Run A: the given one, else A's first run. Run B: the given one;
        else, for another platform or another database (``store_b``), the run of A's name if it has one (else its
        largest); else A's other run."""
        other = store_b or self
        pb = platform_b or platform_a
        runs_a = self.runs(platform_a)
        if not runs_a:
            raise UserInputError(f"platform {platform_a} has no latency records in {self.path}")
        run_a = self.pick_run(platform_a, run_a) if run_a is not None else next(iter(runs_a))
        if run_b is not None:
            return run_a, other.pick_run(pb, run_b)
        if pb != platform_a or other is not self:
            runs_b = other.runs(pb)
            return run_a, run_a if run_a in runs_b else other.pick_run(pb)
        others = [r for r in runs_a if r != run_a]
        if not others:
            raise UserInputError(f"platform {platform_a} has one run; re-time it first: "
                                 f"ladarts measure --db {self.path} --from-run {run_a} ...")
        return run_a, others[0]

    # ---- summaries, export -----------------------------------------------------------------------------------
    @_reads
    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": str(self.path), "schema_version": SCHEMA_VERSION, "platforms": []}
        for key in self.platforms():
            row = self.platform_row(key)
            scale = row["ref_ms"] or float("nan")
            runs = []
            for r in self.conn.execute(
                "SELECT metric, run, count(*) n, min(ratio) lo, avg(ratio) mean, max(ratio) hi, avg(repeats) reps "
                "FROM measurements WHERE platform = ? GROUP BY metric, run ORDER BY min(id)", (key,)
            ):
                d = dict(r)
                for k in ("lo", "mean", "hi"):
                    d[k] *= scale
                runs.append(d)
            count = lambda q: self.conn.execute(q, (key,)).fetchone()[0]  # noqa: E731
            out["platforms"].append({
                "key": key, "records": sum(r["n"] for r in runs), "runs": runs,
                "ref_name": row["ref_name"], "ref_ms": row["ref_ms"], "reference": row["reference"],
                "drift_checks": count("SELECT count(DISTINCT session || '/' || after_records) FROM ref_timings "
                                      "WHERE platform = ? AND kind = 'drift'"),
                "op_timings": count("SELECT count(*) FROM op_timings WHERE platform = ?"),
            })
        out["architectures"] = self.conn.execute("SELECT count(*) FROM architectures").fetchone()[0]
        return out

    def export(self, path: str | os.PathLike, platform: str | None = None) -> int:
        """Write the measurements to CSV or Parquet (by extension), atomically. Returns the number of rows."""
        from ladarts.io import atomic_write

        suffix = Path(path).suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise UserInputError(f"{path}: export to .csv or .parquet")
        rows = [r.row() for r in self.iter_records(platform)]
        columns = ["arch_hash", "genotype", *[f for f in RECORD_FIELDS if f != "arch_hash"]]
        if suffix == ".csv":
            def write(tmp: str) -> None:
                with open(tmp, "w", newline="", encoding="utf-8") as f:
                    w = csv.DictWriter(f, fieldnames=columns)
                    w.writeheader()
                    w.writerows(rows)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pylist(rows) if rows else pa.table({c: [] for c in columns})

            def write(tmp: str) -> None:
                pq.write_table(table.select(columns) if rows else table, tmp)
        atomic_write(path, write)
        return len(rows)

    # ---- merge -----------------------------------------------------------------------------------------------
    def validate(self) -> list[str]:
        """Problems that make this database unfit to merge from (empty when it is sound)."""
        try:
            return self._validate()
        except sqlite3.DatabaseError as e:
            return [f"corrupt ({e})"]

    def _validate(self) -> list[str]:
        c = self.conn
        check = [r[0] for r in c.execute("PRAGMA integrity_check")]
        if check != ["ok"]:
            return [f"corrupt ({check[0]})"]
        problems = []
        orphans = c.execute("SELECT count(*) FROM measurements m LEFT JOIN architectures a USING (arch_hash) "
                            "WHERE a.arch_hash IS NULL").fetchone()[0]
        if orphans:
            problems.append(f"{orphans} measurement(s) have no architecture row")
        for table in ("measurements", "ref_timings", "op_timings"):
            n = c.execute(f"SELECT count(*) FROM {table} t LEFT JOIN platforms p ON p.key = t.platform "
                          "WHERE p.key IS NULL").fetchone()[0]
            if n:
                problems.append(f"{n} row(s) of {table} have no platform row")
        impossible = c.execute("SELECT count(*) FROM measurements WHERE typeof(ratio) != 'real' OR NOT "
                               "(ratio > 0 AND ratio < 1e6)").fetchone()[0]
        if impossible:
            problems.append(f"{impossible} measurement(s) have an impossible ratio (not a positive finite number)")
        bad = 0
        for h, text in c.execute("SELECT arch_hash, genotype FROM architectures"):
            try:
                bad += arch_hash(Genotype.from_json(text)) != h
            except UserInputError:
                bad += 1
        if bad:
            problems.append(f"{bad} architecture row(s) do not match their hash")
        return problems

    def merge_from(self, *sources: "LatencyStore") -> "MergeReport":
        """Add the sources' rows to this database as a set union, all in one transaction.

        Rows equal to one already here are skipped, so merging twice changes nothing and the order of the
        sources does not change the content. A record (architecture, platform, metric, run) that two databases
        measured differently is kept twice: the earlier measurement under its run, the later one under
        ``RUN@<hash of its session>``; the report counts them. Sources are validated first: a corrupt or
        incomplete one (measurements without their architecture) is refused before anything is written.
        """
        _check_sources(self.path, sources)
        return self._union(sources)

    def _union(self, sources: Sequence["LatencyStore"]) -> "MergeReport":
        report = MergeReport(sources=[str(s.path) for s in sources])
        try:
            with self._transaction():
                for src in sources:
                    _merge_one(self.conn, src, report)
        except sqlite3.Error as e:  # a source failing to read mid-merge: the transaction was rolled back
            raise _explain(self.path, e) from None
        return report


def merge_databases(out: str | os.PathLike, inputs: Sequence[str | os.PathLike]) -> "MergeReport":
    """``db merge``: open the inputs read-only, refuse any that is the output itself (by file identity), corrupt,
    foreign or incomplete, and only then open or create ``out`` and merge them all in one transaction. An output
    created here is removed again if the merge fails."""
    out = Path(out)
    sources: list[LatencyStore] = []
    try:
        for p in inputs:
            sources.append(LatencyStore.open(p))
        _check_sources(out, sources)
        created = not out.exists()
        try:
            with LatencyStore.open_or_create(out) as store:
                return store._union(sources)
        except BaseException:
            if created:
                for f in (out, Path(f"{out}-wal"), Path(f"{out}-shm"), Path(f"{out}-journal")):
                    f.unlink(missing_ok=True)
            raise
    finally:
        for s in sources:
            s.close()


def _check_sources(out: Path, sources: Sequence[LatencyStore]) -> None:
    for src in sources:
        if _same_file(out, src.path):
            raise UserInputError(f"db merge: {src.path} is the output database itself")
        problems = src.validate()
        if problems:
            raise UserInputError(f"{src.path}: refusing to merge: {'; '.join(problems)}; nothing was written")


@dataclass
class MergeReport:
    """What a merge did, per table: rows added, rows already present, and differences it kept or reported."""

    sources: list[str]
    added: dict[str, int] = field(default_factory=dict)
    present: dict[str, int] = field(default_factory=dict)
    conflicting_runs: dict[str, int] = field(default_factory=dict)  # RUN@session → records kept there
    replaced: dict[str, int] = field(default_factory=dict)  # table → rows where the newer value won
    fingerprint_changes: list[str] = field(default_factory=list)

    def count(self, table: str, what: str = "added") -> None:
        d = getattr(self, what)
        d[table] = d.get(table, 0) + 1

    def lines(self) -> list[str]:
        """Warnings for the user: differences between the merged databases."""
        out = [f"{n} record(s) measured differently in two databases were kept as run {run!r}"
               for run, n in sorted(self.conflicting_runs.items())]
        out += [f"{n} {table} row(s) differed; the newer timing was kept" for table, n in sorted(self.replaced.items())]
        return out + self.fingerprint_changes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _merge_one(conn: sqlite3.Connection, src: LatencyStore, report: MergeReport) -> None:
    s = src.conn
    for theirs in s.execute("SELECT * FROM platforms ORDER BY key"):
        _merge_platform(conn, dict(theirs), src, report)
    for h, text in s.execute("SELECT arch_hash, genotype FROM architectures ORDER BY arch_hash"):
        added = conn.execute("INSERT OR IGNORE INTO architectures VALUES (?, ?)", (h, text)).rowcount
        report.count("architectures", "added" if added else "present")
    cols = _COLUMNS["measurements"]
    for row in s.execute(f"SELECT {', '.join(cols)} FROM measurements ORDER BY id"):
        _merge_measurement(conn, dict(row), report)
    for table in ("ref_timings", "op_timings"):
        tcols = _COLUMNS[table]
        for row in s.execute(f"SELECT {', '.join(tcols)} FROM {table} ORDER BY id"):
            _merge_row(conn, table, dict(row), report)


def _merge_platform(conn: sqlite3.Connection, theirs: dict[str, Any], src: LatencyStore,
                    report: MergeReport) -> None:
    key = theirs["key"]
    ours = conn.execute("SELECT * FROM platforms WHERE key = ?", (key,)).fetchone()
    if ours is None:
        conn.execute("INSERT INTO platforms (key, settings, fingerprint, ref_name, created) VALUES (?, ?, ?, ?, ?)",
                     (key, theirs["settings"], theirs["fingerprint"], theirs["ref_name"], theirs["created"]))
        report.count("platforms")
    else:
        ours = dict(ours)
        if json.loads(ours["settings"]) != json.loads(theirs["settings"]):
            raise UserInputError(f"{src.path}: platform {key} has other settings than in the output; not merged")
        if ours["ref_name"] and theirs["ref_name"] and ours["ref_name"] != theirs["ref_name"]:
            raise UserInputError(f"{src.path}: platform {key} is measured against {theirs['ref_name']}, the output "
                                 f"against {ours['ref_name']}; their ratios cannot share a scale")
        # The row of the earliest registration wins, whatever the merge order.
        first = min((ours, theirs), key=lambda r: (r["created"], r["fingerprint"]))
        conn.execute("UPDATE platforms SET fingerprint = ?, created = ?, ref_name = ? WHERE key = ?",
                     (first["fingerprint"], first["created"], ours["ref_name"] or theirs["ref_name"], key))
        report.count("platforms", "present")
    # Library versions that differ between what is already here and what comes in.
    ours_fps = {r[0] for r in conn.execute("SELECT DISTINCT fingerprint FROM measurements WHERE platform = ? "
                                           "AND fingerprint IS NOT NULL", (key,))}
    their_fps = {r[0] for r in src.conn.execute("SELECT DISTINCT fingerprint FROM measurements WHERE platform = ? "
                                                "AND fingerprint IS NOT NULL", (key,))}
    if ours is not None:
        ours_fps.add(ours["fingerprint"])
    their_fps.add(theirs["fingerprint"])
    changes = sorted({c for a in ours_fps for b in their_fps for c in fingerprint_mismatch(json.loads(a),
                                                                                           json.loads(b))})
    if changes:
        report.fingerprint_changes.append(f"platform {key}: {src.path} was measured with other versions: "
                                          f"{'; '.join(changes)}")


def _merge_measurement(conn: sqlite3.Connection, theirs: dict[str, Any], report: MergeReport) -> None:
    cols = _COLUMNS["measurements"]
    ours = _find(conn, "measurements", theirs, cols)
    if ours is None:
        _insert(conn, "measurements", theirs)
        report.count("measurements")
        return
    if all(ours[c] == theirs[c] for c in cols):
        report.count("measurements", "present")
        return
    # Two different measurements of one record: both are data. The earlier keeps the run; the later moves to
    # a run named after its session, the same whichever database was merged first.
    first, later = sorted((ours, theirs), key=lambda r: (r["created"], r["session"], json.dumps([r[c] for c in cols])))
    moved = dict(later, run=f"{later['run']}@{hashlib.sha256(later['session'].encode()).hexdigest()[:8]}")
    if later is ours:
        conn.execute("DELETE FROM measurements WHERE id = ?", (ours["id"],))
        _insert(conn, "measurements", first)
    if _find(conn, "measurements", moved, cols) is None:
        _insert(conn, "measurements", {c: moved[c] for c in cols})
        report.conflicting_runs[moved["run"]] = report.conflicting_runs.get(moved["run"], 0) + 1
    else:
        report.count("measurements", "present")


def _merge_row(conn: sqlite3.Connection, table: str, theirs: dict[str, Any], report: MergeReport) -> None:
    cols = _COLUMNS[table]
    ours = _find(conn, table, theirs, cols)
    if ours is None:
        _insert(conn, table, theirs)
        report.count(table)
    elif all(ours[c] == theirs[c] for c in cols):
        report.count(table, "present")
    else:  # the same timing with other values: the newer one wins, as when a platform's ops are re-timed
        newer = max((ours, theirs), key=lambda r: (r["created"], json.dumps([r[c] for c in cols])))
        if newer is theirs:
            conn.execute(f"DELETE FROM {table} WHERE id = ?", (ours["id"],))
            _insert(conn, table, theirs)
        report.count(table, "replaced")


def _find(conn: sqlite3.Connection, table: str, row: dict[str, Any], cols: Sequence[str]) -> dict[str, Any] | None:
    key = NATURAL_KEYS[table]
    r = conn.execute(f"SELECT id, {', '.join(cols)} FROM {table} WHERE {' AND '.join(f'{k} = ?' for k in key)}",
                     [row[k] for k in key]).fetchone()
    return dict(r) if r is not None else None


def _insert(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    cols = _COLUMNS[table]
    conn.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                 [row[c] for c in cols])


def common_reference(stores: Sequence[LatencyStore], key: str) -> Reference | None:
    """One platform's reference latency over the reference timings of several databases (each timing once)."""
    seen: dict[tuple, dict[str, Any]] = {}
    for store in stores:
        for t in store.reference_timings(key, reference_only=True):
            seen[tuple(t[k] for k in NATURAL_KEYS["ref_timings"])] = t
    names = {t["ref_name"] for t in seen.values()}
    if len(names) > 1:
        raise UserInputError(f"platform {key} is measured against different references ({', '.join(sorted(names))})")
    return _reference(list(seen.values()))


def _reference(timings: list[dict[str, Any]]) -> Reference | None:
    if not timings:
        return None
    ms, medians = estimate_reference([(t["session"], t["median_ms"]) for t in timings])
    values = sorted(medians.values())
    q1, q3 = (statistics.quantiles(values, n=4)[i] for i in (0, 2)) if len(values) > 1 else (values[0], values[0])
    return Reference(name=timings[0]["ref_name"], ms=ms, timings=len(timings), sessions=len(values),
                     session_min_ms=values[0], session_max_ms=values[-1], spread_pct=100 * (q3 - q1) / ms)


# ---- opening, errors, migration ---------------------------------------------------------------------------------
def _uri(p: Path, mode: str) -> str:
    return f"file:{quote(p.resolve().as_posix())}?mode={mode}"


def _is_wal(p: Path) -> bool:
    """Whether the file's header says WAL mode (bytes 18 and 19 are 2)."""
    with open(p, "rb") as f:
        head = f.read(20)
    return len(head) == 20 and head[18] == 2 and head[19] == 2


@contextmanager
def _begin(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _check_ours(conn: sqlite3.Connection, p: Path) -> int:
    """The schema version of a ladarts database; a clear error for anything else."""
    has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall()) if has_meta else {}
    if meta.get("app") != APP_ID:
        raise UserInputError(f"{p}: not a ladarts latency database (an SQLite file without ladarts' meta table)")
    version = meta.get("schema_version")
    if version not in ("1", str(SCHEMA_VERSION)):
        raise UserInputError(f"{p}: latency database schema version {version}, this ladarts reads versions 1 "
                             f"and {SCHEMA_VERSION}")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    missing = sorted(set(_TABLES[version]) - tables)
    if missing:
        raise UserInputError(f"{p}: incomplete latency database (no table {', '.join(missing)})")
    return int(version)


_TABLES = {"1": ("meta", "platforms", "architectures", "measurements", "drift", "op_timings"),
           str(SCHEMA_VERSION): ("meta", *NATURAL_KEYS)}


def _create_schema(conn: sqlite3.Connection) -> None:
    for stmt in _SCHEMA.split(";"):
        if stmt.strip():
            conn.execute(stmt)
    conn.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)",
                     [("app", APP_ID), ("schema_version", str(SCHEMA_VERSION)), ("created", str(time.time()))])


def _migrate_v1(conn: sqlite3.Connection) -> None:
    """Version 1 → 2, inside the caller's transaction, losing nothing.

    Version 1 stored ``latency_ms = ratio × ref_ms`` with one calibration ``ref_ms`` per platform and database,
    and drift re-timings in their own table. Here the calibration and the drift re-timings become reference
    timings; each run of the old database is a session (named after the database's creation time, so the same
    file always migrates to the same rows, in place or in memory). Exact duplicate drift rows (left by merging a
    shard twice) collapse into one. Raises if any record could not be carried over.
    """
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    tag = "v1-" + hashlib.sha256(meta.get("created", "").encode()).hexdigest()[:10]
    conn.execute("PRAGMA legacy_alter_table = ON")  # renames leave the other tables' references alone
    conn.execute("DROP INDEX IF EXISTS measurements_by_run")
    conn.execute("ALTER TABLE platforms RENAME TO v1_platforms")
    conn.execute("ALTER TABLE measurements RENAME TO v1_measurements")
    _create_schema(conn)
    conn.execute("INSERT INTO platforms (key, settings, fingerprint, ref_name, created) "
                 "SELECT key, settings, fingerprint, ref_name, created FROM v1_platforms")
    conn.execute("INSERT INTO ref_timings (platform, session, ref_name, kind, median_ms, created) "
                 "SELECT key, ?, ref_name, 'calibration', ref_ms, created FROM v1_platforms WHERE ref_ms IS NOT NULL",
                 (f"{tag}/calibration",))
    conn.execute("INSERT OR IGNORE INTO ref_timings (platform, session, ref_name, kind, run, after_records, "
                 "median_ms, min_ms, iqr_ms, n, created) SELECT platform, ? || '/' || run, ref_name, 'drift', run, "
                 "after_records, median_ms, min_ms, iqr_ms, n, created FROM drift ORDER BY id", (tag,))
    distinct = conn.execute("SELECT count(*) FROM (SELECT DISTINCT platform, run, ref_name, after_records, "
                            "median_ms, min_ms, iqr_ms, n, created FROM drift)").fetchone()[0]
    # early version-1 files lack some optional columns (samples, ratio...): those read as NULL
    have = {r[1] for r in conn.execute("PRAGMA table_info(v1_measurements)")}
    c = {name: f"m.{name}" if name in have else "NULL" for name in (
        "ratio", "median_ms", "min_ms", "iqr_ms", "mean_ms", "ref_median_ms", "warmup", "build_s", "export_s",
        "timed_s", "samples", "fingerprint")}
    ratio = f"coalesce({c['ratio']}, m.latency_ms / p.ref_ms)"
    conn.execute(
        "INSERT INTO measurements (id, arch_hash, platform, metric, run, seq, session, ratio, median_ms, min_ms, "
        "iqr_ms, mean_ms, ref_median_ms, repeats, warmup, build_s, export_s, timed_s, samples, fingerprint, created) "
        f"SELECT m.id, m.arch_hash, m.platform, m.metric, m.run, m.seq, ? || '/' || m.run, {ratio}, "
        f"{c['median_ms']}, {c['min_ms']}, {c['iqr_ms']}, {c['mean_ms']}, {c['ref_median_ms']}, m.repeats, "
        f"{c['warmup']}, {c['build_s']}, {c['export_s']}, {c['timed_s']}, {c['samples']}, {c['fingerprint']}, "
        "m.created FROM v1_measurements m LEFT JOIN v1_platforms p ON p.key = m.platform "
        f"WHERE {ratio} IS NOT NULL", (tag,))
    counts = [conn.execute(q).fetchone()[0] for q in (
        "SELECT count(*) FROM v1_measurements", "SELECT count(*) FROM measurements",
        "SELECT count(*) FROM ref_timings WHERE kind = 'drift'")]
    if counts[0] != counts[1] or counts[2] != distinct:
        raise LadartsError(f"migration to schema {SCHEMA_VERSION} would lose data ({counts[0] - counts[1]} records "
                           f"without a ratio or calibration, {distinct - counts[2]} drift rows); left at version 1")
    conn.execute("DROP TABLE v1_measurements")
    conn.execute("DROP TABLE v1_platforms")
    conn.execute("DROP TABLE drift")
    conn.execute("PRAGMA legacy_alter_table = OFF")
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('migrated_from', '1')")


def _explain(p: Path, e: sqlite3.Error) -> LadartsError:
    """One line that says what really failed."""
    name = getattr(e, "sqlite_errorname", "") or ""
    if isinstance(e, sqlite3.IntegrityError):
        return LadartsError(f"{p}: refused, it would break a unique key ({e})")
    if name == "SQLITE_NOTADB":
        return UserInputError(f"{p}: not a ladarts latency database (not an SQLite file, or its header is corrupt)")
    if name.startswith("SQLITE_CORRUPT"):
        return UserInputError(f"{p}: corrupt latency database ({e})")
    if name.startswith("SQLITE_READONLY") or "readonly" in str(e):
        return UserInputError(f"{p}: read-only, cannot write to it ({e})")
    if name.startswith(("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
        return UserInputError(f"{p}: cannot open it: permission denied or missing folder ({e})")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return LadartsError(f"{p}: locked by another process ({e})")
    if name == "SQLITE_FULL":
        return LadartsError(f"{p}: disk full ({e})")
    return LadartsError(f"{p}: {e}")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _column(value: Any) -> Any:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, (dict, list)) else value


def integrity_ok(path: str | os.PathLike) -> bool:
    conn = sqlite3.connect(_uri(Path(path), "ro"), uri=True)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
