"""Few-shot LPM for a platform it has never seen: leave-one-platform-out (LOPO) over a multi-platform database.

Each platform P with enough architectures is held out in turn; the other platforms are the sources. K = 10, 20,
50, 100 of P's architectures (several seeds of the draw) adapt each method; all are scored on the same
architectures of P: those in a fixed evaluation pool (a share of all architecture hashes) that no LPM of any
platform is trained on, so the source LPMs' predictions there are out of sample too. Compared:

* ``fewshot``: the multi-platform prior (:mod:`ladarts.predict.fewshot`), its head chosen by leave-one-out on the
  K ("auto") in the space (ms or log) that won an inner LOPO over the sources alone (each source held out in
  turn, adapted from the others, at every K and seed): P's data never takes part in the choice. With fewer than
  two sources there is no inner LOPO and the library's default is used.
* each head itself, (space ``ms`` or ``log``) × (variant ``auto``, ``sources+ops``, ``sources``, ``ops``), to show
  what the choice was among, and ``lowest-loo``: the head of lowest leave-one-out error, ``auto``'s rule before
  :func:`~ladarts.predict.fewshot.choose_head` (kept to compare the two rules);
* ``scratch``: the LPM trained on the K alone (the recipe of ``transfer_experiment``);
* single-source ``transfer`` (``fine_tune``, as ``transfer_experiment`` calls it) from each source platform's LPM:
  the mean over sources, and the best source (chosen on P's evaluation data: an oracle, an upper bound);
* P's own noise floor: its run a as a predictor of its run b (``noise_floor``).

    python benchmarks/bench_fewshot.py --db benchmarks/data/multiplatform/darts_cifar_latency.db \\
        --json benchmarks/data/bench_fewshot.json
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from collections import defaultdict

import numpy as np
import torch

from ladarts.errors import UserInputError
from ladarts.hardware import LatencyStore
from ladarts.io import atomic_write_json, json_safe
from ladarts.predict import LPMConfig, dataset_from_records, fine_tune, fit_dataset, regression_metrics
from ladarts.predict.compare import noise_floor
from ladarts.predict.fewshot import (DEFAULT_SPACE, DEFAULT_VARIANT, MIN_SOURCE_ARCHS, SPACES, VARIANTS,
                                     adapt_prior, choose_head, fit_head, fit_prior, edge_features)
from ladarts.predict.fit import split_indices

from common import machine, stamp

EVAL_SEED = 1000  # the evaluation pool's draw: fixed, independent of the K draws
LOWEST_LOO = "lowest-loo"  # the head of lowest leave-one-out error: "auto"'s earlier rule


CANDIDATES = [f"{space}:{variant}" for space in SPACES for variant in (*VARIANTS, LOWEST_LOO)]
#: What the nested evaluation chooses between: the space; the head within it is chosen by leave-one-out on the K.
NESTED = [f"{space}:auto" for space in SPACES]


def short(key: str) -> str:
    return key.split("/")[0]


def tau(m: dict) -> float:
    """Kendall τ, 0 where undefined (a constant prediction ranks nothing)."""
    t = m["kendall_tau_b"]
    return 0.0 if t is None or t != t else float(t)


def load(db: str) -> tuple[dict, dict, dict, dict]:
    """Every platform's architectures (all runs, averaged), its row, its runs, and its noise floor (if 2 runs)."""
    data, rows, runs, floors = {}, {}, {}, {}
    with LatencyStore.open(db) as store:
        for key in store.platforms():
            recs = store.records(key)
            if not recs:
                continue
            data[key], rows[key], runs[key] = dataset_from_records(recs), store.platform_row(key), store.runs(key)
            try:
                ra, rb = store.noise_runs(key)
                floors[key] = noise_floor(dataset_from_records(store.records(key, run=ra)),
                                          dataset_from_records(store.records(key, run=rb)))
                floors[key]["runs"] = [ra, rb]
            except UserInputError:
                floors[key] = None
    return data, rows, runs, floors


def summarise(rows: list[dict], methods: list[str], ks: list[int]) -> dict:
    """Per (K, method): seed-means per platform, then their mean and the worst platform."""
    out: dict = {}
    for k in ks:
        per: dict = defaultdict(lambda: defaultdict(list))
        for r in rows:
            if r["k"] == k:
                for m in methods:
                    if m in r["metrics"]:
                        per[m][r["target"]].append(r["metrics"][m])
        out[k] = {}
        for m in methods:
            if not per[m]:
                continue
            taus = {p: float(np.mean([tau(x) for x in v])) for p, v in per[m].items()}
            mape = {p: float(np.mean([x["mape_pct"] for x in v])) for p, v in per[m].items()}
            worst_tau = min(taus, key=taus.get)
            worst_mape = max(mape, key=mape.get)
            out[k][m] = {"tau_mean": float(np.mean(list(taus.values()))), "tau_worst": taus[worst_tau],
                         "tau_worst_platform": worst_tau, "mape_mean": float(np.mean(list(mape.values()))),
                         "mape_worst": mape[worst_mape], "mape_worst_platform": worst_mape,
                         "platforms_tau_ge_0.8": sum(t >= 0.8 for t in taus.values()), "n_platforms": len(taus),
                         "per_platform": {p: {"tau": taus[p], "mape": mape[p]} for p in taus}}
    return out


_ONE_TARGET = None


def _one_target(p: str):
    return _ONE_TARGET(p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="benchmarks/data/multiplatform/darts_cifar_latency.db")
    ap.add_argument("--k", default="10,20,50,100", help="comma-separated K values")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds of the K draw")
    ap.add_argument("--json", help="write the full results here")
    ap.add_argument("--eval-fraction", type=float, default=0.3, help="share of architectures held out for scoring")
    ap.add_argument("--eval-seed", type=int, default=EVAL_SEED,
                    help="seed of the evaluation pool's draw (another gives a second split, to choose a rule on)")
    ap.add_argument("--min-archs", type=int, default=60, help="architectures a platform needs to be held out")
    ap.add_argument("--no-single", action="store_true", help="skip single-source transfer (the slow baseline)")
    ap.add_argument("--jobs", type=int, default=1, help="held-out platforms evaluated in parallel (fork), 1 thread "
                    "each; the figures do not depend on it")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ks, seeds = [int(x) for x in args.k.split(",")], [int(x) for x in args.seeds.split(",")]
    t0 = time.time()
    data, prow, runs, floors = load(args.db)
    union = sorted({h for d in data.values() for h in d.hashes})
    _, ev = split_indices(union, fraction=args.eval_fraction, seed=args.eval_seed)
    eval_pool = {union[i] for i in ev}
    pool, test = {}, {}
    for key, d in data.items():
        inside = np.array([h in eval_pool for h in d.hashes])
        pool[key], test[key] = d.subset(np.flatnonzero(~inside)), d.subset(np.flatnonzero(inside))
    sources = [p for p in data if len(pool[p]) >= MIN_SOURCE_ARCHS]
    targets = [p for p in data if len(data[p]) >= args.min_archs and len(test[p]) >= 10]
    print(f"{args.db}: {len(data)} platforms, {len(union)} architectures; evaluation pool {len(eval_pool)}")
    for p in data:
        f = floors[p]
        print(f"  {short(p)}: {len(data[p])} archs (runs {runs[p]}), {len(pool[p])} fit / {len(test[p])} eval"
              + (f"; noise floor τ {f['kendall_tau_b']:.3f} MAPE {f['mape_pct']:.2f}% ({f['n']} archs)" if f else "")
              + ("" if p in sources else "; too few to be a source") + ("" if p in targets else "; not held out"),
              flush=True)

    # the ms-space prior's LPMs are the default LPM recipe: the single-source transfer starts from the same ones
    priors = {space: fit_prior({p: pool[p] for p in sources}, seed=0, rows=prow, space=space) for space in SPACES}
    single = {} if args.no_single else dict(zip(priors["ms"].keys, priors["ms"].lpms))
    counts = {p: edge_features(test[p].encodings) for p in data}
    feats = {space: {p: pr.features(test[p].encodings) for p in data} for space, pr in priors.items()}
    print(f"fitted {len(sources)} source LPMs ({time.time() - t0:.0f} s)", flush=True)

    def draw(p: str, k: int, seed: int):
        _, idx = split_indices(pool[p].hashes, n_second=k, seed=seed)
        return pool[p].subset(idx)

    def head_scores(p: str, src: list[str], k: int, seed: int) -> dict[str, dict]:
        """Every head (space, variant) adapted from ``src`` with K of ``p``: metrics on ``p``'s evaluation pool."""
        shots = draw(p, k, seed)
        c_k = edge_features(shots.encodings)
        out = {}
        for space, prior in priors.items():
            cols = [prior.keys.index(s) for s in src]
            s_k = prior.features(shots.encodings)[:, cols]
            heads = {v: fit_head(s_k, c_k, shots.latency_ms, v, space) for v in VARIANTS if v != "auto"}
            fixed = list(heads.values())
            heads["auto"] = choose_head(fixed)  # what fit_head(..., "auto") returns
            heads[LOWEST_LOO] = min(fixed, key=lambda h: h.loo_error)
            for v, h in heads.items():
                out[f"{space}:{v}"] = regression_metrics(h.predict(feats[space][p][:, cols], counts[p]),
                                                         test[p].latency_ms)
        return out

    def one_target(p: str) -> tuple[list[dict], list[dict]]:
        """Held-out platform ``p``: its rows (every K and seed) and its pick of the head's space."""
        rows, picks = [], []
        src = [s for s in sources if s != p]
        if not src:
            print(f"{short(p)}: no source platform; skipped")
            return rows, picks
        # inner LOPO over the sources only, all K and seeds: which space serves a platform like P best?
        inner = defaultdict(list)
        for q in (s for s in src if s in targets):
            rest = [s for s in src if s != q]
            for k in (k for k in ks if rest and len(pool[q]) > k):
                for seed in seeds:
                    for c, m in head_scores(q, rest, k, seed).items():
                        if c in NESTED:
                            inner[c].append(tau(m))
        pick = max(inner, key=lambda c: np.mean(inner[c])) if inner else f"{DEFAULT_SPACE}:{DEFAULT_VARIANT}"
        picks.append({"target": p, "pick": pick, "inner_tau": {c: float(np.mean(x)) for c, x in inner.items()},
                      "inner_n": {c: len(x) for c, x in inner.items()}})
        space, variant = pick.split(":")
        sub = priors[space].subset(src)
        for k in ks:
            if len(pool[p]) <= k:
                print(f"{short(p)} K={k}: only {len(pool[p])} architectures outside the evaluation pool; skipped")
                continue
            for seed in seeds:
                shots = draw(p, k, seed)
                metrics = {f"head:{v}": m for v, m in head_scores(p, src, k, seed).items()}
                lpm, info = adapt_prior(sub, shots, variant=variant, seed=seed, platform_row=prow[p])
                metrics["fewshot"] = regression_metrics(lpm.predict_encodings(test[p].encodings), test[p].latency_ms)
                scratch, _ = fit_dataset(shots, seed=seed, platform_row=prow[p], config=LPMConfig(val_fraction=0.2))
                metrics["scratch"] = regression_metrics(scratch.predict_encodings(test[p].encodings),
                                                        test[p].latency_ms)
                per_source = {}
                for q in (s for s in src if s in single):
                    tuned, _ = fine_tune(single[q], shots, seed=seed, platform_row=prow[p])
                    per_source[q] = regression_metrics(tuned.predict_encodings(test[p].encodings),
                                                       test[p].latency_ms)
                if per_source:
                    best = max(per_source, key=lambda q: tau(per_source[q]))
                    metrics["single_best"] = {**per_source[best], "source": best}
                    metrics["single_mean"] = {
                        "kendall_tau_b": float(np.mean([tau(m) for m in per_source.values()])),
                        "mape_pct": float(np.mean([m["mape_pct"] for m in per_source.values()]))}
                rows.append({"target": p, "k": k, "seed": seed, "pick": pick, "n_eval": len(test[p]),
                             "weights": {s["key"]: s["weight"] for s in info["sources"]}, "head": info["variant"],
                             "metrics": metrics, "single_per_source": {short(q): m for q, m in per_source.items()}})
                m = metrics
                print(f"{short(p)} K={k} seed {seed} (pick {pick}→{info['variant']}): fewshot "
                      f"{m['fewshot']['kendall_tau_b']:.3f}/{m['fewshot']['mape_pct']:.2f}%  scratch "
                      f"{m['scratch']['kendall_tau_b']:.3f}/{m['scratch']['mape_pct']:.2f}%"
                      + (f"  single best {m['single_best']['kendall_tau_b']:.3f} mean "
                         f"{m['single_mean']['kendall_tau_b']:.3f}" if per_source else ""), flush=True)
        return rows, picks

    global _ONE_TARGET
    _ONE_TARGET = one_target
    if args.jobs > 1 and len(targets) > 1:  # fork: the workers inherit the fitted priors and the data
        with mp.get_context("fork").Pool(min(args.jobs, len(targets))) as workers:
            done = workers.map(_one_target, targets, chunksize=1)
    else:
        done = [one_target(p) for p in targets]
    rows = [r for rs, _ in done for r in rs]
    picks = [x for _, ps in done for x in ps]
    methods = ["fewshot", *[f"head:{c}" for c in CANDIDATES], "scratch", "single_mean", "single_best"]
    summary = summarise(rows, methods, ks)
    print(f"\n{args.db}; LOPO over {len(targets)} held-out platforms, seeds {args.seeds}; Kendall τ-b and MAPE on "
          "each platform's evaluation pool, mean over seeds; mean and worst over platforms\n")
    print("| K | method | τ mean | τ worst (platform) | MAPE % mean | MAPE % worst (platform) | platforms τ ≥ 0.8 |")
    print("|---|---|---|---|---|---|---|")
    for k in ks:
        for m, s in summary.get(k, {}).items():
            print(f"| {k} | {m} | {s['tau_mean']:.3f} | {s['tau_worst']:.3f} ({short(s['tau_worst_platform'])}) | "
                  f"{s['mape_mean']:.2f} | {s['mape_worst']:.2f} ({short(s['mape_worst_platform'])}) | "
                  f"{s['platforms_tau_ge_0.8']}/{s['n_platforms']} |")
    print("\nper held-out platform: τ / MAPE % (mean over seeds); noise floor = its run a predicts its run b\n")
    print("| platform | archs | noise floor | K | fewshot (pick) | scratch | single mean | single best (oracle) |")
    print("|---|---|---|---|---|---|---|---|")
    for p in targets:
        f = floors[p]
        nf = f"{f['kendall_tau_b']:.3f} / {f['mape_pct']:.2f}" if f else "–"
        for k in ks:
            pk = [x["pick"] for x in picks if x["target"] == p]
            if not pk or not any(r["target"] == p and r["k"] == k for r in rows):
                continue
            cells = []
            for m in ("fewshot", "scratch", "single_mean", "single_best"):
                s = summary[k].get(m, {}).get("per_platform", {}).get(p)
                cells.append(f"{s['tau']:.3f} / {s['mape']:.2f}" if s else "–")
            cells[0] += f" ({pk[0]})"
            print(f"| {short(p)} | {len(data[p])} | {nf} | {k} | " + " | ".join(cells) + " |")
    wins = {k: {"vs_scratch": float(np.mean([tau(r["metrics"]["fewshot"]) > tau(r["metrics"]["scratch"])
                                            for r in rows if r["k"] == k]))}
            for k in ks if any(r["k"] == k for r in rows)}
    print("\nshare of (platform, seed) draws where fewshot's τ beats scratch's: "
          + ", ".join(f"K={k}: {w['vs_scratch']:.2f}" for k, w in wins.items()))
    out = {"db": args.db, "db_state": {p: {"n_archs": len(data[p]), "runs": runs[p]} for p in data},
           "eval_fraction": args.eval_fraction, "eval_seed": args.eval_seed, "eval_pool": len(eval_pool),
           "sources": sources, "targets": targets,
           "noise_floor": floors, "ks": ks, "seeds": seeds, "rows": rows, "picks": picks, "summary": summary,
           "wins": wins, "machine": machine(), **stamp(), "wall_s": round(time.time() - t0, 1)}
    if args.json:
        atomic_write_json(args.json, json_safe(out))
        print(f"\nwrote {args.json}")
    print(f"({out['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
