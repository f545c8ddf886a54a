"""Export ahead of timing: do a campaign's one-off exports in parallel processes, before the timing needs them.

On the compiling runtimes export is nearly all of a campaign's cost (ExecuTorch lowers a C=36 x 20-cell network in
about a minute here and times it in about a second), but only the timing needs a quiet machine. Exporting ahead
moves that minute out of the quiet window: into several processes at once, onto a build host that shares the
cache folder, or beside other work. A later ``measure`` of the same architectures then loads each export from the
disk cache (:mod:`ladarts.hardware.runtimes.cache`) instead of making it. Inductor's compiled modules cannot leave
their process; compiling ahead fills inductor's own on-disk caches instead, which spares the later compilation
most of its work.

The timing session also loads the reference and the drift references (:data:`DRIFT_REFERENCES`); they are exported
first, so that a fresh machine's first session does not lower them in its quiet window (about 80 s each for
ExecuTorch there).

The processes are a :mod:`multiprocessing` pool; each export is written atomically, so an interrupted run loses only
the exports in flight and a rerun skips what is already on disk.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ladarts.hardware.platform import Platform
from ladarts.space.encoding import arch_hash
from ladarts.space.genotype import Genotype
from ladarts.space.zoo import ZOO


@dataclass
class AheadResult:
    """What an export-ahead run did: counts per outcome (``exported``, ``compiled``, ``cached``, ``skipped``: already
    in the run) over the architectures, the same over the references, and the wall time; ``export_s`` sums the
    processes' export times."""

    platform: str
    jobs: int
    counts: Counter = field(default_factory=Counter)
    references: Counter = field(default_factory=Counter)
    wall_s: float = 0.0
    export_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"platform": self.platform, "jobs": self.jobs, **{k: self.counts[k] for k in
                ("exported", "compiled", "cached", "skipped")},
                "references": dict(self.references), "wall_s": self.wall_s, "export_s": self.export_s}


def _init(platform: Platform) -> None:
    from tqdm import tqdm

    from ladarts.hardware.runtimes import configure_threads

    # ExecuTorch's lowering draws tqdm bars, whose default lock is a multiprocessing semaphore. Ended mid-export
    # by ``terminate``, a process cannot release it, and the resource tracker reports it leaked on stderr after
    # the command's one line. A process's own bars need no lock shared between processes.
    tqdm.set_lock(threading.RLock())
    # Ctrl-C reaches the whole process group; the command ends its processes itself, and a process interrupted on
    # its own would print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_threads(platform)


def _export_one(task: tuple[str, Platform, int, bool]) -> tuple[str, float, bool]:
    from ladarts.hardware.runtimes import export_only

    genotype_json, platform, seed, reference = task
    t0 = time.perf_counter()
    outcome = export_only(Genotype.from_json(genotype_json), platform, seed)
    return outcome, time.perf_counter() - t0, reference


def export_ahead(items: Iterable[tuple[int | None, Genotype]], platform: Platform, jobs: int = 1,
                 done: set[str] | frozenset[str] = frozenset(), seed: int = 0, progress: bool = True) -> AheadResult:
    """Export every architecture of ``items`` whose ``arch_hash`` is not in ``done`` (the run's records: nothing
    left to time) for ``platform``, in ``jobs`` processes, after the references a timing session loads (with seed 0,
    as it does). Each process uses the platform's thread count. Stopped
    (Ctrl-C, SIGTERM) or failing, it ends its processes before it returns: no export goes on without it."""
    from ladarts.hardware.campaign import DRIFT_REFERENCES, progress_bar
    from ladarts.hardware.runtimes import check_exportable

    check_exportable(platform)  # before any process starts
    result = AheadResult(platform.key, jobs)
    todo = []
    for _, genotype in items:
        if arch_hash(genotype) in done:
            result.counts["skipped"] += 1
        else:
            todo.append(genotype)
    if not todo:
        return result
    tasks = [(ZOO[name].to_json(), platform, 0, True) for name in DRIFT_REFERENCES]
    tasks += [(g.to_json(), platform, seed, False) for g in todo]
    bar = progress_bar(len(tasks), progress, "export")
    t0 = time.perf_counter()
    # Ctrl-C and SIGTERM only set a flag, which the loop reads between short waits. A KeyboardInterrupt raised by
    # the signal handler can land anywhere, inside the pool's own locking too (IMapIterator.next enters a
    # Condition), and leave a lock held that ``terminate`` then waits on forever: a stop in the suite once hung.
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, lambda signum, frame: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    pool = None
    try:
        pool = mp.get_context("spawn").Pool(jobs, initializer=_init, initargs=(platform,))
        results = pool.imap_unordered(_export_one, tasks)
        while True:
            if stop.is_set():
                raise KeyboardInterrupt
            try:
                outcome, seconds, reference = results.next(timeout=0.2)
            except mp.TimeoutError:
                continue
            except StopIteration:
                break
            (result.references if reference else result.counts)[outcome] += 1
            result.export_s += seconds
            if bar is not None:
                bar.update(1)
        pool.close()
    except BaseException:
        if pool is not None:
            pool.terminate()  # the exports in flight end with this process
        raise
    finally:
        if pool is not None:
            pool.join()
        for s, handler in previous.items():
            signal.signal(s, handler)
        result.wall_s = time.perf_counter() - t0
        if bar is not None:
            bar.close()
    return result
