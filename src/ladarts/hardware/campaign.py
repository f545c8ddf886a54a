"""The measurement campaign: sample, build, time and store architectures, resumably.

Rerunning the same command continues where it stopped: the i-th architecture of a seed never changes, and
records already in the run are skipped. The architectures are generated lazily, so a campaign of any size
starts at once. ``--shard i/n`` takes every n-th architecture, for several identical devices whose databases
are merged afterwards; :mod:`ladarts.hardware.fleet` does the same over a Ray cluster into one database.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ladarts.errors import LadartsError, UserInputError
from ladarts.hardware.platform import Platform
from ladarts.hardware.runtimes import Loaded, configure_threads, load
from ladarts.hardware.store import LatencyStore, new_session
from ladarts.hardware.timer import stats_ms, time_alone, time_interleaved
from ladarts.space.encoding import arch_hash
from ladarts.space.genotype import Genotype
from ladarts.space.sampling import iter_genotypes
from ladarts.space.zoo import ZOO

#: The interleaved reference, and the architectures re-timed now and then to record the machine's drift.
REFERENCE = "DARTS_V2"
DRIFT_REFERENCES = ("DARTS_V2", "PC_DARTS_cifar", "DARTS_V1")


@dataclass
class MeasureConfig:
    """How each architecture is timed. Defaults justified by the noise floor in benchmarks/RESULTS.md."""

    pairs: int = 20  # (reference, architecture) forward pairs per architecture
    warmup: int = 1  # untimed forwards of each before timing
    calibration: int = 40  # reference forwards that time the reference alone at the start of each session
    drift_every: int = 50  # re-time the drift references after this many records
    drift_repeats: int = 10
    metric: str = "latency"
    # Refuse a session whose reference runs this many times slower than the platform's scale (None: never).
    max_slowdown: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class CampaignResult:
    platform: str
    run: str
    measured: int = 0
    skipped: int = 0
    wall_s: float = 0.0
    timed_s: float = 0.0
    build_s: float = 0.0
    export_s: float = 0.0
    last_ms: float | None = None

    @property
    def archs_per_hour(self) -> float:
        return 3600.0 * self.measured / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def timed_share(self) -> float:
        return self.timed_s / self.wall_s if self.wall_s > 0 else 0.0

    def add(self, stats: dict[str, Any]) -> None:
        self.timed_s += stats["timed_s"]
        self.build_s += stats["build_s"]
        self.export_s += stats["export_s"]

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d.update(archs_per_hour=self.archs_per_hour, timed_share=self.timed_share)
        return d


def parse_shard(text: str | None) -> tuple[int, int]:
    if text is None:
        return 0, 1
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserInputError(f"--shard {text!r}: expected i/n, e.g. 0/4") from None
    if not (n >= 1 and 0 <= i < n):
        raise UserInputError(f"--shard {text!r}: need 0 <= i < n")
    return i, n


@dataclass(frozen=True)
class CampaignItems(Sequence):
    """(seq, genotype) of the first ``n`` architectures of ``seed`` that fall in ``shard``, generated lazily:
    iterating starts at once for any ``n``, and a slice builds only the genotypes up to its end."""

    n: int
    seed: int
    shard: tuple[int, int] = (0, 1)
    sampler: str = "uniform"

    def __len__(self) -> int:
        return len(range(self.shard[0], self.n, self.shard[1]))

    def __iter__(self) -> Iterator[tuple[int, Genotype]]:
        i, k = self.shard
        for seq, g in zip(range(self.n), iter_genotypes(self.seed, self.sampler)):
            if seq % k == i:
                yield seq, g

    def __getitem__(self, index):  # type: ignore[override]
        picked = range(len(self))[index]
        if isinstance(index, slice):
            if picked.step < 0:
                return list(self)[index]
            return list(itertools.islice(self, picked.start, picked.stop, picked.step))
        return next(itertools.islice(self, picked, None))


def campaign_items(n: int, seed: int, shard: tuple[int, int] = (0, 1), sampler: str = "uniform") -> CampaignItems:
    """The campaign's architectures: see :class:`CampaignItems` and, for ``sampler``,
    :mod:`ladarts.space.sampling` (``ladarts measure`` defaults to ``stratified``)."""
    iter_genotypes(seed, sampler)  # an unknown sampler is refused here, before any work
    return CampaignItems(n, seed, shard, sampler)


def check_stream(store: LatencyStore, platform: str, run: str, items: object, metric: str = "latency") -> None:
    """Refuse to grow ``run`` from another sample stream, which would mix two samples under one name.

    The run's record earliest in its stream must be the architecture ``items``' seed and sampler give at that
    position; any shard of the same stream passes. Only campaign items name a stream (a re-timing's list does not).
    """
    if not isinstance(items, CampaignItems):
        return
    first = store.first_in_stream(platform, metric, run)
    if first is None:
        return
    seq, h = first
    if arch_hash(next(itertools.islice(iter_genotypes(items.seed, items.sampler), seq, None))) != h:
        raise UserInputError(f"run {run!r} of platform {platform} was measured from another sample stream than "
                             f"--seed {items.seed} --sampler {items.sampler}; pass the seed and sampler it was "
                             f"measured with to grow it, or name a new --run")


def check_speed(store: LatencyStore, platform: str, session_ms: float, max_slowdown: float | None) -> None:
    """Refuse a session whose reference runs more than ``max_slowdown`` times the platform's scale, before its
    calibration is stored: a machine slower or busier than the one that measured the platform.

    Records are ratios to the interleaved reference, which cancel a change of speed only as far as it slows the
    architecture and the reference alike; compiled code and its memory traffic need not slow alike. A campaign
    grown across sessions, on machines that come and go, keeps its ratios comparable by timing only where the
    reference runs at about the platform's scale.
    """
    if max_slowdown is None or platform not in store.platforms():
        return
    ref = store.reference(platform)
    if ref is not None and session_ms > max_slowdown * ref.ms:
        raise LadartsError(f"{platform}: the reference takes {session_ms:.2f} ms in this session, "
                           f"{session_ms / ref.ms:.2f}x the platform's {ref.ms:.2f} ms over {ref.sessions} "
                           f"session(s), beyond --max-slowdown {max_slowdown:g}: this machine is slower or busier "
                           f"than the one that measured it; measure when it is quiet")


class DeviceTimer:
    """What runs on the measuring device, with no database: the loaded reference, its calibration, the
    interleaved timer and the drift re-timings. One instance is one measuring session."""

    def __init__(self, platform: Platform, config: MeasureConfig | None = None):
        configure_threads(platform)
        self.platform = platform
        self.config = config or MeasureConfig()
        self.key = platform.key
        self.fingerprint = platform.fingerprint()
        self.session = new_session()
        self.ref = load(ZOO[REFERENCE], platform)
        self._drift_refs: dict[str, Loaded] = {REFERENCE: self.ref}

    def calibrate(self) -> dict[str, Any]:
        """The reference timed alone: this session's contribution to the platform's scale."""
        samples = time_alone(self.ref.forward, self.ref.sync, self.config.calibration, warmup=3)
        return {**stats_ms(samples), "ref_name": REFERENCE, "kind": "calibration", "created": time.time()}

    def time_genotype(self, genotype: Genotype, ref_ms: float) -> dict[str, Any]:
        loaded = load(genotype, self.platform)
        timing = time_interleaved(loaded.forward, self.ref.forward, loaded.sync, self.config.pairs,
                                  self.config.warmup, ref_ms)
        return {**timing.to_dict(), "build_s": loaded.build_s, "export_s": loaded.export_s}

    def drift_timings(self, run: str, after_records: int) -> list[dict[str, Any]]:
        out = []
        for name in DRIFT_REFERENCES:
            if name not in self._drift_refs:
                self._drift_refs[name] = load(ZOO[name], self.platform)
            ref = self._drift_refs[name]
            samples = time_alone(ref.forward, ref.sync, self.config.drift_repeats, warmup=1)
            out.append({**stats_ms(samples), "ref_name": name, "kind": "drift", "run": run,
                        "after_records": after_records, "created": time.time()})
        return out


class Measurer:
    """Times architectures on one platform into a store: one session, calibrated when it starts."""

    def __init__(self, store: LatencyStore, platform: Platform, config: MeasureConfig | None = None):
        self.store = store
        self.timer = DeviceTimer(platform, config)
        self.platform, self.config, self.key = platform, self.timer.config, self.timer.key
        self.fingerprint, self.session, self.ref = self.timer.fingerprint, self.timer.session, self.timer.ref
        calibration = self.timer.calibrate()
        check_speed(store, self.key, calibration["median_ms"], self.config.max_slowdown)
        # The platform is registered together with its first calibration: a failure before here leaves nothing.
        store.add_calibration(self.key, platform.settings(), self.fingerprint, REFERENCE, self.session, calibration,
                              calibration["created"])
        self.session_ref_ms: float = calibration["median_ms"]
        self.ref_ms: float = store.reference(self.key).ms  # type: ignore[union-attr]  # the platform's one scale

    def time_genotype(self, genotype: Genotype) -> dict[str, Any]:
        """Timing dict of one architecture; its ``latency_ms`` is on the platform's scale."""
        return self.timer.time_genotype(genotype, self.ref_ms)

    def run(
        self,
        items: Iterable[tuple[int | None, Genotype]],
        run: str = "main",
        progress: bool = True,
        on_record: Callable[[CampaignResult], None] | None = None,
    ) -> CampaignResult:
        """Time and store every (seq, genotype) not yet in ``run``, streaming ``items``; one transaction per
        record (with the drift re-timings taken after it)."""
        check_stream(self.store, self.key, run, items, self.config.metric)
        done = self.store.done_hashes(self.key, self.config.metric, run)
        before = len(done)
        result = CampaignResult(platform=self.key, run=run)
        bar = progress_bar(len(items) if isinstance(items, Sequence) else None, progress)
        t0 = time.perf_counter()
        try:
            for seq, genotype in items:
                h = arch_hash(genotype)
                if h in done:
                    result.skipped += 1
                    if bar is not None:
                        bar.update(1)
                    continue
                done.add(h)
                stats = self.time_genotype(genotype)
                count = before + result.measured + 1
                drift = self.timer.drift_timings(run, count) if count % self.config.drift_every == 0 else []
                if self.store.add_measurement(genotype, self.key, self.config.metric, run, seq, stats,
                                              self.fingerprint, session=self.session, ref_timings=drift):
                    result.measured += 1
                result.add(stats)
                result.last_ms = stats["latency_ms"]
                result.wall_s = time.perf_counter() - t0
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"{result.archs_per_hour:.0f} archs/h, last {result.last_ms:.2f} ms")
                if on_record:
                    on_record(result)
        finally:
            result.wall_s = time.perf_counter() - t0
            if bar is not None:
                bar.close()
        return result


def progress_bar(total: int | None, enabled: bool, desc: str = "measure"):
    """A bar on a terminal; in a log file a line every 5% of the campaign (at least every 100 records)."""
    from ladarts import runs

    if total == 0:
        return None
    every = max(1, min(100, (total or 2000) // 20))
    return runs.progress_bar(total or 0, desc, enabled, unit="arch", every=every)


def retime_items(store: LatencyStore, platform: str, source_run: str,
                 metric: str = "latency") -> list[tuple[int | None, Genotype]]:
    """The architectures of an existing run, in its order, to re-time as a new independent run."""
    items = [(r.seq, r.genotype) for r in store.iter_records(platform, metric, source_run)]
    if not items:
        raise UserInputError(f"run {source_run!r} of platform {platform} has no records to re-time")
    return items


def measure_genotypes(genotypes: list[Genotype], platform: Platform, pairs: int = 20,
                      db: str | Path | None = None, ref_ms: float | None = None) -> list[dict[str, Any]]:
    """Time each genotype on ``platform`` with the campaign timer (interleaved with the reference).

    With ``ref_ms`` (an LPM's platform scale, say) ``latency_ms`` is ratio × ``ref_ms`` and nothing is written;
    with ``db`` the session's calibration joins the platform's reference timings there and ``latency_ms`` is on
    that platform's one scale, the same as its records'; otherwise a throw-away database calibrates afresh.
    """
    if ref_ms is not None:
        timer = DeviceTimer(platform, MeasureConfig(pairs=pairs))
        return [timer.time_genotype(g, ref_ms) for g in genotypes]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(db) if db else Path(tmp) / "report.db"
        with LatencyStore.open_or_create(path) as store:
            measurer = Measurer(store, platform, MeasureConfig(pairs=pairs))
            return [measurer.time_genotype(g) for g in genotypes]
