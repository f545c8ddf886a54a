import os
import subprocess
import sys

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _export_cache(tmp_path_factory):
    """The suite's exported networks go to a temporary folder, never into the user's ~/.cache."""
    old = os.environ.get("LADARTS_EXPORT_CACHE")
    os.environ["LADARTS_EXPORT_CACHE"] = str(tmp_path_factory.mktemp("export-cache"))
    yield
    if old is None:
        os.environ.pop("LADARTS_EXPORT_CACHE", None)
    else:
        os.environ["LADARTS_EXPORT_CACHE"] = old


@pytest.fixture
def run_cli():
    """Run ``python -m ladarts`` in a subprocess: what a user sees, exit code, stdout and stderr."""

    def run(*args: str, cwd=None, timeout=300) -> subprocess.CompletedProcess:
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        return subprocess.run(
            [sys.executable, "-m", "ladarts", *args], capture_output=True, text=True, cwd=cwd, env=env,
            timeout=timeout,
        )

    return run


@pytest.fixture
def cli(capsys):
    """Run the CLI in this process (much faster than a subprocess): exit code, stdout and stderr, as ``run_cli``."""
    from ladarts.cli import main

    def run(*args: str) -> subprocess.CompletedProcess:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as e:
            code = e.code
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out, err)

    return run


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int = 2) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "error" in lines[0]
