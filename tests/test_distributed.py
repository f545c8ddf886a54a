"""Search and training under torchrun: 2 processes on the CPU with gloo, launched as a user would.

Run as a script (``python -m torch.distributed.run ... tests/test_distributed.py SCENARIO OUT``) this file is the
worker of the tests below; each rank writes what it holds into OUT for the test to compare.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import assert_one_line_error
from ladarts.distributed import Context, RankMismatch, exit_rank, setup, without_flag
from ladarts.runs import load_checkpoint
from ladarts.search import Architect, LatencyObjective, SearchConfig, TableCost, run_search, weight_step
from ladarts.space import Genotype
from ladarts.space.supernet import Supernet

HERE = Path(__file__).resolve()
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
COMBOS = [("darts", 1), ("darts", 2), ("pc-darts", 1), ("pc-darts", 2)]
# small enough that a 2-process epoch takes about a second on two busy cores: 2 steps per epoch
SEARCH = ["search", "--dataset", "synthetic", "--channels", "4", "--cells", "3", "--batch-size", "32",
          "--subset", "120", "--threads", "1", "--no-progress", "--method", "pc-darts", "--seed", "2"]
TRAIN = ["train", "DARTS_V2", "--dataset", "synthetic", "--subset", "96", "--threads", "1", "--no-progress",
         "--seed", "1"]


def _cost() -> TableCost:
    return TableCost(torch.rand(2, 14, 8, generator=torch.Generator().manual_seed(0)) * 5, base_ms=10.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(nproc: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", "--master-addr=127.0.0.1",
            f"--master-port={_free_port()}", *args]


def _ladarts(*args: str) -> list[str]:
    return [sys.executable, "-m", "ladarts", *args]


def _kill_group(proc: subprocess.Popen) -> None:
    """The session this test started for ``proc`` (torchrun and its ranks), whatever state it is in."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        _kill_group(proc)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _ranks(agent_pid: int) -> dict[int, int]:
    """rank → pid of torchrun's worker processes (its children, with RANK in their environment)."""
    out = {}
    for task in Path(f"/proc/{agent_pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            rank = [e for e in env if e.startswith(b"RANK=")]
            if rank:
                out[int(rank[0][5:])] = int(pid)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _kill_a_rank(cmd: list[str], out: Path, rank: int) -> float:
    """Start ``cmd`` (torchrun, 2 ranks), SIGKILL ``rank`` once the first checkpoint is written, and return the
    seconds until torchrun and both ranks are gone (torchrun must fail)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read()
        ranks = _ranks(proc.pid)
        assert sorted(ranks) == [0, 1]
        os.kill(ranks[rank], signal.SIGKILL)
        t0 = time.monotonic()
        proc.wait(timeout=60)
        while any(_alive(p) for p in ranks.values()) and time.monotonic() - t0 < 60:
            time.sleep(0.05)
        gone = time.monotonic() - t0
        assert not any(_alive(p) for p in ranks.values())
        assert proc.returncode != 0
        return gone
    finally:
        _kill_group(proc)


# ---------------------------------------------------------------------------------------------------------------
# the workers (run under torchrun)


def _worker_steps(out: Path) -> None:
    """Three search steps (one epoch) per (method, order), latency term on; each rank saves α/β and w."""
    import ladarts.search.loop as loop

    made = []

    class Recording(loop.Supernet):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    loop.Supernet = Recording
    rank = int(os.environ["RANK"])
    for method, order in COMBOS:
        steps = []

        def dump(epoch, record, name=f"{method}{order}"):
            net = made[-1]
            torch.save({"arch": [p.detach().clone() for p in net.arch_parameters()],
                        "w": [p.detach().clone() for p in net.weight_parameters()], "steps": len(steps)},
                       out / f"{name}.rank{rank}.pt")

        cfg = SearchConfig(out=str(out / f"run-{method}{order}"), dataset="synthetic", epochs=1, channels=4, cells=3,
                           batch_size=32, method=method, order=order, warmup_epochs=0, lam=0.5, threads=1,
                           progress=False)
        run_search(cfg, cost=_cost(), on_epoch_end=dump, on_step=lambda e, s: steps.append(s))
    ctx = setup("cpu")
    try:
        ctx.check_identical({"α and β": [torch.full((3,), float(ctx.rank))]}, "in the test")
    except RankMismatch as e:
        (out / f"mismatch.rank{rank}.txt").write_text(str(e))


def one_step(ctx: Context, method: str, order: int) -> dict[str, list[torch.Tensor]]:
    """Two bilevel steps on a batch of 16 (each rank its half), BN on running statistics (eval mode): every sample's
    loss is then independent of the others in its batch, so the mean over 16 is the mean of the two halves' means
    and one process at batch 16 must match two at 8."""
    torch.manual_seed(0)
    net = Supernet(4, 4, 3, 3, method=method).eval()
    g = torch.Generator().manual_seed(1)
    xv, xt = torch.randn(16, 3, 8, 8, generator=g), torch.randn(16, 3, 8, 8, generator=g)
    yv, yt = torch.randint(0, 4, (16,), generator=g), torch.randint(0, 4, (16,), generator=g)
    part = slice(ctx.rank, None, ctx.world_size)
    xv, yv, xt, yt = xv[part], yv[part], xt[part], yt[part]
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=0.05, momentum=0.9, weight_decay=3e-4)
    arch = Architect(net, order=order, objective=LatencyObjective(_cost(), lam=0.5), average=ctx.average_)
    forward = ctx.wrap(net, exclude=net.arch_parameters())
    grads, _ = arch.arch_gradients(xv, yv, xt, yt, 0.05, w_opt)
    for _ in range(2):
        arch.step(xv, yv, xt, yt, 0.05, w_opt)
        weight_step(net, w_opt, xt, yt, 5.0, forward)
    return {"grads": [g.detach() for g in grads], "arch": [p.detach().clone() for p in net.arch_parameters()],
            "w": [p.detach().clone() for p in net.weight_parameters()]}


def _worker_batch(out: Path) -> None:
    ctx = setup("cpu")
    for method, order in COMBOS:
        torch.save(one_step(ctx, method, order), out / f"batch-{method}{order}.rank{ctx.rank}.pt")


if __name__ == "__main__":
    torch.set_num_threads(1)
    {"steps": _worker_steps, "batch": _worker_batch}[sys.argv[1]](Path(sys.argv[2]))
    exit_rank(0)


# ---------------------------------------------------------------------------------------------------------------
# the tests


def test_alpha_and_beta_are_bit_identical_on_both_ranks_after_three_steps(tmp_path):
    proc = _run(_torchrun(2, str(HERE), "steps", str(tmp_path)), timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for method, order in COMBOS:
        r0, r1 = (torch.load(tmp_path / f"{method}{order}.rank{r}.pt", weights_only=True) for r in (0, 1))
        assert r0["steps"] == r1["steps"] == 3
        assert len(r0["arch"]) == (4 if method == "pc-darts" else 2)
        for a, b in zip(r0["arch"] + r0["w"], r1["arch"] + r1["w"]):
            assert torch.equal(a, b), (method, order)
        assert r0["arch"][0].abs().max() > 1e-3  # α moved away from its 1e-3·N(0,1) start
        conf = json.loads((tmp_path / f"run-{method}{order}" / "config.json").read_text())
        assert conf["world_size"] == 2 and conf["batch_per_process"] == 16
    ckpt = load_checkpoint(tmp_path / "run-pc-darts2" / "checkpoint.pt")
    assert len(ckpt["rng_ranks"]) == 2
    for r in (0, 1):  # a mismatch is an error on every rank, naming the ranks
        assert "rank 1 disagrees with rank 0" in (tmp_path / f"mismatch.rank{r}.txt").read_text()


def test_two_ranks_at_half_batch_equal_one_process_at_the_full_batch(tmp_path):
    proc = _run(_torchrun(2, str(HERE), "batch", str(tmp_path)), timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for method, order in COMBOS:
        single = one_step(Context(), method, order)
        for rank in (0, 1):
            two = torch.load(tmp_path / f"batch-{method}{order}.rank{rank}.pt", weights_only=True)
            for key, atol in (("grads", 1e-7), ("arch", 1e-5), ("w", 1e-5)):
                for a, b in zip(single[key], two[key]):
                    torch.testing.assert_close(b, a, rtol=1e-4, atol=atol, msg=f"{method} order {order} {key}")
        assert any(g.abs().max() > 1e-4 for g in single["grads"])


def test_search_rank_killed_then_resumed_matches_an_uninterrupted_run(tmp_path):
    args = [*SEARCH, "--epochs", "3"]
    ref = _run(_ladarts(*args, "--out", str(tmp_path / "ref"), "--nproc", "2", "--json"))  # the --nproc shortcut
    assert ref.returncode == 0, ref.stderr[-3000:]
    assert json.loads(ref.stdout)["epochs"] == 3  # one summary: rank 0's
    gone = _kill_a_rank(_torchrun(2, "-m", "ladarts", *args, "--out", str(tmp_path / "cut")), tmp_path / "cut", 1)
    assert gone < 60
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["epoch"] < 3
    assert not (tmp_path / "cut" / "genotype.json").exists()
    resumed = _run(_torchrun(2, "-m", "ladarts", *args, "--out", str(tmp_path / "cut"), "--resume"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (Genotype.from_json((tmp_path / "cut" / "genotype.json").read_text())
            == Genotype.from_json((tmp_path / "ref" / "genotype.json").read_text()))
    a = load_checkpoint(tmp_path / "ref" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert [json.loads(line)["epoch"] for line in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()] == \
        list(range(3))
    # one process cannot resume a 2-process run: one line
    proc = _run(_ladarts(*args, "--out", str(tmp_path / "cut"), "--resume"))
    assert_one_line_error(proc)
    assert "ran on 2 processes, not 1" in proc.stderr


# ~18 s of torchrun runs; in CI, the search's rank-killed test covers resuming under torchrun (the same
# ladarts.runs checkpoints) and test_train.py resumes training in one process
@pytest.mark.slow
def test_train_rank_killed_then_resumed_matches_an_uninterrupted_run(tmp_path):
    args = [*TRAIN, "--epochs", "3", "--drop-path", "0.2"]
    ref = _run(_torchrun(2, "-m", "ladarts", *args, "--out", str(tmp_path / "ref"), "--json"))
    assert ref.returncode == 0, ref.stderr[-3000:]
    gone = _kill_a_rank(_torchrun(2, "-m", "ladarts", *args, "--out", str(tmp_path / "cut")), tmp_path / "cut", 0)
    assert gone < 60
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt", "training")["epoch"] < 3
    resumed = _run(_ladarts(*args, "--out", str(tmp_path / "cut"), "--resume", "--nproc", "2", "--json"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = load_file(tmp_path / "ref" / "model.safetensors"), load_file(tmp_path / "cut" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads(resumed.stdout)["test_acc"] == json.loads(ref.stdout)["test_acc"]
    conf = json.loads((tmp_path / "cut" / "config.json").read_text())
    assert conf["world_size"] == 2 and conf["batch_per_process"] == 16
    proc = _run(_ladarts(*args, "--out", str(tmp_path / "cut"), "--resume"))
    assert_one_line_error(proc)
    assert "ran on 2 processes" in proc.stderr


def test_one_process_under_torchrun_equals_the_plain_search(tmp_path):
    args = [*SEARCH, "--epochs", "1", "--order", "2"]
    plain = _run(_ladarts(*args, "--out", str(tmp_path / "plain")))
    under = _run(_torchrun(1, "-m", "ladarts", *args, "--out", str(tmp_path / "torchrun")))
    assert plain.returncode == 0 and under.returncode == 0, under.stderr[-3000:]
    a = load_checkpoint(tmp_path / "plain" / "checkpoint.pt")["model"]
    b = load_checkpoint(tmp_path / "torchrun" / "checkpoint.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("argv", [
    [*SEARCH, "--nproc", "4096"],
    [*TRAIN, "--nproc", "4096"],
    [*SEARCH, "--nproc", "0"],
    [*SEARCH, "--sync-bn"],
    [*SEARCH, "--batch-size", "3", "--nproc", "2"],
    [*TRAIN, "--amp", "fp32"],
    [*SEARCH, "--order", "2", "--amp", "bf16"],
    [*SEARCH, "--device", "cuda:x"],
])
def test_scale_out_flags_refuse_bad_values_in_one_line(argv, cli, tmp_path):
    assert_one_line_error(cli(*argv, "--out", str(tmp_path / "r")))


def test_without_flag_and_shards():
    assert without_flag(["search", "--nproc", "2", "--out", "x", "--nproc=3"], "--nproc") == ["search", "--out", "x"]
    perm = torch.randperm(11, generator=torch.Generator().manual_seed(0))
    shards = [Context(rank=r, world_size=3, backend="gloo").shard(perm) for r in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]  # 11 → 9: DistributedSampler's drop_last
    assert sorted(torch.cat(shards).tolist()) == sorted(perm[:9].tolist())
    assert Context().shard(perm) is perm  # one process: the permutation itself
