"""A measurement fleet on Ray: one campaign spread over the device nodes of a Ray cluster.

Each device node runs one timing actor (or ``per_node``). An actor builds the platform on its own device, so
the platform key carries that node's CPU model or GPU name: identical devices share one platform and one scale,
different devices stay apart (each kind measures the whole campaign). It calibrates its own reference and
times its items interleaved with it, as a local campaign does (:class:`~ladarts.hardware.campaign.DeviceTimer`).
Records stream back to this process, the only SQLite writer, one transaction each. A node that dies has its
unfinished items requeued to the others of its kind; a killed driver resumes on rerun, skipping what is stored.

Ray is optional (``pip install 'ladarts[fleet]'``); every node needs ladarts installed, as the driver does.
"""

from __future__ import annotations

import logging
import socket
import time
from collections import deque
from contextlib import contextmanager, nullcontext
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from ladarts.errors import LadartsError, UserInputError
from ladarts.hardware.campaign import (REFERENCE, CampaignResult, DeviceTimer, MeasureConfig, check_speed,
                                       check_stream, progress_bar)
from ladarts.hardware.platform import Platform
from ladarts.hardware.store import LatencyStore
from ladarts.space.encoding import arch_hash
from ladarts.space.genotype import Genotype

INSTALL_HINT = "--ray needs Ray: pip install 'ladarts[fleet]'"
IN_FLIGHT = 2  # items queued per actor: the next one is waiting while one is timed, and a lost node loses few


def require_ray():
    """The ``ray`` module, or the one-line install hint."""
    try:
        import ray
    except ImportError:
        raise UserInputError(INSTALL_HINT) from None
    return ray


def parse_resources(specs: Sequence[str] | None) -> dict[str, str]:
    """``--ray-resource NAME=VALUE`` options: a custom resource of at least VALUE, or a node label equal to VALUE."""
    out = {}
    for spec in specs or ():
        name, sep, value = spec.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise UserInputError(f"--ray-resource {spec!r}: expected NAME=VALUE, e.g. device=jetson-orin")
        out[name.strip()] = value.strip()
    return out


def matching_nodes(nodes: Sequence[dict[str, Any]], resources: dict[str, str]) -> list[dict[str, Any]]:
    """The alive nodes (as ``ray.nodes()`` lists them) that have every resource or label asked for."""
    def has(node: dict[str, Any], name: str, value: str) -> bool:
        try:
            return float(node.get("Resources", {}).get(name, 0.0)) >= float(value)
        except ValueError:
            return (node.get("Labels") or {}).get(name) == value

    return [n for n in nodes if n.get("Alive") and all(has(n, k, v) for k, v in resources.items())]


class TimingActor:
    """Runs on a device node (wrapped by ``ray.remote``): one measuring session there."""

    def __init__(self, settings: dict[str, Any], config: dict[str, Any]):
        settings = dict(settings)
        if settings["device"].startswith("cuda"):
            settings["device"] = "cuda:0"  # Ray gives the actor one GPU, visible as device 0
        self.timer = DeviceTimer(Platform.from_settings(settings), MeasureConfig(**config))
        self.measured = 0

    def start(self) -> dict[str, Any]:
        import ray

        t = self.timer
        return {"key": t.key, "settings": t.platform.settings(), "fingerprint": t.fingerprint,
                "session": t.session, "calibration": t.calibrate(), "host": socket.gethostname(),
                "node_id": ray.get_runtime_context().get_node_id()}

    def time(self, genotype_json: str, run: str) -> dict[str, Any]:
        """Timing of one architecture (its ``ratio`` is what is stored), and drift re-timings when due."""
        stats = self.timer.time_genotype(Genotype.from_json(genotype_json), ref_ms=1.0)
        self.measured += 1
        due = self.measured % self.timer.config.drift_every == 0
        return {"stats": stats, "drift": self.timer.drift_timings(run, self.measured) if due else []}


@dataclass
class _Node:
    """One actor as the driver sees it."""

    label: str
    handle: Any
    key: str = ""
    session: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    fingerprint: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    in_flight: int = 0
    measured: int = 0
    started: float = 0.0
    alive: bool = True

    def rate(self) -> float:
        wall = time.perf_counter() - self.started
        return 3600.0 * self.measured / wall if wall > 0 else 0.0


class _Group:
    """The campaign of one platform key: its items, lazily, minus those stored or claimed; requeued ones first."""

    def __init__(self, items: Iterable[tuple[int | None, Genotype]], done: set[str]):
        self._stream: Iterator[tuple[int | None, Genotype]] = iter(items)
        self._done = done
        self.requeued: deque[tuple[int | None, Genotype]] = deque()
        self.skipped = 0
        self.exhausted = False

    def next_item(self) -> tuple[int | None, Genotype] | None:
        if self.requeued:
            return self.requeued.popleft()
        for seq, g in self._stream:
            h = arch_hash(g)
            if h in self._done:
                self.skipped += 1
                continue
            self._done.add(h)
            return seq, g
        self.exhausted = True
        return None


@dataclass
class FleetResult:
    run: str
    total: CampaignResult
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    platforms: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)  # platforms that lost every node before the end

    def to_dict(self) -> dict[str, Any]:
        d = {"run": self.run, **self.total.to_dict(), "platforms": self.platforms, "nodes": self.nodes,
             "unfinished": self.unfinished}
        d["timed_share"] /= max(len(self.nodes), 1)  # of each node's wall time, as for one process
        return d


def run_fleet(store: LatencyStore, platform: Platform, items: Iterable[tuple[int | None, Genotype]],
              run: str = "main", config: MeasureConfig | None = None, address: str = "auto", per_node: int = 1,
              resources: dict[str, str] | None = None, progress: bool = True,
              on_record: Callable[[FleetResult], None] | None = None, log: Callable[[str], None] | None = None,
              start_timeout_s: float = 600.0) -> FleetResult:
    """Measure ``items`` on every matching node of the Ray cluster at ``address`` into ``store``.

    ``platform`` gives the settings; each node fills in its own device. Connects to Ray unless this process
    already is (then the caller's connection is kept). ``on_record`` is called after each stored record.
    """
    config = config or MeasureConfig()
    say = log or (lambda line: None)
    with ray_connection(address) as ray:
        nodes: list[_Node] = []
        try:
            nodes = _start_nodes(ray, platform, config, per_node, resources or {}, start_timeout_s, say)
            return _dispatch(ray, store, nodes, items, run, config, progress, on_record, say)
        finally:
            for n in nodes:
                ray.kill(n.handle, no_restart=True)


@contextmanager
def ray_connection(address: str) -> Iterator[Any]:
    """The ``ray`` module, connected to the cluster at ``address`` for the block (an existing connection of this
    process is used and kept); a one-line error when there is no cluster there."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise LadartsError(f"no Ray cluster at {address!r} ({e}); start one with: ray start --head") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _start_nodes(ray, platform: Platform, config: MeasureConfig, per_node: int, resources: dict[str, str],
                 timeout_s: float, say: Callable[[str], None]) -> list[_Node]:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    chosen = matching_nodes(ray.nodes(), resources)
    if not chosen:
        wanted = ", ".join(f"{k}={v}" for k, v in resources.items())
        raise LadartsError(f"no alive Ray node{' has ' + wanted if wanted else ''}")
    need = {"num_gpus": 1, "num_cpus": 1} if platform.is_cuda else {"num_cpus": platform.threads}
    remote = ray.remote(max_restarts=0, max_task_retries=0, **need)(TimingActor)
    nodes = []
    for info in chosen:
        for k in range(per_node):
            label = f"{info['NodeManagerAddress']}:{info['NodeID'][:6]}" + (f"#{k}" if per_node > 1 else "")
            strategy = NodeAffinitySchedulingStrategy(info["NodeID"], soft=False)
            nodes.append(_Node(label, remote.options(scheduling_strategy=strategy).remote(platform.settings(),
                                                                                           config.to_dict())))
    pending = {n.handle.start.remote(): n for n in nodes}
    ready, late = ray.wait(list(pending), num_returns=len(pending), timeout=timeout_s)
    started = []
    for ref in ready:
        node = pending[ref]
        try:
            info = ray.get(ref)
        except ray.exceptions.RayError as e:
            say(f"ladarts: warning: node {node.label} could not start ({type(e).__name__}); going on without it")
            continue
        node.label = node.label.replace(node.label.split(":")[0], info["host"], 1)
        node.key, node.session, node.settings = info["key"], info["session"], info["settings"]
        node.fingerprint, node.calibration = info["fingerprint"], info["calibration"]
        started.append(node)
    for ref in late:
        say(f"ladarts: warning: node {pending[ref].label} did not start within {timeout_s:.0f} s (resources?); "
            f"going on without it")
        ray.kill(pending[ref].handle, no_restart=True)
    if not started:
        raise LadartsError("no Ray node could start a timing actor")
    return started


def _fast_enough(store: LatencyStore, node: _Node, config: MeasureConfig, say: Callable[[str], None]) -> bool:
    """Whether the node's calibration passes :func:`check_speed`; a node that does not is left out, with a line."""
    try:
        check_speed(store, node.key, node.calibration["median_ms"], config.max_slowdown)
    except LadartsError as e:
        say(f"ladarts: warning: node {node.label}: {e}; going on without it")
        return False
    return True


_LOST = ("RayActorError", "WorkerCrashedError", "NodeDiedError", "ObjectLostError")


def _dispatch(ray, store: LatencyStore, nodes: list[_Node], items, run: str, config: MeasureConfig, progress: bool,
              on_record, say) -> FleetResult:
    lost_errors = tuple(getattr(ray.exceptions, name) for name in _LOST)
    groups: dict[str, _Group] = {}
    for node in nodes:  # before anything is written
        check_stream(store, node.key, run, items, config.metric)
    nodes = [node for node in nodes if _fast_enough(store, node, config, say)]
    if not nodes:
        raise LadartsError(f"no node runs the reference within --max-slowdown {config.max_slowdown:g} of its "
                           f"platform's scale; measure when the devices are quiet")
    for node in nodes:  # each session's calibration registers its platform, with its device in the key
        store.add_calibration(node.key, node.settings, node.fingerprint, REFERENCE, node.session, node.calibration,
                              node.calibration["created"])
        say(f"node {node.label}: platform {node.key}, reference timed at {node.calibration['median_ms']:.3f} ms")
        if node.key not in groups:
            groups[node.key] = _Group(items, store.done_hashes(node.key, config.metric, run))
    result = FleetResult(run=run, total=CampaignResult(platform=", ".join(groups), run=run), platforms=list(groups))
    bar = progress_bar(len(items) * len(groups) if isinstance(items, Sequence) else None, progress)
    in_flight: dict[Any, tuple[_Node, tuple[int | None, Genotype]]] = {}
    t0 = time.perf_counter()
    for node in nodes:
        node.started = t0
    reported = 0

    def feed(node: _Node) -> None:
        while node.alive and node.in_flight < IN_FLIGHT:
            item = groups[node.key].next_item()
            if item is None:
                return
            in_flight[node.handle.time.remote(item[1].to_json(), run)] = (node, item)
            node.in_flight += 1

    try:
        while True:
            for node in nodes:
                feed(node)
            if not in_flight:
                break
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
            for ref in ready:
                node, (seq, genotype) = in_flight.pop(ref)
                node.in_flight -= 1
                try:
                    out = ray.get(ref)
                except lost_errors:
                    groups[node.key].requeued.append((seq, genotype))
                    if node.alive:
                        node.alive = False
                        with bar.external_write_mode() if bar is not None else nullcontext():
                            say(f"ladarts: warning: lost node {node.label}; its unfinished items go to the others")
                    continue
                except ray.exceptions.RayTaskError as e:
                    raise LadartsError(f"node {node.label}: timing {arch_hash(genotype)} failed: "
                                       f"{type(e.cause).__name__}: {e.cause}") from None
                if store.add_measurement(genotype, node.key, config.metric, run, seq, out["stats"], node.fingerprint,
                                         session=node.session, ref_timings=out["drift"]):
                    node.measured += 1
                    result.total.measured += 1
                result.total.add(out["stats"])
                result.total.wall_s = time.perf_counter() - t0
                if bar is not None:
                    skipped = sum(g.skipped for g in groups.values())
                    bar.update(1 + skipped - reported)
                    reported = skipped
                    bar.set_postfix_str(", ".join(f"{n.label} {n.rate():.0f}/h" for n in nodes if n.alive))
                if on_record:
                    on_record(result)
    finally:
        result.total.wall_s = time.perf_counter() - t0
        if bar is not None:
            bar.close()
    result.total.skipped = sum(g.skipped for g in groups.values())
    result.nodes = {n.label: {"platform": n.key, "measured": n.measured, "archs_per_hour": n.rate(),
                              "alive": n.alive} for n in nodes}
    result.unfinished = [key for key, g in groups.items() if g.requeued or not g.exhausted]
    return result
