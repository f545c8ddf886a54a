"""The record type the latency store returns: light on purpose (no SQLite, no PyTorch), so the predictors can
take records without depending on the store or the measuring stack."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ladarts.space.genotype import Genotype

RECORD_FIELDS = (
    "arch_hash", "platform", "metric", "run", "seq", "latency_ms", "ratio", "median_ms", "min_ms", "iqr_ms",
    "mean_ms", "ref_median_ms", "repeats", "created",
)


@dataclass(frozen=True)
class Record:
    """One measured architecture on one platform and run. ``latency_ms`` is ``ratio`` × the platform's reference
    latency when it was read from a store (:meth:`ladarts.hardware.store.LatencyStore.records`)."""

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
