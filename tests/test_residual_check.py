"""benchmarks/residual_check.py: a slice of records timed off the dataset's scale shows as a residual offset."""

import importlib
from pathlib import Path

import numpy as np
import pytest

from ladarts.errors import LadartsError
from ladarts.hardware import LatencyStore, Platform
from ladarts.space import network_config, sample_genotypes

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TINY = network_config("cifar", channels=4, cells=3, input_size=8)


@pytest.fixture
def check(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("residual_check")


def _db(path: Path, offset: float) -> None:
    """Inductor's latency a power law of eager's and ORT's with some scatter; its last 20 records ``offset`` high."""
    gens = sample_genotypes(80, seed=3)
    rng = np.random.default_rng(0)
    eager, ort = rng.uniform(10, 30, len(gens)), rng.uniform(5, 15, len(gens))
    inductor = 0.5 * eager ** 0.3 * ort ** 0.8 * np.exp(rng.normal(0, 0.02, len(gens)))
    inductor[60:] *= offset
    platforms = {Platform(network=TINY): eager, Platform(network=TINY, runtime="onnxruntime"): ort,
                 Platform(network=TINY, runtime="inductor"): inductor}
    with LatencyStore.open_or_create(path) as store:
        for p, lat in platforms.items():
            store.add_calibration(p.key, p.settings(), p.fingerprint(), "DARTS_V2", "t", {"median_ms": 1.0})
            for i, g in enumerate(gens):
                store.add_measurement(g, p.key, "latency", "main", i, {"latency_ms": float(lat[i]), "repeats": 5})


def test_an_offset_slice_stands_out_and_the_rest_does_not(check, tmp_path):
    _db(tmp_path / "lat.db", offset=1.05)
    res, names = check.residuals(tmp_path / "lat.db", "inductor", ["torch", "onnxruntime"], fit=40)
    assert names == ["torch", "onnxruntime", "all"] and res.shape == (80, 3)
    both = res[:, 2]
    assert abs(both[:40].mean()) < 1e-9  # least squares with an intercept: zero mean where it was fitted
    assert abs(both[40:60].mean()) < 0.02 and both[60:].mean() == pytest.approx(np.log(1.05), abs=0.02)


def test_a_missing_platform_and_too_few_records_are_errors(check, tmp_path):
    _db(tmp_path / "lat.db", offset=1.0)
    with pytest.raises(LadartsError, match="0 platforms of runtime 'openvino'"):
        check.residuals(tmp_path / "lat.db", "inductor", ["openvino"], fit=40)
    with pytest.raises(LadartsError, match="need more than --fit 80"):
        check.residuals(tmp_path / "lat.db", "inductor", ["torch"], fit=80)
