"""The report table: measured latency (timed by ``hardware``) beside predicted latency, params, MACs, accuracy."""

from __future__ import annotations

from typing import Any

from ladarts.space.encoding import encode, is_encodable
from ladarts.space.networks import build_network, count_macs, count_params


def build_rows(entries: list[dict[str, Any]], timings: list[dict[str, Any]], platforms: list[str],
               lpm: Any = None) -> list[dict[str, Any]]:
    """One row per entry (``name``, ``genotype``, ``network`` config, optional ``test_acc``), beside its timing
    (``ladarts.hardware.measure_genotypes``) on the platform named in ``platforms``. Nothing is measured here."""
    rows = []
    for e, timing, platform in zip(entries, timings, platforms, strict=True):
        net = build_network(e["genotype"], e["network"])
        predicted = None
        if lpm is not None and is_encodable(e["genotype"]):
            predicted = float(lpm(encode(e["genotype"])).detach())
        acc = e.get("test_acc")
        rows.append({
            "name": e["name"],
            "test_acc_pct": None if acc is None else 100 * acc,
            "measured_ms": timing["latency_ms"],
            "measured_iqr_ms": _pair_iqr_ms(timing),
            "measured_raw_median_ms": timing["median_ms"],
            "measured_raw_iqr_ms": timing["iqr_ms"],
            "predicted_ms": predicted,
            "params_m": count_params(net) / 1e6,
            "macs_m": count_macs(net) / 1e6,
            "platform": platform,
            "genotype": e["genotype"].to_dict(),
        })
    return rows


def _pair_iqr_ms(timing: dict[str, Any]) -> float | None:
    """The spread on the measurement's own basis: the IQR of the per-pair (network / reference) ratios times the
    platform's reference latency. The raw forwards' IQR also holds the machine's drift, which the ratio cancels."""
    import numpy as np

    samples = timing.get("samples") or {}
    if not samples.get("arch") or not timing.get("ratio"):
        return None
    ratios = np.asarray(samples["arch"]) / np.asarray(samples["ref"])
    q1, q3 = np.percentile(ratios, [25, 75])
    return float((q3 - q1) * timing["latency_ms"] / timing["ratio"])


#: What the columns mean, printed under every table.
LEGEND = ("measured ms: median over interleaved (network, reference) pairs of the ratio, times the platform's "
          "reference latency (drift-corrected); pair IQR: the interquartile range of those per-pair values")


def _fmt(v: Any, nd: int = 2) -> str:
    return "—" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def to_markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| genotype | test acc % | measured ms | pair IQR ms | predicted ms | params M | MACs M |\n"
            "|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {r['name']} | {_fmt(r['test_acc_pct'])} | {_fmt(r['measured_ms'])} | {_fmt(r['measured_iqr_ms'])} | "
        f"{_fmt(r['predicted_ms'])} | {_fmt(r['params_m'], 3)} | {_fmt(r['macs_m'], 1)} |\n" for r in rows
    )
    return head + body + f"\n{LEGEND}.\n"


def to_text(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'genotype':<20}{'test acc %':>11}{'measured ms':>13}{'pair IQR':>10}{'predicted ms':>14}"
             f"{'params M':>10}{'MACs M':>9}"]
    for r in rows:
        lines.append(f"{r['name']:<20}{_fmt(r['test_acc_pct']):>11}{_fmt(r['measured_ms']):>13}"
                     f"{_fmt(r['measured_iqr_ms']):>10}{_fmt(r['predicted_ms']):>14}{_fmt(r['params_m'], 3):>10}"
                     f"{_fmt(r['macs_m'], 1):>9}")
    lines.append(f"({LEGEND})")
    return "\n".join(lines)
