"""The live simulator next to a real camera gateway (what `make demo` runs): for a gateway
whose camera runs for real, the simulator plays only the presence it hears, under its own
client id, and leaves the gateway's status and its zones' footfall to the real process."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from broker_config.contract import TopicKind, Topics
from floorwalker.config import Endpoints, StoreConfig
from simulators.live import LiveStore
from simulators.scenario import Presence
from tests.conftest import Collector

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("camera", [True, False])
def test_camera_gateway_keeps_its_status_and_footfall(
    services: Endpoints,
    prefix: str,
    store_config: StoreConfig,
    collect: Callable[[list[str]], Collector],
    camera: bool,
) -> None:
    topics = Topics(prefix)
    seen = collect([topics.subscription(k, store_config.store) for k in TopicKind])
    live = LiveStore(
        store_config,
        services.mqtt_host,
        services.mqtt_port,
        topic_prefix=prefix,
        camera_gateways=frozenset({"gw-entrance"} if camera else ()),
    )
    live.start()
    try:
        steps = [
            Presence(0.0, "gw-entrance", "entrance", "m_702cc64d", "enter"),
            Presence(0.0, "gw-fresh", "pantry", "m_702cc64d", "enter"),
        ]
        live.play(steps, threading.Event(), speed=1000)
    finally:
        live.stop()
    store = store_config.store
    seen.wait_for(lambda m: any(t == topics.footfall(store, "pantry") for t, _ in m))
    seen.wait_for(lambda m: any(t == topics.presence(store, "entrance") for t, _ in m))
    got = {t for t, _ in seen.messages}
    assert (topics.footfall(store, "entrance") in got) is not camera
    assert (topics.status(store, "gw-entrance") in got) is not camera
    assert topics.status(store, "gw-fresh") in got


def test_members_presence_through_ble_and_a_real_fuser(
    services: Endpoints,
    prefix: str,
    store_config: StoreConfig,
    collect: Callable[[list[str]], Collector],
) -> None:
    """With ``ble`` presence the gateways publish only BLE reports of rotating ids; the
    fuser process resolves them and says where the member is. Nothing else speaks for the
    member's presence, and no report names them."""
    from broker_config.contract import BleReport, PresenceEvent, decode
    from presence.fuser import FuserService

    topics = Topics(prefix)
    store = store_config.store
    seen = collect([topics.subscription(k, store) for k in (TopicKind.BLE, TopicKind.PRESENCE)])
    fuser = FuserService(store_config, services, topic_prefix=prefix)
    threads = [threading.Thread(target=fuser.run)]
    live = LiveStore(
        store_config, services.mqtt_host, services.mqtt_port, topic_prefix=prefix, presence="ble"
    )
    steps = [
        Presence(0.0, "gw-entrance", "entrance", "m_702cc64d", "enter"),
        Presence(12.0, "gw-entrance", "entrance", "m_702cc64d", "leave"),
        Presence(12.0, "gw-fresh", "pantry", "m_702cc64d", "enter"),
        Presence(60.0, "gw-fresh", "pantry", "m_702cc64d", "leave"),
    ]
    stop = threading.Event()
    threads.append(threading.Thread(target=live.play, args=(steps, stop), kwargs={"speed": 4.0, "seed": 3}))
    threads[0].start()
    live.start()
    try:
        threads[1].start()

        def fused(messages: list[tuple[str, bytes]]) -> bool:
            return any(t == topics.presence(store, "pantry") and b'"enter"' in p for t, p in messages)

        seen.wait_for(fused, timeout=30)
    finally:
        stop.set()
        threads[1].join(15)
        live.stop()
        fuser.stop()
        threads[0].join(15)
    presence = [decode(topics, t, p).payload for t, p in seen.messages if "/presence" in t]
    reports = [decode(topics, t, p).payload for t, p in seen.messages if t.endswith("/ble")]
    assert all(
        isinstance(e, PresenceEvent) and e.producer == store_config.ble_presence.fuser for e in presence
    )
    assert any(
        isinstance(e, PresenceEvent) and e.member == "m_702cc64d" and e.action == "enter" for e in presence
    )
    assert reports and all(isinstance(r, BleReport) and r.sightings for r in reports)
    assert not any(b"m_702cc64d" in p for t, p in seen.messages if t.endswith("/ble"))
    assert live.sent["ble"] >= len(reports) and live.sent["presence:enter"] == 0
