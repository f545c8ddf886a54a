"""Did a growth session's records drift against the rest of the dataset? (issue 14)

A session on another or a slower machine can store latencies that are consistently off even though each record's
interleaved pairs look clean. Other runtimes, timed earlier on the same architectures, are a yardstick: fit the
platform's log latency on theirs by least squares over the first ``--fit`` records (in the order they were stored),
then print the residuals' mean and SD per slice of records. A slice whose mean sits well outside the others (the
2.5× slower machine of 2026-12-01: +0.055 against −0.002, SD 0.05) was timed off the dataset's scale.

    python benchmarks/residual_check.py                                  # inductor against ORT and ExecuTorch
    python benchmarks/residual_check.py --platform executorch --against onnxruntime --cuts 500,800
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ladarts.errors import LadartsError
from ladarts.hardware import LatencyStore

DB = Path(__file__).resolve().parent / "data" / "multiplatform" / "darts_cifar_latency.db"


def one_thread_batch_one(keys: list[str], runtime: str) -> str:
    """The single platform of ``runtime`` at 1 thread and batch 1 (the dataset's keys start with the runtime)."""
    found = [k for k in keys if k.startswith(runtime) and "-t1-b1-" in k]
    if len(found) != 1:
        raise LadartsError(f"{len(found)} platforms of runtime {runtime!r} at 1 thread and batch 1 (need one)")
    return found[0]


def residuals(db: Path, platform: str, against: list[str], fit: int) -> tuple[np.ndarray, list[str]]:
    """Residuals of ``platform``'s log latency (records in stored order) on each single yardstick and on all of
    them together; the columns' names."""
    with LatencyStore.open(db) as store:
        keys = store.platforms()
        target = sorted(store.records(one_thread_batch_one(keys, platform), run="main"), key=lambda r: r.created)
        others = [{r.arch_hash: r.latency_ms for r in store.records(one_thread_batch_one(keys, o), run="main")}
                  for o in against]
    rows = [r for r in target if all(r.arch_hash in o for o in others)]
    if len(rows) <= fit:
        raise LadartsError(f"{len(rows)} records in common with {', '.join(against)}: need more than --fit {fit}")
    y = np.log([r.latency_ms for r in rows])
    x = np.log([[o[r.arch_hash] for o in others] for r in rows])
    columns, names = [], []
    for cols, name in [*(([i], a) for i, a in enumerate(against)), (list(range(len(against))), "all")]:
        design = np.c_[np.ones(len(y)), x[:, cols]]
        coef, *_ = np.linalg.lstsq(design[:fit], y[:fit], rcond=None)
        columns.append(y - design @ coef)
        names.append(name)
    return np.stack(columns, axis=1), names


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--db", type=Path, default=DB, help=f"latency database (default {DB})")
    p.add_argument("--platform", default="inductor", help="runtime whose records are checked (default inductor)")
    p.add_argument("--against", default="onnxruntime,executorch", help="yardstick runtimes, comma-separated")
    p.add_argument("--fit", type=int, default=530, help="records the line is fitted on (default 530)")
    p.add_argument("--cuts", default="530,700,800,900", help="slice boundaries in stored order (default 530,700,800,900)")
    args = p.parse_args()
    try:
        res, names = residuals(args.db, args.platform, args.against.split(","), args.fit)
        cuts = sorted({0, *(int(c) for c in args.cuts.split(",")), len(res)})
    except (LadartsError, ValueError) as e:
        print(f"residual_check: error: {e}", file=sys.stderr)
        return 2
    print(f"{args.platform}'s log latency regressed on each yardstick's and on all of them ({', '.join(names[:-1])}), "
          f"fitted on its first {args.fit} records; residuals:")
    print("| records | " + " | ".join(f"on {n}: mean / SD" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for lo, hi in zip(cuts, cuts[1:]):
        if hi > lo:
            cells = [f"{res[lo:hi, j].mean():+.4f} / {res[lo:hi, j].std():.4f}" for j in range(len(names))]
            print(f"| {lo}–{hi - 1} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
