"""Commands on latency prediction: fit, predict, evaluate, transfer (argument parsing and printing only)."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

from ladarts.cli.common import GENOTYPE_HELP, print_json
from ladarts.errors import LadartsWarning, UserInputError


def _open_store(path: str):
    from ladarts.hardware import LatencyStore

    return LatencyStore.open(path)


def _config_from_args(args: argparse.Namespace):
    from ladarts.predict import LPMConfig

    kw = {k: getattr(args, k) for k in ("depth", "width", "max_epochs") if getattr(args, k, None) is not None}
    return LPMConfig(**kw)


def cmd_fit(args: argparse.Namespace) -> int:
    from ladarts.predict import dataset_from_records, format_table
    from ladarts.predict.experiment import fit_experiment, holdout_split, save_fit_experiment
    from ladarts.runs import set_threads

    config = _config_from_args(args)
    set_threads(args.threads)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserInputError(f"--out {args.out}: exists and is not a folder")
    with _open_store(args.db) as store:
        key = store.resolve_platform(args.platform)
        row = store.platform_row(key)
        run = store.pick_run(key, args.run)
        data = dataset_from_records(store.records(key, run=run))
        reruns = {r: dataset_from_records(store.records(key, run=r)) for r in store.runs(key) if r != run}
        if args.op_db:
            with _open_store(args.op_db) as ops:
                op_rows = ops.op_timings(key)
        else:
            op_rows = store.op_timings(key)
    train, test = holdout_split(data, args.test_fraction, args.train_size, args.seed)
    exp = fit_experiment(train, test, reruns=reruns, platform_row=row, op_timings=op_rows, config=config,
                         seed=args.seed, device=args.device, progress=not (args.json or args.no_progress),
                         threads=args.threads)
    resolved = {"command": "fit", "db": str(args.db), "platform": key, "run": run, "op_db": args.op_db,
                "op_timings": len(op_rows), "train_size": len(train), "test_fraction": args.test_fraction,
                "seed": args.seed, "device": args.device}
    result = save_fit_experiment(exp, args.out, resolved,
                                 f"{key}\nrun {run!r}: {len(train)} train, {len(test)} held-out architectures")
    if args.json:
        print_json(result)
        return 0
    print(f"fitted on {len(train)} architectures of run {run!r} ({exp.report['n_val']} of them for early stopping, "
          f"{exp.report['epochs']} epochs, {exp.report['fit_s']:.1f} s); LPM written to {args.out}")
    print(format_table(exp.comparison["test"], f"held-out split of run {run!r}: {len(test)} architectures"))
    for r, rep in exp.comparison["reruns"].items():
        print()
        print(format_table(rep["vs_rerun"], f"against independent run {r!r} on {rep['n']} held-out architectures"))
    if not op_rows:
        print("\n(no per-op lookup table: the database has no op timings for this platform)")
    return 0


def _load_lpm(args: argparse.Namespace, expect: str | None = None):
    from ladarts.predict import LPM

    return LPM.load(args.lpm, expect_platform=expect,
                    allow_platform_mismatch=getattr(args, "allow_platform_mismatch", False))


def cmd_predict(args: argparse.Namespace) -> int:
    from ladarts.space import arch_hash, encode_many, resolve_genotype

    lpm = _load_lpm(args)
    named = [resolve_genotype(spec) for spec in args.genotypes]
    for name, g in named:
        message = lpm.support_warning(g)
        if message:
            warnings.warn(f"{name}: {message}", LadartsWarning, stacklevel=1)
    enc = encode_many([g for _, g in named])
    ms = lpm.predict_encodings(enc)
    rows = [{"genotype": name, "arch_hash": arch_hash(g), "latency_ms": float(v)} for (name, g), v in zip(named, ms)]
    if args.json:
        print_json({"platform": lpm.platform_key, "mean_latency_ms": lpm.meta.get("mean_latency_ms"),
                    "predictions": rows})
    else:
        print(f"predicted latency on {lpm.platform_key}:")
        for r in rows:
            print(f"  {r['genotype']:<24} {r['latency_ms']:9.3f} ms")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ladarts.predict import LPM, evaluate_lpm, format_table

    probe = LPM.load(args.lpm)  # validates the files before the database is opened
    with _open_store(args.db) as store:
        if args.platform is None and probe.platform_key in store.platforms():
            key = probe.platform_key
        else:
            key = store.resolve_platform(args.platform)
        lpm = _load_lpm(args, expect=key)
        if args.run is not None:
            store.pick_run(key, args.run)
        # on the scale the LPM learned (its platform's scale when it was fitted), whichever database the records
        # come from: their ratios are the measurement, the scale is shared
        records = store.records(key, run=args.run, ref_ms=(lpm.meta.get("platform") or {}).get("ref_ms"))
    if not records:
        raise UserInputError(f"no latency records for {key} in {args.db}")
    rep = evaluate_lpm(lpm, records)
    rep["lpm"] = str(args.lpm)
    if rep["sources_unknown"]:
        warnings.warn(f"{args.lpm} was transferred by an older ladarts that did not record its sources' "
                      "architectures; they could not be left out, so these metrics may flatter it",
                      LadartsWarning, stacklevel=1)
    if args.json:
        print_json(rep)
    else:
        print(f"{rep['n_archs']} architectures of {key} (runs {', '.join(rep['runs'])}); excluded "
              f"{rep['n_excluded_seen']} the LPM was fitted on")
        print(format_table({"lpm": rep["metrics"]}))
        m = rep["metrics"]
        print(f"scale-free: Kendall τ {m['kendall_tau_b']:.3f}; MAPE after one fitted scale factor "
              f"({m['scale_factor']:.3f}): {m['mape_scaled_pct']:.2f}%")
    return 0


def cmd_transfer(args: argparse.Namespace) -> int:
    from ladarts.io import atomic_write_json
    from ladarts.predict import dataset_from_records, format_table
    from ladarts.predict.fewshot import MIN_SOURCE_ARCHS, MIN_SOURCES
    from ladarts.predict.transfer import evaluation_architectures
    from ladarts.runs import set_threads

    set_threads(args.threads)
    lpm = _load_lpm(args) if args.lpm else None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {args.out}: exists and is not a folder")
    with _open_store(args.db) as store:
        key = store.resolve_platform(args.platform)
        if lpm is not None and key == lpm.platform_key:
            raise UserInputError(f"the LPM is already fitted on {key}; transfer targets another platform")
        row = store.platform_row(key)
        run = store.pick_run(key, args.run)
        target = dataset_from_records(store.records(key, run=run))
        evaluation = evaluation_architectures(target, args.k, seed=args.seed, fraction=args.eval_fraction)
        sources, rows = {}, {}
        if args.prior != "single":  # every other platform with enough architectures (all its runs, averaged)
            for other in store.platforms():  # fitted without the target's evaluation architectures
                recs = store.records(other) if other != key else []
                if len({r.arch_hash for r in recs}) >= MIN_SOURCE_ARCHS:
                    kept = [r for r in recs if r.arch_hash not in evaluation]
                    sources[other], rows[other] = dataset_from_records(kept), store.platform_row(other)
    held = f"{args.db} holds {len(sources)} other platform(s) with ≥ {MIN_SOURCE_ARCHS} architectures"
    if args.prior == "multi" and not sources:
        raise UserInputError(f"--prior multi: {held}")
    # auto: the prior when there are platforms to mix, else --lpm; with one other platform and no --lpm, that one
    multi = args.prior == "multi" or (args.prior == "auto" and (len(sources) >= MIN_SOURCES
                                                                or (lpm is None and sources)))
    if not multi and lpm is None:
        why = "" if args.prior == "single" else f" ({held})"
        raise UserInputError(f"single-source transfer needs --lpm, an LPM fitted on another platform{why}")
    if multi:
        note = (f"prior: multi-platform, from the {len(sources)} other platform(s) in {args.db}, fitted without "
                f"{len(evaluation)} of the target's architectures, kept unseen to score on"
                + (f"; --lpm {args.lpm} not used (--prior single transfers from it)" if lpm is not None else ""))
        res = _multi_platform_transfer(args, sources, rows, target, row)
    else:
        note = (f"prior: single-source, fine-tuning --lpm (fitted on {lpm.platform_key})"
                + ("" if args.prior == "single" else f"; {held}, the multi-platform prior needs {MIN_SOURCES}"))
        res = _single_source_transfer(args, lpm, target, row)
    tuned = res.pop("lpm")
    tuned.save(out)
    res["prior_note"] = note
    atomic_write_json(out / "config.json", {"command": "transfer", "lpm": args.lpm, "db": str(args.db), "platform": key,
                                            "run": run, "k": args.k, "seed": args.seed, "device": args.device,
                                            "eval_fraction": args.eval_fraction if multi else None,
                                            "prior": res["prior"], "sources": res.get("sources") or [lpm.platform_key]})
    res["lpm"] = str(out)
    atomic_write_json(out / "transfer_report.json", res)
    if args.json:
        print_json(res)
        return 0
    print(note)
    if multi:
        info = res["transfer"]
        weights = ", ".join(f"{s['key'].split('/')[0]} {s['weight']:+.3g}" for s in info["sources"])
        print(f"head {info['space']}:{info['variant']} (leave-one-out relative error on the K "
              f"{100 * info['loo_relative_error']:.1f}%); source weights: {weights}")
    print(f"K = {args.k} measurements of {key} (run {run!r}); LPM written to {out}")
    print(format_table(res["metrics"], f"on {res['n_eval']} other architectures of run {run!r} that no LPM here was "
                                       f"fitted on ({res['n_excluded_seen']} left out)"))
    return 0


def _multi_platform_transfer(args: argparse.Namespace, sources: dict[str, Any], rows: dict[str, Any], target: Any,
                             row: dict[str, Any] | None) -> dict[str, Any]:
    """``fewshot_experiment`` from LPMs fitted now on every platform in ``sources`` (key → its architectures)."""
    from ladarts.predict.fewshot import fewshot_experiment, fit_prior

    prior = fit_prior(sources, seed=args.seed, rows=rows, device=args.device, progress=not args.json)
    return fewshot_experiment(prior, target, args.k, seed=args.seed, platform_row=row, device=args.device)


def _single_source_transfer(args: argparse.Namespace, lpm: Any, target: Any,
                            row: dict[str, Any] | None) -> dict[str, Any]:
    """Today's ``transfer_experiment``: fine-tune the one LPM given with ``--lpm``."""
    from ladarts.predict import transfer_experiment

    res = transfer_experiment(lpm, target, args.k, seed=args.seed, platform_row=row, device=args.device)
    res.pop("fit_report", None)
    return {**res, "prior": "single-source"}


def register(add) -> None:
    p = add("fit", cmd_fit, "fit an LPM on a latency database; compare it with the baselines on a held-out split")
    p.add_argument("--db", required=True, help="latency database")
    p.add_argument("--platform", help="platform key or a unique substring (default: the only one)")
    p.add_argument("--run", help="run to fit and hold out from (default: the largest; the others are re-runs)")
    p.add_argument("--out", required=True, help="folder for the LPM (model.safetensors, meta.json), plot, config")
    p.add_argument("--train-size", type=int, help="architectures to train on (default: all not held out)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="held-out share of the run (default 0.2)")
    p.add_argument("--op-db", help="database holding op timings for the lookup-table baseline (default: --db)")
    p.add_argument("--depth", type=int, help="hidden layers (default from LPMConfig)")
    p.add_argument("--width", type=int, help="hidden width (default from LPMConfig)")
    p.add_argument("--max-epochs", type=int, help="epoch limit (early stopping usually ends sooner)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] for fitting")
    p.add_argument("--threads", type=int, help="CPU threads for fitting (default: PyTorch's default)")
    p.add_argument("--seed", type=int, default=0, help="split, initialisation and shuffling seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = add("predict", cmd_predict, "predict the latency of genotypes with an LPM")
    p.add_argument("--lpm", required=True, help="LPM folder")
    p.add_argument("genotypes", nargs="+", metavar="GENOTYPE", help=GENOTYPE_HELP)
    p.add_argument("--json", action="store_true", help="print predictions as JSON (latency in ms)")

    p = add("evaluate", cmd_evaluate, "metrics of an LPM on measurements it never saw")
    p.add_argument("--lpm", required=True, help="LPM folder")
    p.add_argument("--db", required=True, help="latency database")
    p.add_argument("--platform", help="platform key or substring (default: the LPM's, if the database has it)")
    p.add_argument("--run", help="only this run (default: all runs, averaged per architecture)")
    p.add_argument("--allow-platform-mismatch", action="store_true",
                   help="evaluate on another platform anyway (a warning instead of an error)")
    p.add_argument("--json", action="store_true", help="print metrics as JSON")

    p = add("transfer", cmd_transfer, "an LPM for a new platform from K measurements and the other platforms; "
                                      "compare with scratch")
    p.add_argument("--lpm", help="LPM folder fitted on another platform: the source of single-source transfer")
    p.add_argument("--prior", choices=("auto", "multi", "single"), default="auto",
                   help="multi: mix LPMs fitted on every other platform in --db (ladarts.predict.fewshot); single: "
                        "fine-tune --lpm; auto (default): multi when --db holds at least 2 other platforms with "
                        "enough architectures (or 1 and no --lpm is given), else single")
    p.add_argument("--db", required=True, help="latency database holding the target platform")
    p.add_argument("--platform", required=True, help="target platform key or a unique substring")
    p.add_argument("--run", help="target run (default: the largest)")
    p.add_argument("--k", type=int, required=True, help="target measurements to adapt with")
    p.add_argument("--eval-fraction", type=float, default=0.3,
                   help="multi-platform prior only: the share of the target's architectures outside the K (at "
                        "least 3) that its sources are fitted without, to score on (default 0.3); single-source "
                        "transfer scores on every one outside the K that --lpm was not fitted on")
    p.add_argument("--out", required=True, help="folder for the target platform's LPM")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--threads", type=int, help="CPU threads (default: PyTorch's default)")
    p.add_argument("--seed", type=int, default=0, help="which K architectures, and training seed (default 0)")
    p.add_argument("--json", action="store_true", help="print metrics as JSON")
