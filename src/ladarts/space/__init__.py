"""The DARTS search space: primitives, genotypes, the zoo, sampling, the encoding and the discrete networks."""

from ladarts.space.encoding import (
    EDGES,
    ENCODING_SHAPE,
    ENCODING_VERSION,
    arch_hash,
    canonical,
    check_encodable,
    decode,
    encode,
    encode_many,
    is_encodable,
)
from ladarts.space.genotype import Genotype, parse_darts_text
from ladarts.space.networks import (
    PRESETS,
    Network,
    NetworkConfig,
    build_network,
    count_macs,
    count_params,
    network_config,
)
from ladarts.space.primitives import EXTRA_PRIMITIVES, OPS, PRIMITIVES
from ladarts.space.sampling import iter_genotypes, neighbours, sample_genotype, sample_genotypes
from ladarts.space.zoo import ZOO, parse_genotype_text, resolve_genotype

__all__ = [
    "EDGES", "ENCODING_SHAPE", "ENCODING_VERSION", "EXTRA_PRIMITIVES", "Genotype", "Network", "NetworkConfig",
    "OPS", "PRESETS", "PRIMITIVES", "ZOO", "arch_hash", "build_network", "canonical", "check_encodable",
    "count_macs", "count_params", "decode", "encode", "encode_many", "is_encodable", "iter_genotypes",
    "neighbours", "network_config", "parse_darts_text", "parse_genotype_text", "resolve_genotype", "sample_genotype",
    "sample_genotypes",
]
