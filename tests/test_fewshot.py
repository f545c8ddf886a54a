"""The few-shot LPM for an unseen platform (ladarts.predict.fewshot) and `ladarts transfer`'s choice of prior."""

import copy
import json
import zlib

import numpy as np
import pytest
import torch

from conftest import assert_one_line_error
from ladarts.errors import UserInputError
from ladarts.hardware import LatencyStore, Platform
from ladarts.predict import LPM, LPMConfig, PlatformPrior, adapt_prior, fit_dataset, fit_prior, regression_metrics
from ladarts.predict.fewshot import Head, choose_head, fit_head, edge_features
from ladarts.predict.fit import LatencyDataset, split_indices
from ladarts.predict.synthetic import additive_latency
from ladarts.space import arch_hash, encode_many, network_config, sample_genotypes
from ladarts.space.encoding import ENCODING_SHAPE

FAST = LPMConfig(max_epochs=40, patience=10)
#: Each platform's per-op cost table is a mix of three unlike bases (conv-bound, memory-bound, ...).
MIXES = {"src-a": (1.0, 0.0, 0.0), "src-b": (0.0, 1.0, 0.0), "src-c": (0.0, 0.0, 1.0), "src-d": (0.6, 0.6, 0.2)}
TARGET_MIX = (0.2, 1.0, 0.7)


def bases(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(3):
        base = rng.uniform(0.05, 3.0, size=ENCODING_SHAPE[2])
        base[0] = 0.0  # 'none' costs nothing anywhere
        out.append(np.stack([base, 0.3 * base])[:, None, :] * rng.uniform(0.8, 1.2, size=ENCODING_SHAPE))
    return out


def platform(name: str, mix: tuple[float, ...], n: int, stream: int, noise: float = 0.02) -> LatencyDataset:
    """``n`` architectures of sample stream ``stream`` on a platform whose costs are ``mix`` of the bases."""
    gens = sample_genotypes(n, stream)
    enc = encode_many(gens)
    table = sum(w * b for w, b in zip(mix, bases()))
    y = additive_latency(enc.numpy(), table, fixed_ms=5.0)
    y = y * (1 + noise * np.random.default_rng(zlib.crc32(name.encode()) + stream).standard_normal(n))
    return LatencyDataset([arch_hash(g) for g in gens], gens, enc, y, name, ["main"])


@pytest.fixture(scope="module")
def priors():
    sources = {name: platform(name, mix, 300, stream=0) for name, mix in MIXES.items()}
    return {space: fit_prior(sources, seed=0, config=FAST, space=space) for space in ("ms", "log")}


def test_multi_platform_prior_beats_scratch_at_k20(priors):
    target = platform("target", TARGET_MIX, 320, stream=1)
    taus, mapes = {"fewshot": [], "scratch": []}, {"fewshot": [], "scratch": []}
    for seed in range(2):
        rest, idx = split_indices(target.hashes, n_second=20, seed=seed)
        shots, test = target.subset(idx), target.subset(rest)
        lpm, info = adapt_prior(priors["ms"], shots, seed=seed)
        scratch, _ = fit_dataset(shots, seed=seed, config=LPMConfig(val_fraction=0.2))
        for name, model in (("fewshot", lpm), ("scratch", scratch)):
            m = regression_metrics(model.predict_encodings(test.encodings), test.latency_ms)
            taus[name].append(m["kendall_tau_b"])
            mapes[name].append(m["mape_pct"])
        assert info["k"] == 20 and [s["key"] for s in info["sources"]] == list(MIXES)
    assert np.mean(taus["fewshot"]) > np.mean(taus["scratch"]) + 0.05, taus
    assert np.mean(mapes["fewshot"]) < np.mean(mapes["scratch"]), mapes
    assert np.mean(taus["fewshot"]) > 0.8, taus


def perturbed(prior: PlatformPrior) -> PlatformPrior:
    """A copy whose MLPs all contribute (a fit may keep the MLP's output layer at zero): the fold must carry them."""
    lpms = [copy.deepcopy(lpm) for lpm in prior.lpms]
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for lpm in lpms:
            for layer in (m for m in lpm.mlp if isinstance(m, torch.nn.Linear)):
                layer.weight.add_(0.05 * torch.randn(layer.weight.shape, generator=g))
                layer.bias.add_(0.05 * torch.randn(layer.bias.shape, generator=g))
    return PlatformPrior(lpms, prior.keys, prior.n_archs)


@pytest.mark.parametrize("space", ["ms", "log"])
def test_the_folded_lpm_is_the_head_and_survives_save_and_load(priors, space, tmp_path):
    prior = perturbed(priors[space])
    target = platform("target", TARGET_MIX, 60, stream=2)
    shots, test = target.subset(range(30)), target.subset(range(30, 60))
    lpm, info = adapt_prior(prior, shots, variant="sources+ops")
    head = fit_head(prior.features(shots.encodings), edge_features(shots.encodings), shots.latency_ms, "sources+ops",
                    space)
    want = head.predict(prior.features(test.encodings), edge_features(test.encodings))
    got = lpm.predict_encodings(test.encodings)
    np.testing.assert_allclose(got, want, rtol=1e-4)
    assert lpm.config.width == sum(p.config.width for p in prior.lpms) and lpm.config.output == space
    assert info["space"] == space and lpm.meta["training"]["arch_hashes"] == shots.hashes
    lpm.save(tmp_path / "lpm")
    back = LPM.load(tmp_path / "lpm", expect_platform="target")  # passes the load-time sanity checks
    np.testing.assert_allclose(back.predict_encodings(test.encodings), got, rtol=1e-5)
    enc = test.encodings[:2].clone().requires_grad_(True)  # differentiable, as the search needs
    back(enc).sum().backward()
    assert enc.grad is not None and torch.isfinite(enc.grad).all()


def test_fold_handles_deeper_source_mlps():
    sources = {name: platform(name, mix, 80, stream=0) for name, mix in list(MIXES.items())[:2]}
    prior = perturbed(fit_prior(sources, config=LPMConfig(depth=2, width=16, max_epochs=5, patience=2), space="log"))
    shots = platform("target", TARGET_MIX, 40, stream=3)
    lpm, _ = adapt_prior(prior, shots, variant="sources")
    head = fit_head(prior.features(shots.encodings), edge_features(shots.encodings), shots.latency_ms, "sources", "log")
    np.testing.assert_allclose(lpm.predict_encodings(shots.encodings),
                               head.predict(prior.features(shots.encodings), edge_features(shots.encodings)), rtol=1e-4)


def test_the_leave_one_out_error_is_exact(monkeypatch):
    """The K×K dual's leave-one-out error equals refitting without each sample in turn (log space, one grid point)."""
    import ladarts.predict.fewshot as fewshot

    monkeypatch.setattr(fewshot, "GRID", (0.05,))
    monkeypatch.setattr(fewshot, "EDGE_GRID", (10.0,))
    rng = np.random.default_rng(0)
    s = rng.normal(size=(15, 3))
    x = edge_features(encode_many(sample_genotypes(15, seed=3)))
    y = np.exp(2 + 0.3 * s[:, 0] + x @ rng.normal(scale=0.05, size=x.shape[1]) + rng.normal(scale=0.05, size=15))
    head = fit_head(s, x, y, "sources+ops", "log")
    assert (head.alpha, head.beta, head.gamma) == (0.05, 0.05, 10.0)
    errors = []
    monkeypatch.setattr(fewshot, "GRID", (0.05 * 15 / 14,))  # the penalty scales with K: keep it for K − 1
    for i in range(15):
        keep = np.arange(15) != i
        h = fit_head(s[keep], x[keep], y[keep], "sources+ops", "log")
        errors.append(np.log(h.predict(s[i : i + 1], x[i : i + 1])[0] / y[i]))
    assert head.loo_error == pytest.approx(float(np.sqrt(np.mean(np.square(errors)))), rel=1e-6)


def _head(variant: str, loo: list[float]) -> Head:
    loo = np.asarray(loo, dtype=float)
    rms = float(np.sqrt(np.mean(loo ** 2)))
    return Head(variant, "ms", 0.0, np.zeros(2), np.zeros(3), 1.0, 1.0, 10.0, rms, loo, {})


def test_auto_keeps_the_nested_head_unless_another_is_clearly_better():
    """A lower leave-one-out error that two samples make (within a standard error) does not displace sources+ops;
    one lower on every sample does; of several clearly better heads the lowest wins; without the nested head, the
    lowest."""
    nested = _head("sources+ops", [1.0] * 20)
    lucky = _head("ops", [0.5, 1.2] + [1.0] * 18)  # lower error overall, but from two samples pulling both ways
    assert lucky.loo_error < nested.loo_error
    assert choose_head([nested, lucky]) is nested
    clearly = _head("ops", [0.8] * 20)
    assert choose_head([nested, lucky, clearly]) is clearly
    clearer = _head("sources", [0.7] * 19 + [0.9])
    assert choose_head([clearly, nested, clearer]) is clearer
    assert choose_head([lucky, clearly]) is clearly


def test_an_unrelated_source_gets_little_weight(priors):
    """A source whose latencies are noise should not drag the target: its weight ends far below the others'."""
    rng = np.random.default_rng(5)
    target = platform("target", MIXES["src-b"], 50, stream=4)
    prior = priors["ms"]
    s = prior.features(target.encodings)
    noise = rng.uniform(s.min(), s.max(), size=(len(s), 1))
    head = fit_head(np.concatenate([s, noise], axis=1), edge_features(target.encodings), target.latency_ms, "sources")
    scaled = head.w * np.concatenate([s, noise], axis=1).mean(axis=0)  # each source's share of the prediction
    assert abs(scaled[-1]) < 0.2 * abs(scaled[1]), scaled


def test_bad_prior_inputs_are_user_errors(priors):
    target = platform("target", TARGET_MIX, 10, stream=5)
    with pytest.raises(UserInputError, match="at least 4"):
        adapt_prior(priors["ms"], target.subset(range(3)))
    with pytest.raises(UserInputError, match="source platforms"):
        adapt_prior(priors["ms"], platform("src-a", MIXES["src-a"], 10, stream=5))
    with pytest.raises(UserInputError, match="unknown few-shot head"):
        adapt_prior(priors["ms"], target, variant="nope")
    with pytest.raises(UserInputError, match="output space"):
        PlatformPrior([priors["ms"].lpms[0], priors["log"].lpms[1]], ["a", "b"], [1, 1])


# ---- `ladarts transfer` -------------------------------------------------------------------------------------------
TINY_NET = network_config("cifar", channels=4, cells=3, input_size=8)


def make_db(path, runtimes: dict[str, tuple[float, ...]], n: int = 120) -> dict[str, str]:
    """A database with one platform per runtime name, each a mix of the bases (no timing)."""
    gens = sample_genotypes(n, seed=0)
    enc = encode_many(gens).numpy()
    keys = {}
    with LatencyStore.open_or_create(path) as store:
        for (runtime, threads), mix in runtimes.items():
            p = Platform(runtime=runtime, threads=threads, network=TINY_NET)
            keys[f"{runtime}-t{threads}"] = p.key
            store.add_calibration(p.key, p.settings(), p.fingerprint(), "DARTS_V2", "synthetic", {"median_ms": 1.0})
            y = additive_latency(enc, sum(w * b for w, b in zip(mix, bases())), 5.0)
            for i, g in enumerate(gens):
                store.add_measurement(g, p.key, "latency", "main", i, {"latency_ms": float(y[i]), "repeats": 10})
    return keys


@pytest.fixture(scope="module")
def dbs(tmp_path_factory):
    d = tmp_path_factory.mktemp("fewshot-db")
    three = make_db(d / "three.db", {("torch", 1): MIXES["src-a"], ("torch", 2): MIXES["src-b"],
                                     ("onnxruntime", 1): TARGET_MIX})
    two = make_db(d / "two.db", {("torch", 1): MIXES["src-a"], ("onnxruntime", 1): TARGET_MIX})
    make_db(d / "one.db", {("onnxruntime", 1): TARGET_MIX})
    return d, three, two


def test_transfer_uses_the_multi_platform_prior_when_the_db_holds_other_platforms(dbs, cli, tmp_path):
    d, keys, _ = dbs
    out = tmp_path / "lpm"
    proc = cli("transfer", "--db", str(d / "three.db"), "--platform", "onnxruntime", "--k", "20", "--out", str(out),
               "--threads", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert rep["prior"] == "multi-platform" and "multi-platform" in rep["prior_note"]
    assert sorted(rep["sources"]) == sorted([keys["torch-t1"], keys["torch-t2"]])
    # scored on 30% of the 100 architectures outside the K, which the sources are fitted without
    assert set(rep["metrics"]) == {"fewshot", "scratch"} and (rep["n_eval"], rep["n_excluded_seen"]) == (30, 70)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["platform"]["key"] == keys["onnxruntime-t1"] and meta["transfer"]["k"] == 20
    assert json.loads((out / "config.json").read_text())["prior"] == "multi-platform"
    text = cli("transfer", "--db", str(d / "three.db"), "--platform", "onnxruntime", "--k", "20",
               "--out", str(tmp_path / "again"), "--threads", "1")
    assert text.returncode == 0 and text.stdout.startswith("prior: multi-platform")
    assert "source weights: torch-cpu-t1-b1-float32" in text.stdout
    ev = cli("evaluate", "--lpm", str(out), "--db", str(d / "three.db"), "--platform", "onnxruntime", "--json")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["n_excluded_seen"] == 90  # the K and what the sources were fitted on


def test_transfer_falls_back_to_one_source_and_says_so(dbs, cli, tmp_path):
    d, _, keys = dbs
    src = tmp_path / "src"
    fit = cli("fit", "--db", str(d / "two.db"), "--platform", "torch-cpu", "--out", str(src), "--max-epochs", "20",
              "--threads", "1", "--no-progress", "--json")
    assert fit.returncode == 0, fit.stderr
    proc = cli("transfer", "--lpm", str(src), "--db", str(d / "two.db"), "--platform", "onnxruntime", "--k", "20",
               "--out", str(tmp_path / "t"), "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("prior: single-source") and "multi-platform prior needs 2" in first
    assert "finetuned" in proc.stdout
    alone = cli("transfer", "--db", str(d / "two.db"), "--platform", "onnxruntime", "--k", "20", "--threads", "1",
                "--out", str(tmp_path / "alone"), "--json")  # no --lpm: the one other platform is the prior
    assert alone.returncode == 0 and json.loads(alone.stdout)["sources"] == [keys["torch-t1"]]
    cases = [  # no other platform and no --lpm; --prior single without --lpm; bad K before any fitting
        ("transfer", "--db", str(d / "one.db"), "--platform", "onnxruntime", "--k", "20", "--out", str(tmp_path / "x")),
        ("transfer", "--db", str(d / "three.db"), "--platform", "onnxruntime", "--k", "20", "--prior", "single",
         "--out", str(tmp_path / "x")),
        ("transfer", "--db", str(d / "three.db"), "--platform", "onnxruntime", "--k", "118",
         "--out", str(tmp_path / "x")),
    ]
    for args in cases:
        assert_one_line_error(cli(*args))
