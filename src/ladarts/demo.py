"""`ladarts demo` / `make demo`: the pipeline on the embedded default, small enough for a 2-core CPU.

Each stage prints what it did and writes its artefacts under ``out``; the resolved config is written first.
"""

from __future__ import annotations

import time
from pathlib import Path

from ladarts.io import atomic_write_json


def _stage_space(out: Path, seed: int) -> dict:
    from ladarts.space import ZOO, decode, encode, network_config, sample_genotypes
    from ladarts.space.describe import describe

    print("== 1. search space: the published genotypes on the CIFAR network (C=36, 20 cells) ==")
    cfg = network_config("cifar")
    rows = []
    print(f"{'genotype':<16}{'params (M)':>12}{'MACs (M)':>10}  encodable")
    for name, g in ZOO.items():
        d = describe(g, cfg, name)
        rows.append({k: d[k] for k in ("name", "params", "params_m", "macs_m", "encodable")})
        print(f"{name:<16}{d['params_m']:>12.6f}{d['macs_m']:>10.1f}  {'yes' if d['encodable'] else 'no'}")
    sampled = sample_genotypes(1000, seed)
    roundtrip = sum(decode(encode(g)) == g for g in sampled)
    print(f"sampled 1000 random architectures (seed {seed}); encode→decode identity for {roundtrip}/1000")
    atomic_write_json(out / "space.json", {"zoo": rows, "sampled": 1000, "roundtrip_ok": roundtrip})
    return {"zoo": len(rows), "roundtrip_ok": roundtrip}


def run_demo(out: str | Path = "demo-out", seed: int = 0) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", {"command": "demo", "out": str(out), "seed": seed})
    t0 = time.perf_counter()
    summary = {"space": _stage_space(out, seed)}
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(out / "summary.json", summary)
    print(f"demo finished in {summary['seconds']} s; artefacts in {out}/")
    return summary
