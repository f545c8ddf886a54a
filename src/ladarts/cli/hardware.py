"""Commands on measurement: measure and the latency database (db stats|merge|export|noise)."""

from __future__ import annotations

import argparse
import contextlib
import sys

from ladarts.cli.common import RUNTIME_HELP, add_network_args, network_config_from_args, print_json
from ladarts.errors import LadartsError, UserInputError

#: Stated ranges of the measure command's numbers (seed and threads as everywhere, ladarts.limits): anything
#: outside is refused in one line before any work.
MEASURE_RANGES = {"n": (0, 10**9), "pairs": (1, 1000), "warmup": (0, 100), "batch_size": (1, 4096),
                  "per_node": (1, 64), "jobs": (1, 64)}


def _count(text: str) -> int:
    """An integer, also written like 1e8 (a campaign size)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}") from None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: not a whole number")
    return int(value)


def _check_ranges(args: argparse.Namespace) -> None:
    from ladarts import limits

    ranges = {**MEASURE_RANGES, "seed": limits.SEED, "threads": limits.THREADS}
    for name, bounds in ranges.items():
        limits.check_int(f"--{name.replace('_', '-')}", getattr(args, name), bounds, optional=True)
    limits.check_float("--max-slowdown", getattr(args, "max_slowdown", None), 1.0, 100.0, lo_open=True,
                       optional=True)


def _platform_from_args(args: argparse.Namespace):
    from ladarts.hardware import Platform

    return Platform(device=args.device, runtime=args.runtime, threads=args.threads, batch_size=args.batch_size,
                    dtype=args.dtype, network=network_config_from_args(args))


def cmd_measure(args: argparse.Namespace) -> int:
    from ladarts.hardware.campaign import MeasureConfig, campaign_items, check_stream, parse_shard, retime_items
    from ladarts.hardware.store import LatencyStore
    from ladarts.io import atomic_write_json

    _check_ranges(args)
    if args.n is None and args.from_run is None:
        raise UserInputError("give --n N (new architectures) or --from-run RUN (re-time an existing run)")
    platform = _platform_from_args(args)  # validated before anything is created
    shard = parse_shard(args.shard)
    cluster = contextlib.nullcontext()
    if args.ray is not None:
        from ladarts.hardware.fleet import parse_resources, ray_connection

        resources = parse_resources(args.ray_resource)
        cluster = ray_connection(args.ray)  # entered before the database is created
        key = None  # each node's own: its device is in the key
    else:
        key = platform.key
    if args.export_only:
        if args.ray is not None:
            raise UserInputError("--export-only runs on this machine (or a build host sharing the export cache); "
                                 "drop --ray")
        return _export_ahead(args, platform, shard)
    config = MeasureConfig(pairs=args.pairs, warmup=args.warmup, max_slowdown=args.max_slowdown)
    with cluster, LatencyStore.open_or_create(args.db) as store:  # a file that cannot be written fails here
        if args.from_run is not None:
            source = args.from_platform or key or store.resolve_platform(None)
            items = retime_items(store, store.resolve_platform(source), args.from_run)
            run = args.run or f"{args.from_run}-retime"
        else:
            items = campaign_items(args.n, args.seed, shard, args.sampler)
            run = args.run or "main"
            if key is not None:  # a fleet checks each node's platform
                check_stream(store, key, run, items, config.metric)
        resolved = {"command": "measure", "db": str(args.db), "platform": key, "settings": platform.settings(),
                    "n": args.n, "seed": args.seed, "sampler": args.sampler, "shard": list(shard), "run": run,
                    "from_run": args.from_run,
                    "ray": args.ray, "per_node": args.per_node, "ray_resource": args.ray_resource,
                    "timer": config.to_dict()}
        atomic_write_json(f"{args.db}.measure-config.json", resolved)
        if args.ray is not None:
            from ladarts.hardware.fleet import run_fleet

            fleet = run_fleet(store, platform, items, run=run, config=config, address=args.ray,
                              per_node=args.per_node, resources=resources, progress=not args.no_progress,
                              log=None if args.json else lambda line: print(line, file=sys.stderr))
            out = fleet.to_dict()
            result = fleet.total
        else:
            from ladarts.hardware.campaign import Measurer

            measurer = Measurer(store, platform, config)
            if not args.json:
                print(f"platform {key}; reference {measurer.ref_ms:.3f} ms (this session {measurer.session_ref_ms:.3f}"
                      f" ms); run {run!r}", file=sys.stderr)
            result = measurer.run(items, run=run, progress=not args.no_progress)
            out = {**result.to_dict(), "ref_ms": measurer.ref_ms, "session_ref_ms": measurer.session_ref_ms}
    if args.json:
        print_json(out)
    else:
        print(f"measured {result.measured} new architectures ({result.skipped} already in run {run!r}) in "
              f"{result.wall_s:.0f} s: {result.archs_per_hour:.0f} archs/hour, {100 * out['timed_share']:.0f}% of "
              f"wall time in timed forwards" + (" per node" if args.ray else "")
              + (f", export {result.export_s:.1f} s" if result.export_s else ""))
        for label, node in out.get("nodes", {}).items():
            print(f"  node {label}: {node['measured']} records, {node['archs_per_hour']:.0f} archs/hour"
                  + ("" if node["alive"] else " (lost)"))
    if out.get("unfinished"):
        raise LadartsError(f"every node of {', '.join(out['unfinished'])} was lost before the end; rerun the same "
                           f"command to resume")
    return 0


def _export_ahead(args: argparse.Namespace, platform, shard: tuple[int, int]) -> int:  # noqa: ANN001
    """``measure --export-only``: the campaign's exports, made now in ``--jobs`` processes, timed by a later
    ``measure`` of the same arguments. Reads the database (what the run already holds) but never writes it."""
    from pathlib import Path

    from ladarts.hardware.ahead import export_ahead
    from ladarts.hardware.campaign import campaign_items, retime_items
    from ladarts.hardware.runtimes.cache import cache_dir
    from ladarts.hardware.store import LatencyStore
    from ladarts.io import atomic_write_json

    run = args.run or (f"{args.from_run}-retime" if args.from_run is not None else "main")
    items = campaign_items(args.n, args.seed, shard, args.sampler) if args.from_run is None else None
    done: set[str] = set()
    if Path(args.db).exists():
        with LatencyStore.open(args.db) as store:
            if items is None:
                items = retime_items(store, store.resolve_platform(args.from_platform or platform.key), args.from_run)
            if platform.key in store.platforms():
                done = store.done_hashes(platform.key, "latency", run)
    elif items is None:
        raise UserInputError(f"{args.db}: no such database to re-time run {args.from_run!r} from")
    atomic_write_json(f"{args.db}.export-config.json",
                      {"command": "measure --export-only", "db": str(args.db), "platform": platform.key,
                       "settings": platform.settings(), "n": args.n, "seed": args.seed, "sampler": args.sampler,
                       "shard": list(shard), "run": run, "from_run": args.from_run, "jobs": args.jobs,
                       "export_cache": str(cache_dir())})
    result = export_ahead(items, platform, jobs=args.jobs, done=done, progress=not args.no_progress)
    if args.json:
        print_json(result.to_dict())
    else:
        c, r = result.counts, result.references
        refs = f" and {r['exported'] + r['compiled']} of the {sum(r.values())} references" if r else ""
        print(f"{platform.key}: exported {c['exported'] + c['compiled']} architecture(s) ({c['cached']} already in the "
              f"export cache, {c['skipped']} already in run {run!r}){refs} in {result.wall_s:.0f} s with {args.jobs} "
              f"job(s); cache {cache_dir()}")
    return 0


def _print_stats(s: dict) -> None:
    print(f"{s['path']}: {s['architectures']} architectures")
    for p in s["platforms"]:
        ref = p["reference"]
        if ref:
            scale = (f"reference {ref['name']} = {ref['ms']:.3f} ms (median of {ref['sessions']} sessions' medians, "
                     f"{ref['timings']} timings; sessions {ref['session_min_ms']:.3f}–{ref['session_max_ms']:.3f} ms,"
                     f" IQR {ref['spread_pct']:.1f}%)")
        else:
            scale = "no reference timings"
        print(f"  {p['key']}: {p['records']} records, {scale}, {p['drift_checks']} drift checks"
              + (f", {p['op_timings']} op timings" if p["op_timings"] else ""))
        for r in p["runs"]:
            print(f"    run {r['run']!r} ({r['metric']}): {r['n']} records, {r['lo']:.2f}–{r['hi']:.2f} ms,"
                  f" mean {r['mean']:.2f} ms, {r['reps']:.0f} pairs each")


def _print_noise(rep: dict) -> None:
    a, b = rep["a"], rep["b"]
    where_b = f" of {b['db']}" if b["db"] != a["db"] else ""
    print(f"{a['platform']} run {a['run']!r}  vs  {b['platform']} run {b['run']!r}{where_b}: "
          f"{rep['latency_ms']['n']} architectures in common")
    sc = rep["scale"]
    if "common_ref_ms" in sc:
        print(f"one scale: reference {sc['common_ref_ms']:.3f} ms over both databases (alone: {sc['a_ref_ms']:.3f} "
              f"and {sc['b_ref_ms']:.3f} ms)")
    print(f"{'estimator':<18}{'MAPE %':>8}{'MAPE %, 1 factor':>18}{'Kendall τ-b':>13}{'Spearman ρ':>12}"
          f"{'concordant':>12}")
    for est, label in (("latency_ms", "ratio × reference"), ("median_ms", "raw median"), ("min_ms", "raw min")):
        r = rep[est]
        print(f"{label:<18}{r['mape_sym_pct']:>8.2f}{r['mape_sym_scaled_pct']:>18.2f}{r['kendall_tau_b']:>13.3f}"
              f"{r['spearman_rho']:>12.3f}{100 * r['concordant_share']:>11.1f}%")


def _ranks(store, args: argparse.Namespace) -> int:  # noqa: ANN001
    from ladarts.hardware.ranks import rank_consistency
    from ladarts.report.ranks import ranks_heatmap, ranks_markdown

    keys = [store.resolve_platform(p) for p in args.platform] if args.platform else None
    result = rank_consistency(store, keys)
    if args.out:
        ranks_heatmap(result, args.out)
    if args.json:
        print_json(result)
    else:
        print(ranks_markdown(result), end="")
        if args.out:
            print(f"wrote {args.out}")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from ladarts.hardware.noise import compare_runs
    from ladarts.hardware.store import LatencyStore, merge_databases

    if args.db_command == "merge":
        report = merge_databases(args.out, args.inputs)
        added = report.added.get("measurements", 0)
        print(f"merged {len(args.inputs)} database(s) into {args.out}: {added} new records, "
              f"{report.present.get('measurements', 0)} already there")
        for line in report.lines():
            print(f"ladarts: warning: {line}", file=sys.stderr)
        return 0
    with LatencyStore.open(args.db) as store:
        if args.db_command == "stats":
            s = store.stats()
            if args.json:
                print_json(s)
            else:
                _print_stats(s)
            return 0
        if args.db_command == "ranks":
            return _ranks(store, args)
        if args.db_command == "export":
            n = store.export(args.out, store.resolve_platform(args.platform) if args.platform else None)
            print(f"wrote {n} records to {args.out}")
            return 0
        if args.db_command == "noise":
            other = LatencyStore.open(args.db_b) if args.db_b else None
            try:
                pa = store.resolve_platform(args.platform)
                if args.platform_b or other is not None:
                    pb = (other or store).resolve_platform(args.platform_b or pa)
                else:
                    pb = pa
                run_a, run_b = store.noise_runs(pa, pb, args.run_a, args.run_b, store_b=other)
                rep = compare_runs(store, pa, run_a, pb, run_b, store_b=other)
            finally:
                if other is not None:
                    other.close()
            if args.json:
                print_json(rep)
            else:
                _print_noise(rep)
            return 0
    raise AssertionError(args.db_command)


def register(add) -> None:
    p = add("measure", cmd_measure, "time random architectures on a platform into a latency database (resumable)")
    p.add_argument("--db", required=True, help="latency database (created if missing)")
    p.add_argument("--n", type=_count, help="measure the first N architectures of the seed's sample stream "
                                            "(0..1e9; generated lazily, so any N starts at once)")
    p.add_argument("--seed", type=int, default=0, help="sample stream seed (default 0)")
    p.add_argument("--sampler", default="stratified", choices=["stratified", "uniform"],
                   help="stratified (default): the number of parameter-free edges per cell uniform in 0..8, so the "
                        "LPM also sees the cells a latency-aware search reaches; uniform: every edge a uniform "
                        "primitive (the paper's random architectures)")
    p.add_argument("--run", help="run name (default 'main'; a re-timing defaults to '<from-run>-retime')")
    p.add_argument("--from-run", help="re-time the architectures of this existing run as a new independent run")
    p.add_argument("--from-platform", help="with --from-run: the platform whose run to re-time (default: this one)")
    p.add_argument("--runtime", default="torch", help=RUNTIME_HELP)
    p.add_argument("--device", default="cpu", help="cpu or cuda:N")
    p.add_argument("--threads", type=int, default=1, help="intra- and inter-op threads (default 1)")
    p.add_argument("--batch-size", type=int, default=1, help="batch size (1..4096, default 1)")
    p.add_argument("--dtype", default="float32", help="float32, or float16/bfloat16 on CUDA")
    add_network_args(p)
    p.add_argument("--shard", help="i/n: measure every n-th architecture starting at i (merge with db merge)")
    p.add_argument("--pairs", type=int, default=20, help="(reference, architecture) timed pairs (1..1000, default 20)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up forwards of each (0..100, default 1)")
    p.add_argument("--max-slowdown", type=float, metavar="X",
                   help="refuse to time (a fleet: on a node) where the reference runs more than X times the "
                        "platform's stored scale: a slower or busier machine than the one that measured it (X > 1)")
    g = p.add_argument_group("a fleet on Ray (pip install 'ladarts[fleet]')")
    g.add_argument("--ray", metavar="auto|ADDRESS",
                   help="spread the campaign over the device nodes of a Ray cluster; this process writes the database")
    g.add_argument("--per-node", type=int, default=1, help="timing actors per device node (1..64, default 1)")
    g.add_argument("--ray-resource", action="append", metavar="NAME=VALUE",
                   help="only nodes with this custom resource (ray start --resources) or label (ray start --labels)")
    g = p.add_argument_group("export ahead of timing")
    g.add_argument("--export-only", action="store_true",
                   help="export (or compile) the architectures into the export cache and time nothing: a later "
                        "measure with the same arguments times them without exporting; needs no quiet machine")
    g.add_argument("--jobs", type=int, default=1, help="with --export-only: parallel export processes (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the campaign summary as JSON")

    p = add("db", cmd_db, "latency database: stats, merge, export, noise")
    dbsub = p.add_subparsers(dest="db_command", metavar="DB_COMMAND", parser_class=type(p))
    dbsub.required = True
    q = dbsub.add_parser("stats", help="records per platform and run, and each platform's reference latency")
    q.add_argument("db")
    q.add_argument("--json", action="store_true")
    q = dbsub.add_parser("merge", help="union of databases (shards of identical devices): db merge OUT IN...")
    q.add_argument("out")
    q.add_argument("inputs", nargs="+")
    q = dbsub.add_parser("export", help="write the measurements to .csv or .parquet")
    q.add_argument("db")
    q.add_argument("--out", required=True)
    q.add_argument("--platform")
    q = dbsub.add_parser("ranks", help="rank consistency of every pair of platforms: Kendall τ, Spearman ρ, "
                                       "concordant share; a heat map with --out")
    q.add_argument("db")
    q.add_argument("--platform", action="append", help="a platform to include (repeat; default: all)")
    q.add_argument("--out", help="write the Kendall τ heat map to this PNG")
    q.add_argument("--json", action="store_true")
    q = dbsub.add_parser("noise", help="agreement between two runs (noise floor) or two platforms (rank consistency)")
    q.add_argument("db")
    q.add_argument("--db-b", help="read run B from this database (one platform in two databases: one common scale)")
    q.add_argument("--platform", help="platform A (key or unique substring; default: the only one)")
    q.add_argument("--platform-b", help="platform B (default: A)")
    q.add_argument("--run-a", help="default: the platform's first run")
    q.add_argument("--run-b", help="default: A's other run, or run A on platform B or in --db-b")
    q.add_argument("--json", action="store_true")
