"""`ladarts demo` / `make demo`: the whole LA-DARTS pipeline on the embedded default (digits), on this CPU.

measure → fit the LPM → search with λ=0 and λ>0 → train both cells briefly → measure both → report.
Every stage writes its artefacts under ``out`` (the resolved config first) and skips work already done, so
an interrupted demo continues where it stopped. The platform is this machine's CPU (PyTorch eager, 1 thread,
batch 1); the README says how to point each stage at a GPU or ONNX Runtime.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ladarts.io import atomic_write_json, atomic_write_text


@dataclass
class DemoConfig:
    """Sizes chosen so the whole demo takes minutes on 2 CPU cores."""

    out: str = "demo-out"
    seed: int = 0
    #: The deployed network: digits upsampled to 16 px, 1 channel, C=16 × 8 cells (the digits training default).
    channels: int = 16
    cells: int = 8
    input_size: int = 16
    archs: int = 200  # random architectures measured for the LPM
    sampler: str = "stratified"  # so the LPM also saw the parameter-free cells the λ>0 search reaches
    retime: int = 60  # of which re-timed as an independent run: the noise floor
    pairs: int = 10
    search_epochs: int = 6
    search_channels: int = 8
    search_cells: int = 5
    lam: float = 1.0
    refine: int = 3  # the λ>0 search measures where it is and refits the LPM this many times (search --refine)
    refine_neighbours: int = 7
    train_epochs: int = 8
    report_pairs: int = 30
    verdict_sittings: int = 15  # the two trained networks timed against each other, in sittings spread over time
    verdict_pairs: int = 20  # per sitting
    remeasure: bool = False  # time the trained networks again even if comparison.json exists

    def network(self):
        from ladarts.space import network_config

        return network_config("cifar", channels=self.channels, cells=self.cells, classes=10, in_channels=1,
                              input_size=self.input_size)

    def platform(self):
        from ladarts.hardware import Platform

        return Platform(device="cpu", runtime="torch", threads=1, network=self.network())


def _say(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def stage_measure(cfg: DemoConfig, out: Path) -> dict[str, Any]:
    from ladarts.hardware import LatencyStore, MeasureConfig, Measurer, campaign_items, compare_runs

    platform = cfg.platform()
    _say(f"1. latency data: {cfg.archs} random architectures timed on this machine's CPU")
    print(f"platform {platform.key}")
    db = out / "latency.db"
    with LatencyStore.open_or_create(db) as store:
        measurer = Measurer(store, platform, MeasureConfig(pairs=cfg.pairs))
        items = campaign_items(cfg.archs, cfg.seed, sampler=cfg.sampler)
        res = measurer.run(items, run="a")
        measurer.run(items[: cfg.retime], run="b")
        noise = compare_runs(store, platform.key, "a", platform.key, "b")
        lat = [r.latency_ms for r in store.records(platform.key, run="a")]
    if res.measured:
        print(f"measured {res.measured} architectures at {res.archs_per_hour:.0f} archs/hour "
              f"({100 * res.timed_share:.0f}% of the time in timed forwards)")
    n, raw = noise["latency_ms"], noise["median_ms"]
    print(f"latency {min(lat):.2f}–{max(lat):.2f} ms; noise floor over {n['n']} architectures timed twice: "
          f"MAPE {n['mape_sym_pct']:.2f}%, Kendall τ {n['kendall_tau_b']:.3f} "
          f"(raw medians without drift correction: {raw['mape_sym_pct']:.2f}%, τ {raw['kendall_tau_b']:.3f})")
    return {"platform": platform.key, "db": str(db), "archs": len(lat), "noise": {"drift_corrected": n, "raw_median": raw}}


def stage_fit(cfg: DemoConfig, out: Path, db: str, platform_key: str) -> dict[str, Any]:
    from ladarts.hardware import LatencyStore
    from ladarts.predict import LPM, evaluate_lpm, fit_lpm
    from ladarts.predict.plot import scatter_png

    _say("2. latency prediction module (LPM): an MLP on the 2×14×8 encoding")
    lpm_dir = out / "lpm"
    with LatencyStore.open(db) as store:
        records = store.records(platform_key, run="a")
        retimed = store.records(platform_key, run="b")
        row = store.platform_row(platform_key)
    # The re-timed architectures are held out of fitting, so the LPM can be compared with the noise floor on them.
    held = {r.arch_hash for r in retimed}
    if (lpm_dir / "meta.json").exists():
        lpm = LPM.load(lpm_dir, expect_platform=platform_key)
    else:
        lpm, _ = fit_lpm([r for r in records if r.arch_hash not in held], seed=cfg.seed, platform_row=row)
        lpm.save(lpm_dir)
    training = lpm.meta["training"]
    val = lpm.meta["metrics"]["validation"]
    print(f"fitted on {training['n_train']} architectures in {training['fit_s']:.1f} s; on the {training['n_val']} "
          f"held out for early stopping: MAPE {val['mape_pct']:.2f}%, Kendall τ {val['kendall_tau_b']:.3f}")
    held_out = {}
    for run, recs in (("a", [r for r in records if r.arch_hash in held]), ("b", retimed)):
        held_out[run] = evaluate_lpm(lpm, recs)["metrics"]
    print(f"on the {len(held)} re-timed architectures it never saw: MAPE {held_out['a']['mape_pct']:.2f}% / "
          f"τ {held_out['a']['kendall_tau_b']:.3f} against run a, {held_out['b']['mape_pct']:.2f}% / "
          f"τ {held_out['b']['kendall_tau_b']:.3f} against run b (the run-vs-run floor holds two runs' noise, this one's)")
    by_hash = {r.arch_hash: r.latency_ms for r in records}
    from ladarts.space import encode_many

    genos = [r.genotype for r in records]
    pred = lpm(encode_many(genos)).detach().tolist()
    scatter_png(out / "lpm_predicted_vs_measured.png", [by_hash[r.arch_hash] for r in records], {"LPM": pred},
                title=f"LPM on the demo's {len(records)} measured architectures ({len(held)} held out of fitting)")
    return {"lpm": str(lpm_dir), "validation": val, "held_out": held_out}


def stage_search(cfg: DemoConfig, out: Path, lpm_dir: str, db: str) -> dict[str, Any]:
    from ladarts.predict import LPM
    from ladarts.refine import RefineConfig, run_refined_search
    from ladarts.search import SearchConfig, run_search
    from ladarts.space import Genotype

    refined = f", refitting the LPM {cfg.refine} times on where it goes" if cfg.refine else ""
    _say(f"3. search on digits: DARTS with λ=0 and LA-DARTS with λ={cfg.lam}{refined} ({cfg.search_epochs} epochs "
         f"each)")
    results = {}
    for lam in (0.0, cfg.lam):
        run = out / f"search_lambda{lam:g}"
        sc = SearchConfig(out=str(run), dataset="digits", input_size=cfg.input_size, epochs=cfg.search_epochs,
                          seed=cfg.seed, channels=cfg.search_channels, cells=cfg.search_cells, lam=lam,
                          resume=(run / "checkpoint.pt").exists(), progress=True, threads=1)
        refine = RefineConfig(rounds=cfg.refine, db=db, neighbours=cfg.refine_neighbours) if lam and cfg.refine else None
        if not (run / "genotype.json").exists():
            if refine is None:
                run_search(sc, cost=LPM.load(lpm_dir))
            else:
                run_refined_search(sc, LPM.load(lpm_dir), refine, on_round=_say_round)
        genotype = Genotype.from_json((run / "genotype.json").read_text())
        last = json.loads((run / "log.jsonl").read_text().splitlines()[-1])
        state = run / "refine" / "state.json"  # absent for λ=0, and in a demo folder from before refinement
        rounds = json.loads(state.read_text())["rounds"] if state.exists() else []
        lpm_used = str(run / "refine" / rounds[-1]["lpm"]) if rounds else lpm_dir
        predicted = float(LPM.load(lpm_used).predict([genotype])[0])
        print(f"λ={lam:g}: supernet val acc {100 * last['val_acc']:.1f}%, derived cell predicted {predicted:.2f} ms")
        print(f"   {genotype.to_darts_text()}")
        results[f"{lam:g}"] = {"run": str(run), "genotype": genotype.to_dict(), "predicted_ms": predicted,
                               "supernet_val_acc": last["val_acc"], "lpm": lpm_used, "refine_rounds": rounds}
    return results


def _say_round(r: dict[str, Any]) -> None:
    print(f"   refine round {r['round']} after epoch {r['epoch'] + 1}: derived cell measured {r['measured_ms']:.2f} ms, "
          f"predicted {r['predicted_ms']:.2f} ms before the refit, {r['refit_predicted_ms']:.2f} after "
          f"({len(r['measured'])} architectures added)", flush=True)


def stage_train(cfg: DemoConfig, out: Path, searches: dict[str, Any]) -> dict[str, Any]:
    from ladarts.train import TrainConfig, run_train

    _say(f"4. train both found cells on digits ({cfg.train_epochs} epochs, C={cfg.channels} × {cfg.cells} cells)")
    results = {}
    for lam, s in searches.items():
        run = out / f"train_lambda{lam}"
        if (run / "report.json").exists():
            rep = json.loads((run / "report.json").read_text())
        else:
            tc = TrainConfig(genotype=s["genotype"], genotype_name=f"lambda{lam}", out=str(run), dataset="digits",
                             seed=cfg.seed, channels=cfg.channels, cells=cfg.cells, input_size=cfg.input_size,
                             epochs=cfg.train_epochs, threads=1)
            rep = run_train(tc, resume=(run / "checkpoint.pt").exists()).report
        print(f"λ={lam}: test accuracy {100 * rep['test_acc']:.2f}%")
        results[lam] = {"run": str(run), "test_acc": rep["test_acc"]}
    return results


def stage_compare(cfg: DemoConfig, out: Path, searches: dict, trained: dict) -> dict:
    from ladarts.hardware import measure_genotypes
    from ladarts.hardware.paired import busy_warning, describe_sittings, format_reduction, paired_reduction
    from ladarts.predict import LPM
    from ladarts.report import build_rows, draw_genotype, to_markdown, to_text
    from ladarts.space import Genotype

    saved = out / "comparison.json"
    lams = list(searches)
    previous = json.loads(saved.read_text()) if saved.exists() else {}
    if "sittings" in previous.get("paired", {}) and not cfg.remeasure:  # (older demos' verdicts are retaken)
        _say("5. measured on this CPU (reused from comparison.json; --remeasure times them again)")
        result = previous
    else:
        _say("5. measured on this CPU: both trained cells, on the LPM's scale and against each other")
        # the λ>0 search's last LPM: fitted on everything the λ=0 one saw, plus where the search went
        lpm = LPM.load(searches[lams[-1]]["lpm"])
        entries = [{"name": f"λ={lam}", "genotype": Genotype.from_dict(searches[lam]["genotype"]),
                    "network": cfg.network(), "test_acc": trained[lam]["test_acc"]} for lam in lams]
        platform = cfg.platform()
        # on the scale the LPM was fitted on, so measured and predicted compare (the database's scale moves a
        # little with every session that calibrates)
        timings = measure_genotypes([e["genotype"] for e in entries], platform, cfg.report_pairs,
                                    ref_ms=lpm.meta["platform"]["ref_ms"])
        rows = build_rows(entries, timings, [platform.key] * len(entries), lpm)
        for lam, e in zip(lams, entries):
            draw_genotype(e["genotype"], out / f"cells_lambda{lam}.png", title=f"λ={lam}")
        paired = paired_reduction(entries[0]["genotype"], entries[1]["genotype"], platform, cfg.verdict_sittings,
                                  cfg.verdict_pairs)
        result = {"rows": rows, "paired": paired, "measured_reduction_pct": paired["reduction_pct"],
                  "measured_reduction_ci_pct": paired["ci_pct"]}
        atomic_write_json(saved, result)
        _front_png(out / "front.png", rows)
        atomic_write_text(out / "comparison.md", to_markdown(rows))
    base, la = result["rows"]
    print(to_text(result["rows"]))
    print(f"measured latency reduction of the λ={cfg.lam:g} cell: {format_reduction(result['paired'])}, from "
          f"{describe_sittings(result['paired'])} (accuracy {la['test_acc_pct'] - base['test_acc_pct']:+.2f} points)")
    busy = busy_warning(result["paired"])
    if busy:
        print(f"warning: {busy}")
    return result


def _front_png(path: Path, rows: list[dict]) -> None:
    from ladarts.plotting import figure, save_png

    fig, ax = figure(figsize=(5, 4))
    for r in rows:
        ax.scatter(r["measured_ms"], r["test_acc_pct"], s=60)
        ax.annotate(r["name"], (r["measured_ms"], r["test_acc_pct"]), textcoords="offset points", xytext=(6, 4))
    ax.set_xlabel("measured latency on this CPU (ms, batch 1)")
    ax.set_ylabel("test accuracy on digits (%)")
    ax.set_title("accuracy vs measured latency")
    save_png(fig, path, dpi=110)


def _summary_md(cfg: DemoConfig, s: dict[str, Any]) -> str:
    from ladarts.hardware.paired import busy_warning, describe_sittings, format_reduction
    from ladarts.report import to_markdown

    m = s["measure"]["noise"]["drift_corrected"]
    held = s["fit"]["held_out"]["b"]
    lines = [
        "# ladarts demo", "",
        f"Platform: `{s['measure']['platform']}` (this machine's CPU, PyTorch eager, 1 thread, batch 1).", "",
        f"1. Measured {s['measure']['archs']} random architectures; noise floor between two runs over "
        f"{m['n']} of them: MAPE {m['mape_sym_pct']:.2f}%, Kendall τ {m['kendall_tau_b']:.3f}.",
        f"2. LPM against the independent re-run of the {m['n']} architectures it never saw: "
        f"MAPE {held['mape_pct']:.2f}%, τ {held['kendall_tau_b']:.3f}.",
        f"3. Searched with λ=0 and λ={cfg.lam:g} ({cfg.search_epochs} epochs, C={cfg.search_channels} × "
        f"{cfg.search_cells}-cell supernet)" + (f"; the λ={cfg.lam:g} search measured where it was and refitted the "
                                                f"LPM {cfg.refine} times." if cfg.refine else "."),
        f"4. Trained both cells for {cfg.train_epochs} epochs; measured both:", "",
        to_markdown(s["compare"]["rows"]),
        f"Measured latency reduction: {format_reduction(s['compare']['paired'])}, from "
        f"{describe_sittings(s['compare']['paired'])}."
        + (f" Warning: {busy_warning(s['compare']['paired'])}." if busy_warning(s["compare"]["paired"]) else ""), "",
        "Files: `latency.db`, `lpm/`, `lpm_predicted_vs_measured.png`, `search_lambda*/`, `train_lambda*/`, "
        "`cells_lambda*.png`, `front.png`, `comparison.md`, `summary.json`.", "",
        "A single short demo run is one sample, not a result: benchmarks/RESULTS.md has the multi-seed figures.",
    ]
    return "\n".join(lines) + "\n"


def run_demo(out: str | Path = "demo-out", seed: int = 0, config: DemoConfig | None = None,
             remeasure: bool = False) -> dict[str, Any]:
    cfg = config or DemoConfig(out=str(out), seed=seed, remeasure=remeasure)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", {"command": "demo", **asdict(cfg)})
    t0 = time.perf_counter()
    s: dict[str, Any] = {"measure": stage_measure(cfg, out)}
    s["fit"] = stage_fit(cfg, out, s["measure"]["db"], s["measure"]["platform"])
    s["search"] = stage_search(cfg, out, s["fit"]["lpm"], s["measure"]["db"])
    s["train"] = stage_train(cfg, out, s["search"])
    s["compare"] = stage_compare(cfg, out, s["search"], s["train"])
    s["seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(out / "summary.json", s)
    atomic_write_text(out / "README.md", _summary_md(cfg, s))
    print(f"\ndemo finished in {s['seconds']:.0f} s; report in {out}/README.md")
    print("next: point it at your device — ladarts measure --device cuda:0 (GPU) or --runtime onnxruntime; "
          "see README.md")
    return s
