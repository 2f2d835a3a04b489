"""Scale-out on this machine: a 3-master Redis Cluster on loopback, 3 recommender replicas
(separate processes) behind one MQTT v5 shared subscription on our Mosquitto, a two-store
trace, and one replica SIGKILLed half-way.

Checked against what Redis Cluster holds afterwards: no event lost (each is in its
member's dedupe set), no prompt published twice, every prompt a script claimed was
published, every customer's state is that of their latest event, and after the kill the
survivors carry the traffic (the dead replica's session was adopted and ended).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from bench.local_cluster import LocalCluster
from bench.scale import Replicas, drive, finish, load_chain, write_chain
from floorwalker.config import Endpoints
from floorwalker.errors import ConfigError
from recommender import cluster
from recommender.decide import Decider, ScriptCall, args
from recommender.keys import Keys, ReplicaKeys

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    c = LocalCluster(tmp_path_factory.mktemp("cluster"), masters=3)
    yield c.up()
    c.down()


def test_three_replicas_on_redis_cluster_survive_a_kill(
    services: Endpoints, redis_cluster: str, prefix: str, tmp_path: Path
) -> None:
    paths = write_chain(tmp_path / "chain", stores=2, members=30)
    configs = load_chain(paths)
    replicas = Replicas(paths, services, redis_cluster, prefix, log_dir=tmp_path)
    try:
        replicas.start(["r0", "r1", "r2"])
        run = drive(configs, services, prefix, members=30, steps=6, member_gap_s=1.0, kill=(replicas, "r1"))
        report = finish(run, redis_cluster, prefix, timeout=30)
        adopted = _wait_until_gone(redis_cluster, prefix, "r1", timeout=30)
    finally:
        replicas.stop()
    logs = {p.name: p.read_text() for p in tmp_path.glob("r*.log")}
    assert adopted, "r1's session was not adopted within 30 s"

    assert report["events"] == 360 and report["stores"] == 2
    assert report["lost_events"] == 0, report
    assert report["duplicate_prompts"] == 0, report
    assert report["claimed_not_published"] == 0 and report["published_not_claimed"] == 0, report
    assert report["order_violations"] == 0, report
    # Not vacuous: prompts were made, by all three replicas before the kill...
    assert report["prompts"] >= 40, report
    assert set(report["producers"]) == {"rec-r0", "rec-r1", "rec-r2"}, report
    # ... and only by the survivors after it; one of them adopted r1's session.
    assert report["producers_after_kill"] and "rec-r1" not in report["producers_after_kill"], report
    adoption = [m for text in logs.values() for m in re.findall(r"adopted replica r1: (\d+) message", text)]
    # The broker kept queuing r1's share until the adoption: those events came from its session.
    assert len(adoption) == 1 and int(adoption[0]) > 0, logs
    client = cluster.connect(redis_cluster)
    try:
        members = {m.decode() for m in client.smembers(ReplicaKeys("rec", prefix).members)}  # type: ignore[union-attr]
    finally:
        client.close()
    assert "r1" not in members  # its session ended; the stopped survivors left too
    assert members == set()


def _wait_until_gone(url: str, prefix: str, replica: str, timeout: float) -> bool:
    """True once ``replica`` left the group's member set (its session adopted and ended)."""
    client = cluster.connect(url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            members = client.smembers(ReplicaKeys("rec", prefix).members)
            if replica.encode() not in members:  # type: ignore[operator]
                return True
            time.sleep(0.2)
        return False
    finally:
        client.close()


def test_cross_slot_script_is_refused_by_name(redis_cluster: str, prefix: str) -> None:
    client = cluster.connect(redis_cluster)
    try:
        decider = Decider(client, Keys("s1", prefix))
        keys = Keys("s1", prefix)
        now = time.time()
        argv = args("e1", now, now, 50, 3600, 30, 60, "-")
        good = ScriptCall("footfall", [keys.zone_seen("dairy"), keys.store_cooldown("dairy", "x")], argv)
        # Two zones' keys in one script: different hash tags, different slots.
        bad = ScriptCall("footfall", [keys.zone_seen("dairy"), keys.store_cooldown("pantry", "x")], argv)
        ok, refused = decider.run([good, bad])
    finally:
        client.close()
    assert not isinstance(ok, redis.ResponseError)
    assert isinstance(refused, redis.ResponseError)
    assert "Lua script 'footfall'" in str(refused) and "slots" in str(refused) and "hash tag" in str(refused)


def test_every_script_key_set_shares_one_slot() -> None:
    """The key sets the engine passes to each Lua script (recommender/script_args.py)."""
    k = Keys("s1", "t/")
    sets = {
        "presence": [
            k.member_seen("m1"),
            k.visit("m1"),
            k.profile("m1"),
            k.contacts("m1"),
            k.suggested("m1"),
            k.unsent("m1"),
            k.erased("m1"),
        ],
        "checkout": [k.member_seen("m1"), k.visit("m1"), k.profile("m1"), k.suggested("m1"), k.erased("m1")],
        "checkout (guest)": [k.lane_seen("lane-1"), k.lane_unsent("lane-1")],
        "footfall": [k.zone_seen("dairy"), k.store_cooldown("dairy", "open-till"), k.zone_unsent("dairy")],
        "read": [k.profile("m1"), k.visit("m1"), k.contacts("m1")],
        "feedback": [k.prompt("p1")],
    }
    for script, keys in sets.items():
        cluster.check_one_slot(script, keys)  # raises CrossSlotScript naming the script


def test_cluster_url_on_a_single_redis_is_a_clear_error(services: Endpoints, tmp_path: Path) -> None:
    from floorwalker.services import Services

    single = Services(tmp_path / "single")
    single.run_dir.mkdir()
    single.up()
    try:
        port = single.recorded()["redis"].port
        with pytest.raises(ConfigError, match="without cluster mode"):
            cluster.connect(f"redis+cluster://127.0.0.1:{port}/0")
    finally:
        single.down()


def test_bench_scale_writes_its_json(tmp_path: Path) -> None:
    """`floorwalker bench scale` end to end, one short run (figures: bench/README.md)."""
    import json

    from typer.testing import CliRunner

    from floorwalker.cli import app

    out = tmp_path / "scale.json"
    result = CliRunner().invoke(
        app, ["bench", "scale", "--replicas", "1", "--rate", "200", "--seconds", "1", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    (run,) = data["runs"]
    assert run["replicas"] == 1 and run["events"] == 200
    assert run["lost_events"] == 0 and run["duplicate_prompts"] == 0 and run["order_violations"] == 0
    assert run["member_bytes"]["total"] > 0 and run["recommender_cpu_ms_per_event"] > 0


def test_bench_scale_refuses_bad_counts() -> None:
    from typer.testing import CliRunner

    from floorwalker.cli import app

    result = CliRunner().invoke(app, ["bench", "scale", "--replicas", "two"])
    assert result.exit_code != 0 and "--replicas 'two'" in result.output


def test_a_batch_over_many_slots_comes_back_in_order(redis_cluster: str, prefix: str) -> None:
    """One packed write per node, replies put back in the order the commands were given."""
    client = cluster.connect(redis_cluster)
    assert isinstance(client, RedisCluster)
    try:
        keys = [f"{prefix}fw:s1:cust:{{m_{i}}}:visit" for i in range(40)]
        nodes = {
            client.nodes_manager.get_node_from_slot(cluster.command_slot(("HSET", k))).name for k in keys
        }
        assert len(nodes) == 3  # the batch really spans every master
        commands: list[cluster.Command] = []
        for i, k in enumerate(keys):
            commands += [("HSET", k, "n", i), ("HINCRBY", k, "n", 1000), ("HGET", k, "n")]
        replies = cluster.send(client, commands)
        assert replies[2::3] == [str(1000 + i).encode() for i in range(40)]
        assert replies[1::3] == [1000 + i for i in range(40)]
        for k in keys:
            client.delete(k)
    finally:
        client.close()
