"""Scan every byte the store puts on MQTT during a simulated day for personal data.

The whole stack runs on the real broker: gateways replaying a member's phone as the RF
model hears it (rotating ids), the fuser, the recommender, POS adapters and gateways of
the scripted simulator walking every CRM member through the store to the tills. A
recorder subscribed to everything under the test's prefix keeps every topic and payload;
none may carry a CRM display name, a phone number, an e-mail address, a device address
or a member's stable BLE secret. (Pseudonymous ``m_...`` ids are allowed: they are the
contract's member references.)
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from broker_config.contract import EnvelopeSource, FootfallEvent, Topics, encode
from edge_agent.agent import run_gateway
from edge_agent.ble.eid import member_secret
from floorwalker.ble_keys import read_key_file
from floorwalker.config import Endpoints, ReplayScannerConfig, load_store_config
from presence.fuser import FuserService
from recommender.crm import read_fixture
from recommender.service import RecommenderService
from simulators import scenario
from simulators.live import LiveStore, shoppers_from
from tests.conftest import Collector
from tests.integration.test_ble_presence import fast_store, make_trace

pytestmark = pytest.mark.integration

PHONE = re.compile(rb"\+\d[\d ().-]{7,}\d|\b\d{3}[ .-]\d{3}[ .-]\d{4}\b")
EMAIL = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+\.[A-Za-z.]{2,}")
MAC = re.compile(rb"\b(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}\b")


def test_a_simulated_day_puts_no_personal_data_on_mqtt(
    services: Endpoints, prefix: str, tmp_path: Path, collect: Callable[[list[str]], Collector]
) -> None:
    config = load_store_config(fast_store(tmp_path))
    assert config.crm is not None and config.ble_presence.secrets is not None
    fixture = read_fixture(config.crm)
    names = [m.display_name.encode() for m in fixture.members if m.display_name]
    key = bytes.fromhex(read_key_file(config.ble_presence.secrets).store_key)
    secrets = [member_secret(key, m.member).hex().encode() for m in fixture.members]
    recorder = collect([f"{prefix}#"])

    recommender = RecommenderService(config, services, topic_prefix=prefix, key_prefix=prefix)
    fuser = FuserService(config, services, topic_prefix=prefix)
    stop = threading.Event()
    threads = [threading.Thread(target=recommender.run), threading.Thread(target=fuser.run)]
    trace = tmp_path / "trace.jsonl"
    make_trace(config, trace, time.time() + 2.0)
    for gw in config.gateways:
        threads.append(
            threading.Thread(
                target=run_gateway,
                args=(config, gw.id, services.mqtt_host, services.mqtt_port, stop),
                kwargs={
                    "topic_prefix": prefix,
                    "heartbeat_s": 2.0,
                    "scanner": ReplayScannerConfig(path=trace),
                    "outbox_path": tmp_path / f"outbox-{gw.id}.db",
                },
            )
        )
    for th in threads:
        th.start()
    # The scripted day, every CRM member and some non-members, played fast alongside.
    steps = scenario.build(config, shoppers_from(fixture, non_members=6), seed=9)
    store = LiveStore(config, services.mqtt_host, services.mqtt_port, topic_prefix=f"{prefix}")
    store.start()
    try:
        store.play(steps, threading.Event(), speed=max(s.at for s in steps) / 8.0)
        recorder.wait_for(lambda msgs: any(b'"leave"' in p and "/pantry/" in t for t, p in msgs), timeout=60)
        # Every producer and consumer has been on the wire: what the scan below requires.
        recorder.wait_for(lambda msgs: _kinds(msgs) >= EVERY_KIND, timeout=60)
    finally:
        store.stop()
        stop.set()
        fuser.stop()
        recommender.stop()
        for th in threads:
            th.join(15)

    kinds = _kinds(recorder.messages)
    assert kinds >= EVERY_KIND  # the day really exercised every producer and consumer
    leaks = _leaks(recorder.messages, names, secrets)
    print(f"\nPRIVACY SCAN messages={len(recorder.messages)} kinds={sorted(kinds)} leaks={len(leaks)}")
    assert leaks == []


EVERY_KIND = {"presence", "footfall", "checkout", "ble", "status", "prompt", "ack"}


def _kinds(messages: list[tuple[str, bytes]]) -> set[str]:
    return {t.split("/")[-1] for t, _ in messages}


def _leaks(messages: list[tuple[str, bytes]], names: list[bytes], secrets: list[bytes]) -> list[str]:
    leaks = []
    for topic, payload in messages:
        blob = topic.encode() + b" " + payload
        for what, hit in (
            ("name", next((n for n in names if n in blob), None)),
            ("phone", PHONE.search(blob)),
            ("e-mail", EMAIL.search(blob)),
            ("device address", MAC.search(blob)),
            ("BLE secret", next((s for s in secrets if s in blob), None)),
        ):
            if hit:
                leaks.append(f"{what} on {topic}")
    return leaks


def test_issue_4s_simulated_day_replayed_through_the_system_leaks_nothing(
    services: Endpoints, prefix: str, collect: Callable[[list[str]], Collector]
) -> None:
    """The same scan over a day from ``simulators.day`` (arrivals over the store's curve,
    phones through the RF model and the gateways' sighting tables, cameras, tills),
    replayed onto the broker with the fuser and the recommender answering."""
    from floorwalker.mqtt import MqttLink
    from simulators.day import simulate_day
    from simulators.replay import ReplayOptions, replay
    from tests.conftest import DEMO_STORE

    store = load_store_config(DEMO_STORE)
    # No handhelds run here: the decision path prompts without them (rules.require_handheld off).
    config = store.model_copy(update={"rules": store.rules.model_copy(update={"require_handheld": False})})
    assert config.crm is not None and config.ble_presence.secrets is not None
    fixture = read_fixture(config.crm)
    names = [m.display_name.encode() for m in fixture.members if m.display_name]
    key = bytes.fromhex(read_key_file(config.ble_presence.secrets).store_key)
    secrets = [member_secret(key, m.member).hex().encode() for m in fixture.members]
    day = simulate_day(config, fixture, hours=0.5, visitors=60, seed=5, presence="ble")
    recorder = collect([f"{prefix}#"])
    recommender = RecommenderService(config, services, topic_prefix=prefix, key_prefix=prefix)
    fuser = FuserService(config, services, topic_prefix=prefix)
    recommender.start()  # returns once the broker confirmed its subscriptions
    threads = [threading.Thread(target=recommender.serve), threading.Thread(target=fuser.run)]
    for th in threads:
        th.start()
    # The fuser subscribes on its own thread: the confirmation (SUBACK) is the marker.
    assert fuser.link._subscribed.wait(30), "the fuser never subscribed"
    link = MqttLink(services.mqtt_host, services.mqtt_port, client_id=f"{prefix[:-1]}-replay")
    link.connect()
    try:
        result = replay(day.lines, link, ReplayOptions(speed=None, topic_prefix=prefix))
        # A sentinel after the day, on the same connection: the recommender handles one
        # connection's events in order, so its acknowledgement of the sentinel means it
        # handled (and answered) the whole day.
        topics = Topics(prefix)
        gateway = config.gateways[0]
        sentinel = EnvelopeSource(gateway.id, start_seq=10**9).make(
            FootfallEvent, time.time(), window_s=1.0, entered=0, exited=0, occupancy=0
        )
        link.publish(topics.footfall(config.store, gateway.zones[0]), encode(sentinel)).wait_for_publish(10)
        marker = sentinel.event_id.encode()
        recorder.wait_for(lambda msgs: any(t.endswith("/ack") and marker in p for t, p in msgs), timeout=60)
        recorder.wait_for(lambda msgs: sum("/prompt" in t for t, _ in msgs) >= 3, timeout=30)
    finally:
        link.close()
        fuser.stop()
        recommender.stop()
        for th in threads:
            th.join(15)
    kinds = {t.split("/")[-1] for t, _ in recorder.messages}
    assert {"presence", "footfall", "checkout", "ble", "prompt", "ack"} <= kinds
    wire = recorder.messages + [(line.topic, line.payload) for line in day.lines]
    leaks = _leaks(wire, names, secrets)
    print(
        f"\nPRIVACY SCAN (simulate_day) sent={result.sent} captured={len(recorder.messages)} "
        f"leaks={len(leaks)}"
    )
    assert leaks == []


@pytest.mark.parametrize(
    ("pattern", "leaky", "clean"),
    [
        (PHONE, b'{"x": "+44 20 7946 0958"}', b'{"ts": 1800000000.123456, "seq": 12345678}'),
        (PHONE, b'{"x": "555-867-5309"}', b'{"event_id": "0123456789abcdef0123456789abcdef"}'),
        (EMAIL, b'{"x": "mrs.chen@example.com"}', b'{"member": "m_702cc64d"}'),
        (MAC, b'{"x": "a4:c1:38:0f:22:9b"}', b'{"eid": "0f1e2d3c4b5a6978"}'),
    ],
)
def test_the_scanners_see_what_they_look_for(pattern: re.Pattern[bytes], leaky: bytes, clean: bytes) -> None:
    assert pattern.search(leaky) and not pattern.search(clean)
