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


#: The network the demo deploys: digits upsampled to 16 px, 1 input channel, a small CIFAR-style stack.
DEMO_NETWORK = dict(preset="cifar", channels=16, cells=8, classes=10, in_channels=1, input_size=16)
DEMO_ARCHS = 200
DEMO_RETIME = 60


def _stage_measure(out: Path, seed: int) -> dict:
    from ladarts.hardware import LatencyStore, MeasureConfig, Measurer, Platform, campaign_items, compare_runs
    from ladarts.space import network_config

    platform = Platform(device="cpu", runtime="torch", threads=1, network=network_config(**DEMO_NETWORK))
    print(f"\n== 2. latency data: {DEMO_ARCHS} random architectures timed on this machine's CPU ==")
    print(f"platform {platform.key}")
    print("(to target a GPU or ONNX Runtime: ladarts measure --device cuda:0 | --runtime onnxruntime; see README)")
    db = out / "latency.db"
    with LatencyStore.open_or_create(db) as store:
        measurer = Measurer(store, platform, MeasureConfig(pairs=10))
        items = campaign_items(DEMO_ARCHS, seed)
        res = measurer.run(items, run="a")
        retime = measurer.run(items[:DEMO_RETIME], run="b")
        noise = compare_runs(store, platform.key, "a", platform.key, "b")
        lat = [r.latency_ms for r in store.records(platform.key, run="a")]
    print(f"measured {res.measured} architectures ({res.skipped} already in {db}) at {res.archs_per_hour:.0f} archs/hour;"
          f" latency {min(lat):.2f}–{max(lat):.2f} ms")
    n = noise["latency_ms"]
    raw = noise["median_ms"]
    print(f"noise floor over {n['n']} architectures timed twice: drift-corrected MAPE {n['mape_sym_pct']:.2f}%, "
          f"Kendall τ {n['kendall_tau_b']:.3f} (raw median: {raw['mape_sym_pct']:.2f}%, τ {raw['kendall_tau_b']:.3f})")
    return {"platform": platform.key, "db": str(db), "measured": len(lat), "archs_per_hour": res.archs_per_hour,
            "retimed": retime.measured + retime.skipped, "noise": noise}


def run_demo(out: str | Path = "demo-out", seed: int = 0) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", {"command": "demo", "out": str(out), "seed": seed})
    t0 = time.perf_counter()
    summary = {"space": _stage_space(out, seed)}
    summary["measure"] = _stage_measure(out, seed)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(out / "summary.json", summary)
    print(f"demo finished in {summary['seconds']} s; artefacts in {out}/")
    return summary
