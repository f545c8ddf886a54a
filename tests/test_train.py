import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from conftest import assert_one_line_error
from ladarts.space import ZOO, build_network, is_encodable, network_config
from ladarts.train import TrainConfig, export_and_check, load_trained, perturb_, run_train

V2 = ZOO["DARTS_V2"]


def _cfg(out, **kw):
    return TrainConfig(genotype=V2.to_dict(), genotype_name="DARTS_V2", out=str(out), dataset="synthetic",
                       threads=1, **{"epochs": 3, **kw})


def test_train_writes_a_complete_run(tmp_path):
    res = run_train(_cfg(tmp_path / "run", epochs=6), progress=False)
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"config.json", "log.jsonl", "checkpoint.pt", "model.safetensors", "model.onnx", "report.json"} <= files
    log = [json.loads(l) for l in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(6))
    assert res.test_acc > 0.6  # 4 well-separated synthetic classes
    assert res.report["onnx"]["max_rel_error"] < 1e-4
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 6
    net, rep = load_trained(tmp_path / "run")
    assert rep["test_acc"] == res.test_acc and net.config.channels == 8
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "run").iterdir()}
    assert set(modes.values()) == {0o666 & ~umask}, modes  # the weights too: every artefact 0644 under umask 022


def test_resume_continues_and_matches_an_uninterrupted_run(tmp_path):
    full = run_train(_cfg(tmp_path / "full"), progress=False)
    stop_after = {"epoch": 0}

    class Stop(Exception):
        pass

    def hook(epoch, record):
        if epoch == stop_after["epoch"]:
            raise Stop

    with pytest.raises(Stop):
        run_train(_cfg(tmp_path / "cut"), progress=False, on_epoch_end=hook)
    resumed = run_train(_cfg(tmp_path / "cut"), resume=True, progress=False)
    log = [json.loads(l)["epoch"] for l in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert log == [0, 1, 2]
    a = load_file(tmp_path / "full" / "model.safetensors")
    b = load_file(tmp_path / "cut" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.test_acc == full.test_acc


def test_kill_9_during_training_then_resume(tmp_path, run_cli):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ladarts", "train", "DARTS_V2", "--dataset", "synthetic", "--epochs", "6",
           "--out", str(out), "--threads", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "checkpoint.pt").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = torch.load(out / "checkpoint.pt", weights_only=True)["epoch"]
    assert 1 <= done < 6
    proc = run_cli("train", "DARTS_V2", "--dataset", "synthetic", "--epochs", "6", "--out", str(out), "--threads", "1",
                   "--no-progress", "--resume", "--json")
    assert proc.returncode == 0, proc.stderr
    epochs = [json.loads(l)["epoch"] for l in (out / "log.jsonl").read_text().splitlines()]
    assert epochs == list(range(6))
    assert json.loads(proc.stdout)["epochs"] == 6


def test_train_refuses_bad_input(tmp_path, run_cli):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("something")
    assert_one_line_error(run_cli("train", "DARTS_V2", "--dataset", "synthetic", "--out", str(tmp_path / "full")))
    assert_one_line_error(run_cli("train", "DARTS_V9", "--dataset", "synthetic", "--out", str(tmp_path / "a")))
    assert_one_line_error(run_cli("train", "DARTS_V2", "--dataset", "cifar10", "--out", str(tmp_path / "b")))
    assert_one_line_error(run_cli("train", "DARTS_V2", "--dataset", "cifar10", "--data-dir", str(tmp_path),
                                  "--out", str(tmp_path / "c")))
    run_train(_cfg(tmp_path / "run", epochs=1), progress=False)
    proc = run_cli("train", "DARTS_V2", "--dataset", "synthetic", "--epochs", "2", "--out", str(tmp_path / "run"),
                   "--resume")
    assert_one_line_error(proc)
    assert "different settings" in proc.stderr


@pytest.mark.parametrize("name", [n for n, g in ZOO.items() if is_encodable(g)])
def test_onnx_export_matches_pytorch_on_a_perturbed_network(tmp_path, name):
    torch.manual_seed(0)
    net = perturb_(build_network(ZOO[name], network_config("cifar")), seed=1)
    with torch.no_grad():
        assert net.eval()(torch.randn(2, 3, 32, 32)).abs().max() > 1e-2  # outputs far from zero
    check = export_and_check(net, tmp_path / f"{name}.onnx", batch_sizes=(1, 4))
    assert check["max_rel_error"] < 1e-4
    import onnx

    model = onnx.load(tmp_path / f"{name}.onnx")
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
