"""λ sweep on digits, ≥3 seeds, for the soft forms of LAT(α): the derived genotype's predicted latency (the LPM)
and its measured latency (this CPU, the LPM's platform: torch, 1 thread, batch 1, the CIFAR network C36 × 20 cells),
against the λ=0 baseline run at the same epochs and seeds. Also answers "which soft form finds faster cells at
equal accuracy" (derived vs straight-through).

    .venv/bin/python benchmarks/bench_search_sweep.py --lpm LPM_DIR [--modes derived,straight-through]
        [--lambdas 0.3,1,3] [--seeds 0,1,2] [--epochs 6] [--measure-pairs 20]

Searches are small so that they fit this CPU (a supernet of C=8 × 5 cells on digits at their native 8 px by
default); the flags say what was run, and the JSON under benchmarks/data/search/ records it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_search_step import machine  # noqa: E402


def measure(genotypes: dict[str, dict], pairs: int) -> dict[str, float]:
    """Measured latency (ms) of each genotype on the LPM's platform, interleaved with DARTS_V2 as a reference
    (drift-corrected: ratio to the reference × the reference's median over the whole measurement)."""
    import torch

    from ladarts.hardware.platform import Platform
    from ladarts.hardware.runtimes import configure_threads, load
    from ladarts.hardware.timer import time_interleaved
    from ladarts.space import ZOO, Genotype

    platform = Platform()
    configure_threads(platform)
    ref = load(ZOO["DARTS_V2"], platform)
    ratios = {}
    ref_all = []
    for key, g in genotypes.items():
        arch = load(Genotype.from_dict(g), platform)
        t = time_interleaved(arch.forward, ref.forward, arch.sync, pairs, warmup=3, ref_ms=1.0)
        ratios[key] = t.ratio
        ref_all += t.samples["ref"]
    ref_ms = statistics.median(ref_all)
    torch.set_num_threads(1)
    return {k: r * ref_ms for k, r in ratios.items()} | {"__ref_ms__": ref_ms}


PARAM_FREE = {"max_pool_3x3", "avg_pool_3x3", "skip_connect"}


def print_table(rows: list[dict], modes: list[str], lambdas: list[float], measured: bool) -> list[dict]:
    """The Markdown table of the sweep (also rebuilt from a saved JSON with ``--from-json``)."""
    print("\n| soft form | λ | seeds | supernet val acc | predicted latency (ms) | measured latency (ms) | "
          "param-free ops in the normal cell (of 8) | runs faster than λ=0, same seed (predicted / measured) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    base_by_seed = {r["seed"]: r for r in rows if r["mode"] == "λ=0"}
    summary = []
    for mode in ["λ=0", *modes]:
        for lam in ([0.0] if mode == "λ=0" else lambdas):
            rs = [r for r in rows if r["mode"] == mode and r["lambda"] == lam]

            def ms(values: list[float], digits: int = 2) -> str:
                if not values:
                    return "n/a"
                sd = statistics.stdev(values) if len(values) > 1 else 0.0
                return f"{statistics.fmean(values):.{digits}f} ± {sd:.{digits}f}"

            free = [sum(op in PARAM_FREE for op, _ in r["genotype"]["normal"]) for r in rs]
            faster_p = sum(r["lat_derived_ms"] < base_by_seed[r["seed"]]["lat_derived_ms"] for r in rs)
            faster_m = (sum(r["measured_ms"] < base_by_seed[r["seed"]]["measured_ms"] for r in rs)
                        if measured else None)
            s = {"mode": mode, "lambda": lam, "n": len(rs),
                 "val_acc_mean": statistics.fmean(r["val_acc"] for r in rs),
                 "pred_ms_mean": statistics.fmean(r["lat_derived_ms"] for r in rs),
                 "measured_ms_mean": statistics.fmean(r["measured_ms"] for r in rs) if measured else None,
                 "param_free_normal_mean": statistics.fmean(free),
                 "faster_pred": faster_p, "faster_measured": faster_m}
            summary.append(s)
            fm = "—" if mode == "λ=0" else f"{faster_p}/{len(rs)} / {faster_m if measured else 'n/a'}/{len(rs)}"
            print(f"| {mode} | {lam:g} | {len(rs)} | {ms([r['val_acc'] for r in rs], 3)} | "
                  f"{ms([r['lat_derived_ms'] for r in rs])} | "
                  f"{ms([r['measured_ms'] for r in rs if r.get('measured_ms') is not None])} | "
                  f"{ms(free, 1)} | {fm} |")
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lpm", help="LPM folder (required unless --proxy)")
    ap.add_argument("--proxy", action="store_true", help="use the MACs-proxy table instead of an LPM")
    ap.add_argument("--modes", default="derived,straight-through")
    ap.add_argument("--lambdas", default="0.3,1,3", help="λ > 0 values (λ=0 is always run, as the baseline)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--cells", type=int, default=5)
    ap.add_argument("--input-size", type=int, default=8, help="digits at their native 8 px")
    ap.add_argument("--subset", type=int, default=0, help="0: all 1,437 training images")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--method", default="darts")
    ap.add_argument("--measure-pairs", type=int, default=20, help="0: skip measuring the derived genotypes")
    ap.add_argument("--out", default="/tmp/ladarts-bench-sweep")
    ap.add_argument("--json", default=str(HERE / "data" / "search" / "bench_search_sweep.json"))
    ap.add_argument("--from-json", help="only print the table of a saved result")
    args = ap.parse_args()
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        a = saved["args"]
        print_table(saved["runs"], a["modes"].split(","), [float(v) for v in a["lambdas"].split(",")],
                    bool(saved["measured"]))
        return

    import torch

    torch.set_num_threads(1)
    from ladarts.search import SearchConfig, TableCost, load_cost
    from ladarts.search.sweep import run_sweep

    if args.proxy:
        cost, cost_name = TableCost.macs_proxy(), "macs-proxy"
    elif args.lpm:
        cost, cost_name = load_cost(args.lpm), f"lpm {args.lpm}"
    else:
        raise SystemExit("pass --lpm DIR (or --proxy)")
    lambdas = [float(v) for v in args.lambdas.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    modes = args.modes.split(",")
    out = Path(args.out)
    base = SearchConfig(out=str(out / "baseline"), method=args.method, dataset="digits", subset=args.subset or None,
                        input_size=args.input_size, epochs=args.epochs, channels=args.channels, cells=args.cells,
                        batch_size=args.batch_size, threads=1, soft_mode=modes[0],
                        lpm=None if args.proxy else args.lpm)
    t0 = time.perf_counter()
    rows = []
    for r in run_sweep(base, [0.0], seeds, cost=cost)["runs"]:
        rows.append({**r, "mode": "λ=0"})
    for mode in modes:
        front = run_sweep(replace(base, out=str(out / mode), soft_mode=mode), lambdas, seeds, cost=cost)
        rows += [{**r, "mode": mode} for r in front["runs"]]
    search_s = time.perf_counter() - t0

    measured = {}
    if args.measure_pairs:
        uniq = {json.dumps(r["genotype"], sort_keys=True): r["genotype"] for r in rows}
        m = measure(uniq, args.measure_pairs)
        measured = {"reference_DARTS_V2_ms": m.pop("__ref_ms__")}
        for r in rows:
            r["measured_ms"] = m[json.dumps(r["genotype"], sort_keys=True)]

    print(f"machine: {machine()['cpu']}; searches took {search_s / 60:.1f} min; cost {cost_name}")
    print(f"supernet {args.method} C{args.channels} × {args.cells} cells, digits {args.input_size} px, subset "
          f"{args.subset}, batch {args.batch_size}, {args.epochs} epochs, seeds {seeds}")
    summary = print_table(rows, modes, lambdas, bool(measured))
    result = {"machine": machine(), "command": " ".join(sys.argv), "cost": cost_name, "search_s": search_s,
              "args": vars(args), "measured": measured, "summary": summary, "runs": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
