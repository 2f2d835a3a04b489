"""The dashboard's pure parts: funnel, typical day, hours, entry zones, zone views."""

from __future__ import annotations

import time

import pytest

from broker_config.contract import EnvelopeSource, GatewayStatus
from floorwalker.config import StoreConfig
from handheld.floor import (
    day_and_hour,
    entry_zones,
    funnel_from_stats,
    gateway_view,
    hours_of,
    typical_day,
    zone_views,
)


def test_funnel_reads_the_stats_fields_and_shows_zero_when_absent() -> None:
    f = funnel_from_stats(
        {"prompts": 9, "prompt:greet_vip": 4, "prompt:cross_sell": 5, "feedback:done": 2, "events": 100}
    )
    assert (f.sent, f.accepted, f.dismissed, f.done, f.converted) == (9, 0, 0, 2, 0)
    assert f.by_kind == {"cross_sell": 5, "greet_vip": 4}
    assert funnel_from_stats({}).sent == 0


@pytest.mark.parametrize(
    ("days", "expected_at_9"),
    [
        ([], 0.0),
        ([[0] * 9 + [10] + [0] * 14], 10.0),
        ([[0] * 9 + [10] + [0] * 14, [0] * 9 + [5] + [0] * 14], 7.5),
    ],
)
def test_typical_day_is_the_hourly_mean(days: list[list[int]], expected_at_9: float) -> None:
    t = typical_day(days)
    assert len(t) == 24 and t[9] == expected_at_9 and t[10] == 0.0


def test_hours_of_ignores_out_of_range_hours() -> None:
    counts = hours_of({b"0": b"3", b"23": b"7", b"24": b"99"})
    assert counts[0] == 3 and counts[23] == 7 and sum(counts) == 10


def test_day_and_hour_use_local_time() -> None:
    ts = time.mktime((2026, 11, 23, 14, 30, 0, 0, 0, -1))
    assert day_and_hour(ts) == ("2026-11-23", 14)


def test_entry_zones_are_behind_entrances(store_config: StoreConfig) -> None:
    assert entry_zones(store_config) == {"entrance"}
    assert entry_zones(store_config.model_copy(update={"entrances": []})) == {
        z.id for z in store_config.zones
    }


def test_zone_views_keep_unreported_zones_unknown(store_config: StoreConfig) -> None:
    views = {
        z.id: z
        for z in zone_views(store_config, {"pantry": {"occupancy": 4, "queue_length": None, "ts": 1.0}})
    }
    assert views["pantry"].occupancy == 4 and views["dairy"].occupancy is None
    assert views["pantry"].polygon == store_config.zone("pantry").polygon  # type: ignore[union-attr]


def test_gateway_view_is_unknown_until_a_status_arrives() -> None:
    assert gateway_view("gw-1", None).state == "unknown"
    status = EnvelopeSource("gw-1").make(GatewayStatus, 1.7e9, state="offline", detail="last will")
    v = gateway_view("gw-1", status, (1.0, 2.0))
    assert (v.state, v.last_seen, v.detail, v.position) == ("offline", 1.7e9, "last will", (1.0, 2.0))


def test_an_online_gateway_silent_for_three_heartbeats_is_stale() -> None:
    """Issue 20: a gateway whose last heartbeat is older than its interval x 3 showed green
    "online" (its last will never reached the broker); it is shown stale."""
    status = EnvelopeSource("gw-1").make(GatewayStatus, 1.7e9, state="online")
    assert gateway_view("gw-1", status, now=1.7e9 + 89, heartbeat_s=30).state == "online"
    assert gateway_view("gw-1", status, now=1.7e9 + 91, heartbeat_s=30).state == "stale"
    offline = EnvelopeSource("gw-1").make(GatewayStatus, 1.7e9, state="offline")
    assert gateway_view("gw-1", offline, now=1.7e9 + 1e4).state == "offline"
