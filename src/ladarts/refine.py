"""The closed loop: an LA-DARTS search that measures where it goes and refits its LPM on the way.

A latency-aware search drives α toward cells a random sample rarely holds, so the LPM is least sure exactly where
the search ends. With ``rounds`` = K, the search stops K times (after epochs spread over the epochs that update α),
times the derived genotype and ``neighbours`` architectures one edge away from it on the platform, adds them to the
latency database (run ``refine``), refits the LPM on its training architectures plus every refined one, and goes on
charging the refitted LPM. The derived genotype at the end is not measured here: measuring it is the test of
whether refinement helped.

It composes the pipeline's stages (search, hardware, predict), so it lives above them, like the demo. Each round's
measurements, LPM and state are written before the search continues; an interrupted search resumes with the last
finished round's LPM, and a round that was cut short is redone from what the database already holds (the
measurements are not repeated).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from ladarts.errors import UserInputError
from ladarts.io import atomic_write_json

if TYPE_CHECKING:
    from ladarts.hardware import Platform
    from ladarts.predict import LPM
    from ladarts.search import SearchConfig, SearchResult

STATE = "refine/state.json"


@dataclass(frozen=True)
class RefineConfig:
    """``rounds``: K measure-and-refit stops; ``db``: the latency database the LPM was fitted from (rounds add to
    it); ``neighbours``: one-edge mutants measured with each derived genotype; ``pairs``: timing pairs per
    architecture; ``run``: the database run the rounds write."""

    rounds: int
    db: str
    neighbours: int = 7
    pairs: int = 10
    run: str = "refine"

    def check(self, epochs: int, warmup: int) -> None:
        if not 1 <= self.rounds < epochs - warmup:
            raise UserInputError(f"--refine {self.rounds}: needs 1 ≤ K < the {epochs - warmup} epochs that update α, "
                                 f"so each refit steers at least one epoch")
        if not 0 <= self.neighbours <= 100 or not 1 <= self.pairs <= 10_000:
            raise UserInputError("--refine-neighbours must be 0..100 and --refine-pairs 1..10000")
        if not self.run or self.run in ("a", "b", "main"):
            raise UserInputError(f"refinement writes its own run, not {self.run!r}")


def refine_epochs(epochs: int, warmup: int, rounds: int) -> list[int]:
    """The epochs (0-based) after which the rounds run: spread evenly over the α-updating epochs, none after the
    last (a refit there would steer nothing)."""
    span = epochs - warmup
    return [warmup + math.ceil(k * span / (rounds + 1)) - 1 for k in range(1, rounds + 1)]


class RefinedLPM:
    """A :class:`~ladarts.search.Cost` whose LPM is replaced after each round. What the objective divides by
    (``meta["mean_latency_ms"]``) and ``describe()`` stay the first LPM's, so λ means the same in every round and
    a resumed search matches its config."""

    def __init__(self, lpm: LPM, config: RefineConfig):
        self.first, self.config = lpm, config
        self.lpm = lpm
        self.rounds_done: list[dict[str, Any]] = []

    @property
    def meta(self) -> dict[str, Any]:
        return {**self.lpm.meta, "mean_latency_ms": self.first.meta["mean_latency_ms"]}

    def __call__(self, encoding: torch.Tensor) -> torch.Tensor:
        return self.lpm(encoding)

    def support_warning(self, genotype: Any) -> str | None:
        return self.lpm.support_warning(genotype)

    def describe(self) -> dict[str, Any]:
        return {**self.first.describe(), "refine": asdict(self.config)}

    def use(self, lpm: LPM) -> None:
        lpm.eval()
        lpm.requires_grad_(False)
        self.lpm = lpm


def run_refined_search(config: SearchConfig, lpm: LPM, refine: RefineConfig, platform: Platform | None = None,
                       on_round: Callable[[dict[str, Any]], None] | None = None) -> SearchResult:
    """Run (or resume) ``config``'s search charged with ``lpm``, refitting it ``refine.rounds`` times on
    measurements of where the search is. ``platform``: where to measure (default: the LPM's own platform, which
    must be this machine). Returns the search's result; ``result.out / 'refine'`` holds each round's LPM and
    ``state.json`` (per round: epoch, genotype, its prediction before the refit, what was measured)."""
    from ladarts.hardware import LatencyStore, Platform
    from ladarts.search import run_search

    cfg = config.resolved()
    if cfg.lam <= 0 and cfg.target_ms is None:
        raise UserInputError("--refine needs a latency objective (--lambda > 0 or --target-ms)")
    refine.check(cfg.epochs, cfg.warmup_epochs)
    settings = (lpm.meta.get("platform") or {}).get("settings")
    if platform is None and not settings:
        raise UserInputError("--refine: the LPM does not say which platform it describes (fit it with `ladarts fit`)")
    platform = platform or Platform.from_settings(settings)
    if not Path(refine.db).is_file():
        raise UserInputError(f"{refine.db}: no such latency database (--refine adds to the one the LPM came from)")
    with LatencyStore.open(refine.db) as store:
        key = store.resolve_platform(lpm.platform_key)
    if platform.key != key:
        raise UserInputError(f"--refine measures on this machine, whose platform is {platform.key}, but the LPM "
                             f"is of {key}: refine where the LPM's platform is")
    cost = RefinedLPM(lpm, refine)
    state_path = Path(cfg.out) / STATE
    if cfg.resume and state_path.exists():
        _restore(cost, state_path)
    due = refine_epochs(cfg.epochs, cfg.warmup_epochs, refine.rounds)

    def hook(epoch: int, record: dict[str, Any]) -> None:
        while len(cost.rounds_done) < refine.rounds and due[len(cost.rounds_done)] <= epoch:
            _round(cost, cfg, platform, record, epoch, state_path)
            if on_round is not None:
                on_round(cost.rounds_done[-1])

    return run_search(cfg, cost=cost, on_epoch_end=hook)


def _restore(cost: RefinedLPM, state_path: Path) -> None:
    from ladarts.predict import LPM

    state = json.loads(state_path.read_text())
    cost.rounds_done = list(state["rounds"])
    if cost.rounds_done:
        cost.use(LPM.load(state_path.parent / cost.rounds_done[-1]["lpm"], expect_platform=cost.first.platform_key))


def _round(cost: RefinedLPM, cfg: SearchConfig, platform: Platform, record: dict[str, Any], epoch: int,
           state_path: Path) -> None:
    from ladarts.hardware import LatencyStore, MeasureConfig, Measurer
    from ladarts.predict import fit_lpm
    from ladarts.space import Genotype, arch_hash, neighbours

    k = len(cost.rounds_done) + 1
    refine = cost.config
    genotype = Genotype.from_dict(record["genotype"])
    targets = [genotype, *neighbours(genotype, refine.neighbours, seed=cfg.seed * 1000 + k)]
    predicted = float(cost.lpm.predict([genotype])[0])
    training = cost.first.meta["training"]
    with LatencyStore.open_or_create(refine.db) as store:
        measurer = Measurer(store, platform, MeasureConfig(pairs=refine.pairs))
        measurer.run([(None, g) for g in targets], run=refine.run, progress=False)
        refined = {h for r in cost.rounds_done for h in r["measured"]} | {arch_hash(g) for g in targets}
        keep = set(training["arch_hashes"]) | refined
        runs = [*training["runs"], refine.run]
        records = [r for r in store.records(measurer.key) if r.run in runs and r.arch_hash in keep]
        derived = arch_hash(genotype)
        measured_ms = next(r.latency_ms for r in records if r.run == refine.run and r.arch_hash == derived)
        row = store.platform_row(measurer.key)
    lpm, _ = fit_lpm(records, seed=cfg.seed, platform_row=row, config=cost.first.config)
    name = f"lpm_round{k}"
    lpm.save(state_path.parent / name)
    cost.use(lpm)
    cost.rounds_done.append({
        "round": k, "epoch": epoch, "genotype": genotype.to_dict(), "predicted_ms": predicted,
        "measured_ms": measured_ms, "refit_predicted_ms": float(lpm.predict([genotype])[0]),
        "measured": sorted(arch_hash(g) for g in targets), "n_train": lpm.meta["training"]["n_archs"], "lpm": name,
    })
    atomic_write_json(state_path, {"rounds": cost.rounds_done})
