"""Rank consistency across platforms (`ladarts db ranks`): every pair's τ, ρ and concordant share, and a heat map."""

import json

import numpy as np

from ladarts.hardware import LatencyStore, Platform
from ladarts.hardware.ranks import rank_consistency
from ladarts.report.ranks import ranks_markdown
from ladarts.space import network_config, sample_genotypes

TINY = network_config("cifar", channels=4, cells=3, input_size=8)


def _db(path):
    """Three platforms over 40 architectures: B ranks them as A does (scaled), C in the reverse order."""
    gens = sample_genotypes(40, seed=2)
    base = np.linspace(10, 20, len(gens))
    platforms = {Platform(network=TINY, threads=1): base, Platform(network=TINY, threads=2): 0.6 * base,
                 Platform(network=TINY, runtime="onnxruntime"): base[::-1].copy()}
    with LatencyStore.open_or_create(path) as store:
        for p, lat in platforms.items():
            store.add_calibration(p.key, p.settings(), p.fingerprint(), "DARTS_V2", "t", {"median_ms": 1.0})
            for i, g in enumerate(gens):
                store.add_measurement(g, p.key, "latency", "main", i, {"latency_ms": float(lat[i]), "repeats": 5})
    return [p.key for p in platforms]


def test_rank_consistency_of_every_pair(tmp_path):
    keys = _db(tmp_path / "lat.db")
    with LatencyStore.open(tmp_path / "lat.db") as store:
        res = rank_consistency(store)
    assert res["platforms"] == keys and len(res["pairs"]) == 3
    by = {(p["a"], p["b"]): p for p in res["pairs"]}
    assert by[(keys[0], keys[1])]["kendall_tau_b"] == 1.0 and by[(keys[0], keys[1])]["concordant_share"] == 1.0
    assert by[(keys[0], keys[2])]["kendall_tau_b"] == -1.0 and by[(keys[0], keys[2])]["n"] == 40
    m = np.array(res["matrices"]["kendall_tau_b"])
    assert np.allclose(m, m.T) and np.allclose(np.diag(m), 1.0)
    with LatencyStore.open(tmp_path / "lat.db") as store:
        few = rank_consistency(store, min_common=41)
    assert few["pairs"] == [] and [p["n"] for p in few["left_out"]] == [40, 40, 40]
    assert "fewer than 41 architectures in common" in ranks_markdown(few)


def test_cli_db_ranks_prints_the_table_and_draws_the_heat_map(tmp_path, run_cli):
    _db(tmp_path / "lat.db")
    proc = run_cli("db", "ranks", str(tmp_path / "lat.db"), "--out", str(tmp_path / "ranks.png"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n| torch-cpu") == 3 and "100.0%" in proc.stdout and "0.0%" in proc.stdout
    assert (tmp_path / "ranks.png").read_bytes()[:4] == b"\x89PNG"
    js = json.loads(run_cli("db", "ranks", str(tmp_path / "lat.db"), "--json").stdout)
    assert len(js["pairs"]) == 3
