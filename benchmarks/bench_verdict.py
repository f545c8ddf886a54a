"""Does the demo's verdict (the latency reduction's 95% CI) hold across reruns?

Times the two trained networks of each finished demo folder against each other ``--runs`` times with
`hardware.paired_reduction` (sittings spread over time), and counts, over every ordered pair of runs of one folder,
how often the second run's estimate falls inside the first run's interval and how often the two intervals overlap.
For a calibrated 95% interval and a rerun as noisy as the first, the estimate falls inside about 83% of the time
(|X1 − X2| < 1.96 σ with sd(X1 − X2) = √2 σ) and the intervals overlap about 99.5% of the time. The counts are
given over all runs and over the runs whose estimate no busy neighbour touched (every sitting it used was idle).

    python benchmarks/bench_verdict.py /tmp/demo-seeds2/seed0 /tmp/demo-seeds2/seed1 --runs 5
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ladarts.hardware.paired import busy_warning, describe_sittings, format_reduction, paired_reduction
from ladarts.io import atomic_write_json
from ladarts.space import Genotype

from common import machine, stamp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("demos", nargs="+", help="finished demo folders (their comparison.json names the two cells)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sittings", type=int, default=15)
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--gap-s", type=float, default=2.0)
    ap.add_argument("--json", default="benchmarks/data/bench_verdict.json")
    args = ap.parse_args()
    from ladarts.demo import DemoConfig

    cells = {}
    for d in args.demos:
        folder = Path(d)
        rows = json.loads((folder / "comparison.json").read_text())["rows"]
        config = json.loads((folder / "config.json").read_text())
        platform = DemoConfig(**{k: v for k, v in config.items() if k != "command"}).platform()
        cells[d] = ([Genotype.from_json(r["genotype"]) if isinstance(r["genotype"], str)
                     else Genotype.from_dict(r["genotype"]) for r in rows], platform)
    results: dict[str, list] = {d: [] for d in cells}
    for i in range(args.runs):  # round-robin, so each folder's runs are spread over the whole benchmark
        for d, ((base, cand), platform) in cells.items():
            r = paired_reduction(base, cand, platform, args.sittings, args.pairs, args.gap_s)
            results[d].append(r)
            busy = busy_warning(r)
            print(f"{d} run {i + 1}: {format_reduction(r)}, {describe_sittings(r)}"
                  + (f"; {busy}" if busy else ""), flush=True)
    summary = {}
    for subset, keep in (("all runs", lambda r: True), ("runs on idle sittings", _idle)):
        inside = overlap = total = 0
        print(f"\n{subset}:\n| demo | estimates % (95% CI) | rerun inside the first CI | CIs overlap |\n"
              "|---|---|---|---|")
        for d, rs in results.items():
            rs = [r for r in rs if keep(r)]
            pairs = [(a, b) for a in rs for b in rs if a is not b]
            n_in = sum(a["ci_pct"][0] <= b["reduction_pct"] <= a["ci_pct"][1] for a, b in pairs)
            n_ov = sum(a["ci_pct"][0] <= b["ci_pct"][1] and b["ci_pct"][0] <= a["ci_pct"][1] for a, b in pairs)
            inside, overlap, total = inside + n_in, overlap + n_ov, total + len(pairs)
            print(f"| {d} | {'; '.join(format_reduction(r) for r in rs)} | {n_in}/{len(pairs)} | "
                  f"{n_ov}/{len(pairs)} |")
        share = f"{100 * inside / total:.0f}%" if total else "-"
        print(f"| all | | {inside}/{total} ({share}; calibrated: about 83%) | {overlap}/{total} |")
        summary[subset] = {"inside": [inside, total], "overlap": [overlap, total]}
    atomic_write_json(args.json, {**stamp(), "machine": machine(), "args": vars(args), "results": results,
                                  "summary": summary})


def _idle(result: dict) -> bool:
    """No sitting the estimate used had a busy neighbour."""
    return result["busy_sittings"] == 0 or result["sittings_used"] < result["sittings"]


if __name__ == "__main__":
    main()
