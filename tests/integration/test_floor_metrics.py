"""The API's /metrics carries the floor, from real messages on the real broker and the
recommender's counters in the real Redis: occupancy, lane queue and wait, footfall,
cameras (frames/s, dropped frames), BLE (the fuser's resolved ids too), outboxes,
decisions, prompts and the recommender's latency; no ``_created``."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from broker_config.contract import (
    CheckoutEvent,
    EnvelopeSource,
    FootfallEvent,
    FuserStatus,
    GatewayBleCounts,
    GatewayStatus,
    Prompt,
    PromptKind,
    Topics,
    encode,
    new_event_id,
)
from edge_agent.publisher import EdgePublisher
from floorwalker.config import Endpoints, StoreConfig
from floorwalker.mqtt import MqttLink
from handheld import create_app
from recommender.keys import Keys

pytestmark = pytest.mark.integration


@pytest.fixture
def api(services: Endpoints, prefix: str, store_config: StoreConfig) -> Iterator[TestClient]:
    app = create_app(store_config, services, topic_prefix=prefix, key_prefix=prefix)
    with TestClient(app) as client:  # runs the lifespan: connects MQTT and Redis
        yield client


def test_floor_figures_reach_metrics(
    api: TestClient, services: Endpoints, prefix: str, store_config: StoreConfig, redis_client: redis.Redis
) -> None:
    store, topics, now = store_config.store, Topics(prefix), time.time()
    # The recommender's counters, as it writes them (engine.write_stats).
    keys = Keys(store, prefix)
    redis_client.hset(
        keys.stats, mapping={"outcome:prompted": 4, "outcome:blocked": 2, "prompt:greet_vip": 3}
    )
    redis_client.hset(keys.stats, mapping={"unserved:nobody": 1, "feedback:accepted:greet_vip": 1})
    link = MqttLink(services.mqtt_host, services.mqtt_port, client_id=f"{prefix.rstrip('/')}-metrics")
    link.connect()
    gw = EdgePublisher(store, "gw-checkout", services.mqtt_host, services.mqtt_port, topics=topics)
    gw.start(now)
    src = EnvelopeSource("gw-entrance")
    try:
        sends = [
            (
                topics.footfall(store, "entrance"),
                src.make(FootfallEvent, now, window_s=5, entered=3, exited=1, occupancy=6),
            ),
            (
                topics.footfall(store, "checkout"),
                src.make(
                    FootfallEvent,
                    now,
                    window_s=5,
                    entered=0,
                    exited=0,
                    occupancy=4,
                    lane_queues={"lane-1": 3},
                ),
            ),
            (
                topics.checkout(store, "lane-1"),
                src.make(CheckoutEvent, now - 60, member=None, items=[], total_cents=0),
            ),
            (
                topics.checkout(store, "lane-1"),
                src.make(CheckoutEvent, now, member=None, items=[], total_cents=0),
            ),
            (
                topics.status(store, "gw-entrance"),
                src.make(
                    GatewayStatus,
                    now,
                    state="online",
                    sensors=[
                        {
                            "id": "door",
                            "kind": "camera",
                            "state": "streaming",
                            "rate_hz": 11.5,
                            "dropped_frames": 42,
                        }
                    ],
                    outbox={"pending": 7, "bytes": 900, "oldest_age_s": 2.5},
                ),
            ),
            (
                topics.fuser_status(store, "fuser"),
                EnvelopeSource("fuser").make(
                    FuserStatus,
                    now,
                    ble={"gw-checkout": GatewayBleCounts(reports=12, resolved=8, unresolved=3)},
                ),
            ),
            (
                topics.prompt(store, "a-ben"),
                EnvelopeSource("recommender").make(
                    Prompt,
                    now,
                    kind=PromptKind.JOIN_INVITE,
                    customer={"member": None},
                    zone="pantry",
                    headline="A shopper in Pantry",
                    suggestion="Offer the loyalty card.",
                    why="Not a member.",
                    cause_event_id=new_event_id(),
                    cause_ts=now - 0.2,
                    expires_at=now + 300,
                ),
            ),
        ]
        for topic, event in sends:
            link.publish(topic, encode(event), qos=1).wait_for_publish(5)
        sighting = {
            "eid": "00112233aabbccdd",
            "rssi_dbm": -60.0,
            "distance_m": 1.5,
            "adverts": 9,
            "last_seen": now,
        }
        gw.ble_report(now, 0.5, [sighting])
        expected = [
            'floorwalker_zone_occupancy{zone="entrance"} 6.0',
            'floorwalker_footfall_total{direction="in",zone="entrance"} 3.0',
            'floorwalker_footfall_total{direction="out",zone="entrance"} 1.0',
            'floorwalker_lane_queue{lane="lane-1"} 3.0',
            'floorwalker_lane_wait_seconds{lane="lane-1"} 180.0',  # 3 people x 60 s per checkout
            'floorwalker_camera_fps{camera="door",gateway="gw-entrance"} 11.5',
            'floorwalker_camera_streaming{camera="door",gateway="gw-entrance"} 1.0',
            'floorwalker_camera_dropped_frames_total{camera="door",gateway="gw-entrance"} 42.0',
            'floorwalker_outbox_pending{gateway="gw-entrance"} 7.0',
            'floorwalker_ble_adverts_total{gateway="gw-checkout"} 9.0',
            'floorwalker_ble_sightings_total{gateway="gw-checkout"} 1.0',
            'floorwalker_ble_resolved_total{gateway="gw-checkout"} 8.0',
            'floorwalker_ble_unresolved_total{gateway="gw-checkout"} 3.0',
            'floorwalker_decisions_total{outcome="prompted"} 4.0',
            'floorwalker_decisions_total{outcome="blocked"} 2.0',
            'floorwalker_recommender_prompts_total{kind="greet_vip"} 3.0',
            'floorwalker_prompts_unserved_total{route="nobody"} 1.0',
            'floorwalker_prompts_total{kind="join_invite"} 1.0',
            "floorwalker_recommender_latency_seconds_count 1.0",
            'floorwalker_recommender_latency_seconds_bucket{le="0.25"} 1.0',
        ]
        deadline = time.monotonic() + 10
        while True:
            text = api.get("/metrics").text
            missing = [line for line in expected if line not in text]
            if not missing:
                break
            assert time.monotonic() < deadline, f"missing from /metrics: {missing}"
            time.sleep(0.05)
        assert "_created" not in text
        assert 'floorwalker_recommender_latency_seconds_bucket{le="0.1"} 0.0' in text  # 0.2 s, as stamped
    finally:
        gw.stop(time.time())
        link.close()
