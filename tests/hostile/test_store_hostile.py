"""Hostile inputs to the latency store, in one place: files that are not what they claim, damaged or tampered
databases, and paths built to confuse. Each is fed to the commands that read (db stats) and merge (db merge);
each must end in one line on stderr, write nothing, and leave the input as it was.

| input                                   | defended by                                              |
|-----------------------------------------|----------------------------------------------------------|
| text file named .db                     | SQLite header check: "not an SQLite file"                |
| truncated or page-damaged database      | SQLite errors and integrity_check: "corrupt"             |
| SQLite file of another application      | ladarts' meta table: "not a ladarts latency database"    |
| ladarts database from a future version  | schema version check                                     |
| ladarts meta table with tables missing  | table check: "incomplete latency database"               |
| genotype rows that do not match hashes  | merge validation (hash recomputed)                       |
| measurements without architecture row   | merge validation (never dropped silently)                |
| impossible ratios (inf, negative, text) | merge validation                                         |
| oversized genotype JSON in a row        | the genotype reader's size bound                         |
| URI metacharacters in the path          | paths are quoted into the SQLite URI                     |
| the output given as an input (symlink)  | file identity (tests/test_store.py)                      |
"""

import os
import sqlite3

import pytest

from conftest import assert_one_line_error
from ladarts.errors import UserInputError
from ladarts.hardware.store import LatencyStore, merge_databases
from test_store import KEY, content, fake_db, fingerprint_of_file


def _text(path):
    path.write_text("id,latency\n1,2.0\n" * 200)


def _truncated(path):
    fake_db(path, n=60)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 100])


def _damaged(path):
    fake_db(path, n=60)
    data = bytearray(path.read_bytes())
    data[4096 * 3:4096 * 5] = b"\xff" * 8192
    path.write_bytes(bytes(data))


def _foreign(path):
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE meta (key TEXT, value TEXT)")
        con.execute("INSERT INTO meta VALUES ('app', 'someone-else')")


def _future(path):
    fake_db(path, n=2)
    with sqlite3.connect(path) as con:
        con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")


def _incomplete(path):
    fake_db(path, n=2)
    with sqlite3.connect(path) as con:
        con.execute("DROP TABLE ref_timings")


def _tampered_genotype(path):
    fake_db(path, n=5)
    with sqlite3.connect(path) as con:
        h, text = con.execute("SELECT arch_hash, genotype FROM architectures LIMIT 1").fetchone()
        other = con.execute("SELECT genotype FROM architectures WHERE arch_hash != ? LIMIT 1", (h,)).fetchone()[0]
        con.execute("UPDATE architectures SET genotype = ? WHERE arch_hash = ?", (other, h))


def _orphans(path):
    fake_db(path, n=5)
    with sqlite3.connect(path) as con:
        con.execute("DELETE FROM architectures WHERE arch_hash IN (SELECT arch_hash FROM measurements LIMIT 3)")


@pytest.mark.parametrize("ratio", ["'NaN'", "1e999", "-1.0", "0.0"])
def test_impossible_ratios_are_refused_by_merge(tmp_path, ratio):
    src = fake_db(tmp_path / "in.db", n=4)
    with sqlite3.connect(src) as con:
        con.execute(f"UPDATE measurements SET ratio = {ratio} WHERE id = 1")
    with pytest.raises(UserInputError, match="impossible ratio"):
        merge_databases(tmp_path / "out.db", [src])
    assert not (tmp_path / "out.db").exists()


def _oversized_genotype(path):
    fake_db(path, n=3)
    with sqlite3.connect(path) as con:
        con.execute("UPDATE architectures SET genotype = ? WHERE rowid = 1", ('{"normal": [' + "[" * 200_000 + "]",))


READ_FAILS = {  # builder → what db stats must say
    "text": (_text, "not an SQLite file"),
    "truncated": (_truncated, "corrupt|not an SQLite"),
    "damaged": (_damaged, "corrupt"),
    "foreign": (_foreign, "not a ladarts latency database"),
    "future": (_future, "schema version 99"),
    "incomplete": (_incomplete, "incomplete latency database"),
}
MERGE_FAILS = {**READ_FAILS, "tampered": (_tampered_genotype, "do not match their hash"),
               "orphans": (_orphans, "3 measurement.s. have no architecture row"),
               "oversized": (_oversized_genotype, "do not match their hash")}


def _read(path):
    with LatencyStore.open(path) as store:
        return store.stats(), store.records()


@pytest.mark.parametrize("case", sorted(READ_FAILS))
def test_reading_a_hostile_file_is_refused_and_leaves_it(tmp_path, case):
    build, message = READ_FAILS[case]
    path = tmp_path / "in.db"
    build(path)
    before = fingerprint_of_file(path)
    with pytest.raises(UserInputError, match=message):
        _read(path)
    assert fingerprint_of_file(path) == before


@pytest.mark.parametrize("case", sorted(MERGE_FAILS))
def test_merging_a_hostile_file_writes_nothing(tmp_path, case):
    build, message = MERGE_FAILS[case]
    path = tmp_path / "in.db"
    build(path)
    out = fake_db(tmp_path / "out.db", n=3, seed=7)
    before_in, before_out = fingerprint_of_file(path), content(out)
    with pytest.raises(UserInputError, match=message):
        merge_databases(out, [path])
    assert content(out) == before_out and fingerprint_of_file(path) == before_in
    fresh = tmp_path / "fresh.db"
    with pytest.raises(UserInputError, match=message):
        merge_databases(fresh, [path])
    assert not fresh.exists()


@pytest.mark.parametrize("command", ["stats", "merge"])
def test_the_command_line_says_it_in_one_line(tmp_path, run_cli, command):
    path = tmp_path / "in.db"
    _damaged(path)
    args = ["db", "stats", str(path)] if command == "stats" else ["db", "merge", str(tmp_path / "o.db"), str(path)]
    proc = run_cli(*args)
    assert_one_line_error(proc, 2)
    assert "corrupt" in proc.stderr and not (tmp_path / "o.db").exists()


def test_uri_metacharacters_in_a_path_are_only_a_name(tmp_path, run_cli):
    odd = tmp_path / "x?mode=rwc&immutable=1#frag.db"
    proc = run_cli("db", "stats", str(odd))
    assert_one_line_error(proc, 2)
    assert "no such latency database" in proc.stderr and not odd.exists()
    assert not any(p.name.startswith("x") for p in tmp_path.iterdir())
    fake_db(odd, n=2)
    before = fingerprint_of_file(odd)
    proc = run_cli("db", "stats", str(odd), "--json")
    assert proc.returncode == 0 and KEY in proc.stdout
    assert fingerprint_of_file(odd) == before


def test_a_folder_or_a_dangling_link_is_not_a_database(tmp_path, run_cli):
    (tmp_path / "dir.db").mkdir()
    os.symlink(tmp_path / "nowhere.db", tmp_path / "link.db")
    for name in ("dir.db", "link.db"):
        assert_one_line_error(run_cli("db", "stats", str(tmp_path / name)), 2)
    assert_one_line_error(run_cli("measure", "--db", str(tmp_path / "dir.db"), "--n", "1"), 2)
    assert not (tmp_path / "nowhere.db").exists()
