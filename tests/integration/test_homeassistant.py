"""The Home Assistant bridge on a real Mosquitto: retained discovery configs, and a floor
state whose figures every entity's ``value_template`` finds.

Home Assistant itself does not run here (see tests/unit/test_homeassistant.py): an entity's
template ``{{ value_json.<path> }}`` is resolved against the retained state as Home
Assistant's ``value_json`` would be.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from broker_config.contract import (
    EnvelopeSource,
    FloorState,
    FootfallEvent,
    GatewayStatus,
    Topics,
    decode,
    encode,
)
from floorwalker.config import Endpoints, StoreConfig
from floorwalker.mqtt import MqttLink
from integrations.homeassistant import HomeAssistantBridge
from tests.conftest import Collector

pytestmark = pytest.mark.integration

PATH = re.compile(r"^\{\{ value_json\.(.+) \}\}$")
STEP = re.compile(r"\['([^']+)'\]|\.?([a-z_]+)")


def resolve(template: str, value_json: dict[str, Any]) -> object:
    """``{{ value_json.zones['x'].occupancy }}`` against a decoded payload, as Jinja would."""
    match = PATH.match(template)
    assert match, template
    at: Any = value_json
    for key, attr in STEP.findall(match.group(1)):
        at = at[key or attr]
    return at


def test_entities_are_announced_and_their_figures_published(
    services: Endpoints,
    store_config: StoreConfig,
    prefix: str,
    collect: Callable[[list[str]], Collector],
) -> None:
    discovery_prefix = f"ha{uuid.uuid4().hex[:8]}"
    ha = store_config.home_assistant.model_copy(
        update={"enabled": True, "discovery_prefix": discovery_prefix}
    )
    config = store_config.model_copy(update={"home_assistant": ha})
    topics = Topics(prefix)
    link = MqttLink(services.mqtt_host, services.mqtt_port, f"gw-{uuid.uuid4().hex[:6]}")
    link.connect()
    status = EnvelopeSource("gw-entrance").make(GatewayStatus, 1_772_000_000.0, state="online")
    link.publish(topics.status(config.store, "gw-entrance"), encode(status), retain=True)

    bridge = HomeAssistantBridge(config, services.mqtt_host, services.mqtt_port, topic_prefix=prefix)
    stop = threading.Event()
    runner = threading.Thread(target=bridge.run, args=(stop,), kwargs={"min_interval_s": 0.1})
    runner.start()
    try:
        seen = collect([f"{discovery_prefix}/#", topics.floor_state(config.store)])
        seen.wait_for(lambda msgs: sum(t.startswith(discovery_prefix) for t, _ in msgs) >= 20)
        footfall = EnvelopeSource("gw-entrance").make(
            FootfallEvent, 1_772_000_000.0, window_s=60, entered=7, exited=2, occupancy=5
        )
        link.publish(topics.footfall(config.store, "entrance"), encode(footfall))

        def has_entries(msgs: list[tuple[str, bytes]]) -> bool:
            states = [p for t, p in msgs if t == topics.floor_state(config.store)]
            return bool(states) and json.loads(states[-1])["entrances"]["main-door"]["entered"] == 7

        seen.wait_for(has_entries)
    finally:
        stop.set()
        runner.join(10)
        link.close()

    state_bytes = seen.on(topics.floor_state(config.store))[-1]
    state = decode(topics, topics.floor_state(config.store), state_bytes).payload
    assert isinstance(state, FloorState)
    value_json = json.loads(state_bytes)
    configs = {t: json.loads(p) for t, p in seen.messages if t.startswith(discovery_prefix)}
    sensors = {c["unique_id"]: c for t, c in configs.items() if "/sensor/" in t}
    assert len(sensors) == len(config.zones) + 2 * len(config.lanes) + 2 * len(config.entrances) + 3
    for body in sensors.values():
        assert body["state_topic"] == topics.floor_state(config.store)
        resolve(body["value_template"], value_json)  # every figure is where its entity looks
    assert (
        resolve(sensors["floorwalker_demo_store_zone_entrance_occupancy"]["value_template"], value_json) == 5
    )
    assert resolve(sensors["floorwalker_demo_store_entrance_main_door_in"]["value_template"], value_json) == 7
    assert (
        resolve(sensors["floorwalker_demo_store_entrance_main_door_out"]["value_template"], value_json) == 2
    )
    gateway = next(c for t, c in configs.items() if t.endswith("/gateway_gw_entrance/config"))
    assert gateway["state_topic"] == topics.status(config.store, "gw-entrance")

    # Retained: a Home Assistant that starts later still finds every entity and the state.
    late = collect([f"{discovery_prefix}/#", topics.floor_state(config.store)])
    late.wait_for(lambda msgs: len(msgs) >= len(configs) + 1)
    assert b"m_" not in b"".join(p for _, p in late.messages)  # no member id anywhere
