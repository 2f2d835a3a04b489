"""A simulated day: deterministic for a seed, valid on the wire, consistent with its truth."""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from broker_config.contract import CheckoutEvent, FootfallEvent, PresenceEvent, Topics, decode
from floorwalker import geometry
from floorwalker.config import StoreConfig, load_store_config
from recommender.crm import read_fixture
from simulators.day import Day, simulate_day
from simulators.floorplan import build_floorplan
from simulators.trace import TraceReader, load_truth
from tests.conftest import DEMO_STORE


@pytest.fixture(scope="module")
def config() -> StoreConfig:
    return load_store_config(DEMO_STORE)


@pytest.fixture(scope="module")
def day(config: StoreConfig) -> Day:
    assert config.crm is not None
    return simulate_day(config, read_fixture(config.crm), hours=2, visitors=150, seed=42)


def test_same_seed_same_files_other_seed_other_day(config: StoreConfig, day: Day, tmp_path: Path) -> None:
    assert config.crm is not None
    again = simulate_day(config, read_fixture(config.crm), hours=2, visitors=150, seed=42)
    a, b = day.write(tmp_path / "a"), again.write(tmp_path / "b")
    assert a[0].read_bytes() == b[0].read_bytes() and a[1].read_bytes() == b[1].read_bytes()
    other = simulate_day(config, read_fixture(config.crm), hours=2, visitors=150, seed=43)
    assert [x.payload for x in other.lines] != [x.payload for x in day.lines]


def test_every_message_validates_against_the_contract(day: Day) -> None:
    topics = Topics()
    kinds: Counter[str] = Counter()
    last_seq: dict[str, int] = {}
    ids = set()
    for line in day.lines:
        msg = decode(topics, line.topic, line.payload)
        kinds[type(msg.payload).__name__] += 1
        body = msg.payload
        assert body.ts == pytest.approx(line.t)
        assert body.seq > last_seq.get(body.producer, -1)  # each producer counts up with time
        last_seq[body.producer] = body.seq
        ids.add(body.event_id)
        if not isinstance(body, FootfallEvent) or line.truth is None:
            assert line.truth is not None or type(body).__name__ == "GatewayStatus"
    assert len(ids) == len(day.lines)
    assert kinds["FootfallEvent"] and kinds["PresenceEvent"] and kinds["CheckoutEvent"]
    assert [line.t for line in day.lines] == sorted(line.t for line in day.lines)


def test_walks_follow_the_layout(config: StoreConfig, day: Day) -> None:
    plan = build_floorplan(config)
    members = [s.member for s in day.shoppers if s.member]
    assert len(members) == len(set(members))  # a member comes at most once a day
    for s in day.shoppers:
        visits = s.visits()
        assert visits[0].zone in plan.entrance_zones and visits[-1].zone in plan.entrance_zones
        for a, b in itertools.pairwise(visits):
            assert b.zone in plan.neighbours[a.zone]  # only through a shared wall
            assert b.enter == a.leave
        for f, g in itertools.pairwise(s.frames):  # nobody jumps or runs
            assert g.t > f.t or (f.x, f.y) == (g.x, g.y)
            assert math.dist((f.x, f.y), (g.x, g.y)) <= config.simulation.walk_speed_mps * (g.t - f.t) + 1e-6
        for p in s.positions(3.0):
            assert p.zone == s.zone_at(p.ts)
            assert p.member == (s.member if s.recognizable else None)
            poly = plan.polygons[p.zone]
            # On the zone's floor (doors lie on its outline: allow a hair of slack).
            x0, y0, x1, y1 = geometry.bounds(poly)
            assert x0 - 1e-6 <= p.x <= x1 + 1e-6 and y0 - 1e-6 <= p.y <= y1 + 1e-6


def test_truth_counts_and_purchases_match_the_walks(config: StoreConfig, day: Day, tmp_path: Path) -> None:
    _, truth_path = day.write(tmp_path)
    truth = load_truth(truth_path)
    enters: Counter[str] = Counter(v.zone for s in day.shoppers for v in s.visits())
    for zone, rows in truth.counts.items():
        assert sum(r[0] or 0 for r in rows) == enters[zone]
        assert rows[-1][2] == 0  # everyone has left by the end
    paid = [s for s in truth.shoppers if s["paid"] is not None]
    checkouts = [
        line
        for line in day.lines
        if isinstance(decode(Topics(), line.topic, line.payload).payload, CheckoutEvent)
    ]
    assert len(checkouts) == len(paid) > 0
    totals = sorted(sum(item[3] for item in s["basket"]) for s in paid)
    assert sorted(c.truth["total_cents"] for c in checkouts if c.truth) == totals


def test_sensor_errors_stay_within_the_models_rates(day: Day) -> None:
    reported: dict[str, int] = defaultdict(int)
    true: dict[str, int] = defaultdict(int)
    presences = 0
    for line in day.lines:
        body = decode(Topics(), line.topic, line.payload).payload
        if isinstance(body, FootfallEvent) and line.truth is not None:
            zone = line.topic.split("/")[-2]
            reported[zone] += body.entered
            true[zone] += line.truth["entered"]
        elif isinstance(body, PresenceEvent):
            presences += 1
            assert line.truth is not None and line.truth["zone"] == line.topic.split("/")[-2]
    rep, tru = sum(reported.values()), sum(true.values())
    # Miss 3 %, false positives 2 %: expected -1 % with a few percent of noise.
    assert abs(rep - tru) <= 0.06 * tru
    assert presences > 0


def test_trace_file_round_trips(day: Day, tmp_path: Path) -> None:
    trace_path, _ = day.write(tmp_path)
    reader = TraceReader(trace_path)
    back = list(reader)
    assert not reader.bad
    assert [(x.t, x.topic, x.payload) for x in back] == [(x.t, x.topic, x.payload) for x in day.lines]
    assert reader.header.store == "demo-store" and reader.header.meta["seed"] == 42


def test_visitors_over_a_part_hour(config: StoreConfig) -> None:
    day = simulate_day(config, None, hours=0.5, visitors=300, seed=2)
    assert abs(len(day.shoppers) - 300) < 4 * 300**0.5
    assert all(s.arrival < day.truth.start + 1800 for s in day.shoppers)
    assert all(s.member is None for s in day.shoppers)  # no CRM: nobody is a member
