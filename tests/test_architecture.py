"""The layers of the pipeline and the CLI's cheap start, as checks that can fail."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    """The contracts in pyproject.toml ([tool.importlinter]): space, search, predict and report stay in their layer."""
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--no-cache"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout or "broken" not in proc.stdout.split("Contracts:")[-1]


def test_registering_the_commands_loads_no_heavy_library():
    """`ladarts --help` builds every command's parser; it must not import torch, scipy, sklearn or the hardware."""
    code = ("import sys; from ladarts.cli import build_parser; build_parser(); "
            "heavy = [m for m in ('torch', 'scipy', 'sklearn', 'numpy', 'matplotlib', 'ladarts.hardware') "
            "if m in sys.modules]; print(heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout


def test_search_does_not_load_the_measurement_stack():
    code = ("import sys; import ladarts.search; "
            "print([m for m in ('sqlite3', 'scipy', 'ladarts.train', 'ladarts.hardware') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout


def test_the_runtime_help_names_every_runtime():
    from ladarts.cli.common import RUNTIME_HELP
    from ladarts.hardware.platform import RUNTIMES

    assert {w.strip().split(" ")[0] for w in RUNTIME_HELP.split(",")} == set(RUNTIMES)
