import pytest
import torch

from ladarts.space.primitives import PRIMITIVES
from ladarts.space.supernet import MixedOp, Supernet, channel_shuffle

NONE = PRIMITIVES.index("none")


def reference_parse(weights: torch.Tensor, weights2: torch.Tensor | None) -> list[tuple[str, int]]:
    """The reference _parse (DARTS; PC-DARTS multiplies each edge row by its β weight first), transcribed."""
    gene, start, n = [], 0, 2
    for i in range(4):
        end = start + n
        W = weights[start:end].clone()
        if weights2 is not None:
            W = W * weights2[start:end].unsqueeze(1)
        edges = sorted(range(i + 2), key=lambda x: -max(W[x][k] for k in range(len(W[x])) if k != NONE))[:2]
        for j in edges:
            k_best = None
            for k in range(len(W[j])):
                if k != NONE and (k_best is None or W[j][k] > W[j][k_best]):
                    k_best = k
            gene.append((PRIMITIVES[k_best], j))
        start, n = end, n + 1
    return gene


def reference_betas(betas: torch.Tensor) -> torch.Tensor:
    n, start, parts = 3, 2, [torch.softmax(betas[0:2], -1)]
    for _ in range(3):
        parts.append(torch.softmax(betas[start:start + n], -1))
        start, n = start + n, n + 1
    return torch.cat(parts)


def _canon(pairs):
    return [tuple(p) for k in range(4) for p in sorted(pairs[2 * k:2 * k + 2], key=lambda p: p[1])]


@pytest.mark.parametrize("method", ["darts", "pc-darts"])
def test_genotype_matches_the_reference_derivation(method):
    torch.manual_seed(0)
    net = Supernet(4, 3, 3, 3, method=method)
    for trial in range(30):
        with torch.no_grad():
            for p in net.arch_parameters():
                p.copy_(torch.randn_like(p) * 2)
        g = net.genotype()
        for alphas, betas, cell in ((net.alphas_normal, net.betas_normal, g.normal),
                                    (net.alphas_reduce, net.betas_reduce, g.reduce)):
            w2 = reference_betas(betas.detach()) if betas is not None else None
            ref = reference_parse(torch.softmax(alphas.detach(), -1), w2)
            assert _canon(ref) == list(cell)


def test_betas_change_the_derived_edges():
    torch.manual_seed(1)
    net = Supernet(4, 3, 3, 3, method="pc-darts")
    with torch.no_grad():
        net.alphas_normal.zero_()
        net.alphas_normal[:, PRIMITIVES.index("sep_conv_3x3")] = 1.0
        net.betas_normal.zero_()
        net.betas_normal[9:14] = torch.tensor([0.0, 0.0, 0.0, 5.0, 5.0])  # node 5 prefers inputs 3 and 4
    assert [i for _, i in net.genotype().normal[6:]] == [3, 4]
    with torch.no_grad():
        net.betas_normal[9:14] = torch.tensor([5.0, 5.0, 0.0, 0.0, 0.0])
    assert [i for _, i in net.genotype().normal[6:]] == [0, 1]


def test_reference_search_network_structure():
    net = Supernet()  # C=16, 8 cells, DARTS
    assert [i for i, c in enumerate(net.cells) if c.reduction] == [2, 5]
    assert net.stem[0].out_channels == 48
    assert net.classifier.in_features == 4 * 64
    assert net.alphas_normal.shape == (14, 8) and net.betas_normal is None
    assert len(net.cells[0]._ops) == 14 and all(len(m._ops) == 8 for m in net.cells[0]._ops)
    # every op is non-affine, as in the reference search model
    assert all(not m.affine for m in net.cells.modules() if isinstance(m, torch.nn.BatchNorm2d))
    ids = {id(p) for p in net.arch_parameters()}
    assert not any(id(p) in ids for p in net.weight_parameters())
    assert len(net.weight_parameters()) + len(net.arch_parameters()) == len(list(net.parameters()))


def test_mixed_op_skipping_none_is_exact():
    torch.manual_seed(0)
    for stride in (1, 2):
        op = MixedOp(8, stride)
        x = torch.randn(2, 8, 8, 8)
        w = torch.softmax(torch.randn(8), -1)
        explicit = sum(wi * o(x) for wi, o in zip(w, op._ops))
        assert torch.allclose(op(x, w), explicit, atol=1e-6)


def test_pc_darts_partial_channels_and_shuffle():
    torch.manual_seed(0)
    c, k = 16, 4
    for stride in (1, 2):
        op = MixedOp(c, stride, partial_channels=k)
        convs = [m for m in op.modules() if isinstance(m, torch.nn.Conv2d)]
        # (FactorizedReduce splits its C/K output channels over two 1×1 convs)
        assert all(m.in_channels == c // k and m.out_channels in (c // k, c // k // 2) for m in convs)
        x = torch.randn(2, c, 8, 8)
        w = torch.softmax(torch.randn(8), -1)
        out = op(x, w)
        assert out.shape == (2, c, 8 // stride, 8 // stride)
        # undo the shuffle: the first C/K channels are the MixedOp, the rest bypass it (max-pooled when strided)
        unshuffled = channel_shuffle(out, c // k)
        rest = x[:, c // k:] if stride == 1 else torch.nn.functional.max_pool2d(x[:, c // k:], 2, 2)
        assert torch.equal(unshuffled[:, c // k:], rest)
        assert torch.allclose(unshuffled[:, : c // k], op._mix(x[:, : c // k], w))
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert channel_shuffle(x, 4).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


def test_pc_darts_supernet_forward_and_betas():
    torch.manual_seed(0)
    net = Supernet(8, 5, 5, 1, method="pc-darts")
    assert net.betas_reduce.shape == (14,)
    y = net(torch.randn(2, 1, 16, 16))
    assert y.shape == (2, 5)
    g = torch.autograd.grad(y.sum(), net.arch_parameters())
    assert all(gi.abs().sum() > 0 for gi in g)
    with pytest.raises(ValueError, match="divide"):
        MixedOp(6, 1, partial_channels=4)


@pytest.mark.parametrize("k,padding,dilation,stride", [(3, 1, 1, 1), (5, 2, 1, 1), (3, 2, 2, 1), (5, 4, 2, 1),
                                                         (3, 1, 1, 2)])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.trace, which the ONNX export still uses
def test_depthwise_conv_gradients_equal_the_plain_conv(k, padding, dilation, stride, channels_last):
    import torch.nn.functional as F

    from ladarts.space.primitives import DepthwiseConv2d

    torch.manual_seed(0)
    conv = DepthwiseConv2d(6, k, stride, padding, dilation).double()
    assert list(conv.state_dict()) == ["weight"] and conv.weight.shape == (6, 1, k, k)
    x = torch.randn(2, 6, 11, 11, dtype=torch.double)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    y = conv(x)
    assert (type(y.grad_fn).__name__ == "_SameDepthwiseBackward") == (stride == 1)
    g = torch.randn_like(y)
    expect = F.conv2d(x, conv.weight, None, stride, padding, dilation, 6)
    torch.testing.assert_close(y, expect)
    for got, want in zip(torch.autograd.grad(y, (x, conv.weight), g),
                         torch.autograd.grad(expect, (x, conv.weight), g)):
        torch.testing.assert_close(got, want)
    want_x = torch.autograd.grad(F.conv2d(x, conv.weight, None, stride, padding, dilation, 6), x, g)[0]
    conv.weight.requires_grad_(False)  # the α step: input gradient only
    (gx,) = torch.autograd.grad(conv(x), x, g)
    torch.testing.assert_close(gx, want_x)
    with torch.no_grad():  # inference and export take the plain conv
        assert conv(x).grad_fn is None
    traced = torch.jit.trace(conv, x.detach())
    assert "_SameDepthwise" not in str(traced.graph)


def test_channels_last_supernet_matches_the_default_layout():
    torch.manual_seed(0)
    a = Supernet(8, 10, 5, 3, channels_last=True)
    b = Supernet(8, 10, 5, 3, channels_last=False)
    b.load_state_dict(a.state_dict())
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    grads = []
    for net in (a, b):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        grads.append(torch.autograd.grad(loss, [*net.arch_parameters(), *net.weight_parameters()]))
    for ga, gb in zip(*grads):
        torch.testing.assert_close(ga, gb, atol=1e-5, rtol=1e-4)
