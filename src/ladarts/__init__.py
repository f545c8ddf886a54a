"""ladarts: hardware-aware differentiable neural architecture search (Latency-Aware DARTS)."""

__version__ = "0.1.0"
