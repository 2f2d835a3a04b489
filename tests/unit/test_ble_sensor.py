"""BLE in a simulated day: the RF model, each gateway's own sighting table and the fuser's
core, end to end; what comes out is on the wire contract and close to the truth."""

from __future__ import annotations

import pytest

from broker_config.contract import BleReport, PresenceEvent, Topics, decode
from floorwalker.config import StoreConfig, load_store_config
from recommender.crm import read_fixture
from simulators.day import Day, simulate_day
from simulators.evaluate import score
from tests.conftest import DEMO_STORE


@pytest.fixture(scope="module")
def config() -> StoreConfig:
    return load_store_config(DEMO_STORE)


@pytest.fixture(scope="module")
def day(config: StoreConfig) -> Day:
    assert config.crm is not None
    return simulate_day(config, read_fixture(config.crm), hours=0.25, visitors=25, seed=6, presence="ble")


def test_gateways_report_rotating_ids_and_the_fuser_places_members(config: StoreConfig, day: Day) -> None:
    topics = Topics()
    positioned = {g.id for g in config.gateways if g.position is not None}
    recognizable = {s.member for s in day.shoppers if s.member and s.recognizable}
    reports = presences = 0
    for line in day.lines:
        body = decode(topics, line.topic, line.payload).payload
        if isinstance(body, BleReport):
            reports += 1
            assert body.producer in positioned and body.sightings
            assert all(len(s.eid) == 16 for s in body.sightings)  # ephemeral ids, never a member id
            assert line.truth is not None and "members_in_zones" in line.truth
        elif isinstance(body, PresenceEvent):
            presences += 1
            assert body.producer == config.ble_presence.fuser
            assert body.member in recognizable
            assert line.truth is not None and line.truth["member"] == body.member
    assert reports > 100 and presences > 0


def test_fused_presence_is_mostly_right(day: Day) -> None:
    accuracy = score(day.lines, day.truth, []).member_zone_accuracy
    assert accuracy is not None and accuracy > 0.5


def test_ble_day_is_deterministic(config: StoreConfig, day: Day) -> None:
    assert config.crm is not None
    again = simulate_day(config, read_fixture(config.crm), hours=0.25, visitors=25, seed=6, presence="ble")
    assert [x.to_json() for x in again.lines] == [x.to_json() for x in day.lines]
