"""A genotype's vital statistics on a network: what `ladarts info` prints."""

from __future__ import annotations

from typing import Any

from ladarts.space.encoding import arch_hash, is_encodable
from ladarts.space.genotype import Genotype
from ladarts.space.networks import NetworkConfig, build_network, count_macs, count_params


def describe(genotype: Genotype, config: NetworkConfig, name: str = "custom") -> dict[str, Any]:
    """Params (millions, without the auxiliary head), MACs (millions, batch 1), encodability and the genotype."""
    net = build_network(genotype, config)
    encodable = is_encodable(genotype)
    return {
        "name": name,
        "params": count_params(net),
        "params_m": count_params(net) / 1e6,
        "macs_m": count_macs(net) / 1e6,
        "network": config.to_dict(),
        "encodable": encodable,
        "arch_hash": arch_hash(genotype) if encodable else None,
        "genotype": genotype.to_dict(),
        "darts_text": genotype.to_darts_text(),
    }
