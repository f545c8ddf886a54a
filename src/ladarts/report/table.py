"""The report table: measured latency (the `measure` timer) beside predicted latency, params, MACs, accuracy."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ladarts.hardware.campaign import MeasureConfig, Measurer
from ladarts.hardware.platform import Platform
from ladarts.hardware.store import LatencyStore
from ladarts.space.encoding import encode, is_encodable
from ladarts.space.genotype import Genotype
from ladarts.space.networks import build_network, count_macs, count_params

COLUMNS = ("name", "test_acc_pct", "measured_ms", "measured_iqr_ms", "predicted_ms", "params_m", "macs_m")


def measure_genotypes(genotypes: list[Genotype], platform: Platform, pairs: int = 20,
                      db: str | Path | None = None) -> list[dict[str, Any]]:
    """Time each genotype on ``platform`` with the campaign timer (interleaved with the reference).

    With ``db`` the platform's stored calibration is reused (and created if missing), so the figures are on the
    same scale as that database's records; otherwise a throw-away database calibrates the reference afresh.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(db) if db else Path(tmp) / "report.db"
        with LatencyStore.open_or_create(path) as store:
            measurer = Measurer(store, platform, MeasureConfig(pairs=pairs))
            return [measurer.time_genotype(g) for g in genotypes]


def build_rows(entries: list[dict[str, Any]], platform_for: Any, lpm: Any = None, pairs: int = 20,
               db: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per entry (``name``, ``genotype``, ``network`` config, optional ``test_acc``).

    ``platform_for(network_config) -> Platform`` gives the platform each entry is measured on (its own network).
    """
    rows = []
    for e in entries:
        platform = platform_for(e["network"])
        timing = measure_genotypes([e["genotype"]], platform, pairs, db)[0]
        net = build_network(e["genotype"], e["network"])
        predicted = None
        if lpm is not None and is_encodable(e["genotype"]):
            predicted = float(lpm(encode(e["genotype"])).detach())
        acc = e.get("test_acc")
        rows.append({
            "name": e["name"],
            "test_acc_pct": None if acc is None else 100 * acc,
            "measured_ms": timing["latency_ms"],
            "measured_iqr_ms": timing["iqr_ms"],
            "measured_raw_median_ms": timing["median_ms"],
            "predicted_ms": predicted,
            "params_m": count_params(net) / 1e6,
            "macs_m": count_macs(net) / 1e6,
            "platform": platform.key,
            "genotype": e["genotype"].to_dict(),
        })
    return rows


def _fmt(v: Any, nd: int = 2) -> str:
    return "—" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def to_markdown(rows: list[dict[str, Any]]) -> str:
    head = "| genotype | test acc % | measured ms (IQR) | predicted ms | params M | MACs M |\n|---|---|---|---|---|---|\n"
    body = "".join(
        f"| {r['name']} | {_fmt(r['test_acc_pct'])} | {_fmt(r['measured_ms'])} ({_fmt(r['measured_iqr_ms'])}) | "
        f"{_fmt(r['predicted_ms'])} | {_fmt(r['params_m'], 3)} | {_fmt(r['macs_m'], 1)} |\n" for r in rows
    )
    return head + body


def to_text(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'genotype':<20}{'test acc %':>11}{'measured ms':>13}{'IQR':>7}{'predicted ms':>14}"
             f"{'params M':>10}{'MACs M':>9}"]
    for r in rows:
        lines.append(f"{r['name']:<20}{_fmt(r['test_acc_pct']):>11}{_fmt(r['measured_ms']):>13}"
                     f"{_fmt(r['measured_iqr_ms']):>7}{_fmt(r['predicted_ms']):>14}{_fmt(r['params_m'], 3):>10}"
                     f"{_fmt(r['macs_m'], 1):>9}")
    return "\n".join(lines)
