import json

import numpy as np
import pytest
import torch

from ladarts.errors import UserInputError
from ladarts.hardware import LatencyStore, Platform
from ladarts.hardware.optimings import time_op_table
from ladarts.space.geometry import op_positions
from ladarts.predict import (LPM, LPMConfig, dataset_from_records, evaluate_lpm, fit_baselines, fit_lpm,
                             lut_table, macs_params, mass_path, regression_metrics, synthetic_records,
                             transfer_experiment)
from ladarts.predict.softcheck import balanced_alphas, none_shift, random_alphas
from ladarts.space import ZOO, build_network, count_macs, count_params, encode, encode_many, network_config, \
    sample_genotypes

FAST = LPMConfig(max_epochs=120, patience=25)
TINY_NET = network_config("cifar", channels=4, cells=3, input_size=8)


@pytest.fixture(scope="module")
def fitted():
    """An LPM fitted on 600 architectures of a synthetic additive latency function (no noise)."""
    torch.manual_seed(0)
    lpm, report = fit_lpm(synthetic_records(600, seed=0), seed=0, config=FAST)
    return lpm, report


def test_lpm_learns_an_additive_latency_function(fitted):
    lpm, report = fitted
    test = synthetic_records(300, seed=1)  # other architectures, same latency function
    rep = evaluate_lpm(lpm, test)
    assert rep["n_excluded_seen"] == 0
    assert rep["metrics"]["mape_pct"] < 1.0, rep
    assert rep["metrics"]["kendall_tau_b"] > 0.95
    assert report["n_train"] + report["n_val"] == 600 and report["mean_latency_ms"] > 0
    assert lpm.meta["mean_latency_ms"] == pytest.approx(np.mean([r.latency_ms for r in synthetic_records(600, 0)]))


def _with_interaction(records, strength: float = 2.0):
    """Latency × (1 + strength · share of separable convs in the normal cell × share in the reduction cell): a
    product of two cells' choices, which no sum over edges (the LPM's linear term) can express."""
    from dataclasses import replace

    def share(pairs):
        return sum(op.startswith("sep_conv") for op, _ in pairs) / len(pairs)

    return [replace(r, latency_ms=r.latency_ms * (1 + strength * share(r.genotype.normal) * share(r.genotype.reduce)))
            for r in records]


def test_the_mlp_learns_what_the_linear_term_cannot():
    train = _with_interaction(synthetic_records(800, seed=0))
    test = _with_interaction(synthetic_records(300, seed=1))
    errors = {}
    for name, config in (("linear", LPMConfig(depth=0, max_epochs=150, patience=30)),
                         ("mlp", LPMConfig(depth=1, width=64, max_epochs=300, patience=40))):
        torch.manual_seed(0)
        lpm, _ = fit_lpm(train, seed=0, config=config)
        errors[name] = evaluate_lpm(lpm, test)["metrics"]["mape_pct"]
    assert errors["mlp"] < 0.5 * errors["linear"], errors  # measured: 0.88% against 3.95%


def test_evaluate_leaves_out_what_the_lpm_was_fitted_on(fitted):
    lpm, _ = fitted
    rep = evaluate_lpm(lpm, synthetic_records(650, seed=0))  # 600 seen + 50 new
    assert rep["n_excluded_seen"] == 600 and rep["metrics"]["n"] == 50
    with pytest.raises(UserInputError, match="nothing left"):
        evaluate_lpm(lpm, synthetic_records(20, seed=0))


def test_call_shapes_and_gradient(fitted):
    lpm, _ = fitted
    enc = encode(ZOO["DARTS_V2"]).requires_grad_(True)
    y = lpm(enc)
    assert y.dim() == 0 and float(y.detach()) > 0
    y.backward()
    assert enc.grad is not None and torch.isfinite(enc.grad).all() and enc.grad.abs().sum() > 0
    batch = encode_many(sample_genotypes(5, seed=3))
    out = lpm(batch)
    assert out.shape == (5,)
    assert torch.allclose(out[0], lpm(batch[0]))
    assert torch.allclose(lpm(batch.double()), out)  # a float64 soft encoding works (cast inside)
    with pytest.raises(UserInputError, match="shape"):
        lpm(torch.zeros(2, 14, 7))


def test_reload_predicts_exactly_the_same(fitted, tmp_path):
    lpm, _ = fitted
    batch = encode_many(sample_genotypes(50, seed=9))
    before = lpm(batch).detach()
    lpm.save(tmp_path / "lpm")
    again = LPM.load(tmp_path / "lpm")
    assert torch.equal(again(batch).detach(), before)
    meta = json.loads((tmp_path / "lpm" / "meta.json").read_text())
    assert meta["encoding_version"] == 1 and meta["platform"]["key"] == lpm.platform_key
    assert len(meta["training"]["arch_hashes"]) == 600 and meta["normalisation"]["space"] in ("log_ms", "ms")
    assert again.meta["mean_latency_ms"] == lpm.meta["mean_latency_ms"]


def _corrupt(d, how):
    model, meta_path = d / "model.safetensors", d / "meta.json"
    meta = json.loads(meta_path.read_text())
    if how == "flip_byte":
        b = bytearray(model.read_bytes())
        b[-5] ^= 0xFF
        model.write_bytes(bytes(b))
    elif how == "truncate":
        model.write_bytes(model.read_bytes()[:100])
    elif how == "not_json":
        meta_path.write_text("{broken")
    elif how == "edit_meta":
        meta["mean_latency_ms"] *= 2
        meta_path.write_text(json.dumps(meta))
    elif how == "encoding_version":
        meta["encoding_version"] = 99
        meta_path.write_text(json.dumps(meta))
    elif how == "missing_model":
        model.unlink()
    elif how == "garbage_model":
        blob = b"\xff" * 64
        model.write_bytes(blob)
        import hashlib

        meta["files"]["model.safetensors"] = {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
        meta_path.write_text(json.dumps(meta))


@pytest.mark.parametrize("how,match", [
    ("flip_byte", "sha256 differs"), ("truncate", "truncated"), ("not_json", "not valid JSON"),
    ("edit_meta", "edited after saving"), ("encoding_version", "encoding version 99"),
    ("missing_model", "model.safetensors is missing"), ("garbage_model", "not a readable safetensors"),
])
def test_tampered_or_truncated_files_are_refused(fitted, tmp_path, how, match):
    lpm, _ = fitted
    d = tmp_path / "lpm"
    lpm.save(d)
    _corrupt(d, how)
    with pytest.raises(UserInputError, match=match) as e:
        LPM.load(d)
    assert "\n" not in str(e.value)


def test_weights_of_another_lpm_are_refused(fitted, tmp_path):
    lpm, _ = fitted
    small = LPM(LPMConfig(depth=1, width=8), dict(lpm.meta))
    lpm.save(tmp_path / "a")
    small.save(tmp_path / "b")
    (tmp_path / "a" / "model.safetensors").write_bytes((tmp_path / "b" / "model.safetensors").read_bytes())
    with pytest.raises(UserInputError, match="sha256 differs|truncated|modified"):
        LPM.load(tmp_path / "a")


def test_platform_mismatch_is_an_error_unless_allowed(fitted, tmp_path):
    lpm, _ = fitted
    lpm.save(tmp_path / "lpm")
    LPM.load(tmp_path / "lpm", expect_platform=lpm.platform_key)
    with pytest.raises(UserInputError, match="fitted on platform"):
        LPM.load(tmp_path / "lpm", expect_platform="onnxruntime-cpu-t1/other")
    with pytest.warns(UserWarning, match="mismatch allowed"):
        LPM.load(tmp_path / "lpm", expect_platform="onnxruntime-cpu-t1/other", allow_platform_mismatch=True)
    with pytest.raises(UserInputError, match="not an LPM folder"):
        LPM.load(tmp_path / "nowhere")


def test_metrics_on_known_values():
    m = regression_metrics([11.0, 19.0, 30.0, 44.0], [10.0, 20.0, 30.0, 40.0])
    assert m["mape_pct"] == pytest.approx(100 * (0.1 + 0.05 + 0 + 0.1) / 4)
    assert m["within_5_pct"] == 50.0 and m["within_10_pct"] == 100.0
    assert m["rmse_ms"] == pytest.approx(np.sqrt((1 + 1 + 0 + 16) / 4)) and m["max_abs_err_ms"] == 4.0
    assert m["kendall_tau_b"] == pytest.approx(1.0) and m["spearman_rho"] == pytest.approx(1.0)
    r = regression_metrics([4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0])
    assert r["kendall_tau_b"] == pytest.approx(-1.0)
    assert np.isnan(regression_metrics([5.0, 5.0, 5.0], [1.0, 2.0, 3.0])["kendall_tau_b"])


def test_fit_refuses_bad_record_sets():
    a = synthetic_records(10, seed=0)
    b = synthetic_records(10, seed=1, platform="other/platform")
    with pytest.raises(UserInputError, match="2 platforms"):
        fit_lpm(a + b)
    with pytest.raises(UserInputError, match="at least 4"):
        fit_lpm(a[:3])
    with pytest.raises(UserInputError, match="no latency records"):
        fit_lpm([])


def test_macs_and_params_are_additive_over_edges():
    gens = sample_genotypes(3, seed=11) + [ZOO["DARTS_V2"], ZOO["PC_DARTS_cifar"]]
    macs, params = macs_params(encode_many(gens).numpy(), TINY_NET)
    for g, m, p in zip(gens, macs, params):
        net = build_network(g, TINY_NET)
        assert m == count_macs(net) and p == count_params(net)


def test_op_timings_are_stored_in_place_and_feed_the_lut(tmp_path):
    plat = Platform(network=TINY_NET)
    with LatencyStore.open_or_create(tmp_path / "ops.db") as store:
        rows = time_op_table(plat, store, repeats=2, warmup=0)
        stored = store.op_timings(plat.key)
    assert len(rows) == len(stored) == len(op_positions(TINY_NET)) == 3 * 7 + 2 * 7  # 1 normal + 2 reduce cells
    reduce_in = {(r["edge_stride"], r["height"]) for r in stored if r["cell_kind"] == "reduce" and r["cell_index"] == 1}
    assert reduce_in == {(2, 8), (1, 4)}  # stride-2 edges see the full map, the others the halved one
    table = lut_table(stored, TINY_NET)
    assert table.shape == (2, 14, 8) and (table[..., 0] == 0).all() and (table[..., 1:] > 0).all()
    recs = synthetic_records(60, seed=2)
    data = dataset_from_records(recs)
    models = fit_baselines(data.encodings.numpy(), data.latency_ms, network=TINY_NET, op_timings=stored)
    assert {"constant", "lut_offset", "lut_linear", "macs_params_linear", "gbdt", "ridge_encoding"} <= set(models)
    for f in models.values():
        p = f(data.encodings[:5].numpy())
        assert p.shape == (5,) and np.isfinite(p).all()
    with pytest.raises(UserInputError, match="no op timings"):
        lut_table([], TINY_NET)


def test_soft_encoding_is_monotone_and_none_is_not_free(fitted):
    lpm, _ = fitted
    rng = np.random.default_rng(0)
    for cell, edge in ((0, 3), (1, 0), (0, 12)):
        a = random_alphas(rng, keep_edge=(cell, edge))
        path = mass_path(lpm, a, cell, edge, "skip_connect", "sep_conv_5x5", steps=11, mode="derived")
        assert path[-1] > path[0] * 1.005  # a costlier primitive costs more ...
        assert np.all(np.diff(path) >= -1e-3 * path[:-1])  # ... all along the way
    # shifting every 'none' logit leaves the derived genotype unchanged (none_shift checks it): with plain
    # softmax(α) one direction lowers the prediction; the derivation-aware encoding barely moves
    free = {mode: [none_shift(lpm, balanced_alphas(np.random.default_rng(i)), mode)["free_drop_pct"]
                   for i in range(6)] for mode in ("derived", "softmax")}
    assert np.mean(free["softmax"]) > 1.0, free
    assert np.mean(free["derived"]) < 0.5 * np.mean(free["softmax"]), free


def test_transfer_beats_training_from_scratch_on_k():
    src = synthetic_records(400, seed=0, table_seed=0)
    lpm, _ = fit_lpm(src, seed=0, config=FAST)
    tgt = synthetic_records(150, seed=5, table_seed=1, fixed_ms=5.0, platform="synthetic-b/cifar")
    res = transfer_experiment(lpm, dataset_from_records(tgt), 20, seed=0)
    m = res["metrics"]
    assert res["n_eval"] == 130 and res["target_platform"] == "synthetic-b/cifar"
    assert m["finetuned"]["mape_pct"] < m["scratch"]["mape_pct"], m
    assert res["lpm"].meta["transfer"]["source_platform"] == lpm.platform_key
    assert res["lpm"].platform_key == "synthetic-b/cifar"
    with pytest.raises(UserInputError, match="--k"):
        transfer_experiment(lpm, dataset_from_records(tgt), 2)


def test_transfer_is_scored_only_on_architectures_the_source_never_saw():
    src = synthetic_records(100, seed=0, table_seed=0)
    lpm, _ = fit_lpm(src, seed=0, config=FAST)
    # the target platform timed the source's 100 architectures and 50 more (the same stream, a longer prefix)
    tgt = dataset_from_records(synthetic_records(150, seed=0, table_seed=1, platform="synthetic-b/cifar"))
    res = transfer_experiment(lpm, tgt, 20, seed=0)
    seen = set(lpm.meta["training"]["arch_hashes"])
    assert res["n_eval"] + res["n_excluded_seen"] == 130 and 0 < res["n_eval"] <= 50
    tuned = res["lpm"]
    assert seen <= set(tuned.meta["training"]["source_arch_hashes"])  # evaluate leaves them out too
    rep = evaluate_lpm(tuned, synthetic_records(150, seed=0, table_seed=1, platform="synthetic-b/cifar"))
    assert rep["n_excluded_seen"] == len(seen | set(tuned.meta["training"]["arch_hashes"]))
    with pytest.raises(UserInputError, match="unseen by the source"):
        transfer_experiment(lpm, dataset_from_records(synthetic_records(60, seed=0, table_seed=1,
                                                                        platform="synthetic-b/cifar")), 20)


def test_log_output_and_plain_mlp_variants_fit_and_reload(tmp_path):
    recs = synthetic_records(300, seed=0)
    test = synthetic_records(100, seed=1)
    for cfg in (LPMConfig(output="log", depth=1, width=32, max_epochs=80),
                LPMConfig(pooled=False, staged=False, depth=2, width=32, max_epochs=80, activation="relu")):
        lpm, _ = fit_lpm(recs, seed=0, config=cfg)
        assert evaluate_lpm(lpm, test)["metrics"]["mape_pct"] < 5.0
        lpm.save(tmp_path / cfg.output)
        again = LPM.load(tmp_path / cfg.output)
        enc = encode_many([r.genotype for r in test[:10]])
        assert torch.equal(again(enc), lpm(enc)) and again.config == cfg
    with pytest.raises(UserInputError, match="output"):
        LPMConfig(output="sqrt")
