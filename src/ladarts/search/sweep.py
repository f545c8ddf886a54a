"""λ sweeps: one search per (λ, seed), and the search-time front (supernet validation accuracy against the
derived genotype's predicted latency). The measured front, with trained accuracy, is the training stage's job."""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from ladarts.io import atomic_write_json, atomic_write_text
from ladarts.search.loop import SearchConfig, run_search
from ladarts.search.objectives import Cost


def run_sweep(base: SearchConfig, lambdas: list[float], seeds: list[int], cost: Cost | None = None,
              on_run: Callable[[float, int], None] | None = None) -> dict[str, Any]:
    """Run (or resume) the searches under ``base.out/lam{λ}_seed{s}`` and write ``front.json``, ``front.md`` and
    ``front.png`` in ``base.out``. Returns the front: one row per run and the per-λ means over seeds."""
    out = Path(base.out)
    rows = []
    for lam in lambdas:
        for seed in seeds:
            run_dir = out / f"lam{lam:g}_seed{seed}"
            if on_run is not None:
                on_run(lam, seed)
            done = (run_dir / "genotype.json").exists()
            if not done:
                resume = (run_dir / "checkpoint.pt").exists()
                run_search(replace(base, out=str(run_dir), lam=lam, seed=seed, resume=resume), cost=cost)
            last = _last_record(run_dir)
            rows.append({"lambda": lam, "seed": seed, "val_acc": last["val_acc"],
                         "lat_derived_ms": last.get("lat_derived_ms"), "lat_alpha_ms": last.get("lat_alpha_ms"),
                         "genotype": last["genotype"], "run": str(run_dir)})
    summary = []
    for lam in lambdas:
        rs = [r for r in rows if r["lambda"] == lam]
        lat = [r["lat_derived_ms"] for r in rs if r["lat_derived_ms"] is not None]
        summary.append({"lambda": lam, "seeds": len(rs), "val_acc_mean": statistics.fmean(r["val_acc"] for r in rs),
                        "val_acc_sd": statistics.stdev([r["val_acc"] for r in rs]) if len(rs) > 1 else 0.0,
                        "lat_derived_ms_mean": statistics.fmean(lat) if lat else None,
                        "lat_derived_ms_sd": statistics.stdev(lat) if len(lat) > 1 else 0.0})
    front = {"runs": rows, "by_lambda": summary, "cost": _cost_info(rows)}
    atomic_write_json(out / "front.json", front)
    atomic_write_text(out / "front.md", format_front(front))
    plot_front(front, out / "front.png")
    return front


def _last_record(run_dir: Path) -> dict[str, Any]:
    import json

    lines = [l for l in (run_dir / "log.jsonl").read_text().splitlines() if l.strip()]
    return json.loads(lines[-1])


def _cost_info(rows: list[dict[str, Any]]) -> dict[str, Any]:
    import json

    if not rows:
        return {}
    cfg = json.loads((Path(rows[0]["run"]) / "config.json").read_text())
    return cfg.get("cost_info", {})


def format_front(front: dict[str, Any]) -> str:
    """The per-λ means as a markdown table (the supernet's accuracy on the α split; the predicted latency of
    the derived genotype)."""
    lines = ["| λ | seeds | supernet val acc, % (mean ± sd) | derived genotype's predicted latency, ms (mean ± sd) |",
             "|---:|---:|---:|---:|"]
    for s in front["by_lambda"]:
        lat = ("n/a" if s["lat_derived_ms_mean"] is None
               else f"{s['lat_derived_ms_mean']:.3f} ± {s['lat_derived_ms_sd']:.3f}")
        lines.append(f"| {s['lambda']:g} | {s['seeds']} | {100 * s['val_acc_mean']:.2f} ± {100 * s['val_acc_sd']:.2f} | "
                     f"{lat} |")
    return "\n".join(lines) + "\n"


def plot_front(front: dict[str, Any], path: Path) -> None:
    from ladarts.plotting import figure, pyplot, save_png

    fig, ax = figure(figsize=(5, 3.6), dpi=120)
    runs = [r for r in front["runs"] if r["lat_derived_ms"] is not None]
    lams = sorted({r["lambda"] for r in runs})
    cmap = pyplot().get_cmap("viridis", max(2, len(lams)))
    for i, lam in enumerate(lams):
        rs = [r for r in runs if r["lambda"] == lam]
        ax.scatter([r["lat_derived_ms"] for r in rs], [100 * r["val_acc"] for r in rs], color=cmap(i),
                   label=f"λ={lam:g}")
    means = [s for s in front["by_lambda"] if s["lat_derived_ms_mean"] is not None]
    ax.plot([s["lat_derived_ms_mean"] for s in means], [100 * s["val_acc_mean"] for s in means], "k--", lw=1,
            label="mean over seeds")
    ax.set_xlabel("derived genotype's predicted latency (ms)")
    ax.set_ylabel("supernet validation accuracy (%)")
    ax.set_title("search-time front")
    ax.legend(fontsize=7)
    save_png(fig, path)


__all__ = ["format_front", "plot_front", "run_sweep"]
