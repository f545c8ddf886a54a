"""Commands on measurement: measure and the latency database (db stats|merge|export|noise)."""

from __future__ import annotations

import argparse
import sys

from ladarts.cli.common import add_network_args, network_config_from_args, print_json
from ladarts.errors import UserInputError


def _platform_from_args(args: argparse.Namespace):
    from ladarts.hardware import Platform

    return Platform(device=args.device, runtime=args.runtime, threads=args.threads, batch_size=args.batch_size,
                    dtype=args.dtype, network=network_config_from_args(args))


def cmd_measure(args: argparse.Namespace) -> int:
    from ladarts.hardware import LatencyStore, MeasureConfig, Measurer, campaign_items, parse_shard, retime_items
    from ladarts.io import atomic_write_json

    platform = _platform_from_args(args)  # validated before anything is created
    shard = parse_shard(args.shard)
    if args.n is None and args.from_run is None:
        raise UserInputError("give --n N (new architectures) or --from-run RUN (re-time an existing run)")
    if args.pairs < 1 or (args.n is not None and args.n < 0):
        raise UserInputError("--pairs must be at least 1 and --n non-negative")
    key = platform.key
    with LatencyStore.open_or_create(args.db) as store:
        if args.from_run is not None:
            items = retime_items(store, args.from_platform or key, args.from_run)
            run = args.run or f"{args.from_run}-retime"
        else:
            items = campaign_items(args.n, args.seed, shard)
            run = args.run or "main"
        config = MeasureConfig(pairs=args.pairs, warmup=args.warmup)
        resolved = {"command": "measure", "db": str(args.db), "platform": key, "settings": platform.settings(),
                    "n": args.n, "seed": args.seed, "shard": list(shard), "run": run, "from_run": args.from_run,
                    "timer": config.to_dict()}
        atomic_write_json(f"{args.db}.measure-config.json", resolved)
        measurer = Measurer(store, platform, config)
        if not args.json:
            print(f"platform {key}; reference {measurer.ref_ms:.3f} ms; run {run!r}", file=sys.stderr)
        result = measurer.run(items, run=run, progress=not args.no_progress)
    out = {**result.to_dict(), "ref_ms": measurer.ref_ms}
    if args.json:
        print_json(out)
    else:
        print(f"measured {result.measured} new architectures ({result.skipped} already in run {run!r}) in "
              f"{result.wall_s:.0f} s: {result.archs_per_hour:.0f} archs/hour, {100 * result.timed_share:.0f}% of "
              f"wall time in timed forwards" + (f", export {result.export_s:.1f} s" if result.export_s else ""))
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from ladarts.hardware import LatencyStore, compare_runs

    if args.db_command == "merge":
        if any(str(p) == str(args.out) for p in args.inputs):
            raise UserInputError("db merge: OUT must not be one of the inputs")
        sources = [LatencyStore.open(p) for p in args.inputs]  # all inputs are valid before OUT is touched
        added = 0
        with LatencyStore.open_or_create(args.out) as out:
            for src in sources:
                added += out.merge_from(src)
                src.close()
        print(f"merged {len(sources)} database(s) into {args.out}: {added} new records")
        return 0
    with LatencyStore.open(args.db) as store:
        if args.db_command == "stats":
            s = store.stats()
            if args.json:
                print_json(s)
            else:
                print(f"{s['path']}: {s['architectures']} architectures")
                for p in s["platforms"]:
                    ref = f"{p['ref_name']} = {p['ref_ms']:.3f} ms" if p["ref_ms"] else "uncalibrated"
                    print(f"  {p['key']}: {p['records']} records, reference {ref}, {p['drift_checks']} drift checks")
                    for r in p["runs"]:
                        print(f"    run {r['run']!r} ({r['metric']}): {r['n']} records, {r['lo']:.2f}–{r['hi']:.2f} ms,"
                              f" mean {r['mean']:.2f} ms, {r['reps']:.0f} pairs each")
            return 0
        if args.db_command == "export":
            n = store.export(args.out, store.resolve_platform(args.platform) if args.platform else None)
            print(f"wrote {n} records to {args.out}")
            return 0
        if args.db_command == "noise":
            pa = store.resolve_platform(args.platform)
            pb = store.resolve_platform(args.platform_b) if args.platform_b else pa
            runs_a = list(store.runs(pa))
            run_a = args.run_a or (runs_a[0] if runs_a else "main")
            if args.run_b:
                run_b = args.run_b
            elif pb != pa:
                run_b = run_a
            else:
                others = [r for r in runs_a if r != run_a]
                if not others:
                    raise UserInputError(f"platform {pa} has one run; re-time it first: "
                                         f"ladarts measure --db {args.db} --from-run {run_a} ...")
                run_b = others[0]
            rep = compare_runs(store, pa, run_a, pb, run_b)
            if args.json:
                print_json(rep)
            else:
                print(f"{pa} run {run_a!r}  vs  {pb} run {run_b!r}: {rep['latency_ms']['n']} architectures in common")
                print(f"{'estimator':<22}{'MAPE %':>8}{'Kendall τ-b':>13}{'Spearman ρ':>12}{'concordant':>12}")
                for est, label in (("latency_ms", "drift-corrected"), ("median_ms", "raw median"),
                                   ("min_ms", "raw min")):
                    a = rep[est]
                    print(f"{label:<22}{a['mape_sym_pct']:>8.2f}{a['kendall_tau_b']:>13.3f}{a['spearman_rho']:>12.3f}"
                          f"{100 * a['concordant_share']:>11.1f}%")
            return 0
    raise AssertionError(args.db_command)



def register(add) -> None:
    p = add("measure", cmd_measure, "time random architectures on a platform into a latency database (resumable)")
    p.add_argument("--db", required=True, help="latency database (created if missing)")
    p.add_argument("--n", type=int, help="measure the first N architectures of the seed's sample stream")
    p.add_argument("--seed", type=int, default=0, help="sample stream seed (default 0)")
    p.add_argument("--run", help="run name (default 'main'; a re-timing defaults to '<from-run>-retime')")
    p.add_argument("--from-run", help="re-time the architectures of this existing run as a new independent run")
    p.add_argument("--from-platform", help="with --from-run: the platform whose run to re-time (default: this one)")
    p.add_argument("--runtime", default="torch", help="torch (eager) or onnxruntime (CPU)")
    p.add_argument("--device", default="cpu", help="cpu or cuda:N")
    p.add_argument("--threads", type=int, default=1, help="intra- and inter-op threads (default 1)")
    p.add_argument("--batch-size", type=int, default=1, help="batch size (default 1)")
    p.add_argument("--dtype", default="float32", help="float32, or float16/bfloat16 on CUDA")
    add_network_args(p)
    p.add_argument("--shard", help="i/n: measure every n-th architecture starting at i (merge with db merge)")
    p.add_argument("--pairs", type=int, default=20, help="(reference, architecture) timed pairs (default 20)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up forwards of each (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the campaign summary as JSON")

    p = add("db", cmd_db, "latency database: stats, merge, export, noise")
    dbsub = p.add_subparsers(dest="db_command", metavar="DB_COMMAND", parser_class=type(p))
    dbsub.required = True
    q = dbsub.add_parser("stats", help="records per platform and run")
    q.add_argument("db")
    q.add_argument("--json", action="store_true")
    q = dbsub.add_parser("merge", help="combine shards measured on identical devices: db merge OUT IN...")
    q.add_argument("out")
    q.add_argument("inputs", nargs="+")
    q = dbsub.add_parser("export", help="write the measurements to .csv or .parquet")
    q.add_argument("db")
    q.add_argument("--out", required=True)
    q.add_argument("--platform")
    q = dbsub.add_parser("noise", help="agreement between two runs (noise floor) or two platforms (rank consistency)")
    q.add_argument("db")
    q.add_argument("--platform", help="platform A (key or unique substring; default: the only one)")
    q.add_argument("--platform-b", help="platform B (default: A)")
    q.add_argument("--run-a", help="default: the platform's first run")
    q.add_argument("--run-b", help="default: A's other run, or run A on platform B")
    q.add_argument("--json", action="store_true")

