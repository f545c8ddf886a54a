"""Deployment runtimes as platforms: a tiny campaign on each, outputs against PyTorch eager, keys with versions,
one line when a runtime is missing, and the export cache."""

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import assert_one_line_error
from ladarts.cli import main
from ladarts.errors import UserInputError
from ladarts.hardware import LatencyStore, MeasureConfig, Measurer, Platform, campaign_items, runtimes
from ladarts.hardware.campaign import DRIFT_REFERENCES, REFERENCE
from ladarts.hardware.platform import RUNTIMES, major_minor, runtime_version
from ladarts.hardware.runtimes import cache, onnx_export, ort_cuda, ort_cpu
from ladarts.space import ZOO, network_config
from ladarts.space.networks import build_network
from ladarts.train.export import perturb_

TINY = network_config("cifar", channels=4, cells=3, input_size=8)
TINY_ARGS = ["--channels", "4", "--cells", "3", "--input-size", "8", "--no-progress"]
QUICK = MeasureConfig(pairs=2, warmup=0, calibration=3, drift_every=50, drift_repeats=2)
#: The third-party module each CPU runtime needs: its tests are skipped where that module is not installed.
THIRD_PARTY = {"onnxruntime": "onnxruntime", "openvino": "openvino", "inductor": "torch._inductor",
               "executorch": "executorch.runtime"}
NEW = ("openvino", "inductor", "executorch")


@pytest.fixture(autouse=True)
def export_cache(tmp_path_factory, monkeypatch):
    """One disk cache for this file's tests, never the user's."""
    folder = tmp_path_factory.getbasetemp() / "exports"
    monkeypatch.setenv("LADARTS_EXPORT_CACHE", str(folder))
    return folder


def tiny(runtime: str, **kw) -> Platform:
    pytest.importorskip(THIRD_PARTY.get(runtime, runtime))
    return Platform(runtime=runtime, network=TINY, **kw)


# Each tiny network takes ExecuTorch about 10 s to lower here, and inductor up to 30 s to compile on a cold kernel
# cache: one architecture beside the reference keeps the file short.
@pytest.mark.parametrize("runtime", ["inductor", "executorch"])
def test_compiling_runtime_measures_a_tiny_campaign(runtime, tmp_path):
    platform, n = tiny(runtime), 1
    with LatencyStore.open_or_create(tmp_path / "lat.db") as store:
        measurer = Measurer(store, platform, QUICK)
        result = measurer.run(campaign_items(n, seed=0), progress=False)
        records = store.records(measurer.key, run="main")
        fingerprint = store.platform_row(measurer.key)["fingerprint"]
    assert result.measured == len(records) == n and all(r.latency_ms > 0 for r in records)
    assert result.export_s > 0  # compiling happened, outside the timed forwards
    version = runtime_version(runtime)
    assert measurer.key.startswith(f"{runtime}{major_minor(version)}-cpu-t1-b1-float32/cifar-c4-l3-k10-8px-in3/")
    assert version in (fingerprint.get(runtime), fingerprint["torch"])
    again = runtimes.load(ZOO[REFERENCE], platform)  # the session's reference: still in memory
    assert again.cache == "memory" and again.build_s == 0


def test_openvino_measures_a_tiny_campaign_from_the_command_line(tmp_path, capsys):
    tiny("openvino")
    version = major_minor(runtime_version("openvino"))
    db = tmp_path / "ov.db"
    assert main(["measure", "--runtime", "openvino", "--n", "3", "--pairs", "2", "--db", str(db), *TINY_ARGS,
                 "--json"]) == 0
    capsys.readouterr()
    with LatencyStore.open(db) as store:
        (key,) = store.platforms()
        assert key.startswith(f"openvino{version}-cpu-t1-b1-float32/cifar-c4-l3-k10-8px-in3/")
        assert len(store.records(key, run="main")) == 3


@pytest.mark.parametrize("runtime", ["onnxruntime", *NEW])
def test_runtime_computes_what_pytorch_eager_computes(runtime):
    platform = tiny(runtime)
    torch.manual_seed(0)
    model = perturb_(build_network(ZOO["DARTS_V2"], TINY).eval())  # fresh from init the logits are near zero
    x = runtimes.example_input(platform)
    with torch.inference_mode():
        want = model(x).numpy()
    got = runtimes.prepare(model, x, platform).output()
    assert np.abs(want).max() > 0.1
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_keys_carry_the_version_of_compiling_runtimes_only():
    assert Platform(network=TINY).key.startswith("torch-cpu-t1-b1-float32/")  # existing databases still resolve
    assert Platform(runtime="onnxruntime", network=TINY).key.startswith("onnxruntime-cpu-t1-b1-float32/")
    assert tiny("inductor").key.startswith(f"inductor{major_minor(torch.__version__)}-cpu-")
    assert major_minor("2026.4.1-22982-e213a14") == "2026.4" and major_minor("2.13.0+cpu") == "2.13"
    assert set(NEW + ("onnxruntime-cuda",)) <= set(RUNTIMES)


@pytest.mark.parametrize("runtime,device", [("openvino", "cuda:0"), ("inductor", "cuda:0"), ("executorch", "cuda:0"),
                                            ("onnxruntime-cuda", "cpu")])
def test_runtimes_refuse_devices_they_do_not_run_on(runtime, device):
    with pytest.raises(UserInputError, match="--device"):
        Platform(runtime=runtime, device=device, network=TINY)


@pytest.mark.parametrize("runtime,module,extra", [("openvino", "openvino", "openvino"),
                                                  ("executorch", "executorch", "executorch")])
def test_a_missing_runtime_is_one_line_naming_its_extra(runtime, module, extra, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, module, None)  # what an interpreter without the package sees
    line = f"--runtime {runtime} needs"
    with pytest.raises(UserInputError, match=f"{line}.*pip install 'ladarts\\[{extra}\\]'"):
        runtimes.load(ZOO["DARTS_V2"], Platform(runtime=runtime, network=TINY))
    db = tmp_path / "none.db"
    code = main(["measure", "--runtime", runtime, "--n", "1", "--db", str(db), *TINY_ARGS])
    err = capsys.readouterr().err
    assert_one_line_error(types.SimpleNamespace(returncode=code, stderr=err))
    assert line in err and not db.exists()  # refused before anything was created


def test_onnxruntime_cuda_builds_a_cuda_session_and_refuses_a_cpu_fallback():
    ort = pytest.importorskip("onnxruntime")
    platform = Platform(runtime="onnxruntime-cuda", device="cuda:1", threads=2, network=TINY)
    assert ort_cuda.providers(platform) == [
        ("CUDAExecutionProvider", {"device_id": "1", "cudnn_conv_algo_search": "EXHAUSTIVE"}), "CPUExecutionProvider"]
    opts = ort_cpu.session_options(platform)
    assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (2, 2)
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider: the refusal is not reachable here")
    with pytest.raises(UserInputError) as e:
        ort_cuda.check_cuda_provider(ort, platform)
    assert "\n" not in str(e.value) and "pip install 'ladarts[onnxruntime-cuda]'" in str(e.value)
    assert "offers only" in str(e.value)


def test_second_load_of_a_genotype_does_not_export_again(monkeypatch, export_cache):
    platform = tiny("onnxruntime")
    calls = []
    real = onnx_export.export_onnx
    monkeypatch.setattr(onnx_export, "export_onnx", lambda *a: calls.append(1) or real(*a))
    g, seed = ZOO["PC_DARTS_cifar"], 1234  # a seed no other test loads
    first = runtimes.load(g, platform, seed=seed)
    second = runtimes.load(g, platform, seed=seed)
    assert (first.cache, second.cache, len(calls)) == ("", "memory", 1)
    assert second.build_s == 0 and list(export_cache.glob("*.onnx"))
    runtimes.EXPORTS.clear_memory()  # as a new process would start
    third = runtimes.load(g, platform, seed=seed)
    assert third.cache == "disk" and len(calls) == 1
    np.testing.assert_array_equal(third.output(), first.output())
    runtimes.load(g, platform, seed=seed + 1)  # other weights: another export
    runtimes.load(g, Platform(runtime="onnxruntime", network=network_config("cifar", channels=6, cells=3,
                                                                              input_size=8)), seed=seed)
    assert len(calls) == 3


def test_export_cache_goes_stale_with_the_code_that_builds_networks_only():
    """The builder digest covers exactly what ``networks.py`` imports from ``space/`` (followed through), so an
    edit to a primitive invalidates old exports and an edit to, say, the sampler does not."""
    import ast
    import importlib

    def space_imports(module: str) -> set[str]:
        tree = ast.parse(Path(importlib.import_module(module).__file__).read_text())
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                and (n.module or "").startswith("ladarts.space.")}

    seen, todo = set(), ["ladarts.space.networks"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += space_imports(module)
    assert seen == set(runtimes.BUILDER_MODULES)
    assert "ladarts.space.sampling" not in seen


def test_disk_cache_keeps_the_recently_used_within_its_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("LADARTS_EXPORT_CACHE", str(tmp_path))
    monkeypatch.setenv("LADARTS_EXPORT_CACHE_GB", str(2.5 * 1000 / 2**30))  # room for two 1000-byte files
    store = cache.ExportCache(entries=1)
    for name in ("a", "b"):
        store.put(name, "onnx", bytes(1000), persistent=True)
    assert store.get("a", "onnx", persistent=True)[1] == "disk"  # used: now the most recent
    store.put("c", "onnx", bytes(1000), persistent=True)
    assert sorted(p.stem for p in tmp_path.glob("*.onnx")) == ["a", "c"]
    store.put("compiled", "inductor", object(), persistent=False)  # a compiled module stays in memory
    assert not list(tmp_path.glob("*.inductor"))
    monkeypatch.setenv("LADARTS_EXPORT_CACHE", "off")
    assert cache.cache_dir() is None


def test_exports_made_ahead_in_other_processes_are_loaded_from_disk(tmp_path, capsys, monkeypatch):
    """``measure --export-only --jobs 2`` exports the campaign in two processes and writes no database; a rerun
    finds them cached; the timing process then loads each from disk, and a second export-only skips the timed."""
    import json

    monkeypatch.setenv("LADARTS_EXPORT_CACHE", str(tmp_path / "cache"))  # its own: the file's holds DARTS_V2
    platform = tiny("onnxruntime")
    db, n = tmp_path / "ahead.db", 3
    args = ["measure", "--runtime", "onnxruntime", "--n", str(n), "--seed", "7", "--db", str(db), *TINY_ARGS]
    assert main([*args, "--export-only", "--jobs", "2", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert (first["exported"], first["cached"], first["skipped"]) == (n, 0, 0)
    assert first["references"] == {"exported": len(DRIFT_REFERENCES)}  # the timing session's, with weights seed 0
    assert not db.exists() and Path(f"{db}.export-config.json").exists()
    assert main([*args, "--export-only", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["cached"], again["references"]) == (n, {"cached": len(DRIFT_REFERENCES)})
    runtimes.EXPORTS.clear_memory()  # as the timing process starts
    assert [runtimes.load(g, platform).cache for _, g in campaign_items(n, 7, sampler="stratified")] == ["disk"] * n
    assert [runtimes.load(ZOO[name], platform).cache for name in DRIFT_REFERENCES] == ["disk"] * len(DRIFT_REFERENCES)
    assert main([*args, "--pairs", "2", "--json"]) == 0
    capsys.readouterr()
    assert main([*args, "--n", str(n + 1), "--export-only", "--json"]) == 0
    last = json.loads(capsys.readouterr().out)
    assert (last["skipped"], last["exported"]) == (n, 1)  # the timed ones are not exported again
    assert main([*args, "--from-run", "main", "--export-only", "--json"]) == 0  # a re-timing finds them cached
    assert json.loads(capsys.readouterr().out)["cached"] == n


@pytest.mark.parametrize("extra,env,needle", [([], None, "exports nothing"),
                                              (["--runtime", "onnxruntime", "--from-run", "main"], None,
                                               "no such database"),
                                              (["--ray", "auto"], None, "drop --ray"),
                                              (["--runtime", "onnxruntime"], "off", "export cache is off")])
def test_export_only_refuses_what_it_cannot_prepare_in_one_line(extra, env, needle, tmp_path, capsys, monkeypatch):
    if env is not None:
        monkeypatch.setenv("LADARTS_EXPORT_CACHE", env)
    db = tmp_path / "none.db"
    code = main(["measure", "--n", "1", "--db", str(db), *TINY_ARGS, "--export-only", *extra])
    err = capsys.readouterr().err
    assert_one_line_error(types.SimpleNamespace(returncode=code, stderr=err))
    assert needle in err and not db.exists()


def test_export_only_compiles_an_artefact_that_cannot_leave_its_process(monkeypatch):
    """Inductor's compiled module stays in its process: exporting it ahead compiles it (for inductor's own disk
    caches) and keeps nothing in ladarts' cache."""
    compiled = []
    fake = types.SimpleNamespace(ARTEFACT="inductor", PERSISTENT=False, artefact_settings=lambda p: {},
                                 export=lambda module, x, p: compiled.append(module) or object())
    monkeypatch.setattr(runtimes, "backend", lambda platform: fake)
    before = dict(runtimes.EXPORTS._memory)
    assert runtimes.export_only(ZOO["DARTS_V2"], Platform(network=TINY)) == "compiled"
    assert len(compiled) == 1 and runtimes.EXPORTS._memory == before


# A plain ``kill`` reaches the command only; Ctrl-C reaches its whole process group. ExecuTorch's lowering makes
# multiprocessing semaphores (tqdm's lock) inside the export processes, which a stop must not report leaked.
# ExecuTorch killed (~14 s) is kept out of CI: ONNX Runtime killed and ExecuTorch stopped by Ctrl-C cover both
# ways of stopping and ExecuTorch's exporting processes
@pytest.mark.parametrize("runtime,stop", [("onnxruntime", "kill"),
                                          pytest.param("executorch", "kill", marks=pytest.mark.slow),
                                          ("executorch", "ctrl-c")])
def test_a_stopped_export_ahead_ends_its_processes(runtime, stop, tmp_path):
    """Stopped, ``measure --export-only`` ends its export processes with it and prints one line; a runtime's
    native log lines (``[file.cpp:N] ...``, printed as its processes start) aside."""
    import os
    import signal
    import subprocess
    import time

    tiny(runtime)  # skipped where the runtime is not installed
    export_cache = tmp_path / "exports"  # its own: the processes must be exporting when they are stopped
    env = {**os.environ, "LADARTS_EXPORT_CACHE": str(export_cache)}
    proc = subprocess.Popen([sys.executable, "-m", "ladarts", "measure", "--runtime", runtime, "--n", "500",
                             "--db", str(tmp_path / "x.db"), *TINY_ARGS, "--export-only", "--jobs", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    children: set[int] = set()
    try:
        deadline = time.time() + 180
        while time.time() < deadline and not (len(children) >= 3 and list(export_cache.glob("*.*"))):
            time.sleep(0.2)  # 2 export processes and the resource tracker, once exports are being written
            path = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
            children |= {int(c) for c in path.read_text().split()} if path.exists() else set()
        assert proc.poll() is None and len(children) >= 3, "the export processes never started"
        if stop == "kill":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        # The two processes write their native lines at once, so they interleave mid-line, even split a source
        # location ("[a.cpp[:a.cpp:71] ..." then "71] ..."): no filter can name them. What is ladarts's own is the
        # one line, last, and no traceback.
        lines = [line for line in err.splitlines() if line.strip()]
        assert proc.returncode == 130 and lines[-1] == "ladarts: interrupted", err
        assert [line for line in lines if "ladarts" in line] == ["ladarts: interrupted"], err
        assert "Traceback" not in err, err
        deadline = time.time() + 30
        while time.time() < deadline and any(Path(f"/proc/{c}").exists() for c in children):
            time.sleep(0.2)
        assert not [c for c in children if Path(f"/proc/{c}").exists()], "export processes outlived the command"
    finally:
        for pid in [proc.pid, *children]:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        proc.wait(10)
