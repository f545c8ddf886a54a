"""Grow the multi-platform latency dataset of the DARTS space (issue 14) on this machine, resumably.

Every platform times a prefix of ONE architecture stream (``--seed``, the ``stratified`` sampler that
``ladarts measure`` defaults to) of the deployed CIFAR network (C=36 x 20 cells, 32 px), in rounds, so that a
session cut short still leaves a balanced dataset: each round gives every platform group a share of the round's
time, and the platforms of a group advance to the same prefix. A second run ``b`` of the first architectures
(``--b-cap``, 200) grows in the same rounds at ``B_RATIO`` of the main prefix: the noise floor exists from the
first round on.

Each platform is timed in its own worker process, as ``ladarts measure`` would time it (its intra- and inter-op
thread counts set before any work, no other runtime loaded beside it); the workers take turns, so only one
process times at any moment. A worker is one measuring session (one calibration, its loaded reference and drift
references) for one round (inductor's for the whole growth session: its reference costs a compilation), so each
platform's scale is the median over many calibrations. Per-architecture costs come from a first probe of one
architecture per platform, then from the growth log; the plan is printed every round.

Rerun the same command to continue. Writes, beside the database: ``<db>.grow-config.json`` (the resolved
configuration) and ``growth-log.json`` (each chunk's costs, with the machine's load before and after it).

A platform whose session calibrates its reference beyond ``--max-slowdown`` (``MAX_SLOWDOWN``) times its stored
scale is dropped for the session before it stores anything: a slower or busier machine than the one that measured
it would shift its ratios.

The compiling runtimes spend nearly all their time exporting, which needs no quiet machine: ``--export-ahead N``
exports (ExecuTorch) or compiles (inductor, for its on-disk caches) the next N architectures of each group given a
share, in ``--jobs`` processes, and times nothing (:mod:`ladarts.hardware.ahead`); its runs are logged in
``export-ahead-log.json``. Run it while the machine is busy anyway, then grow.

    python benchmarks/grow_dataset.py --until 13:15            # a UTC wall-clock deadline (its next occurrence)
    python benchmarks/grow_dataset.py --until 120m             # or a budget in minutes
    python benchmarks/grow_dataset.py --export-ahead 100 --jobs 2 --shares base=0,threads2=0,batch8=0
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import re
import signal
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from ladarts.errors import UserInputError
from ladarts.io import atomic_write_json

from common import machine, stamp

HERE = Path(__file__).resolve().parent
DEFAULT_DB = HERE / "data" / "multiplatform" / "darts_cifar_latency.db"
SAMPLER = "stratified"


@dataclass(frozen=True)
class Spec:
    """One platform of the dataset: a short name, its ``Platform`` settings, and the group it advances with."""

    name: str
    runtime: str
    threads: int
    batch_size: int
    group: str


#: In priority order: when time runs short, the earlier ones are measured first.
SPECS = (
    Spec("eager-t1", "torch", 1, 1, "base"),
    Spec("ort-t1", "onnxruntime", 1, 1, "base"),  # exports the ONNX model that the next ones read from the cache
    Spec("openvino-t1", "openvino", 1, 1, "base"),
    Spec("eager-t2", "torch", 2, 1, "threads2"),
    Spec("eager-t1-b8", "torch", 1, 8, "batch8"),
    Spec("ort-t1-b8", "onnxruntime", 1, 8, "batch8"),
    Spec("inductor-t1", "inductor", 1, 1, "inductor"),
    Spec("executorch-t1", "executorch", 1, 1, "executorch"),
)
#: Share of each round's time per group (the compiling runtimes cost 50-100 s per architecture here, so they only
#: reach a small prefix; their share keeps them in the dataset without starving the others). Two threads get a
#: group of their own: on two cores shared with other work, one busy core makes every parallel region wait for the
#: descheduled thread (70 s per architecture against 2 s alone, measured here), which would stall the others.
SHARES = {"base": 0.62, "threads2": 0.12, "batch8": 0.10, "inductor": 0.08, "executorch": 0.08}
#: Run b's prefix as a share of run main's, per group. The compiling runtimes re-time from their caches (ExecuTorch's
#: programs on disk, inductor's FX-graph cache), so their second run costs far less than their first.
B_RATIO = {"base": 0.5, "threads2": 0.5, "batch8": 0.5, "inductor": 1.0, "executorch": 1.0}
#: A platform whose session calibrates its reference above this multiple of the platform's scale is dropped for the
#: growth session (``check_speed``). The dataset's own sessions calibrate within 1.14x of their platform's scale at
#: the 90th percentile, except inductor's and eager t2's, some of them measured beside other work. On a machine
#: 2.5x slower than usual (2026-12-01), 30 inductor records came out about 5% high against the other runtimes, and
#: were discarded: the ratio to the reference does not cancel such a change.
MAX_SLOWDOWN = 1.2


def parse_until(text: str, now: float | None = None) -> float:
    """``HH:MM`` (UTC), an ISO date-time, or a budget ``90m`` / ``90`` (minutes) -> a POSIX deadline.

    ``HH:MM`` is its next occurrence, as ``shutdown`` and ``at`` read it: ``01:15`` typed at 23:18 means tonight, not
    a time that has passed. The plan printed at the start shows the minutes left, so a slip is visible at once.
    """
    now = time.time() if now is None else now
    if re.fullmatch(r"\d+(\.\d+)?m?", text):
        return now + 60 * float(text.rstrip("m"))
    if re.fullmatch(r"\d{1,2}:\d{2}", text):
        h, m = (int(x) for x in text.split(":"))
        if h > 23 or m > 59:
            raise UserInputError(f"--until {text}: not a time of day (HH:MM, UTC)")
        day = datetime.fromtimestamp(now, timezone.utc)
        deadline = day.replace(hour=h, minute=m, second=0, microsecond=0).timestamp()
        return deadline if deadline > now else deadline + 86400
    else:
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise UserInputError(f"--until {text!r}: expected HH:MM (UTC), an ISO date-time or minutes (90m)") from None
        deadline = (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()
    if deadline <= now:
        raise UserInputError(f"--until {text}: that time has passed")
    return deadline


def _until(items: Iterable[Any], deadline: float, cost_s: float) -> Iterator[Any]:
    """The items, as long as one more architecture (``cost_s``) still fits before ``deadline``."""
    for item in items:
        if time.time() + cost_s > deadline:
            return
        yield item


def _check_stream(store: Any, key: str, stream: Any) -> None:
    """Refuse to grow a run whose stored architectures are not this stream's: the i-th architecture of a seed must
    never change, and a library edit that changed the sampler would otherwise mix two samples under one name."""
    from ladarts.errors import LadartsError
    from ladarts.space import arch_hash

    stored = {r.seq: r.arch_hash for r in store.iter_records(key, run="main") if r.seq is not None}
    for seq, genotype in stream[:max(stored, default=-1) + 1]:
        if seq in stored and arch_hash(genotype) != stored[seq]:
            raise LadartsError(f"{key}: architecture {seq} of the stream is not the one stored; the sampler changed")


def _worker(conn: Any, spec: Spec, db: str, seed: int, n_max: int, config: dict[str, Any]) -> None:
    """One platform's measuring process: a session opened once, then chunks on request until told to stop."""
    try:
        from ladarts.hardware import LatencyStore, MeasureConfig, Measurer, Platform, campaign_items

        platform = Platform(runtime=spec.runtime, threads=spec.threads, batch_size=spec.batch_size)
        t0 = time.perf_counter()
        with LatencyStore.open_or_create(db) as store:
            stream = campaign_items(n_max, seed, sampler=SAMPLER)
            _check_stream(store, platform.key, stream)
            measurer = Measurer(store, platform, MeasureConfig(**config))  # refuses a slow machine first
            conn.send({"ok": True, "startup_s": time.perf_counter() - t0, "ref_ms": measurer.ref_ms,
                       "session_ref_ms": measurer.session_ref_ms, "session": measurer.session})
            while (msg := conn.recv()) is not None:
                stop, run, deadline, cost_s = msg
                result = measurer.run(_until(stream[:stop], deadline, cost_s), run=run, progress=False)
                conn.send({"ok": True, **result.to_dict(), "ref_ms": measurer.ref_ms})
    except EOFError:
        return  # the orchestrator is gone: the database is closed above, the record in flight is lost
    except Exception:  # noqa: BLE001 - reported to the orchestrator, which drops this platform and goes on
        conn.send({"ok": False, "error": traceback.format_exc()})


class Workers:
    """The platforms' worker processes, started on first use; only one is asked to time at a time."""

    def __init__(self, db: Path, seed: int, n_max: int, config: dict[str, Any]):
        self.args = (str(db), seed, n_max, config)
        self.ctx = mp.get_context("spawn")
        self.live: dict[str, tuple[Any, Any]] = {}
        self.started: dict[str, dict[str, Any]] = {}

    def call(self, spec: Spec, msg: tuple) -> dict[str, Any]:
        if spec.name not in self.live:
            parent, child = self.ctx.Pipe()
            proc = self.ctx.Process(target=_worker, args=(child, spec, *self.args), name=f"grow-{spec.name}")
            proc.start()
            self.live[spec.name] = (proc, parent)
            self.started[spec.name] = reply = self._recv(spec)
            if not reply["ok"]:
                return reply
        self.live[spec.name][1].send(msg)
        return self._recv(spec)

    def _recv(self, spec: Spec) -> dict[str, Any]:
        proc, conn = self.live[spec.name]
        try:
            reply = conn.recv()
        except EOFError:
            reply = {"ok": False, "error": f"worker died (exit code {proc.join(5) or proc.exitcode})"}
        if not reply["ok"]:
            self.stop(spec.name)
        return reply

    def recycle(self, keep: set[str]) -> None:
        """End the workers not in ``keep``: the next chunk starts a new session, with its own calibration."""
        for name in [n for n in self.live if n not in keep]:
            self.stop(name)

    def stop(self, name: str) -> None:
        proc, conn = self.live.pop(name)
        try:
            conn.send(None)
        except OSError:
            pass
        proc.join(10)
        if proc.is_alive():  # still in a chunk (the orchestrator was killed): it loses the record in flight only
            proc.terminate()
            proc.join(10)

    def close(self) -> None:
        for name in list(self.live):
            self.stop(name)


class Growth:
    """The orchestrator: reads where each platform's runs stand, plans each round from the measured costs, logs."""

    def __init__(self, args: argparse.Namespace, deadline: float):
        from ladarts.hardware import Platform

        self.args, self.deadline = args, deadline
        self.db = Path(args.db)
        self.keys = {s.name: Platform(runtime=s.runtime, threads=s.threads, batch_size=s.batch_size).key
                     for s in SPECS}
        self.log_path = self.db.parent / "growth-log.json"
        self.log = _read_json(self.log_path) or {"sessions": [], "chunks": [], "errors": []}
        self.failed: dict[str, str] = {}
        self.shares = args.shares
        self.credit = {g: 0.0 for g in self.shares}
        self.workers = Workers(self.db, args.seed, args.n_max, self.timer())

    # ---- state ---------------------------------------------------------------------------------------------
    def prefixes(self) -> dict[tuple[str, str], int]:
        """(spec name, run) -> how far along the stream the run is (its last seq + 1)."""
        from ladarts.hardware import LatencyStore

        if not self.db.exists():
            return {}
        out = {}
        with LatencyStore.open(self.db) as store:
            known = set(store.platforms())
            for s in SPECS:
                if self.keys[s.name] in known:
                    for run in ("main", "b"):
                        seqs = [r.seq for r in store.iter_records(self.keys[s.name], run=run) if r.seq is not None]
                        out[s.name, run] = max(seqs) + 1 if seqs else 0
        return out

    def cost(self, spec: Spec, run: str) -> float | None:
        """Seconds per architecture over this platform's last 5 chunks of ``run`` (of ``main`` if ``b`` has none)."""
        chunks = [c for c in self.log["chunks"] if c["platform"] == self.keys[spec.name] and c["measured"] > 0]
        mine = [c for c in chunks if c["run"] == run][-5:] or [c for c in chunks if c["run"] == "main"][-5:]
        if not mine:
            return None
        return sum(c["wall_s"] for c in mine) / sum(c["measured"] for c in mine)

    # ---- one chunk -----------------------------------------------------------------------------------------
    def chunk(self, spec: Spec, run: str, stop: int) -> dict[str, Any] | None:
        if spec.name in self.failed:
            return None
        cost = self.cost(spec, run) or 0.0
        before = machine()
        t0 = time.time()
        reply = self.workers.call(spec, (stop, run, self.deadline, cost))
        if not reply["ok"]:
            self.failed[spec.name] = reply["error"].strip().splitlines()[-1]
            self.log["errors"].append({**stamp(), "platform": self.keys[spec.name], "run": run,
                                       "error": reply["error"]})
            print(f"  {spec.name} {run}: FAILED, dropped for this session: {self.failed[spec.name]}", flush=True)
            self._save()
            return None
        entry = {**stamp(), "platform": self.keys[spec.name], "name": spec.name, "run": run, "stop": stop,
                 **{k: reply[k] for k in ("measured", "skipped", "wall_s", "timed_s", "build_s", "export_s",
                                          "archs_per_hour", "timed_share", "ref_ms")},
                 "chunk_wall_s": time.time() - t0, "worker": self.workers.started[spec.name],
                 "load_before": before["load_avg"], "machine": machine()}
        self.log["chunks"].append(entry)
        self._save()
        per = reply["wall_s"] / reply["measured"] if reply["measured"] else float("nan")
        print(f"  {spec.name:14s} {run:4s} -> {stop:4d}: +{reply['measured']:3d} in {reply['wall_s']:6.1f} s "
              f"({per:5.1f} s/arch, timed share {reply['timed_share']:.2f}), load {before['load_avg'][0]:.2f}",
              flush=True)
        return entry

    def _save(self) -> None:
        atomic_write_json(self.log_path, self.log)

    # ---- the schedule --------------------------------------------------------------------------------------
    def group(self, name: str) -> list[Spec]:
        return [s for s in SPECS if s.group == name and s.name not in self.failed]

    def probe(self) -> None:
        """Time one architecture on each platform that has no cost in the log yet."""
        pre = self.prefixes()
        for spec in (s for s in SPECS if s.group in self.shares):
            if self.cost(spec, "main") is None and time.time() < self.deadline:
                self.chunk(spec, "main", pre.get((spec.name, "main"), 0) + 1)

    def plan(self) -> list[tuple[Spec, str, int]]:
        """This round's chunks: (platform, run, stop). Each group gets its share of the round's time (unspent
        credit carries over, so a group costlier than its share advances every few rounds); the platforms of a
        group advance to the same prefix; nothing is planned past the deadline."""
        pre = self.prefixes()
        left = self.deadline - time.time()
        base_top = min((pre.get((s.name, "main"), 0) for s in self.group("base")), default=0)
        chunks: list[tuple[Spec, str, int]] = []
        print(f"round plan ({left / 60:.1f} min left):", flush=True)
        for g, share in self.shares.items():
            specs = self.group(g)
            if not specs:
                continue
            self.credit[g] += share * self.args.round_s
            top = min(pre.get((s.name, "main"), 0) for s in specs)
            cap = self._cap(g, top, base_top)
            growing_b = any(pre.get((s.name, "b"), 0) < self.args.b_cap for s in specs)
            per_arch = sum((self.cost(s, "main") or 0.0)
                           + (B_RATIO[g] * (self.cost(s, "b") or 0.0) if growing_b else 0.0) for s in specs)
            n = min(int(self.credit[g] // per_arch), int(max(left, 0) // per_arch), cap - top) if per_arch else 0
            n = max(n, 0)
            self.credit[g] -= n * per_arch
            left -= n * per_arch
            b_stop = min(self.args.b_cap, math.floor(B_RATIO[g] * (top + n)))
            print(f"  {g:10s} main {top:4d} -> {top + n:4d}, b -> {b_stop:3d}  ({per_arch:6.1f} s per step of "
                  f"the group, credit left {self.credit[g]:6.0f} s)", flush=True)
            if n:
                chunks += [(s, "main", top + n) for s in specs]
            chunks += [(s, "b", b_stop) for s in specs if pre.get((s.name, "b"), 0) < b_stop]
        return chunks

    def _cap(self, group: str, top: int, base_top: int) -> int:
        # --n-max caps every group (the workers' stream ends there); the others stay within the base prefix
        return self.args.n_max if group == "base" else min(self.args.n_max, max(top, base_top))

    def room(self) -> int:
        """Architecture timings still open to the groups given a share this session (main up to each group's cap,
        b up to its own): 0 means every such group is done, so the session ends instead of planning empty rounds."""
        pre = self.prefixes()
        base_top = min((pre.get((s.name, "main"), 0) for s in self.group("base")), default=0)
        room = 0
        for g in self.shares:
            specs = self.group(g)
            if not specs:
                continue
            top = min(pre.get((s.name, "main"), 0) for s in specs)
            cap = self._cap(g, top, base_top)
            b_stop = min(self.args.b_cap, math.floor(B_RATIO[g] * cap))
            room += sum(max(cap - pre.get((s.name, "main"), 0), 0) + max(b_stop - pre.get((s.name, "b"), 0), 0)
                        for s in specs)
        return room

    def projection(self) -> None:
        """What the shares would reach by the deadline at the costs measured so far."""
        left = self.deadline - time.time()
        print(f"projection at the measured costs, {left / 60:.0f} min left:", flush=True)
        for g, share in self.shares.items():
            for s in self.group(g):
                c, cb = self.cost(s, "main"), self.cost(s, "b")
                if c is None:
                    continue
                print(f"  {s.name:14s} {c:6.1f} s/arch main, {cb or c:6.1f} s/arch b; group share {share:.2f}",
                      flush=True)
            specs = self.group(g)
            per = sum((self.cost(s, "main") or 0) + B_RATIO[g] * (self.cost(s, "b") or 0) for s in specs)
            if per:
                print(f"  -> {g}: about {share * left / per:.0f} more architectures each", flush=True)

    def run(self) -> None:
        self.log["sessions"].append({**stamp(), "machine": machine(), "config": self.config()})
        self._save()
        try:
            self.probe()
            self.projection()
            rounds = 0
            while time.time() < self.deadline - 30:
                chunks = self.plan()
                if not chunks:
                    if not self.room():
                        break  # every group given a share is at --n-max (and its run b at --b-cap)
                    if all(self.credit[g] > 4 * self.args.round_s for g in self.shares if self.group(g)):
                        break  # nothing affordable before the deadline
                    continue
                rounds += 1
                # A session per round: a platform's scale is the median over its sessions' calibrations, so one
                # session calibrated under a burst of load cannot set it. Inductor keeps its session: a new one
                # would compile the reference and the drift references again.
                self.workers.recycle(keep={"inductor-t1"})
                print(f"round {rounds} ({datetime.now(timezone.utc):%H:%M:%S} UTC)", flush=True)
                for spec, run, stop in chunks:
                    if time.time() >= self.deadline:
                        break
                    self.chunk(spec, run, stop)
        finally:
            self.workers.close()
        print(f"stopped at {datetime.now(timezone.utc):%H:%M:%S} UTC; failed: {self.failed or 'none'}", flush=True)

    def timer(self) -> dict[str, Any]:
        from ladarts.hardware import MeasureConfig

        return asdict(MeasureConfig(pairs=self.args.pairs, max_slowdown=self.args.max_slowdown))

    def config(self) -> dict[str, Any]:
        from ladarts.space import network_config

        return {"db": str(self.db), "seed": self.args.seed, "sampler": SAMPLER, "n_max": self.args.n_max,
                "b_cap": self.args.b_cap, "round_s": self.args.round_s,
                "until": datetime.fromtimestamp(self.deadline, timezone.utc).isoformat(timespec="seconds"),
                "network": network_config("cifar").to_dict(), "timer": self.timer(),
                "platforms": [{**asdict(s), "key": self.keys[s.name]} for s in SPECS],
                "shares": self.shares, "b_ratio": B_RATIO,
                "export_cache": os.environ.get("LADARTS_EXPORT_CACHE"),
                "export_cache_gb": os.environ.get("LADARTS_EXPORT_CACHE_GB")}


def parse_shares(text: str) -> dict[str, float]:
    """``base=0.5,batch8=0.3`` -> every group's share of a round, the unnamed ones keeping their default and all
    rescaled to sum to 1: a session can spend its time where the dataset is shortest. Groups given 0 are left out."""
    shares = dict(SHARES)
    for item in filter(None, text.split(",")):
        name, _, value = item.partition("=")
        if name.strip() not in SHARES:
            raise UserInputError(f"--shares: unknown group {name.strip()!r} (groups: {', '.join(SHARES)})")
        try:
            shares[name.strip()] = float(value)
        except ValueError:
            raise UserInputError(f"--shares: {item!r} is not GROUP=NUMBER") from None
    total = sum(shares.values())
    if not all(math.isfinite(v) and v >= 0 for v in shares.values()) or total <= 0:
        raise UserInputError("--shares: shares must be finite, >= 0 and not all 0")
    return {g: v / total for g, v in shares.items() if v > 0}  # a group given 0 is not grown this session


def export_ahead(args: argparse.Namespace) -> None:
    """Export the next ``args.export_ahead`` architectures past each platform's main prefix, for the groups given a
    share, into the export cache that growing reads; platforms that export nothing (eager) are passed over."""
    from ladarts.hardware import LatencyStore, Platform, campaign_items
    from ladarts.hardware.ahead import export_ahead as export
    from ladarts.hardware.runtimes import backend

    log_path = Path(args.db).parent / "export-ahead-log.json"
    stream = campaign_items(args.n_max, args.seed, sampler=SAMPLER)
    for spec in (s for s in SPECS if s.group in args.shares):
        platform = Platform(runtime=spec.runtime, threads=spec.threads, batch_size=spec.batch_size)
        if backend(platform).ARTEFACT is None:
            continue  # eager: nothing to export
        done: set[str] = set()
        if Path(args.db).exists():
            with LatencyStore.open(args.db) as store:
                if platform.key in store.platforms():
                    _check_stream(store, platform.key, stream)
                    done = store.done_hashes(platform.key, "latency", "main")
        before = machine()
        stop = min(args.n_max, len(done) + args.export_ahead)
        result = export(stream[:stop], platform, jobs=args.jobs, done=done, progress=False)
        entry = {**stamp(), "command": " ".join(["grow_dataset.py", *sys.argv[1:]]), "name": spec.name,
                 "stop": stop, **result.to_dict(), "load_before": before["load_avg"], "machine": machine()}
        log = _read_json(log_path) or []
        atomic_write_json(log_path, log + [entry])
        per = result.wall_s / max(1, result.counts["exported"] + result.counts["compiled"])
        print(f"  {spec.name:14s} -> {stop:4d}: {result.counts['exported'] + result.counts['compiled']} exported "
              f"({result.counts['cached']} cached) in {result.wall_s:.0f} s ({per:.1f} s/arch, {args.jobs} jobs), "
              f"load {before['load_avg'][0]:.2f}", flush=True)


def _read_json(path: Path) -> Any:
    import json

    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", default=str(DEFAULT_DB), help=f"latency database (default {DEFAULT_DB})")
    p.add_argument("--seed", type=int, default=0, help="the architecture stream's seed (default 0)")
    p.add_argument("--until", help="stop measuring by HH:MM (UTC), an ISO date-time, or after 90m (required unless "
                   "--export-ahead)")
    p.add_argument("--n-max", type=int, default=1000, help="the main runs' target prefix (default 1000)")
    p.add_argument("--b-cap", type=int, default=200, help="run b's target prefix, the noise floor (default 200)")
    p.add_argument("--round-s", type=float, default=600.0, help="seconds of measuring per round (default 600)")
    p.add_argument("--pairs", type=int, default=20, help="interleaved pairs per architecture (default 20)")
    p.add_argument("--max-slowdown", type=float, default=MAX_SLOWDOWN,
                   help=f"drop, for this session, a platform whose reference runs more than this many times its "
                        f"stored scale (default {MAX_SLOWDOWN}; see MAX_SLOWDOWN)")
    p.add_argument("--export-ahead", type=int, metavar="N",
                   help="export the next N architectures of each grown platform that exports, time nothing")
    p.add_argument("--jobs", type=int, default=2, help="with --export-ahead: export processes (default 2)")
    p.add_argument("--shares", default="", help="GROUP=SHARE,... of each round's time (default: "
                   + ",".join(f"{g}={v}" for g, v in SHARES.items()) + "; rescaled to sum to 1)")
    args = p.parse_args(argv)
    try:
        args.shares = parse_shares(args.shares)
        # ONNX exports are 12 MB each and four platforms read each one: a cache of its own, large enough to keep
        # them all, so that no re-timing pays the export again.
        os.environ.setdefault("LADARTS_EXPORT_CACHE", str(Path.home() / ".cache" / "ladarts" / "dataset-exports"))
        os.environ.setdefault("LADARTS_EXPORT_CACHE_GB", "16")
        if args.export_ahead is not None:
            if args.export_ahead < 1 or not 1 <= args.jobs <= 64:
                raise UserInputError("--export-ahead needs N >= 1 and --jobs 1..64")
            export_ahead(args)
            return 0
        if args.until is None:
            raise UserInputError("--until is required: a deadline for the timing (or --export-ahead N)")
        deadline = parse_until(args.until)
        if not Path(args.db).parent.is_dir():
            Path(args.db).parent.mkdir(parents=True)
        growth = Growth(args, deadline)
        config_path = Path(f"{args.db}.grow-config.json")
        old = _read_json(config_path)
        new = growth.config()
        if old and (old["seed"], old["sampler"]) != (new["seed"], new["sampler"]):
            raise UserInputError(f"{args.db} grows the stream of --seed {old['seed']} ({old['sampler']}); "
                                 f"pass the same seed, or another --db")
        atomic_write_json(config_path, new)
    except UserInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # A plain kill ends the session cleanly: the workers are told to stop and close the database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    growth.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
