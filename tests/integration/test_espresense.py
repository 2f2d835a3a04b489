"""ESPresense receivers as gateways, on the real broker: the recorded ESPresense messages
(tests/data/espresense/) published as the nodes would -> ``floorwalker espresense``'s
bridge -> our gateways' status and BLE reports -> the fuser resolves the member and says
they came in at the entrance and walked on to produce."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from broker_config.contract import BleReport, GatewayStatus, PresenceEvent, TopicKind, Topics
from floorwalker.config import Endpoints, load_store_config
from floorwalker.mqtt import MqttLink
from integrations.espresense import EspresenseBridge, EspresenseConfig
from presence.fuser import FuserService
from tests.conftest import DEMO_STORE, Collector

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data" / "espresense"
T0 = 1767225600.0


def test_recorded_espresense_walk_reaches_the_fuser(
    services: Endpoints, prefix: str, tmp_path: Path, collect: Callable[[list[str]], Collector]
) -> None:
    raw = yaml.safe_load(DEMO_STORE.read_text())
    raw["crm"] = str(DATA / "crm.json")  # one consenting member of our own
    raw["ble_presence"] = {"secrets": str(DATA / "ble_keys.json")}
    (tmp_path / "store.yaml").write_text(yaml.safe_dump(raw))
    config = load_store_config(tmp_path / "store.yaml")
    rooms = yaml.safe_load((DATA / "rooms.yaml").read_text())
    bridge_config = EspresenseConfig(base_topic=f"{prefix}espresense", rooms=rooms["rooms"], heartbeat_s=1)
    topics = Topics(prefix)
    watch = collect(
        [
            topics.subscription(TopicKind.BLE, config.store),
            topics.subscription(TopicKind.STATUS, config.store),
            topics.subscription(TopicKind.PRESENCE, config.store),
        ]
    )
    started = time.monotonic()
    bridge = EspresenseBridge(
        config,
        bridge_config,
        services.mqtt_host,
        services.mqtt_port,
        topic_prefix=prefix,
        clock=lambda: T0 + (time.monotonic() - started),  # the recording's own time
    )
    fuser = FuserService(config, services, topic_prefix=prefix)
    stop = threading.Event()
    threads = [threading.Thread(target=bridge.run, args=(stop,)), threading.Thread(target=fuser.run)]
    for th in threads:
        th.start()
    nodes = MqttLink(services.mqtt_host, services.mqtt_port, f"{prefix.replace('/', '-')}nodes")
    nodes.connect()
    try:
        # The bridge subscribes first; its gateways' ``online`` statuses say it listens.
        watch.wait_for(lambda msgs: sum("/status" in t for t, _ in msgs) >= 3, timeout=15)
        rows = [json.loads(line) for line in (DATA / "walk.jsonl").read_text().splitlines()]
        replay_start = time.monotonic()
        for row in rows:
            delay = row["t"] - (time.monotonic() - replay_start)
            if delay > 0:
                time.sleep(delay)  # the recording's pace
            nodes.publish(f"{prefix}{row['topic']}", row["payload"].encode(), qos=1)
        watch.wait_for(
            lambda msgs: any(b'"enter"' in p and "/produce/presence" in t for t, p in msgs), timeout=30
        )
        # A heartbeat (every second here) carries the room's state and the table's counts.
        watch.wait_for(lambda msgs: any(b"espresense room entrance: online" in p for _, p in msgs))
    finally:
        nodes.close()
        stop.set()
        fuser.stop()
        for th in threads:
            th.join(15)

    presence = [
        (t.split("/")[-2], PresenceEvent.model_validate_json(p))
        for t, p in watch.messages
        if "/presence" in t
    ]
    assert [(zone, e.action) for zone, e in presence] == [
        ("entrance", "enter"),
        ("entrance", "leave"),
        ("produce", "enter"),
    ]
    assert {(e.member, e.producer) for _, e in presence} == {("m_esp0walk", "fuser")}
    reports = [(t.split("/")[-2], BleReport.model_validate_json(p)) for t, p in watch.messages if "/ble" in t]
    assert {gw for gw, _ in reports} == {"gw-entrance", "gw-produce"}
    assert all(r.producer == gw for gw, r in reports)
    statuses = [GatewayStatus.model_validate_json(p) for p in watch.on("/status")]
    assert {s.producer for s in statuses} == {"gw-entrance", "gw-produce", "gw-checkout"}
    assert any("espresense room entrance: online" in s.detail for s in statuses)
    # Nothing ESPresense said about a device (its MAC, a name, other ids) reaches our topics.
    for _t, p in watch.messages:
        assert b"6f1c2a9b3d4e" not in p and b"jane" not in p.lower() and b"iBeacon" not in p
        assert not re.search(rb"([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}", p)
