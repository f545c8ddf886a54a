"""The latency store: an embedded SQLite database, one row per (architecture, platform, metric, run).

WAL mode and one transaction per record, so ``kill -9`` loses at most the architecture in flight and never
corrupts the file. Opening a database to read it never creates one. Reference re-timings (drift) and per-op
timings (for lookup-table baselines) live in their own tables.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from ladarts.errors import UserInputError
from ladarts.hardware.platform import Platform, fingerprint_mismatch
from ladarts.space.encoding import arch_hash
from ladarts.space.genotype import Genotype

APP_ID = "ladarts-latency-db"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE platforms (
    key TEXT PRIMARY KEY,
    settings TEXT NOT NULL,          -- JSON: Platform.settings()
    fingerprint TEXT NOT NULL,       -- JSON: at first registration
    ref_name TEXT,                   -- the interleaved reference architecture
    ref_ms REAL,                     -- its calibrated latency: latency_ms = ratio * ref_ms
    created REAL NOT NULL
);
CREATE TABLE architectures (arch_hash TEXT PRIMARY KEY, genotype TEXT NOT NULL);
CREATE TABLE measurements (
    id INTEGER PRIMARY KEY,
    arch_hash TEXT NOT NULL REFERENCES architectures(arch_hash),
    platform TEXT NOT NULL REFERENCES platforms(key),
    metric TEXT NOT NULL,
    run TEXT NOT NULL,
    seq INTEGER,                     -- position in the campaign's sample stream (NULL for re-timings)
    latency_ms REAL NOT NULL,        -- "the latency": drift-corrected
    ratio REAL, median_ms REAL, min_ms REAL, iqr_ms REAL, mean_ms REAL, ref_median_ms REAL,
    repeats INTEGER NOT NULL, warmup INTEGER,
    build_s REAL, export_s REAL, timed_s REAL,
    samples TEXT,                    -- JSON {"arch": [ms...], "ref": [ms...]}: raw pairs, to re-derive estimators
    fingerprint TEXT,                -- JSON, this record's library versions
    created REAL NOT NULL,
    UNIQUE (arch_hash, platform, metric, run)
);
CREATE INDEX measurements_by_run ON measurements (platform, metric, run);
CREATE TABLE drift (
    id INTEGER PRIMARY KEY,
    platform TEXT NOT NULL REFERENCES platforms(key),
    run TEXT NOT NULL,
    ref_name TEXT NOT NULL,
    after_records INTEGER,           -- records of this run measured when the reference was re-timed
    median_ms REAL, min_ms REAL, iqr_ms REAL, n INTEGER,
    created REAL NOT NULL
);
CREATE TABLE op_timings (
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

RECORD_FIELDS = (
    "arch_hash", "platform", "metric", "run", "seq", "latency_ms", "ratio", "median_ms", "min_ms", "iqr_ms",
    "mean_ms", "ref_median_ms", "repeats", "created",
)


@dataclass(frozen=True)
class Record:
    arch_hash: str
    genotype: Genotype
    platform: str
    metric: str
    run: str
    seq: int | None
    latency_ms: float
    ratio: float | None
    median_ms: float | None
    min_ms: float | None
    iqr_ms: float | None
    mean_ms: float | None
    ref_median_ms: float | None
    repeats: int
    created: float

    def row(self) -> dict[str, Any]:
        d = asdict(self)
        d["genotype"] = self.genotype.to_json()
        return d


class LatencyStore:
    """A ladarts latency database. Use :meth:`open` to read an existing one, :meth:`open_or_create` to write."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self.conn = conn
        self.path = path

    # ---- opening ---------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, readonly: bool = False) -> "LatencyStore":
        """Open an existing database; a missing path, a non-SQLite file or another schema is a clear error."""
        p = Path(path)
        if not p.is_file():
            raise UserInputError(f"{path}: no such latency database")
        return cls._connect(p, mode="ro" if readonly else "rw", create=False)

    @classmethod
    def open_or_create(cls, path: str | os.PathLike) -> "LatencyStore":
        p = Path(path)
        if p.exists() and not p.is_file():
            raise UserInputError(f"{path}: not a file")
        if not p.parent.exists():
            raise UserInputError(f"{path}: folder {p.parent} does not exist")
        return cls._connect(p, mode="rwc", create=not p.exists() or p.stat().st_size == 0)

    @classmethod
    def _connect(cls, p: Path, mode: str, create: bool) -> "LatencyStore":
        uri = f"file:{p.resolve().as_posix()}?mode={mode}"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None)
            conn.row_factory = sqlite3.Row
            if create:
                cls._init_schema(conn)
            cls._check_schema(conn, p)
            if mode != "ro":
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: an application crash never corrupts
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as e:
            raise UserInputError(f"{p}: not a ladarts latency database ({e})") from None
        return cls(conn, p)

    @staticmethod
    def _init_schema(conn: sqlite3.Connection) -> None:
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables:
            return  # not empty: _check_schema decides whether it is ours
        with conn:
            conn.execute("BEGIN")
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.executemany("INSERT INTO meta VALUES (?, ?)",
                             [("app", APP_ID), ("schema_version", str(SCHEMA_VERSION)), ("created", str(time.time()))])

    @staticmethod
    def _check_schema(conn: sqlite3.Connection, p: Path) -> None:
        has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall()) if has_meta else {}
        if meta.get("app") != APP_ID:
            raise UserInputError(f"{p}: not a ladarts latency database")
        if meta.get("schema_version") != str(SCHEMA_VERSION):
            raise UserInputError(
                f"{p}: latency database schema version {meta.get('schema_version')}, this ladarts reads "
                f"version {SCHEMA_VERSION}"
            )

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "LatencyStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- platforms -------------------------------------------------------------------------------------------
    def register_platform(self, platform: Platform) -> dict[str, Any]:
        """Add the platform if new; warn if its library versions changed since it was first measured."""
        key, fp = platform.key, platform.fingerprint()
        row = self.platform_row(key)
        if row is None:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.execute(
                    "INSERT OR IGNORE INTO platforms (key, settings, fingerprint, created) VALUES (?, ?, ?, ?)",
                    (key, json.dumps(platform.settings()), json.dumps(fp), time.time()),
                )
            return self.platform_row(key)  # type: ignore[return-value]
        changed = fingerprint_mismatch(row["fingerprint"], fp)
        if changed:
            warnings.warn(f"platform {key}: versions changed since its first measurement: {'; '.join(changed)}",
                          stacklevel=2)
        return row

    def platform_row(self, key: str) -> dict[str, Any] | None:
        r = self.conn.execute("SELECT * FROM platforms WHERE key = ?", (key,)).fetchone()
        if r is None:
            return None
        d = dict(r)
        d["settings"] = json.loads(d["settings"])
        d["fingerprint"] = json.loads(d["fingerprint"])
        return d

    def platforms(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT key FROM platforms ORDER BY created")]

    def resolve_platform(self, key: str | None) -> str:
        """The platform a command means: the given key (or a unique substring of one), or the only one stored."""
        keys = self.platforms()
        if key is None:
            if len(keys) == 1:
                return keys[0]
            raise UserInputError(f"{self.path}: holds {len(keys)} platforms; choose one with --platform "
                                 f"({', '.join(keys) or 'none'})")
        if key in keys:
            return key
        hits = [k for k in keys if key in k]
        if len(hits) == 1:
            return hits[0]
        raise UserInputError(f"platform {key!r} {'is ambiguous' if hits else 'not in ' + str(self.path)}; "
                             f"stored: {', '.join(keys) or 'none'}")

    def set_calibration(self, key: str, ref_name: str, ref_ms: float) -> None:
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("UPDATE platforms SET ref_name = ?, ref_ms = ? WHERE key = ? AND ref_ms IS NULL",
                              (ref_name, ref_ms, key))

    # ---- measurements ----------------------------------------------------------------------------------------
    def done_hashes(self, platform: str, metric: str, run: str) -> set[str]:
        cur = self.conn.execute("SELECT arch_hash FROM measurements WHERE platform=? AND metric=? AND run=?",
                                (platform, metric, run))
        return {r[0] for r in cur}

    def add_measurement(self, genotype: Genotype, platform: str, metric: str, run: str, seq: int | None,
                        stats: dict[str, Any], fingerprint: dict[str, Any] | None = None) -> bool:
        """Insert one record in its own transaction. Returns False if it was already there (no duplicate)."""
        h = arch_hash(genotype)
        cols = ("latency_ms", "ratio", "median_ms", "min_ms", "iqr_ms", "mean_ms", "ref_median_ms", "repeats",
                "warmup", "build_s", "export_s", "timed_s", "samples")
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("INSERT OR IGNORE INTO architectures VALUES (?, ?)", (h, genotype.to_json()))
            cur = self.conn.execute(
                f"INSERT OR IGNORE INTO measurements (arch_hash, platform, metric, run, seq, {', '.join(cols)}, "
                f"fingerprint, created) VALUES ({', '.join('?' * (len(cols) + 7))})",
                (h, platform, metric, run, seq, *[_column(stats.get(c)) for c in cols],
                 json.dumps(fingerprint) if fingerprint else None, time.time()),
            )
            return cur.rowcount == 1

    def add_drift(self, platform: str, run: str, ref_name: str, after_records: int, stats: dict[str, float]) -> None:
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(
                "INSERT INTO drift (platform, run, ref_name, after_records, median_ms, min_ms, iqr_ms, n, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (platform, run, ref_name, after_records, stats["median_ms"], stats["min_ms"], stats["iqr_ms"],
                 stats["n"], time.time()),
            )

    def drift(self, platform: str | None = None) -> list[dict[str, Any]]:
        q = "SELECT * FROM drift" + (" WHERE platform = ?" if platform else "") + " ORDER BY id"
        return [dict(r) for r in self.conn.execute(q, (platform,) if platform else ())]

    def add_op_timing(self, platform: str, cell_kind: str, cell_index: int, edge_stride: int, op: str,
                      shape: tuple[int, int, int], stats: dict[str, float]) -> None:
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(
                "INSERT OR REPLACE INTO op_timings (platform, cell_kind, cell_index, edge_stride, op, channels, "
                "height, width, median_ms, min_ms, iqr_ms, n, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (platform, cell_kind, cell_index, edge_stride, op, *shape, stats["median_ms"], stats["min_ms"],
                 stats["iqr_ms"], stats["n"], time.time()),
            )

    def op_timings(self, platform: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute("SELECT * FROM op_timings WHERE platform = ? ORDER BY id",
                                                   (platform,))]

    def iter_records(self, platform: str | None = None, metric: str = "latency",
                     run: str | None = None) -> Iterator[Record]:
        where, args = ["m.metric = ?"], [metric]
        if platform is not None:
            where.append("m.platform = ?")
            args.append(platform)
        if run is not None:
            where.append("m.run = ?")
            args.append(run)
        q = (f"SELECT m.*, a.genotype FROM measurements m JOIN architectures a USING (arch_hash) "
             f"WHERE {' AND '.join(where)} ORDER BY m.id")
        for r in self.conn.execute(q, args):
            d = dict(r)
            yield Record(genotype=Genotype.from_json(d["genotype"]), **{k: d[k] for k in RECORD_FIELDS})

    def records(self, platform: str | None = None, metric: str = "latency", run: str | None = None) -> list[Record]:
        return list(self.iter_records(platform, metric, run))

    def runs(self, platform: str, metric: str = "latency") -> dict[str, int]:
        cur = self.conn.execute("SELECT run, count(*) FROM measurements WHERE platform=? AND metric=? GROUP BY run "
                                "ORDER BY min(id)", (platform, metric))
        return {r[0]: r[1] for r in cur}

    # ---- summaries, export, merge ----------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": str(self.path), "platforms": []}
        for key in self.platforms():
            row = self.platform_row(key)
            runs = []
            for r in self.conn.execute(
                "SELECT metric, run, count(*) n, min(latency_ms) lo, avg(latency_ms) mean, max(latency_ms) hi, "
                "avg(repeats) reps FROM measurements WHERE platform = ? GROUP BY metric, run ORDER BY min(id)", (key,)
            ):
                runs.append(dict(r))
            out["platforms"].append({
                "key": key, "records": sum(r["n"] for r in runs), "runs": runs,
                "ref_name": row["ref_name"], "ref_ms": row["ref_ms"],
                "drift_checks": self.conn.execute("SELECT count(*) FROM drift WHERE platform=?", (key,)).fetchone()[0],
                "op_timings": self.conn.execute("SELECT count(*) FROM op_timings WHERE platform=?",
                                                (key,)).fetchone()[0],
            })
        out["architectures"] = self.conn.execute("SELECT count(*) FROM architectures").fetchone()[0]
        return out

    def export(self, path: str | os.PathLike, platform: str | None = None) -> int:
        """Write the measurements to CSV or Parquet (by extension), atomically. Returns the number of rows."""
        from ladarts.io import atomic_write

        rows = [r.row() for r in self.iter_records(platform)]
        suffix = Path(path).suffix.lower()
        columns = ["arch_hash", "genotype", *[f for f in RECORD_FIELDS if f != "arch_hash"]]
        if suffix == ".csv":
            def write(tmp: str) -> None:
                with open(tmp, "w", newline="", encoding="utf-8") as f:
                    w = csv.DictWriter(f, fieldnames=columns)
                    w.writeheader()
                    w.writerows(rows)
        elif suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pylist(rows) if rows else pa.table({c: [] for c in columns})

            def write(tmp: str) -> None:
                pq.write_table(table.select(columns) if rows else table, tmp)
        else:
            raise UserInputError(f"{path}: export to .csv or .parquet")
        atomic_write(path, write)
        return len(rows)

    def merge_from(self, other: "LatencyStore") -> int:
        """Copy another database's platforms and records in; existing records are kept. Returns rows added."""
        added = 0
        for key in other.platforms():
            theirs = other.platform_row(key)
            ours = self.platform_row(key)
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                if ours is None:
                    self.conn.execute(
                        "INSERT INTO platforms (key, settings, fingerprint, ref_name, ref_ms, created) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (key, json.dumps(theirs["settings"]), json.dumps(theirs["fingerprint"]), theirs["ref_name"],
                         theirs["ref_ms"], theirs["created"]),
                    )
                elif ours["ref_ms"] is None and theirs["ref_ms"] is not None:
                    self.conn.execute("UPDATE platforms SET ref_name=?, ref_ms=? WHERE key=?",
                                      (theirs["ref_name"], theirs["ref_ms"], key))
            if ours is not None and ours["ref_ms"] and theirs["ref_ms"] and ours["ref_ms"] != theirs["ref_ms"]:
                warnings.warn(f"platform {key}: the shards were calibrated separately ({ours['ref_ms']:.3f} vs "
                              f"{theirs['ref_ms']:.3f} ms); merged records keep their own scale", stacklevel=2)
        cols = [r[1] for r in other.conn.execute("PRAGMA table_info(measurements)") if r[1] != "id"]
        for r in other.conn.execute(
            f"SELECT {', '.join('m.' + c for c in cols)}, a.genotype FROM measurements m "
            "JOIN architectures a USING (arch_hash) ORDER BY m.id"
        ):
            d = dict(r)
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.execute("INSERT OR IGNORE INTO architectures VALUES (?, ?)", (d["arch_hash"], d["genotype"]))
                cur = self.conn.execute(
                    f"INSERT OR IGNORE INTO measurements ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    [d[c] for c in cols],
                )
                added += cur.rowcount
        for table in ("drift", "op_timings"):
            tcols = [r[1] for r in other.conn.execute(f"PRAGMA table_info({table})") if r[1] != "id"]
            rows = [tuple(r) for r in other.conn.execute(f"SELECT {', '.join(tcols)} FROM {table}")]
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.executemany(
                    f"INSERT OR IGNORE INTO {table} ({', '.join(tcols)}) VALUES ({', '.join('?' * len(tcols))})", rows
                )
        return added


def _column(value: Any) -> Any:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, (dict, list)) else value


def integrity_ok(path: str | os.PathLike) -> bool:
    conn = sqlite3.connect(f"file:{Path(path).resolve().as_posix()}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def iter_values(records: Iterable[Record], field: str = "latency_ms") -> dict[str, float]:
    """arch_hash → value, for comparing runs or platforms over the same architectures."""
    return {r.arch_hash: getattr(r, field) for r in records}
