"""Every invariant ``space/soft.py`` states, over α from near-uniform to near-one-hot (scales 1 to 1e4)."""

import itertools

import pytest
import torch

from ladarts.space.primitives import PRIMITIVES
from ladarts.space.soft import NODE_SLICES, derive, derived_encoding, edge_strength, keep_probability, soft_encoding

NONE = PRIMITIVES.index("none")
SCALES = (1.0, 10.0, 100.0, 1e4)


def exact_keep(strength: torch.Tensor, tau: float) -> torch.Tensor:
    """Plackett–Luce P(edge among the first two draws), by enumerating the ordered pairs, in float64."""
    out = []
    for sl in NODE_SLICES:
        w = torch.softmax(strength[sl].double() / tau, dim=-1)
        n = len(w)
        p = torch.zeros(n, dtype=torch.float64)
        for a, b in itertools.permutations(range(n), 2):
            pr = w[a] * w[b] / w[[k for k in range(n) if k != a]].sum()
            p[a] += pr
            p[b] += pr
        out.append(p)
    return torch.cat(out)


def alphas(scale: float, seed: int, none_bias: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = scale * torch.randn(14, 8, generator=g)
    a[:, NONE] += none_bias * scale
    return a


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("seed", range(6))
def test_keep_probability_invariants(scale, seed):
    a = alphas(scale, seed, none_bias=0.5 if seed % 2 else 0.0)
    tau = 0.05
    keep = keep_probability(a, tau=tau)
    assert torch.isfinite(keep).all()
    assert (keep >= 0).all() and (keep <= 1 + 1e-6).all()
    for sl in NODE_SLICES:  # exactly two derived edges per node, in expectation
        assert float(keep[sl].sum()) == pytest.approx(2.0, abs=1e-5)
    assert torch.allclose(keep.double(), exact_keep(edge_strength(a), tau), atol=1e-5)


@pytest.mark.parametrize("scale", SCALES)
def test_a_dominant_edge_keeps_the_exact_second_edge_probability(scale):
    """One edge with almost all of its node's weight: the other edges share exactly one keep between them."""
    a = torch.zeros(14, 8)
    a[:, NONE] = 0.0
    a[0:2, 1:] = 0.0
    a[2, 4] = scale  # node 3's edge 2 dominates
    a[3, 4] = 0.5 * scale
    keep = keep_probability(a)
    node3 = keep[NODE_SLICES[1]]
    assert float(node3.sum()) == pytest.approx(2.0, abs=1e-5)
    assert torch.allclose(node3.double(), exact_keep(edge_strength(a), 0.05)[NODE_SLICES[1]], atol=1e-5)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("seed", range(4))
def test_derived_encoding_rows(scale, seed):
    a = alphas(scale, seed, none_bias=0.3).requires_grad_(True)
    b = (scale * torch.randn(14, generator=torch.Generator().manual_seed(seed + 99))).requires_grad_(True)
    enc = derived_encoding(a, b)
    keep = keep_probability(a, b)
    assert torch.allclose(enc.sum(-1), torch.ones(14), atol=1e-5)  # every row sums to 1
    assert torch.allclose(enc[:, NONE], 1 - keep, atol=1e-6)  # 'none' is exactly the chance of not being derived
    assert (enc >= -1e-6).all()  # float32: one ulp
    enc[:, 4].sum().backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()


@pytest.mark.parametrize("scale", SCALES)
def test_straight_through_is_the_derived_one_hot(scale):
    an, ar = alphas(scale, 1), alphas(scale, 2)
    from ladarts.space.encoding import encode

    st = soft_encoding(an, ar, mode="straight-through")
    assert torch.allclose(st.detach(), encode(derive(an, ar)), atol=1e-6)
