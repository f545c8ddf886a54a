"""Hardware: platforms, runtimes, the timer, the SQLite latency store and measurement campaigns."""

from ladarts.hardware.campaign import (
    MeasureConfig,
    Measurer,
    campaign_items,
    measure_genotypes,
    parse_shard,
    retime_items,
)
from ladarts.hardware.noise import agreement, compare_runs
from ladarts.hardware.platform import Platform
from ladarts.hardware.store import LatencyStore, Record, integrity_ok

__all__ = [
    "LatencyStore", "MeasureConfig", "Measurer", "Platform", "Record", "agreement", "campaign_items",
    "compare_runs", "integrity_ok", "measure_genotypes", "parse_shard", "retime_items",
]
