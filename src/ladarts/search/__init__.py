"""Latency-aware differentiable search (LA-DARTS / LA-PC-DARTS): the bilevel loop, latency objectives, sweeps.

Python API::

    from ladarts.search import SearchConfig, run_search, TableCost
    result = run_search(SearchConfig(out="run", dataset="digits", epochs=10, lam=0.3, lpm="my-lpm"))
    result.genotype, result.final["lat_derived_ms"], result.final["val_acc"]

``run_search(config, cost=...)`` takes any differentiable ``cost(encoding) -> ms`` instead of ``config.lpm``.
"""

from ladarts.search.architect import Architect, NonFiniteLoss, weight_step
from ladarts.search.loop import (
    METHOD_DEFAULTS,
    SearchConfig,
    SearchResult,
    load_checkpoint,
    load_cost,
    lr_at,
    run_search,
)
from ladarts.search.objectives import DEFAULT_SOFT_MODE, LatencyObjective, TableCost, cost_scale_ms, genotype_latency

__all__ = [
    "Architect", "DEFAULT_SOFT_MODE", "LatencyObjective", "METHOD_DEFAULTS", "NonFiniteLoss", "SearchConfig",
    "SearchResult", "TableCost", "cost_scale_ms", "genotype_latency", "load_checkpoint", "load_cost", "lr_at",
    "run_search", "weight_step",
]
