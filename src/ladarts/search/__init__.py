"""Latency-aware differentiable search (LA-DARTS / LA-PC-DARTS): the bilevel loop, latency objectives, sweeps.

Python API::

    from ladarts.predict import LPM
    from ladarts.search import SearchConfig, run_search, TableCost
    result = run_search(SearchConfig(out="run", dataset="digits", epochs=10, lam=0.3), cost=LPM.load("my-lpm"))
    result.genotype, result.final["lat_derived_ms"], result.final["val_acc"]

``cost`` is any :class:`Cost`: a differentiable ``cost(encoding) -> ms`` with ``meta`` and ``describe()`` (an LPM,
a :class:`TableCost`, a model of energy or memory...). Without one the search is plain DARTS / PC-DARTS.
"""

from ladarts.runs import NonFiniteLoss, load_checkpoint
from ladarts.search.architect import Architect, weight_step
from ladarts.search.loop import METHOD_DEFAULTS, SearchConfig, SearchResult, lr_at, run_search
from ladarts.search.objectives import (
    DEFAULT_SOFT_MODE,
    Cost,
    LatencyObjective,
    TableCost,
    check_objective,
    cost_scale_ms,
    genotype_latency,
)

__all__ = [
    "Architect", "Cost", "DEFAULT_SOFT_MODE", "LatencyObjective", "METHOD_DEFAULTS", "NonFiniteLoss", "SearchConfig",
    "SearchResult", "TableCost", "check_objective", "cost_scale_ms", "genotype_latency", "load_checkpoint", "lr_at",
    "run_search", "weight_step",
]
