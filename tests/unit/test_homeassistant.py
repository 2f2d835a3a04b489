"""Home Assistant discovery: every config message checked against Home Assistant's documented
MQTT discovery schema, and the floor tally's figures, rule by rule.

No Home Assistant core runs here (docs/homeassistant.md says why): the models below are
written from Home Assistant's documentation of MQTT discovery, the MQTT sensor and the MQTT
binary sensor, with ``extra="forbid"`` so that a key Home Assistant does not know fails.
"""

from __future__ import annotations

import re
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from broker_config.contract import (
    CheckoutEvent,
    EnvelopeSource,
    Feedback,
    FootfallEvent,
    Prompt,
    PromptKind,
    Topics,
    encode,
)
from floorwalker.config import StoreConfig
from integrations.homeassistant import FloorTally, discovery, node_id

T = 1_772_000_000.0
SRC = EnvelopeSource("gw-entrance")


class _HA(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Device(_HA):
    """``device``: at least one of identifiers / connections."""

    identifiers: list[str] = Field(min_length=1)
    name: str
    manufacturer: str
    model: str
    sw_version: str


class Origin(_HA):
    name: str
    sw_version: str


class Availability(_HA):
    topic: str
    value_template: str
    payload_available: str = "online"
    payload_not_available: str = "offline"


#: Sensor device classes of Home Assistant's sensor documentation this bridge may use.
SensorDeviceClass = Literal["duration"]


class MqttSensor(_HA):
    name: str
    unique_id: str
    state_topic: str
    value_template: str
    unit_of_measurement: str | None = None
    device_class: SensorDeviceClass | None = None
    state_class: Literal["measurement", "total", "total_increasing"] | None = None
    expire_after: int = Field(gt=0)
    icon: str | None = Field(default=None, pattern=r"^mdi:[a-z0-9-]+$")
    availability: list[Availability] | None = None
    availability_mode: Literal["all", "any", "latest"] | None = None
    device: Device
    origin: Origin


class MqttBinarySensor(_HA):
    name: str
    unique_id: str
    state_topic: str
    value_template: str
    payload_on: str
    payload_off: str
    device_class: Literal["connectivity"]
    entity_category: Literal["config", "diagnostic"] | None = None
    device: Device
    origin: Origin


TOPIC = re.compile(r"^homeassistant/(sensor|binary_sensor)/([A-Za-z0-9_-]+)/([A-Za-z0-9_-]+)/config$")


def test_every_config_follows_home_assistants_schema(store_config: StoreConfig) -> None:
    configs = discovery(store_config, Topics())
    ids = [body["unique_id"] for _, body in configs]
    assert len(ids) == len(set(ids))
    for topic, body in configs:
        match = TOPIC.match(topic)
        assert match, topic
        component, node, object_id = match.groups()
        assert node == node_id(store_config.store) and body["unique_id"].endswith(object_id)
        model = MqttSensor if component == "sensor" else MqttBinarySensor
        model.model_validate(body)
        if body.get("device_class") == "duration":
            assert body["unit_of_measurement"] == "s"


def test_one_entity_per_figure_of_the_store(store_config: StoreConfig) -> None:
    names = {
        body["unique_id"].removeprefix("floorwalker_demo_store_")
        for _, body in discovery(store_config, Topics())
    }
    c = store_config
    expected = (
        {f"zone_{z.id}_occupancy" for z in c.zones}
        | {f"lane_{lane.id.replace('-', '_')}_{w}" for lane in c.lanes for w in ("queue", "wait")}
        | {f"entrance_{e.id.replace('-', '_')}_{d}" for e in c.entrances for d in ("in", "out")}
        | {f"prompts_{w}" for w in ("sent", "served", "unserved")}
        | {f"gateway_{g.id.replace('-', '_')}" for g in c.gateways}
    )
    assert names == expected


def test_gateway_connectivity_reads_the_retained_status_and_its_last_will(store_config: StoreConfig) -> None:
    topics = Topics()
    gateways = {b["unique_id"]: b for t, b in discovery(store_config, topics) if "/binary_sensor/" in t}
    gw = gateways["floorwalker_demo_store_gateway_gw_entrance"]
    assert gw["state_topic"] == topics.status("demo-store", "gw-entrance")
    assert (gw["payload_on"], gw["payload_off"]) == ("online", "offline")  # GatewayStatus.state
    occupancy = next(
        b for t, b in discovery(store_config, topics) if t.endswith("zone_entrance_occupancy/config")
    )
    assert [a["topic"] for a in occupancy["availability"]] == [topics.status("demo-store", "gw-entrance")]


def test_no_member_data_in_any_config(store_config: StoreConfig) -> None:
    text = repr(discovery(store_config, Topics()))
    assert "m_" not in text.replace("m_demo", "") and "member" not in text


def _footfall(zone: str, entered: int, exited: int, occupancy: int, **extra: object) -> tuple[str, bytes]:
    event = SRC.make(
        FootfallEvent, T, window_s=60, entered=entered, exited=exited, occupancy=occupancy, **extra
    )
    return Topics().footfall("demo-store", zone), encode(event)


def _checkout(lane: str, ts: float) -> tuple[str, bytes]:
    event = EnvelopeSource("pos-1").make(CheckoutEvent, ts, items=[], total_cents=0)
    return Topics().checkout("demo-store", lane), encode(event)


def _prompt(event_id_seed: int, expires: float) -> tuple[str, bytes, str]:
    p = EnvelopeSource("recommender").make(
        Prompt, T, kind=PromptKind.JOIN_INVITE, customer={}, headline="h", suggestion="s", why="w",
        cause_event_id=f"{event_id_seed:032x}", cause_ts=T, expires_at=expires,
    )  # fmt: skip
    return Topics().prompt("demo-store", "a-dan"), encode(p), p.event_id


def _feedback(prompt_id: str, outcome: str) -> tuple[str, bytes]:
    f = EnvelopeSource("handheld").make(Feedback, T, prompt_id=prompt_id, outcome=outcome)
    return Topics().feedback("demo-store", "a-dan"), encode(f)


def test_footfall_gives_occupancy_counters_and_lane_queues(store_config: StoreConfig) -> None:
    tally = FloorTally(store_config, Topics())
    for topic, payload in (
        _footfall("entrance", 5, 2, 3),
        _footfall("entrance", 4, 1, 6),
        _footfall("checkout", 0, 0, 7, queue_length=5, lane_queues={"lane-1": 3, "lane-2": 2}),
    ):
        assert tally.handle(topic, payload, T)
    f = tally.fields()
    assert f["zones"]["entrance"].occupancy == 6 and f["zones"]["dairy"].occupancy is None
    assert (f["entrances"]["main-door"].entered, f["entrances"]["main-door"].exited) == (9, 3)
    assert f["lanes"]["lane-1"].queue == 3 and f["lanes"]["lane-2"].queue == 2


@pytest.mark.parametrize(
    ("queue", "checkouts", "wait"),
    [
        (3, [T, T + 60, T + 120], 180.0),  # 60 s between checkouts, 3 waiting
        (0, [T], 0.0),  # nobody queueing: no wait, whatever the rate
        (2, [T], None),  # one checkout says nothing about the rate
        (None, [T, T + 30], None),  # no queue reported yet
    ],
)
def test_lane_wait_is_queue_times_the_time_between_checkouts(
    store_config: StoreConfig, queue: int | None, checkouts: list[float], wait: float | None
) -> None:
    tally = FloorTally(store_config, Topics())
    if queue is not None:
        tally.handle(*_footfall("checkout", 0, 0, queue, lane_queues={"lane-1": queue}), T)
    for ts in checkouts:
        tally.handle(*_checkout("lane-1", ts), ts)
    assert tally.wait_s("lane-1") == wait


def test_prompts_sent_served_and_unserved(store_config: StoreConfig) -> None:
    tally = FloorTally(store_config, Topics())
    ids = []
    for seed in range(4):
        topic, payload, pid = _prompt(seed, T + 300)
        tally.handle(topic, payload, T)
        ids.append(pid)
    tally.handle(*_feedback(ids[0], "accepted"), T + 5)
    tally.handle(*_feedback(ids[0], "done"), T + 50)  # the same prompt is served once
    tally.handle(*_feedback(ids[1], "dismissed"), T + 5)  # answered, not served
    tally.handle(*_feedback(ids[2], "done"), T + 5)
    assert not tally.expire(T + 299)
    assert tally.expire(T + 300)
    p = tally.fields()["prompts"]
    assert (p.sent, p.served, p.unserved) == (4, 2, 2)


def test_a_message_that_breaks_the_contract_is_counted_not_raised(store_config: StoreConfig) -> None:
    tally = FloorTally(store_config, Topics())
    assert not tally.handle(Topics().footfall("demo-store", "entrance"), b"{not json", T)
    assert tally.rejected == 1
