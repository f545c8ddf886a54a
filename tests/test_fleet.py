"""The measurement fleet on a local Ray cluster: a node killed midway, a driver stopped and rerun, the CLI.

Each test starts its own cluster of 1-CPU nodes on this machine (``ray.cluster_utils.Cluster``) and always shuts
it down. A watchdog ends the process if Ray ever hangs, so no run of the suite can wait forever.
"""

import faulthandler
import json

import pytest

from conftest import assert_one_line_error
from ladarts.hardware.campaign import MeasureConfig, campaign_items
from ladarts.hardware.fleet import matching_nodes, parse_resources, run_fleet
from ladarts.hardware.platform import Platform
from ladarts.hardware.store import LatencyStore, integrity_ok
from ladarts.errors import UserInputError
from ladarts.space import network_config

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

PLATFORM = Platform(network=network_config("cifar", channels=4, cells=3, input_size=8))
FLEET = MeasureConfig(pairs=1, warmup=0, calibration=3, drift_every=10, drift_repeats=2)
TINY_NET = ["--channels", "4", "--cells", "3", "--input-size", "8"]


@pytest.fixture
def cluster():
    faulthandler.dump_traceback_later(600, exit=True)  # a hung Ray never blocks the suite
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()
        faulthandler.cancel_dump_traceback_later()


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


def _campaign_with_a_lost_node_and_a_stopped_driver(cluster, tmp_path, n: int) -> None:
    """Stop the driver after a few records (as a kill would), rerun it, and remove the non-head node midway."""
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    db = tmp_path / "fleet.db"
    items = campaign_items(n, seed=11)

    class DriverKilled(Exception):
        pass

    def stop(result):
        if result.total.measured >= n // 10:
            raise DriverKilled

    with LatencyStore.open_or_create(db) as store:
        with pytest.raises(DriverKilled):
            run_fleet(store, PLATFORM, items, config=FLEET, address=cluster.address, progress=False, on_record=stop)
    first = n // 10
    removed = []

    def kill_midway(result):
        if not removed and result.total.measured >= n // 3:
            cluster.remove_node(worker)
            removed.append(result.total.measured)

    with LatencyStore.open_or_create(db) as store:
        result = run_fleet(store, PLATFORM, items, config=FLEET, address=cluster.address, progress=False,
                           on_record=kill_midway)
    assert removed, "the node was never removed"
    assert result.total.skipped >= first and result.unfinished == []
    assert [node["alive"] for node in result.nodes.values()].count(False) == 1
    assert all(node["measured"] > 0 for node in result.nodes.values())
    assert integrity_ok(db)
    with LatencyStore.open(db) as store:
        recs = store.records()
        assert len(recs) == n == len({r.arch_hash for r in recs})
        assert sorted(r.seq for r in recs) == list(range(n))
        (key,) = store.platforms()  # identical devices: one platform, one scale
        assert store.reference(key).sessions == 4  # two nodes, two driver runs
        assert ray.is_initialized() is False


def test_fleet_of_200_loses_a_node_and_a_driver_and_ends_complete(cluster, tmp_path):
    _campaign_with_a_lost_node_and_a_stopped_driver(cluster, tmp_path, 200)  # about 15 s on 2 cores


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
