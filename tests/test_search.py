import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F

from conftest import assert_one_line_error
from ladarts.errors import UserInputError
from ladarts.search import (
    Architect,
    LatencyObjective,
    NonFiniteLoss,
    SearchConfig,
    TableCost,
    load_checkpoint,
    lr_at,
    run_search,
)
from ladarts.space import Genotype, encode
from ladarts.space.supernet import Supernet


def table_cost(seed: int = 0) -> TableCost:
    g = torch.Generator().manual_seed(seed)
    return TableCost(torch.rand(2, 14, 8, generator=g) * 5, base_ms=10.0)


def tiny(tmp_path, name="run", **kw) -> SearchConfig:
    base = dict(out=str(tmp_path / name), dataset="synthetic", epochs=3, channels=4, cells=3, batch_size=96,
                seed=0, threads=1)
    base.update(kw)
    return SearchConfig(**base)


def _model_and_batch(method="darts", seed=0):
    torch.manual_seed(seed)
    net = Supernet(4, 4, 3, 3, method=method)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 4, (8,))
    xt, yt = torch.randn(8, 3, 8, 8), torch.randint(0, 4, (8,))
    return net, (x, y, xt, yt)


@pytest.mark.parametrize("method,order", [("darts", 1), ("darts", 2), ("pc-darts", 1)])
def test_lambda_zero_is_exactly_darts(method, order):
    net, (x, y, xt, yt) = _model_and_batch(method)
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=0.025, momentum=0.9)
    plain, _ = Architect(net, order=order).arch_gradients(x, y, xt, yt, 0.025, w_opt)
    obj = LatencyObjective(table_cost(), lam=0.0)
    attached, stats = Architect(net, order=order, objective=obj).arch_gradients(x, y, xt, yt, 0.025, w_opt)
    assert stats.lat_ms is not None and stats.lat_ms > 0  # the term was attached and evaluated
    for a, b in zip(plain, attached):
        assert torch.equal(a, b)
    # λ > 0 adds exactly λ·∇LAT/mean (and the β part for PC-DARTS)
    lam = 0.7
    obj = LatencyObjective(table_cost(), lam=lam)
    with_lat, _ = Architect(net, order=order, objective=obj).arch_gradients(x, y, xt, yt, 0.025, w_opt)
    lat = obj.latency(*net.arch_tensors())
    lat_grads = torch.autograd.grad(lat, net.arch_parameters())
    for p0, p1, lg in zip(plain, with_lat, lat_grads):
        assert torch.allclose(p1 - p0, lam * lg / obj.scale_ms, atol=1e-7)
        assert lg.abs().sum() > 0  # α and, for PC-DARTS, β get a latency gradient


def test_latency_gradient_never_reaches_the_weights():
    net, (x, y, _, _) = _model_and_batch("pc-darts")
    before = [p.detach().clone() for p in net.weight_parameters()]
    obj = LatencyObjective(table_cost(), lam=100.0, mode="straight-through")
    arch = Architect(net, objective=obj)
    alphas0 = net.alphas_normal.detach().clone()
    arch.step(x, y)
    assert not torch.equal(alphas0, net.alphas_normal)
    assert all(p.grad is None for p in net.weight_parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, net.weight_parameters()))
    term, _ = obj(*net.arch_tensors())
    assert all(g is None for g in torch.autograd.grad(term, net.weight_parameters(), allow_unused=True))


def test_second_order_matches_exact_hypergradient():
    torch.manual_seed(0)
    net = Supernet(4, 3, 3, 2).double()
    x, y = torch.randn(6, 2, 8, 8, dtype=torch.float64), torch.randint(0, 3, (6,))
    xt, yt = torch.randn(6, 2, 8, 8, dtype=torch.float64), torch.randint(0, 3, (6,))
    eta = 0.1
    # ε = 1e-6 in float64 so the finite difference converges (ReLU/max-pool kinks make the reference 0.01 coarse)
    arch = Architect(net, order=2, w_momentum=0.0, w_weight_decay=0.0, fd_epsilon=1e-6)
    fd, _ = arch.arch_gradients(x, y, xt, yt, eta, None)
    # exact: d/dα L_val(w − η ∇_w L_train(w, α), α), by double backprop; buffers copied as in the virtual step
    from torch.func import functional_call

    names = [n for n, _ in net.named_weight_parameters()]
    ws = net.weight_parameters()
    gw = torch.autograd.grad(F.cross_entropy(net(xt), yt), ws, create_graph=True)
    params = {n: w - eta * g for n, w, g in zip(names, ws, gw)}
    params.update({"alphas_normal": net.alphas_normal, "alphas_reduce": net.alphas_reduce})
    buffers = {n: b.clone() for n, b in net.named_buffers()}
    exact = torch.autograd.grad(F.cross_entropy(functional_call(net, (params, buffers), (x,)), y),
                                net.arch_parameters())
    for a, b in zip(fd, exact):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)
    first, _ = Architect(net, order=1).arch_gradients(x, y)
    assert not torch.allclose(first[0], exact[0], rtol=1e-4, atol=1e-7)  # the unrolled term matters here


def test_budget_and_paper_forms():
    cost = table_cost()
    net, _ = _model_and_batch()
    paper = LatencyObjective(cost, lam=2.0)
    term, lat = paper(*net.arch_tensors())
    term, lat = term.detach(), lat.detach()
    assert math.isclose(float(term), 2.0 * float(lat) / cost.meta["mean_latency_ms"], rel_tol=1e-6)
    under = LatencyObjective(cost, lam=2.0, target_ms=float(lat) * 1.5)
    term, _ = under(*net.arch_tensors())
    assert float(term.detach()) == 0.0
    assert all(g is None or g.abs().sum() == 0
               for g in torch.autograd.grad(term, net.arch_parameters()[:2], allow_unused=True))
    over = LatencyObjective(cost, lam=2.0, target_ms=float(lat) / 2)
    term, _ = over(*net.arch_tensors())
    assert math.isclose(float(term.detach()), 2.0 * (2.0 - 1.0), rel_tol=1e-5)
    with pytest.raises(UserInputError):
        LatencyObjective(lambda e: e.sum(), lam=1.0)  # no mean latency to divide by


def test_lr_schedule_and_method_defaults(tmp_path):
    assert lr_at(0, 50, 0.025, 0.001) == 0.025
    assert math.isclose(lr_at(50, 50, 0.025, 0.001), 0.001)
    d = SearchConfig(out="x").resolved()
    assert (d.batch_size, d.lr, d.lr_min, d.arch_lr, d.warmup_epochs) == (64, 0.025, 0.001, 3e-4, 0)
    p = SearchConfig(out="x", method="pc-darts").resolved()
    assert (p.batch_size, p.lr, p.arch_lr, p.warmup_epochs) == (256, 0.1, 6e-4, 15)
    assert SearchConfig(out="x", method="pc-darts", epochs=10).resolved().warmup_epochs == 3


def test_search_run_artefacts_and_pc_darts_warmup(tmp_path):
    cfg = tiny(tmp_path, method="pc-darts", channels=8, epochs=4, lam=0.5)
    result = run_search(cfg, cost=table_cost())
    out = tmp_path / "run"
    assert {p.name for p in out.iterdir()} >= {"config.json", "log.jsonl", "genotype.json", "checkpoint.pt"}
    conf = json.loads((out / "config.json").read_text())
    assert conf["warmup_epochs"] == 1 and conf["cost_info"]["kind"] == "TableCost"
    assert conf["cost_info"]["soft_mode"] == "derived" and conf["data_split_seed"] == 0
    log = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [0, 1, 2, 3]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "arch_loss", "lat_alpha_ms", "lat_derived_ms",
                "alphas_normal", "alphas_reduce", "betas_normal", "genotype"):
        assert key in log[-1]
    assert log[0]["arch_updated"] is False and log[0]["arch_loss"] is None  # α frozen in the warm-up epoch
    assert log[0]["alphas_normal"] != log[-1]["alphas_normal"]
    torch.manual_seed(0)  # the run's initialisation: α logged after the warm-up epoch is still α at init
    init_net = Supernet(8, 4, 3, 3, method="pc-darts")
    assert torch.allclose(torch.tensor(log[0]["alphas_normal"]), init_net.alphas_normal.detach(), atol=1e-6)
    g = Genotype.from_json((out / "genotype.json").read_text())
    assert g == result.genotype
    assert math.isclose(log[-1]["lat_derived_ms"], float(table_cost()(encode(g))), rel_tol=1e-6)
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 4 and ckpt["rng_torch"].dtype == torch.uint8


class _Interrupt(Exception):
    pass


def test_interrupted_then_resumed_gives_the_same_genotype(tmp_path):
    full = run_search(tiny(tmp_path, "full", lam=1.0), cost=table_cost())

    def stop(epoch, record):
        if epoch == 1:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        run_search(tiny(tmp_path, "cut", lam=1.0), cost=table_cost(), on_epoch_end=stop)
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["epoch"] == 2
    with pytest.raises(UserInputError, match="--resume"):
        run_search(tiny(tmp_path, "cut", lam=1.0), cost=table_cost())
    with pytest.raises(UserInputError, match=r"different settings \(lam"):
        run_search(tiny(tmp_path, "cut", lam=2.0, resume=True), cost=table_cost())
    resumed = run_search(tiny(tmp_path, "cut", lam=1.0, resume=True), cost=table_cost())
    assert resumed.genotype == full.genotype
    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["epoch"] for r in resumed.log] == [0, 1, 2]


@pytest.mark.slow  # ~20 s of subprocesses; the in-process interruption test above covers resume in the fast suite
def test_kill_9_then_resume_from_the_cli(tmp_path, run_cli):
    args = ["search", "--dataset", "synthetic", "--epochs", "4", "--channels", "4", "--cells", "3",
            "--batch-size", "96", "--seed", "3", "--threads", "1"]
    ref = run_search(tiny(tmp_path, "ref", epochs=4, seed=3))
    run = tmp_path / "killed"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen([sys.executable, "-m", "ladarts", *args, "--out", str(run)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (run / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "genotype.json").exists()
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] < 4
    resumed = run_cli(*args, "--out", str(run), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert Genotype.from_json((run / "genotype.json").read_text()) == ref.genotype


class _NaNAfter(TableCost):
    def __init__(self, calls: int):
        super().__init__(torch.ones(2, 14, 8), base_ms=1.0, mean_latency_ms=10.0)
        self.calls = calls

    def forward(self, encoding):
        self.calls -= 1
        out = super().forward(encoding)
        return out * float("nan") if self.calls < 0 else out


def test_nan_loss_stops_and_leaves_the_last_good_checkpoint(tmp_path):
    # one α step per epoch plus two logging calls: the NaN arrives in epoch 2's α step
    with pytest.raises(NonFiniteLoss, match=r"epoch 2, step 1: .*LAT\(α\) is nan.*last good checkpoint"):
        run_search(tiny(tmp_path, lam=1.0), cost=_NaNAfter(calls=3))
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    resumed = run_search(tiny(tmp_path, lam=1.0, resume=True), cost=_NaNAfter(calls=10**9))
    assert len(resumed.log) == 3


def test_a_nan_weight_stops_the_weight_step(tmp_path):
    calls = []

    def poison(epoch, step):
        calls.append(epoch)
        if epoch == 1:
            with torch.no_grad():
                run_model_param = next(iter(poison.model.parameters()))
                run_model_param.fill_(float("nan"))

    # poison the weights through a hook that sees the model: patch Supernet.__init__ to capture it
    orig_init = Supernet.__init__

    def capture(self, *a, **k):
        orig_init(self, *a, **k)
        poison.model = self

    Supernet.__init__ = capture
    try:
        with pytest.raises(NonFiniteLoss, match="epoch 2"):
            run_search(tiny(tmp_path), on_step=poison)
    finally:
        Supernet.__init__ = orig_init
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["epoch"] == 1


def test_nan_in_the_data_stops_the_search(tmp_path, monkeypatch):
    import ladarts.data as data

    real = data.load_dataset

    def poisoned(*a, **k):
        ds = real(*a, **k)
        ds.train.tensors[0][:, 0, 4, 4] = float("nan")  # the centre pixel of every training image: no crop drops it
        return ds

    monkeypatch.setattr(data, "load_dataset", poisoned)
    with pytest.raises(NonFiniteLoss, match="epoch 1"):
        run_search(tiny(tmp_path))
    assert not (tmp_path / "run" / "genotype.json").exists()


@pytest.mark.parametrize("argv", [
    ["search", "--dataset", "synthetic", "--epochs", "1", "--lambda", "1"],  # λ without an LPM
    ["search", "--dataset", "synthetic", "--epochs", "0"],
    ["search", "--dataset", "synthetic", "--cells", "2"],
    ["search", "--dataset", "synthetic", "--method", "enas"],
    ["search", "--dataset", "synthetic", "--order", "3"],
    ["search", "--dataset", "synthetic", "--method", "pc-darts", "--channels", "6"],
    ["search", "--dataset", "cifar10"],
    ["search", "--dataset", "synthetic", "--lpm", "/nonexistent/lpm"],
    ["search", "--dataset", "synthetic", "--lambda", "-1"],
    ["sweep", "--dataset", "synthetic", "--lambdas", "0,x", "--lpm", "/nonexistent"],
    ["sweep", "--dataset", "synthetic", "--lambdas", "0,1"],
])
def test_bad_input_is_a_one_line_error(argv, cli, tmp_path):
    assert_one_line_error(cli(*argv, "--out", str(tmp_path / "r")), 2)


def test_sweep_writes_the_front(tmp_path):
    from ladarts.search.sweep import run_sweep

    base = tiny(tmp_path, "sweep", epochs=1)
    front = run_sweep(base, [0.0, 3.0], [0, 1], cost=table_cost())
    assert len(front["runs"]) == 4 and [s["lambda"] for s in front["by_lambda"]] == [0.0, 3.0]
    assert (tmp_path / "sweep" / "front.png").read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "sweep" / "front.md").read_text()
    assert md.count("\n") == 4 and "| 3 | 2 |" in md
    again = run_sweep(base, [0.0, 3.0], [0, 1], cost=table_cost())  # finished runs are reused, not redone
    assert again["runs"] == front["runs"]


@pytest.mark.parametrize("method,order", [("darts", "1"), ("pc-darts", "2")])
def test_cli_search_with_an_lpm_folder(tmp_path, run_cli, method, order):
    from ladarts import predict  # a broken predict package must fail this test, not skip it

    lpm, _ = predict.fit_lpm(predict.synthetic_records(60, seed=0), config=predict.LPMConfig(depth=1, width=8))
    lpm.meta["mean_latency_ms"] = 50.0
    lpm.save(tmp_path / "lpm")
    proc = run_cli("search", "--method", method, "--order", order, "--dataset", "synthetic", "--epochs", "1",
                   "--channels", "4", "--cells", "3", "--no-progress",
                   "--batch-size", "96", "--threads", "1", "--lpm", str(tmp_path / "lpm"), "--lambda", "0.5",
                   "--out", str(tmp_path / "run"), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["lat_derived_ms"] is not None and summary["lat_alpha_ms"] is not None
    conf = json.loads((tmp_path / "run" / "config.json").read_text())
    assert conf["cost_info"]["kind"] == "lpm" and conf["cost_info"]["path"] == str(tmp_path / "lpm")
    assert conf["cost_info"]["mean_latency_ms"] == 50.0 and conf["lam"] == 0.5
    assert conf["method"] == method and conf["order"] == int(order)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[0]["arch_updated"] and math.isfinite(log[0]["arch_loss"])
    loaded = predict.LPM.load(tmp_path / "lpm")
    g = Genotype.from_json((tmp_path / "run" / "genotype.json").read_text())
    assert math.isclose(summary["lat_derived_ms"], float(loaded(encode(g)).detach()), rel_tol=1e-5)


def test_second_order_search_runs_with_the_latency_term(tmp_path):
    result = run_search(tiny(tmp_path, order=2, epochs=1, lam=0.5), cost=table_cost())
    assert result.log[0]["arch_loss"] is not None and math.isfinite(result.log[0]["arch_loss"])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["order"] == 2
