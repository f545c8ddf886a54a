"""The measurement fleet on a local Ray cluster: a node killed midway, a driver killed and rerun, the CLI.

Each test starts its own cluster of 1-CPU nodes on this machine (``ray.cluster_utils.Cluster``) and always shuts
it down. The drivers run in processes of their own, as a user's would: this process never connects to Ray, so
nothing native of Ray's runs inside pytest (a driver that crashed there would end the whole suite), and the
stopped driver is really killed. Every wait is bounded, so no run of the suite can wait forever.
"""

import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from conftest import assert_one_line_error
from ladarts.errors import UserInputError
from ladarts.hardware.fleet import matching_nodes, parse_resources
from ladarts.hardware.store import LatencyStore, integrity_ok

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

TINY_NET = ["--channels", "4", "--cells", "3", "--input-size", "8"]

# A driver: run_fleet with a fast timing config, printing the running count after each record and the result last.
DRIVER = """
import json, sys
from ladarts.hardware.campaign import MeasureConfig, campaign_items
from ladarts.hardware.fleet import run_fleet
from ladarts.hardware.platform import Platform
from ladarts.hardware.store import LatencyStore
from ladarts.space import network_config

db, address, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
platform = Platform(network=network_config("cifar", channels=4, cells=3, input_size=8))
config = MeasureConfig(pairs=1, warmup=0, calibration=3, drift_every=10, drift_repeats=2)
with LatencyStore.open_or_create(db) as store:
    result = run_fleet(store, platform, campaign_items(n, seed=11), config=config, address=address, progress=False,
                       on_record=lambda r: print("measured", r.total.measured, flush=True))
print("result", json.dumps(result.to_dict()), flush=True)
"""


@pytest.fixture
def cluster():
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        yield c
    finally:
        c.shutdown()


class Driver:
    """A driver process; ``wait_for(k)`` reads its output until it has stored ``k`` records."""

    def __init__(self, db, address: str, n: int):
        self.proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(db), address, str(n)], text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        self.measured = 0
        self.result = None

    def wait_for(self, k: int | None, timeout: float = 240) -> None:
        """Until ``k`` records are stored (``None``: until the driver ends); fails after ``timeout`` s."""
        deadline = time.time() + timeout
        while k is None or self.measured < k:
            assert time.time() < deadline, f"the driver stalled at {self.measured} records"
            if not select.select([self.proc.stdout], [], [], 1.0)[0]:
                continue
            line = self.proc.stdout.readline()
            if not line:
                assert k is None, f"the driver ended at {self.measured} records: {self.proc.stderr.read()[-2000:]}"
                return
            word, value = line.split(" ", 1)
            if word == "measured":
                self.measured = int(value)
            elif word == "result":
                self.result = json.loads(value)

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def end(self) -> None:
        self.wait_for(None)
        self.proc.wait(30)
        assert self.proc.returncode == 0 and self.result is not None, self.proc.stderr.read()[-2000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self.proc.stdout.close()
        self.proc.stderr.close()


def test_resource_and_label_selection():
    nodes = [{"Alive": True, "NodeID": "a", "Resources": {"CPU": 4.0, "jetson": 1.0}, "Labels": {"device": "orin"}},
             {"Alive": True, "NodeID": "b", "Resources": {"CPU": 4.0}, "Labels": {}},
             {"Alive": False, "NodeID": "c", "Resources": {"CPU": 4.0, "jetson": 1.0}}]
    assert [n["NodeID"] for n in matching_nodes(nodes, {})] == ["a", "b"]
    assert [n["NodeID"] for n in matching_nodes(nodes, {"jetson": "1"})] == ["a"]
    assert [n["NodeID"] for n in matching_nodes(nodes, {"device": "orin"})] == ["a"]
    assert matching_nodes(nodes, {"device": "nano"}) == []
    assert parse_resources(["device=jetson-orin", "gpu_kind = a100"]) == {"device": "jetson-orin", "gpu_kind": "a100"}
    with pytest.raises(UserInputError, match="NAME=VALUE"):
        parse_resources(["device"])


def test_a_node_slower_than_max_slowdown_is_left_out_with_a_line(tmp_path):
    """A node whose calibration is beyond ``max_slowdown`` times its platform's scale times nothing; the others go
    on (the fleet refuses only when no node is left)."""
    from ladarts.hardware import MeasureConfig, Measurer, Platform, campaign_items
    from ladarts.hardware.fleet import _fast_enough, _Node
    from ladarts.space import network_config

    platform = Platform(network=network_config("cifar", channels=4, cells=3, input_size=8))
    fast = MeasureConfig(pairs=1, warmup=0, calibration=3, drift_every=10, drift_repeats=2)
    with LatencyStore.open_or_create(tmp_path / "lat.db") as store:
        Measurer(store, platform, fast).run(campaign_items(1, 0), progress=False)
        scale = store.reference(platform.key).ms
        lines = []
        config = MeasureConfig(**{**fast.to_dict(), "max_slowdown": 1.2})
        nodes = [_Node(f"10.0.0.{i}:n{i}", None, key=platform.key, calibration={"median_ms": f * scale})
                 for i, f in enumerate((1.1, 1.3))]
        assert [_fast_enough(store, n, config, lines.append) for n in nodes] == [True, False]
        assert len(lines) == 1 and lines[0].startswith("ladarts: warning: node 10.0.0.1:n1: ")
        assert "1.30x the platform's" in lines[0] and lines[0].endswith("; going on without it")
        assert _fast_enough(store, nodes[1], fast, lines.append)  # without max_slowdown: every node


def _campaign_with_a_lost_node_and_a_killed_driver(cluster, tmp_path, n: int) -> None:
    """Kill the driver after a tenth of the records, rerun it, and remove the non-head node at a third."""
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    db = tmp_path / "fleet.db"
    driver = Driver(db, cluster.address, n)
    try:
        driver.wait_for(n // 10)
        driver.kill()
    finally:
        driver.close()
    with LatencyStore.open(db) as store:
        first = len(store.records())
    assert first >= n // 10
    driver = Driver(db, cluster.address, n)
    try:
        driver.wait_for(n // 3 - first)
        cluster.remove_node(worker)
        driver.end()
    finally:
        driver.close()
    result = driver.result
    assert result["skipped"] == first and result["unfinished"] == []
    assert [node["alive"] for node in result["nodes"].values()].count(False) == 1
    assert all(node["measured"] > 0 for node in result["nodes"].values())
    assert integrity_ok(db)
    with LatencyStore.open(db) as store:
        recs = store.records()
        assert len(recs) == n == len({r.arch_hash for r in recs})
        assert sorted(r.seq for r in recs) == list(range(n))
        (key,) = store.platforms()  # identical devices: one platform, one scale
        assert store.reference(key).sessions == 4  # two nodes, two driver runs


def test_fleet_of_200_loses_a_node_and_a_driver_and_ends_complete(cluster, tmp_path):
    _campaign_with_a_lost_node_and_a_killed_driver(cluster, tmp_path, 200)  # about 20 s on 2 cores


def test_cli_measure_on_ray(cluster, tmp_path, run_cli):
    db = tmp_path / "cli.db"
    proc = run_cli("measure", "--db", str(db), "--n", "6", "--pairs", "1", *TINY_NET, "--no-progress",
                   "--ray", cluster.address, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["measured"] == 6 and len(out["nodes"]) == 1
    with LatencyStore.open(db) as store:
        assert len(store.records()) == 6
    proc = run_cli("measure", "--db", str(db), "--n", "6", *TINY_NET, "--ray", cluster.address,
                   "--ray-resource", "device=jetson-orin")
    assert_one_line_error(proc, 1)
    assert "no alive Ray node has device=jetson-orin" in proc.stderr
