"""The measurement campaign: sample, build, time and store architectures, resumably.

Rerunning the same command continues where it stopped: the i-th architecture of a seed never changes, and
records already in the run are skipped. ``--shard i/n`` takes every n-th architecture, for several identical
devices whose databases are merged afterwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ladarts.errors import UserInputError
from ladarts.hardware.platform import Platform
from ladarts.hardware.runtimes import Loaded, configure_threads, load
from ladarts.hardware.store import LatencyStore
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
    calibration: int = 40  # reference forwards that fix the platform's reference latency, once per platform
    drift_every: int = 50  # re-time the drift references after this many records
    drift_repeats: int = 10
    metric: str = "latency"

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
    latencies: list[float] = field(default_factory=list)

    @property
    def archs_per_hour(self) -> float:
        return 3600.0 * self.measured / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def timed_share(self) -> float:
        return self.timed_s / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "latencies"}
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


def campaign_items(n: int, seed: int, shard: tuple[int, int] = (0, 1)) -> list[tuple[int, Genotype]]:
    """(seq, genotype) of the first ``n`` architectures of ``seed`` that fall in ``shard``."""
    stream = iter_genotypes(seed)
    items = [(seq, next(stream)) for seq in range(n)]
    i, k = shard
    return [(seq, g) for seq, g in items if seq % k == i]


class Measurer:
    """Holds the loaded reference and times architectures against it on one platform."""

    def __init__(self, store: LatencyStore, platform: Platform, config: MeasureConfig | None = None):
        self.store = store
        self.platform = platform
        self.config = config or MeasureConfig()
        configure_threads(platform)
        self.key = platform.key
        row = store.register_platform(platform)
        self.fingerprint = platform.fingerprint()
        self.ref = load(ZOO[REFERENCE], platform)
        self.drift_refs: dict[str, Loaded] = {REFERENCE: self.ref}
        ref_ms = row.get("ref_ms")
        if ref_ms is None:
            samples = time_alone(self.ref.forward, self.ref.sync, self.config.calibration, warmup=3)
            ref_ms = stats_ms(samples)["median_ms"]
            store.set_calibration(self.key, REFERENCE, ref_ms)
            ref_ms = store.platform_row(self.key)["ref_ms"]  # another shard may have calibrated first
        self.ref_ms: float = ref_ms

    def time_genotype(self, genotype: Genotype) -> dict[str, Any]:
        loaded = load(genotype, self.platform)
        timing = time_interleaved(loaded.forward, self.ref.forward, loaded.sync, self.config.pairs,
                                  self.config.warmup, self.ref_ms)
        return {**timing.to_dict(), "build_s": loaded.build_s, "export_s": loaded.export_s}

    def record_drift(self, run: str, after_records: int) -> None:
        for name in DRIFT_REFERENCES:
            if name not in self.drift_refs:
                self.drift_refs[name] = load(ZOO[name], self.platform)
            ref = self.drift_refs[name]
            samples = time_alone(ref.forward, ref.sync, self.config.drift_repeats, warmup=1)
            self.store.add_drift(self.key, run, name, after_records, stats_ms(samples))

    def run(
        self,
        items: Iterable[tuple[int | None, Genotype]],
        run: str = "main",
        progress: bool = True,
        on_record: Callable[[CampaignResult], None] | None = None,
    ) -> CampaignResult:
        """Time and store every (seq, genotype) not yet in ``run``; one transaction per record."""
        done = self.store.done_hashes(self.key, self.config.metric, run)
        todo, seen = [], set(done)
        for seq, g in items:
            h = arch_hash(g)
            if h not in seen:
                todo.append((seq, g))
                seen.add(h)
        result = CampaignResult(platform=self.key, run=run, skipped=len(done))
        bar = _progress(len(todo), progress)
        t0 = time.perf_counter()
        try:
            for seq, genotype in todo:
                stats = self.time_genotype(genotype)
                if self.store.add_measurement(genotype, self.key, self.config.metric, run, seq, stats,
                                              self.fingerprint):
                    result.measured += 1
                result.timed_s += stats["timed_s"]
                result.build_s += stats["build_s"]
                result.export_s += stats["export_s"]
                result.last_ms = stats["latency_ms"]
                result.latencies.append(stats["latency_ms"])
                result.wall_s = time.perf_counter() - t0
                if (len(done) + result.measured) % self.config.drift_every == 0:
                    self.record_drift(run, len(done) + result.measured)
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


def _progress(total: int, enabled: bool):
    if not enabled or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="arch", dynamic_ncols=True)


def retime_items(store: LatencyStore, platform: str, source_run: str, metric: str = "latency"):
    """The architectures of an existing run, in its order, to re-time as a new independent run."""
    records = store.records(platform, metric, source_run)
    if not records:
        raise UserInputError(f"run {source_run!r} of platform {platform} has no records to re-time")
    return [(r.seq, r.genotype) for r in records]
