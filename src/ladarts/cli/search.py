"""Commands of the search stage: search, sweep."""

from __future__ import annotations

import argparse
import sys

from ladarts.cli.common import add_scale_args, is_main_process, launch_nproc, print_json
from ladarts.errors import UserInputError


def _config(args: argparse.Namespace, out: str, lam: float):
    from ladarts.search import DEFAULT_SOFT_MODE, SearchConfig

    return SearchConfig(
        out=out, method=args.method, order=args.order, dataset=args.dataset, data_dir=args.data_dir,
        subset=args.subset, input_size=args.input_size, epochs=args.epochs, seed=args.seed, channels=args.channels,
        cells=args.cells, batch_size=args.batch_size, lam=lam, target_ms=args.target_ms,
        soft_mode=args.soft_mode or DEFAULT_SOFT_MODE, resume=args.resume,
        progress=not (args.json or args.no_progress),
        threads=args.threads, device=args.device, amp=args.amp, sync_bn=args.sync_bn,
    )


def _cost(args: argparse.Namespace):
    """The LPM the search is charged with (loaded here: the search itself takes any Cost)."""
    if not args.lpm:
        return None
    from ladarts.predict import LPM

    return LPM.load(args.lpm)


def cmd_search(args: argparse.Namespace) -> int:
    from ladarts.search import run_search

    config = _config(args, args.out, args.lam).resolved()  # bad flags are refused before the LPM is read
    if args.refine:
        return _refined_search(args, config)
    code = launch_nproc(args, "search", config.batch_size)
    if code is not None:
        return code
    result = run_search(config, cost=_cost(args))
    return _print_search(args, result)


def _refined_search(args: argparse.Namespace, config) -> int:
    import os

    from ladarts.refine import RefineConfig, run_refined_search

    if not args.lpm or not args.db:
        raise UserInputError("--refine needs --lpm DIR and --db FILE (the database the LPM was fitted from)")
    if (args.nproc or 1) > 1 or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserInputError("--refine measures on this machine between epochs: run it in one process")
    refine = RefineConfig(rounds=args.refine, db=args.db, neighbours=args.refine_neighbours,
                          pairs=args.refine_pairs)

    def said(r: dict) -> None:
        if not args.json:
            print(f"refine round {r['round']} after epoch {r['epoch'] + 1}: derived genotype measured "
                  f"{r['measured_ms']:.2f} ms, predicted {r['predicted_ms']:.2f} ms before the refit and "
                  f"{r['refit_predicted_ms']:.2f} after ({len(r['measured'])} architectures added, LPM refitted "
                  f"on {r['n_train']})", file=sys.stderr)

    return _print_search(args, run_refined_search(config, _cost(args), refine, on_round=said))


def _print_search(args: argparse.Namespace, result) -> int:
    if not is_main_process():
        return 0
    last = result.final
    summary = {"out": str(result.out), "genotype": result.genotype.to_dict(), "val_acc": last.get("val_acc"),
               "lat_derived_ms": last.get("lat_derived_ms"), "lat_alpha_ms": last.get("lat_alpha_ms"),
               "epochs": len(result.log)}
    if args.json:
        print_json(summary)
        return 0
    print(f"search done: {summary['epochs']} epochs, supernet val acc {100 * summary['val_acc']:.2f}%")
    if summary["lat_derived_ms"] is not None:
        print(f"derived genotype's predicted latency {summary['lat_derived_ms']:.3f} ms "
              f"(LAT(α) {summary['lat_alpha_ms']:.3f} ms)")
    print(f"genotype: {result.genotype.to_json()}")
    extra = ", refine/ (each round's LPM and state.json)" if (result.out / "refine").is_dir() else ""
    print(f"wrote {result.out}/genotype.json, log.jsonl, checkpoint.pt, config.json{extra}")
    return 0


def _floats(text: str, what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserInputError(f"{what} must be a comma-separated list of numbers, got {text!r}") from None
    if not vals:
        raise UserInputError(f"{what} is empty")
    return vals


def cmd_sweep(args: argparse.Namespace) -> int:
    from ladarts.search.sweep import format_front, run_sweep

    lambdas = _floats(args.lambdas, "--lambdas")
    seeds = [int(s) for s in _floats(args.seeds, "--seeds")]
    base = _config(args, args.out, 0.0)
    for lam in lambdas:  # validate every run's settings before the first one starts
        _config(args, args.out, lam).resolved()
    if not args.lpm:
        raise UserInputError("sweep needs --lpm DIR (the latency model the front is drawn with)")
    import os

    if (args.nproc or 1) > 1 or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # run_sweep writes the front from every process; distribute each `ladarts search` of the sweep instead
        raise UserInputError("sweep runs in one process; run its searches with `ladarts search --nproc N` instead")
    cost = _cost(args)

    def announce(lam: float, seed: int) -> None:
        if not args.json:
            print(f"search λ={lam:g} seed={seed}", file=sys.stderr)

    front = run_sweep(base, lambdas, seeds, cost=cost, on_run=announce)
    if args.json:
        print_json(front)
    else:
        sys.stdout.write(format_front(front))
        print(f"wrote {args.out}/front.json, front.md, front.png")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", default="darts", choices=["darts", "pc-darts"], help="supernet (default darts)")
    p.add_argument("--order", type=int, default=1, choices=[1, 2], help="1: first order; 2: unrolled second order")
    p.add_argument("--lpm", metavar="DIR", help="latency model folder (ladarts fit); without it: plain DARTS")
    p.add_argument("--target-ms", type=float, help="budget form: λ·max(0, LAT/T − 1) instead of λ·LAT/mean")
    p.add_argument("--soft-mode", default=None, choices=["derived", "straight-through", "softmax"],
                   help="how α is encoded for the LPM (default: derived)")
    p.add_argument("--dataset", default="digits", choices=["digits", "cifar10", "synthetic"])
    p.add_argument("--data-dir", help="for cifar10: the folder holding cifar-10-batches-py")
    p.add_argument("--subset", type=int, help="search on a stratified subset of N training images")
    p.add_argument("--input-size", type=int, help="resize images to this many px (digits default 32)")
    p.add_argument("--epochs", type=int, default=50, help="default 50 (the reference)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--channels", type=int, default=16, help="supernet initial channels C (default 16)")
    p.add_argument("--cells", type=int, default=8, help="supernet cells L (default 8)")
    p.add_argument("--batch-size", type=int,
                   help="the batch of all processes together (default 64 darts, 256 pc-darts)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    add_scale_args(p)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (as fit and train)")


def register(add) -> None:
    p = add("search", cmd_search, "latency-aware DARTS / PC-DARTS search; writes a run folder with genotype.json")
    _common(p)
    p.add_argument("--lambda", dest="lam", type=float, default=0.0, help="latency weight λ (default 0)")
    p.add_argument("--refine", type=int, default=0, metavar="K",
                   help="closed loop: K times during the search, time the derived genotype and its neighbours on "
                        "this machine, add them to --db and refit the LPM (default 0: off)")
    p.add_argument("--db", help="with --refine: the latency database the LPM was fitted from (rounds add to it)")
    p.add_argument("--refine-neighbours", type=int, default=7, metavar="M",
                   help="one-edge mutants of the derived genotype timed with it each round (default 7)")
    p.add_argument("--refine-pairs", type=int, default=10, help="timing pairs per architecture (default 10)")

    p = add("sweep", cmd_sweep, "searches over λ (and seeds); writes the search-time front as a table and a PNG")
    _common(p)
    p.add_argument("--lambdas", required=True, help="comma-separated λ values, e.g. 0,0.1,0.3,1")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
