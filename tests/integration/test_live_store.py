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
            Presence(0.0, "gw-entrance", "entrance", "m_chen0001", "enter"),
            Presence(0.0, "gw-fresh", "pantry", "m_chen0001", "enter"),
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
