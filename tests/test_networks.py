"""The networks match the DARTS reference code: published parameter counts and op structure."""

import pytest
import torch
from torch import nn

from ladarts.errors import UserInputError
from ladarts.space import ZOO, build_network, count_params, network_config
from ladarts.space.networks import reduction_indices
from ladarts.space.primitives import OPS, FactorizedReduce, build_op


# ---- an independent count from the reference op definitions (operations.py / model.py of the DARTS repo) ----
def _ref_op_params(op: str, c: int, stride: int) -> int:
    bn = 2 * c
    if op in ("none", "max_pool_3x3", "avg_pool_3x3"):
        return 0
    if op == "skip_connect":
        return 0 if stride == 1 else c * c + bn  # FactorizedReduce: two C×C/2 1×1 convs + BN
    if op.startswith("sep_conv_"):
        k = int(op[-1])
        return 2 * (c * k * k + c * c + bn)
    if op.startswith("dil_conv_"):
        k = int(op[-1])
        return c * k * k + c * c + bn
    if op == "conv_7x1_1x7":
        return 2 * 7 * c * c + bn
    raise KeyError(op)


def _ref_count(genotype, preset: str, c: int, layers: int, classes: int) -> int:
    total = 0
    if preset == "cifar":
        total += 3 * 3 * c * 9 + 2 * 3 * c
        cpp, cp, cc = 3 * c, 3 * c, c
    else:
        h = c // 2
        total += 3 * h * 9 + 2 * h + h * c * 9 + 2 * c + c * c * 9 + 2 * c
        cpp, cp, cc = c, c, c
    for i in range(layers):
        red = i in (layers // 3, 2 * layers // 3)
        if red:
            cc *= 2
        # preprocess0 (a 1×1 ReLUConvBN, or FactorizedReduce after a reduction: the same count) and preprocess1
        total += cpp * cc + 2 * cc + cp * cc + 2 * cc
        pairs, concat = genotype.cell(red)
        total += sum(_ref_op_params(op, cc, 2 if red and idx < 2 else 1) for op, idx in pairs)
        cpp, cp = cp, len(concat) * cc
    return total + cp * classes + classes


# Counts printed by the reference code (params excluding the auxiliary head).
PUBLISHED = {
    ("DARTS_V2", "cifar"): 3_349_342,  # DARTS repo train.py log: "param size = 3.349342MB"
    ("DARTS_V2", "imagenet"): 4_718_752,  # DARTS repo train_imagenet.py log: "param size = 4.718752MB"
}

# Pinned from the analytic reference count above (itself checked against the two published figures).
PINNED = {
    ("DARTS_V1", "cifar"): 3_169_414, ("DARTS_V1", "imagenet"): 4_510_432,
    ("DARTS_V2", "cifar"): 3_349_342, ("DARTS_V2", "imagenet"): 4_718_752,
    ("PC_DARTS_cifar", "cifar"): 3_634_678, ("PC_DARTS_cifar", "imagenet"): 5_270_560,
    ("PC_DARTS_image", "cifar"): 3_721_510, ("PC_DARTS_image", "imagenet"): 5_342_464,
    ("NASNet", "cifar"): 3_830_950, ("NASNet", "imagenet"): 5_564_320,
    ("AmoebaNet", "cifar"): 3_145_078, ("AmoebaNet", "imagenet"): 4_627_360,
}


def test_darts_v2_cifar_has_the_published_parameter_count():
    net = build_network(ZOO["DARTS_V2"], network_config("cifar", auxiliary=True))
    assert count_params(net) == 3_349_342


@pytest.mark.parametrize("name,preset", sorted(PINNED))
def test_every_zoo_genotype_matches_the_reference_count(name, preset):
    cfg = network_config(preset)
    net = build_network(ZOO[name], cfg)
    ref = _ref_count(ZOO[name], preset, cfg.channels, cfg.cells, cfg.classes)
    assert count_params(net) == ref == PINNED[(name, preset)]
    if (name, preset) in PUBLISHED:
        assert ref == PUBLISHED[(name, preset)]


def test_aux_head_is_excluded_from_the_count_but_present():
    plain = build_network(ZOO["DARTS_V2"])
    aux = build_network(ZOO["DARTS_V2"], auxiliary=True)
    assert count_params(plain) == count_params(aux)
    assert sum(p.numel() for p in aux.parameters()) > sum(p.numel() for p in plain.parameters())


def test_op_structure_matches_the_reference():
    sep = build_op("sep_conv_3x3", 8, 2)
    convs = [m for m in sep if isinstance(m, nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2), (1, 1), (1, 1), (1, 1)]  # only the first block strides
    assert [c.groups for c in convs] == [8, 1, 8, 1]
    assert isinstance(sep[0], nn.ReLU) and isinstance(sep[3], nn.BatchNorm2d) and isinstance(sep[7], nn.BatchNorm2d)
    dil = build_op("dil_conv_5x5", 8, 1)
    assert dil[1].dilation == (2, 2) and dil[1].padding == (4, 4) and len(dil) == 4
    fr = build_op("skip_connect", 8, 2)
    assert isinstance(fr, FactorizedReduce) and fr.conv_1.out_channels == 4 and fr.conv_2.stride == (2, 2)
    x = torch.randn(1, 8, 6, 6)
    assert fr(x).shape == (1, 8, 3, 3)
    avg = build_op("avg_pool_3x3", 8, 1)
    assert avg.padding == 1 and avg.count_include_pad is False
    # search model only: pools followed by a non-affine BN
    searched = build_op("max_pool_3x3", 8, 1, affine=False, search=True)
    assert isinstance(searched[1], nn.BatchNorm2d) and not searched[1].affine
    assert not isinstance(build_op("max_pool_3x3", 8, 1), nn.Sequential)
    for name in OPS:
        for stride in (1, 2):
            y = build_op(name, 8, stride)(torch.randn(1, 8, 8, 8))
            assert y.shape == (1, 8, 8 // stride, 8 // stride), name


def test_reduction_cells_stride_only_input_edges():
    net = build_network(ZOO["PC_DARTS_cifar"], channels=8, cells=5)
    assert reduction_indices(5) == (1, 3)
    red = net.cells[1]
    pairs, _ = ZOO["PC_DARTS_cifar"].cell(True)
    for op_module, (op, idx) in zip(red._ops, pairs):
        if op.startswith("sep"):
            assert op_module[1].stride == ((2, 2) if idx < 2 else (1, 1))
    assert isinstance(net.cells[2].preprocess0, FactorizedReduce)  # the cell after a reduction


@pytest.mark.parametrize("name", list(ZOO))
@pytest.mark.parametrize("preset", ["cifar", "imagenet"])
@pytest.mark.parametrize("aux", [False, True])
def test_zoo_builds_and_runs_forward_backward(name, preset, aux):
    torch.manual_seed(0)
    cfg = network_config(preset, auxiliary=aux)
    net = build_network(ZOO[name], cfg)
    net.train()
    net.drop_path_prob = 0.2
    x = torch.randn(2, 3, cfg.input_size, cfg.input_size)
    logits, logits_aux = net.forward_train(x)
    assert logits.shape == (2, cfg.classes)
    loss = logits.logsumexp(1).mean()
    if aux:
        assert logits_aux is not None and logits_aux.shape == (2, cfg.classes)
        loss = loss + 0.4 * logits_aux.logsumexp(1).mean()
    else:
        assert logits_aux is None
    loss.backward()
    assert net.classifier.weight.grad is not None and torch.isfinite(net.classifier.weight.grad).all()
    net.eval()
    with torch.no_grad():
        assert net(x[:1]).shape == (1, cfg.classes)


def test_custom_network_sizes_and_bad_configs():
    net = build_network(ZOO["DARTS_V2"], network_config("cifar", channels=8, cells=5, classes=3, in_channels=1,
                                                        input_size=16))
    assert net(torch.randn(2, 1, 16, 16)).shape == (2, 3)
    with pytest.raises(UserInputError):
        network_config("cifar", channels=7)
    with pytest.raises(UserInputError):
        network_config("mobile")
    with pytest.raises(UserInputError, match="auxiliary head"):
        build_network(ZOO["DARTS_V2"], network_config("cifar", input_size=16, auxiliary=True))


def _macs_by_hand(net: torch.nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of every conv (out_h · out_w · C_out · C_in/groups · k_h · k_w) and linear layer (in · out),
    from the shapes each layer sees in a forward pass: independent of torch's flop counter."""
    total = 0

    def hook(m, inputs, out):
        nonlocal total
        if isinstance(m, torch.nn.Conv2d):
            kh, kw = m.kernel_size
            total += out.shape[2] * out.shape[3] * m.out_channels * (m.in_channels // m.groups) * kh * kw
        elif isinstance(m, torch.nn.Linear):
            total += m.in_features * m.out_features

    hooks = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        net.eval()(x)
    for h in hooks:
        h.remove()
    return total


@pytest.mark.parametrize("name,preset", [("DARTS_V2", "cifar"), ("PC_DARTS_cifar", "cifar"), ("NASNet", "cifar"),
                                         ("DARTS_V2", "imagenet")])
def test_macs_equal_an_independent_count(name, preset):
    from ladarts.space import count_macs

    cfg = network_config(preset)
    net = build_network(ZOO[name], cfg)
    x = torch.zeros(1, cfg.in_channels, cfg.input_size, cfg.input_size)
    assert count_macs(net) == _macs_by_hand(net, x)
    if (name, preset) == ("DARTS_V2", "cifar"):
        assert count_macs(net) == 528_359_040  # the figure the README quotes
