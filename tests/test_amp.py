"""Mixed precision (``--amp bf16|fp16``) on the CPU: the same step as fp32 within stated tolerances.

Tolerances (measured on this CPU at C=8 × 3 cells, 16 px, batch 16: loss within 0.1%, α-gradient cosine
≥ 0.99, weights within 0.03% after a step, search or training): the loss within 1%, the α gradient's cosine
similarity to fp32's at least 0.98, the weights after one step within 0.1% (relative norm). α itself after one
Adam step is not a test: Adam's first step moves each entry by about ±lr whatever the gradient's size, so a tiny
entry's sign decides it.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

from ladarts.runs import Precision, load_checkpoint
from ladarts.search import Architect, SearchConfig, run_search, weight_step
from ladarts.space import ZOO, build_network, network_config
from ladarts.space.supernet import Supernet


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1).float() for t in tensors])


def _search_step(net: Supernet, amp, x, y):
    prec = Precision(amp, torch.device("cpu"))
    arch = Architect(net, precision=prec)
    grads, stats = arch.arch_gradients(x, y)
    scale = prec.scaler.get_scale() if prec.scaler is not None else 1.0
    arch.step(x, y)
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=0.05, momentum=0.9)
    w_loss, _ = weight_step(net, w_opt, x, y, 5.0, precision=prec)
    return stats.loss, _flat(grads) / scale, w_loss, _flat(net.weight_parameters())


@pytest.mark.parametrize("method", ["darts", "pc-darts"])
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_a_search_step_under_autocast_matches_fp32(method, amp):
    torch.manual_seed(0)
    base = Supernet(8, 4, 3, 3, method=method)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 3, 16, 16, generator=g), torch.randint(0, 4, (16,), generator=g)
    ref = _search_step(copy.deepcopy(base), None, x, y)
    got = _search_step(copy.deepcopy(base), amp, x, y)
    assert abs(got[0] - ref[0]) / ref[0] < 0.01 and abs(got[2] - ref[2]) / ref[2] < 0.01
    assert F.cosine_similarity(got[1], ref[1], dim=0) > 0.98
    assert (got[3] - ref[3]).norm() / ref[3].norm() < 1e-3
    assert not torch.equal(got[1], ref[1])  # autocast did change the arithmetic


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_a_training_step_under_autocast_matches_fp32(amp):
    torch.manual_seed(0)
    base = build_network(ZOO["DARTS_V2"], network_config("cifar", channels=8, cells=3, classes=4, input_size=16,
                                                         auxiliary=False))
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(8, 3, 16, 16, generator=g), torch.randint(0, 4, (8,), generator=g)
    out = {}
    for mode in (None, amp):
        net = copy.deepcopy(base).train()
        prec = Precision(mode, torch.device("cpu"))
        if prec.scaler is not None:  # a first scale that does not overflow, so that this one step is taken
            prec.scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        with prec.autocast():
            loss = F.cross_entropy(net(x), y, label_smoothing=0.1)
        prec.scale(loss).backward()
        prec.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        prec.step(opt)
        prec.update()
        out[mode] = float(loss.detach()), _flat(net.parameters())
    (l0, w0), (l1, w1) = out[None], out[amp]
    assert abs(l1 - l0) / l0 < 0.01
    assert (w1 - w0).norm() / w0.norm() < 1e-3


def test_fp16_search_checkpoints_its_grad_scaler_and_resumes(tmp_path):
    cfg = dict(dataset="synthetic", epochs=2, channels=4, cells=3, batch_size=32, subset=120, threads=1,
               progress=False, amp="fp16")
    full = run_search(SearchConfig(out=str(tmp_path / "full"), **cfg))
    assert load_checkpoint(tmp_path / "full" / "checkpoint.pt")["scaler"]["scale"] > 0

    class Stop(Exception):
        pass

    def stop(epoch, record):
        raise Stop

    with pytest.raises(Stop):
        run_search(SearchConfig(out=str(tmp_path / "cut"), **cfg), on_epoch_end=stop)
    resumed = run_search(SearchConfig(out=str(tmp_path / "cut"), resume=True, **cfg))
    assert resumed.genotype == full.genotype
    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["scaler"] == b["scaler"]
