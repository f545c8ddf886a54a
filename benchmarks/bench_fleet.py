"""Throughput of one campaign on 1 and 2 Ray nodes, beside `--shard` + `db merge`, on this machine, in one run.

    python benchmarks/bench_fleet.py                       # 120 architectures per configuration
    python benchmarks/bench_fleet.py --n 200 --pairs 10

Every configuration measures the same N architectures (C=8 × 5 cells, 16 px, 1 thread, batch 1) into a fresh
database with the `ladarts measure` command a user would type:

    local        one process (and once more: the run-vs-run noise floor at this load)
    shards 2     two processes at once (--shard 0/2 and 1/2), then `ladarts db merge`
    ray 1 node   `--ray ADDRESS` on a local Ray cluster of one 1-CPU node (ray.cluster_utils.Cluster)
    ray 2 nodes  the same with two 1-CPU nodes

Wall time runs from the command's start to its end: process start-up, calibration and, for the shards, the merge
included; starting the Ray cluster is not (a fleet's cluster is up before any campaign). Each configuration's
latencies are compared with the local run's over the same architectures (one scale over both databases), to show
the fleet's data is as good as a single process's. Writes benchmarks/data/bench_fleet.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ladarts.hardware.noise import compare_runs
from ladarts.hardware.store import LatencyStore
from ladarts.io import atomic_write_json

from common import machine, stamp

NET = ["--channels", "8", "--cells", "5", "--input-size", "16", "--no-progress"]


def _measure(db: Path, n: int, pairs: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ladarts", "measure", "--db", str(db), "--n", str(n), "--seed",
                             "3", "--pairs", str(pairs), *NET, *extra], stdout=subprocess.DEVNULL)


def _wait(*procs: subprocess.Popen) -> None:
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"a measure command failed (exit {p.returncode})")


def _local(tmp: Path, n: int, pairs: int, name: str = "local") -> Path:
    db = tmp / f"{name}.db"
    _wait(_measure(db, n, pairs))
    return db


def _local_again(tmp: Path, n: int, pairs: int) -> Path:
    """The same campaign once more in one process: the run-vs-run noise at this load, to judge the others by."""
    return _local(tmp, n, pairs, "local-again")


def _shards(tmp: Path, n: int, pairs: int) -> Path:
    parts = [tmp / f"shard{i}.db" for i in range(2)]
    _wait(*[_measure(p, n, pairs, "--shard", f"{i}/2") for i, p in enumerate(parts)])
    db = tmp / "shards.db"
    _wait(subprocess.Popen([sys.executable, "-m", "ladarts", "db", "merge", str(db), *map(str, parts)],
                           stdout=subprocess.DEVNULL))
    return db


def _on_ray(tmp: Path, n: int, pairs: int, nodes: int, address: str) -> Path:
    db = tmp / f"ray{nodes}.db"
    _wait(_measure(db, n, pairs, "--ray", address))
    return db


def _timed(name: str, fn, *args) -> tuple[Path, dict]:
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    db = fn(*args)
    wall = time.perf_counter() - t0
    return db, {"config": name, "wall_s": wall, "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--out", default="benchmarks/data/bench_fleet.json")
    args = ap.parse_args()
    import ray
    from ray.cluster_utils import Cluster

    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        dbs = {}
        for name, fn in (("local", _local), ("local, again", _local_again), ("shards 2", _shards)):
            dbs[name], row = _timed(name, fn, tmp, args.n, args.pairs)
            rows.append(row)
        for nodes in (1, 2):
            cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
            try:
                for _ in range(nodes - 1):
                    cluster.add_node(num_cpus=1)
                cluster.wait_for_nodes()
                name = f"ray {nodes} node{'s' if nodes > 1 else ''}"
                dbs[name], row = _timed(name, _on_ray, tmp, args.n, args.pairs, nodes, cluster.address)
                rows.append(row)
            finally:
                ray.shutdown()
                cluster.shutdown()
        with LatencyStore.open(dbs["local"]) as local:
            key = local.platforms()[0]
            for row, name in zip(rows, dbs):
                with LatencyStore.open(dbs[name]) as store:
                    recs = store.records()
                    row["records"] = len(recs)
                    row["archs_per_hour"] = 3600 * len(recs) / row["wall_s"]
                    row["platforms"] = store.platforms()
                    if name != "local":
                        rep = compare_runs(local, key, "main", key, "main", store_b=store)["latency_ms"]
                        row["vs_local"] = {k: rep[k] for k in ("n", "mape_sym_pct", "mape_sym_scaled_pct",
                                                               "kendall_tau_b")}
    base = rows[0]["archs_per_hour"]
    for row in rows:
        row["speedup_vs_local"] = row["archs_per_hour"] / base
    report = {**stamp(), "machine": machine(), "n": args.n, "pairs": args.pairs,
              "network": "cifar C=8 x 5 cells, 16 px, 1 thread, batch 1", "results": rows}
    atomic_write_json(args.out, report)
    print(f"{args.n} architectures per configuration, {args.pairs} pairs each; {report['machine']['cpu']}, "
          f"{report['machine']['cpu_count']} cores")
    print("| configuration | wall s | archs/hour | × local | vs local: MAPE % (1 factor) | τ | load 1 min |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        vs = r.get("vs_local")
        cmp = f"{vs['mape_sym_pct']:.2f} ({vs['mape_sym_scaled_pct']:.2f}) | {vs['kendall_tau_b']:.3f}" if vs else "— | —"
        print(f"| {r['config']} | {r['wall_s']:.0f} | {r['archs_per_hour']:.0f} | {r['speedup_vs_local']:.2f} | {cmp} | "
              f"{r['load_before']:.2f}→{r['load_after']:.2f} |")


if __name__ == "__main__":
    main()
