"""The live store's BLE presence: scripted members walked to a spot in each zone of their
route, and what the gateways' sighting tables report of their phones (pure parts)."""

from __future__ import annotations

import re

import pytest

from floorwalker import geometry
from floorwalker.config import StoreConfig
from simulators.live import WALK_S, ble_steps, walkers
from simulators.scenario import Checkout, Presence, Shopper, Step, build

T0 = 1_800_000_000.0

ROUTE: list[Step] = [
    Presence(0.0, "gw-entrance", "entrance", "m_702cc64d", "enter"),
    Presence(10.0, "gw-entrance", "entrance", "m_702cc64d", "leave"),
    Presence(10.0, "gw-fresh", "pantry", "m_702cc64d", "enter"),
    Presence(40.0, "gw-fresh", "pantry", "m_702cc64d", "leave"),
    Checkout(45.0, "pos-1", "lane-1", "m_702cc64d"),
]


def test_a_member_holds_a_spot_in_each_zone_and_walks_between(store_config: StoreConfig) -> None:
    [walker] = walkers(store_config, ROUTE, lambda at: T0 + at, seed=1)
    assert walker.member == "m_702cc64d" and walker.recognizable
    polygons = {z.id: z.polygon for z in store_config.zones}
    for f in walker.frames:
        assert f.zone in ("entrance", "pantry")
        poly = polygons[f.zone]
        assert poly is not None and geometry.contains(poly, (f.x, f.y))
    times = [f.t for f in walker.frames]
    assert times == sorted(times) and times[0] == T0 and times[-1] == T0 + 40.0
    assert [v.zone for v in walker.visits()] == ["entrance", "pantry"]
    assert walker.zone_at(T0 + 5.0) == "entrance" and walker.zone_at(T0 + 20.0) == "pantry"
    assert walker.zone_at(T0 + 41.0) is None  # gone after the last leave
    # Standing still in the entrance until WALK_S before leaving it, then walking.
    still = [p for p in walker.positions(1.0) if p.ts < T0 + 10.0 - WALK_S]
    assert len({(p.x, p.y) for p in still}) == 1


def test_only_recognizable_members_with_a_finished_visit_walk(store_config: StoreConfig) -> None:
    shoppers = [Shopper("m_702cc64d", True), Shopper("m_d0b30907", False), Shopper(None, False)]
    steps = build(store_config, shoppers, seed=4)
    assert {w.member for w in walkers(store_config, steps, lambda at: T0 + at, seed=4)} == {"m_702cc64d"}
    open_visit = [
        s for s in ROUTE if not (isinstance(s, Presence) and s.zone == "pantry" and s.action == "leave")
    ]
    assert [w.visits()[-1].zone for w in walkers(store_config, open_visit, lambda at: T0 + at, 1)] == [
        "entrance"
    ]


@pytest.mark.parametrize("speed", [1.0, 4.0])
def test_gateways_report_rotating_ids_over_the_visit(store_config: StoreConfig, speed: float) -> None:
    reports = ble_steps(store_config, ROUTE, T0, speed, seed=2)
    placed = {g.id for g in store_config.gateways if g.position is not None}
    assert reports and {r.gateway for r in reports} <= placed
    assert [r.at for r in reports] == sorted(r.at for r in reports)
    tail = store_config.ble_presence.away_timeout_s + 2 * store_config.ble_presence.report_interval_s
    for r in reports:
        assert 0.0 < r.at <= 40.0 + tail * speed + 1e-6
        assert r.planned_ts == pytest.approx(T0 + r.at / speed)
        for s in r.sightings:
            assert re.fullmatch(r"[0-9a-f]{16}", str(s["eid"]))  # an ephemeral id, never the member
            assert float(s["last_seen"]) <= r.planned_ts
    assert ble_steps(store_config, ROUTE, T0, speed, seed=2) == reports

    # While the member stands in the pantry, its gateway hears them louder than the entrance's.
    def loudness(gateway: str) -> float:
        heard = [float(x["rssi_dbm"]) for r in reports if r.gateway == gateway and 15.0 <= r.at <= 36.0
                 for x in r.sightings]  # fmt: skip
        return sum(heard) / len(heard) if heard else -200.0

    assert loudness("gw-pantry") > loudness("gw-entrance")
