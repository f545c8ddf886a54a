from collections import Counter
from itertools import combinations

import pytest
import torch
from scipy.stats import chisquare

from ladarts.errors import UserInputError
from ladarts.space import (
    EDGES, ENCODING_SHAPE, PRIMITIVES, ZOO, arch_hash, canonical, decode, encode, is_encodable, sample_genotypes,
)
from ladarts.space.sampling import EDGE_CHOICES

N = 10_000


@pytest.fixture(scope="module")
def sampled():
    return sample_genotypes(N, seed=123)


def test_sampling_is_seeded():
    assert sample_genotypes(5, 1) == sample_genotypes(5, 1)
    assert sample_genotypes(5, 1) != sample_genotypes(5, 2)
    assert sample_genotypes(10, 7)[:5] == sample_genotypes(5, 7)  # the i-th architecture of a seed never changes


def test_sampled_genotypes_are_valid_and_round_trip(sampled):
    for g in sampled:
        assert is_encodable(g)
        enc = encode(g)
        assert enc.shape == ENCODING_SHAPE
        assert torch.allclose(enc.sum(-1), torch.ones(2, 14))
        assert ((enc == 0) | (enc == 1)).all()
        assert (enc[..., 0] == 1).sum() == 2 * (14 - 8)  # 6 unused edges per cell carry 'none'
        assert decode(enc) == canonical(g) == g  # sampling already emits the canonical order


def test_primitive_and_input_frequencies_are_uniform(sampled):
    """Chi-square goodness of fit at the 0.1% level (a fixed seed, so this is deterministic)."""
    ops = Counter(op for g in sampled for op, _ in g.normal + g.reduce)
    assert set(ops) == set(EDGE_CHOICES) and "none" not in ops
    assert chisquare([ops[p] for p in EDGE_CHOICES]).pvalue > 1e-3
    for k, node in enumerate(range(2, 6)):
        pairs = Counter(
            (cell[2 * k][1], cell[2 * k + 1][1]) for g in sampled for cell in (g.normal, g.reduce)
        )
        expected_pairs = list(combinations(range(node), 2))
        assert set(pairs) == set(expected_pairs)
        if len(expected_pairs) > 1:
            assert chisquare([pairs[p] for p in expected_pairs]).pvalue > 1e-3
    # ops on edges are independent of the input they read
    by_input = Counter((op, i) for g in sampled for op, i in g.normal[6:8])
    assert chisquare([by_input[(op, 4)] for op in EDGE_CHOICES]).pvalue > 1e-3


def test_decode_gives_canonical_order_and_encoding_ignores_it():
    g = ZOO["DARTS_V2"]
    assert decode(encode(g)) == canonical(g)
    assert decode(encode(g)) != g  # DARTS_V2 lists node 4 as (sep3, 1), (skip, 0)
    assert arch_hash(g) == arch_hash(canonical(g))
    assert arch_hash(g) != arch_hash(ZOO["DARTS_V1"])


def test_edges_follow_the_alpha_order():
    assert EDGES[:5] == ((2, 0), (2, 1), (3, 0), (3, 1), (3, 2)) and EDGES[-1] == (5, 4) and len(EDGES) == 14
    assert PRIMITIVES[0] == "none" and len(PRIMITIVES) == 8


def test_unencodable_genotypes_are_refused_with_a_reason():
    for name in ("NASNet", "AmoebaNet"):
        with pytest.raises(UserInputError, match="not encodable"):
            encode(ZOO[name])
    d = ZOO["DARTS_V2"].to_dict()
    d["normal"][1] = ["sep_conv_3x3", 0]  # node 2 reads input 0 twice
    from ladarts.space import Genotype

    with pytest.raises(UserInputError, match="twice"):
        encode(Genotype.from_dict(d))
    for name in ("DARTS_V1", "DARTS_V2", "PC_DARTS_cifar", "PC_DARTS_image"):
        assert is_encodable(ZOO[name])


def test_decode_refuses_a_malformed_encoding():
    enc = encode(ZOO["DARTS_V2"])
    enc[0, 0] = torch.nn.functional.one_hot(torch.tensor(0), 8).float()  # node 2 now has one used edge
    with pytest.raises(UserInputError, match="used edges"):
        decode(enc)
    with pytest.raises(UserInputError, match="shape"):
        decode(torch.zeros(2, 14, 7))


def test_the_uniform_stream_is_the_one_existing_databases_were_measured_on():
    # the first architecture of seed 0, as measured into benchmarks/data/latency_cpu.db since the first campaign
    assert arch_hash(sample_genotypes(1, 0)[0]) == arch_hash(sample_genotypes(1, 0, sampler="uniform")[0])
    assert sample_genotypes(3, 0)[0].normal[:2] == (("max_pool_3x3", 0), ("skip_connect", 1))


def test_the_stratified_sampler_covers_every_parameter_free_count():
    from ladarts.space.sampling import PARAMETER_FREE, WITH_PARAMETERS, parameter_free_count

    gens = sample_genotypes(4500, seed=5, sampler="stratified")
    for kind in ("normal", "reduce"):
        counts = Counter(parameter_free_count(getattr(g, kind)) for g in gens)
        assert sorted(counts) == list(range(9))
        assert chisquare([counts[k] for k in range(9)]).pvalue > 1e-3  # uniform over 0..8
    for g in gens[:500]:
        assert is_encodable(g) and decode(encode(g)) == canonical(g)
    free_ops = Counter(op for g in gens for op, _ in g.normal if op in PARAMETER_FREE)
    conv_ops = Counter(op for g in gens for op, _ in g.normal if op in WITH_PARAMETERS)
    assert chisquare(list(free_ops.values())).pvalue > 1e-3 and chisquare(list(conv_ops.values())).pvalue > 1e-3
    assert sample_genotypes(5, 1, "stratified") == sample_genotypes(5, 1, "stratified")
    with pytest.raises(UserInputError, match="unknown sampler"):
        sample_genotypes(1, 0, sampler="sobol")
