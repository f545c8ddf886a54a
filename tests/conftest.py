import os
import subprocess
import sys

import pytest
import torch

torch.set_num_threads(1)


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


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int = 2) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "error" in lines[0]
