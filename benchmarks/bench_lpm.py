"""The LPM against the baselines and the run-vs-run noise floor on a measured CPU platform.

Trains on the architectures of one run (default 'train', seed 1 of the sample stream), tests on every
architecture of another run (default 'a', seed 0, disjoint from the training architectures) and, independently,
on its re-timing (default 'b'); prints the noise floor (run b measured against run a) beside them, a depth/width
sweep (scored on a validation split of the training run, never on the test runs), the learning curve, and how
the LPM behaves on the soft encodings of space/soft.py. Uses whatever the database holds when it runs.

    python benchmarks/bench_lpm.py                       # torch CPU platform of benchmarks/data/latency_cpu.db
    python benchmarks/bench_lpm.py --no-sweep --seeds 0  # quicker

Op timings for the lookup-table baseline come from --op-db (benchmarks/data/optimings_cpu.db); add
--time-ops to (re)time them on this machine first (a few seconds; best with no campaign running).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ladarts.hardware import LatencyStore, Platform, agreement
from ladarts.io import atomic_write_json, json_safe
from ladarts.predict import LPMConfig, dataset_from_records, fit_dataset, format_table, soft_behaviour, split_indices
from ladarts.predict.compare import noise_floor
from ladarts.predict.experiment import fit_experiment
from ladarts.predict.metrics import regression_metrics

from common import machine, stamp

SHORT = ("mape_pct", "kendall_tau_b", "within_10_pct")


def sweep(train, seed: int, device: str) -> tuple[dict, list[dict]]:
    """Depth × width (then activation and the linear term at the best) scored on a 20% validation split of the
    training run: the test runs never choose hyperparameters."""
    fit_idx, val_idx = split_indices(train.hashes, fraction=0.2, seed=seed + 100)
    fit, val = train.subset(fit_idx), train.subset(val_idx)
    rows = []

    def score(cfg: LPMConfig) -> dict:
        t0 = time.perf_counter()
        lpm, rep = fit_dataset(fit, seed=seed, config=cfg, device=device)
        m = regression_metrics(lpm.predict_encodings(val.encodings), val.latency_ms)
        row = {"depth": cfg.depth, "width": cfg.width, "activation": cfg.activation,
               "linear_skip": cfg.linear_skip, "pooled": cfg.pooled, "staged": cfg.staged, "output": cfg.output,
               "linear_on": cfg.linear_on, "loss": cfg.loss, "epochs": rep["epochs"], "fit_s": round(time.perf_counter() - t0, 1),
               **{k: m[k] for k in SHORT}}
        rows.append(row)
        print(f"  depth {cfg.depth} width {cfg.width:4d} {cfg.activation:4s} linear {int(cfg.linear_skip)} pooled "
              f"{int(cfg.pooled)} staged {int(cfg.staged)} {cfg.output:3s}: "
              f"MAPE {m['mape_pct']:.2f}%  τ {m['kendall_tau_b']:.3f}  ({row['fit_s']} s)", flush=True)
        return row

    for depth in (1, 2, 3, 4):
        for width in (64, 128, 256, 512):
            score(LPMConfig(depth=depth, width=width))
    best = min(rows, key=lambda r: r["mape_pct"])
    base = {"depth": best["depth"], "width": best["width"]}
    # ablations at the best size: activation, log output, no linear term, no pooled counts / staging (a plain MLP)
    score(LPMConfig(**base, activation="relu"))
    score(LPMConfig(**base, linear_on="pooled"))
    score(LPMConfig(**base, loss="mse"))
    score(LPMConfig(**base, output="log"))
    score(LPMConfig(**base, linear_skip=False))
    score(LPMConfig(**base, pooled=False, staged=False))
    score(LPMConfig(**base, pooled=False, staged=False, linear_skip=False, output="log"))
    score(LPMConfig(depth=0, width=1))  # the linear term alone (per-edge costs shrunk to per-group costs)
    best = min((r for r in rows if r["depth"] >= 1), key=lambda r: r["mape_pct"])  # the LPM is an MLP
    return best, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="benchmarks/data/latency_cpu.db")
    ap.add_argument("--op-db", default="benchmarks/data/optimings_cpu.db")
    ap.add_argument("--platform", default="torch-cpu-t1-b1-float32/cifar-c36-l20")
    ap.add_argument("--train-run", default="train")
    ap.add_argument("--test-run", default="a")
    ap.add_argument("--rerun", default="b")
    ap.add_argument("--split", type=float, default=0.5,
                    help="when --train-run equals --test-run: the share of its architectures held out for testing")
    ap.add_argument("--sizes", default="100,300,1000,3000,10000")
    ap.add_argument("--seeds", default="0,1,2", help="LPM seeds at the full training size")
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--time-ops", action="store_true", help="time the per-op lookup table into --op-db first")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="benchmarks/data/bench_lpm.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t_start = time.time()

    with LatencyStore.open(args.db) as store:
        key = store.resolve_platform(args.platform)
        row = store.platform_row(key)
        runs = store.runs(key)
        for r in (args.train_run, args.test_run, args.rerun):
            if r not in runs:
                sys.exit(f"run {r!r} not in {args.db} for {key}: {runs}")
        train = dataset_from_records(store.records(key, run=args.train_run))
        test = dataset_from_records(store.records(key, run=args.test_run))
        rerun = dataset_from_records(store.records(key, run=args.rerun))
    if args.time_ops:
        from ladarts.hardware.optimings import time_op_table

        plat = Platform.from_settings(row["settings"])
        with LatencyStore.open_or_create(args.op_db) as ops:
            time_op_table(plat, ops, progress=True)
    op_rows = []
    if Path(args.op_db).is_file():
        with LatencyStore.open(args.op_db) as ops:
            op_rows = ops.op_timings(key)
    if args.train_run == args.test_run:  # no separate training run yet: split the test run's architectures
        tr, te = split_indices(test.hashes, fraction=args.split, seed=7)
        train, test = test.subset(tr), test.subset(te)
    # never train on a test architecture
    held = set(test.hashes)
    keep = [i for i, h in enumerate(train.hashes) if h not in held]
    overlap = len(train) - len(keep)
    train = train.subset(keep)
    print(f"platform {key}\ntrain run {args.train_run!r}: {len(train)} architectures ({overlap} shared with the "
          f"test runs dropped); test run {args.test_run!r}: {len(test)}; re-run {args.rerun!r}: {len(rerun)}; "
          f"op timings: {len(op_rows)}", flush=True)

    floor = noise_floor(test, rerun)
    floor_sym = agreement(test.by_hash(), rerun.by_hash())
    print(format_table({f"run {args.test_run} predicts run {args.rerun}": floor},
                       "\nnoise floor: the test run as a predictor of the re-run"), flush=True)

    result: dict = {"platform": key, "db": args.db, "train_run": args.train_run, "test_run": args.test_run,
                    "rerun": args.rerun, "n_train_available": len(train), "n_test": len(test),
                    "noise_floor": floor, "noise_floor_symmetric": floor_sym, "n_op_timings": len(op_rows),
                    "machine": machine(), **stamp(), "threads": 1}

    config = LPMConfig()
    if not args.no_sweep:
        print("\nsweep (validation split of the training run):", flush=True)
        best, rows = sweep(train, seed=0, device=args.device)
        result["sweep"] = rows
        result["sweep_best"] = best
        print("| depth | width | activation | linear term | pooled | staged | output | loss | epochs | fit s | MAPE % | "
              "Kendall τ-b | ±10% |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        yn = lambda b: "yes" if b else "no"  # noqa: E731
        for r in rows:
            lin = (r["linear_on"] if r["pooled"] else "encoding") if r["linear_skip"] else "no"
            print(f"| {r['depth']} | {r['width']} | {r['activation']} | {lin} | {yn(r['pooled'])} | "
                  f"{yn(r['staged'])} | {r['output']} | {r['loss']} | "
                  f"{r['epochs']} | {r['fit_s']} | {r['mape_pct']:.2f} | {r['kendall_tau_b']:.3f} | "
                  f"{r['within_10_pct']:.1f}% |")
        config = LPMConfig(**{k: best[k] for k in ("depth", "width", "activation", "linear_skip", "pooled", "staged",
                                                    "output", "linear_on", "loss")})
        print(f"sweep pick (lowest validation MAPE with depth ≥ 1), used below: {config}")
    result["config"] = config.to_dict()

    sizes = sorted({s for s in (int(x) for x in args.sizes.split(",")) if s < len(train)} | {len(train)})
    curve = []
    print("\nlearning curve:", flush=True)
    for n in sizes:
        _, pick = split_indices(train.hashes, n_second=n, seed=123)
        sub = train.subset(pick)
        seeds = [int(s) for s in args.seeds.split(",")] if n == len(train) else [0]
        per_seed = [fit_experiment(sub, test, reruns={args.rerun: rerun}, platform_row=row, op_timings=op_rows,
                                   config=config, seed=s, device=args.device, baselines=(s == seeds[0]), threads=1)
                    for s in seeds]
        rep, cmp = per_seed[0].report, per_seed[0].comparison
        entry = {"n_train": n, "epochs": rep["epochs"], "fit_s": rep["fit_s"], **cmp}
        if len(per_seed) > 1:
            entry["lpm_seeds"] = {
                "seeds": seeds,
                "test": [e.comparison["test"]["lpm"] for e in per_seed],
                "rerun": [e.comparison["reruns"][args.rerun]["vs_rerun"]["lpm"] for e in per_seed],
                "mean_of_runs": [e.comparison["reruns"][args.rerun]["lpm_vs_mean_of_runs"] for e in per_seed],
            }
        curve.append(entry)
        t, b = cmp["test"]["lpm"], cmp["reruns"][args.rerun]["vs_rerun"]["lpm"]
        print(f"  n={n}: LPM vs {args.test_run} MAPE {t['mape_pct']:.2f}% τ {t['kendall_tau_b']:.3f}; vs "
              f"{args.rerun} MAPE {b['mape_pct']:.2f}% τ {b['kendall_tau_b']:.3f} ({rep['fit_s']:.0f} s)", flush=True)
    result["learning_curve"] = curve
    final = curve[-1]
    print(format_table(final["test"], f"\nat {final['n_train']} training architectures, against run "
                                      f"{args.test_run!r} ({len(test)} architectures never trained on)"))
    rr = final["reruns"][args.rerun]
    rows_b = dict(rr["vs_rerun"])
    print(format_table(rows_b, f"\nagainst the independent re-run {args.rerun!r} ({rr['n']} architectures)"))
    print(format_table({"lpm vs geometric mean of both runs": rr["lpm_vs_mean_of_runs"]},
                       "\nthe LPM against the mean of the two runs (halves the measurement noise in the target)"))
    if "lpm_seeds" in final:
        ms = final["lpm_seeds"]
        for label, key_ in (("run " + args.test_run, "test"), ("run " + args.rerun, "rerun"),
                            ("mean of runs", "mean_of_runs")):
            mape = [m["mape_pct"] for m in ms[key_]]
            tau = [m["kendall_tau_b"] for m in ms[key_]]
            print(f"LPM over seeds {ms['seeds']} vs {label}: MAPE {np.mean(mape):.2f} ± {np.std(mape):.2f}%, "
                  f"τ {np.mean(tau):.3f} ± {np.std(tau):.3f}")

    print("\nlearning curve (MAPE % / Kendall τ-b against run " + args.test_run + "):")
    names = [n for n in final["test"]]
    print("| n train | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for e in curve:
        print(f"| {e['n_train']} | " + " | ".join(
            f"{e['test'][n]['mape_pct']:.2f} / {e['test'][n]['kendall_tau_b'] if e['test'][n]['kendall_tau_b'] is not None else float('nan'):.3f}"
            for n in names) + " |")

    lpm_final = per_seed[0].lpm
    print("\nsoft encodings (space/soft.py) through the final LPM:", flush=True)
    soft = soft_behaviour(lpm_final, n_paths=200, n_none=30, seed=0)
    result["soft"] = soft
    print(f"  monotone along {soft['n_paths']} random mass paths (derived mode, {soft['steps']} steps): "
          f"{soft['monotone_share_pct']:.1f}%; direction agrees with the one-hot endpoints: "
          f"{soft['direction_agrees_pct']:.1f}%; worst step against the trend: {soft['max_violation_pct']:.3f}%")
    for mode, s in soft["none_shift"].items():
        print(f"  uniform 'none' shift ±2 (derived genotype unchanged), {mode:8s}: largest drop "
              f"{s['free_drop_pct_mean']:.2f}% on average, {s['free_drop_pct_max']:.2f}% at worst")
    for mode, s in soft["none_attack"].items():
        print(f"  gradient attack on the 'none' logits, {mode:8s}: soft prediction {s['soft_change_pct_mean']:+.2f}%, "
              f"derived genotype {s['derived_change_pct_mean']:+.2f}% (gap {s['free_pct_mean']:+.2f}%)")
    result["wall_s"] = round(time.time() - t_start, 1)
    atomic_write_json(args.out, json_safe(result))
    print(f"\nwrote {args.out} ({result['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
