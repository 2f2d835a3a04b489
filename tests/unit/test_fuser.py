"""The fuser's core on real contract bytes: reports resolve and fuse into presence events,
a report from a stranger or with broken JSON becomes a dead letter, a gateway's offline
status turns silence into "unknown"."""

from __future__ import annotations

import json

import pytest

from broker_config.contract import (
    BleReport,
    DeadLetter,
    EnvelopeSource,
    FuserStatus,
    GatewayBleCounts,
    GatewayStatus,
    PresenceEvent,
    RejectReason,
    Topics,
    decode,
    encode,
)
from edge_agent.ble.eid import MemberBeacon, member_secret
from floorwalker.config import StoreConfig
from presence.fuser import Fuser, resolver_for
from presence.zone_fusion import ZoneState

T0 = 1_800_000_000.0
TOPICS = Topics("t/")
MEMBER = "m_702cc64d"


@pytest.fixture
def fuser(store_config: StoreConfig) -> Fuser:
    return Fuser(store_config, resolver_for(store_config), TOPICS)


def eid(store_config: StoreConfig, member: str, ts: float) -> str:
    assert store_config.ble_presence.secrets is not None
    key = bytes.fromhex(json.loads(store_config.ble_presence.secrets.read_text())["store_key"])
    return MemberBeacon(member_secret(key, member), store_config.ble_presence.eid_window_s).eid(ts).hex()


def report(gateway: str, ts: float, sightings: list[tuple[str, float]]) -> tuple[str, bytes]:
    body = EnvelopeSource(gateway).make(
        BleReport,
        ts,
        window_s=0.5,
        sightings=[
            {"eid": e, "rssi_dbm": r, "distance_m": 1.0, "adverts": 3, "last_seen": ts} for e, r in sightings
        ],
    )
    return TOPICS.ble("demo-store", gateway), encode(body)


def test_reports_become_an_enter_event_from_the_fuser(fuser: Fuser, store_config: StoreConfig) -> None:
    me, stranger = eid(store_config, MEMBER, T0), "00" * 8
    out: list[tuple[str, bytes]] = []
    for k in range(6):
        ts = T0 + 0.5 * k
        # Standing next to gw-entrance: loud there, faint elsewhere.
        for gw, rssi in (("gw-entrance", -55.0), ("gw-checkout", -80.0), ("gw-produce", -82.0)):
            # A report that moves the reports' clock on ticks the fusion (time from the reports).
            out += fuser.handle(*report(gw, ts, [(me, rssi), (stranger, rssi)]), now=ts)
        out += fuser.tick(ts)
    [(topic, payload)] = out
    event = PresenceEvent.model_validate_json(payload)
    assert topic == TOPICS.presence("demo-store", "entrance")
    assert (event.member, event.action, event.producer) == (MEMBER, "enter", "fuser")
    assert fuser.counters["unresolved"] == 18  # the stranger, every time
    assert b"m_" not in report("gw-entrance", T0, [(me, -55.0)])[1]


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (TOPICS.ble("demo-store", "gw-entrance"), b"{not json", RejectReason.MALFORMED_JSON),
        (*report("gw-nowhere", T0, []), RejectReason.UNKNOWN_PRODUCER),
        # A gateway speaking on another gateway's topic:
        (
            TOPICS.ble("demo-store", "gw-pantry"),
            report("gw-entrance", T0, [])[1],
            RejectReason.UNKNOWN_PRODUCER,
        ),
    ],
)
def test_bad_reports_become_dead_letters(
    fuser: Fuser, topic: str, payload: bytes, reason: RejectReason
) -> None:
    [(dl_topic, dl)] = fuser.handle(topic, payload, now=T0)
    assert dl_topic == TOPICS.deadletter("demo-store")
    assert DeadLetter.model_validate_json(dl).reason is reason
    assert fuser.counters[f"rejected:{reason.value}"] == 1


def test_offline_gateway_status_makes_silence_unknown(fuser: Fuser, store_config: StoreConfig) -> None:
    me = eid(store_config, MEMBER, T0)
    for k in range(6):
        fuser.handle(*report("gw-entrance", T0 + 0.5 * k, [(me, -55.0)]), now=T0)
        fuser.tick(T0 + 0.5 * k)
    assert fuser.fusion.state_of(MEMBER) == (ZoneState.IN, "entrance")
    offline = EnvelopeSource("gw-entrance").make(GatewayStatus, T0 + 3, state="offline")
    fuser.handle(TOPICS.status("demo-store", "gw-entrance"), encode(offline), now=T0 + 3)
    assert fuser.tick(T0 + 60) == []
    assert fuser.fusion.state_of(MEMBER) == (ZoneState.UNKNOWN, "entrance")


def test_the_fuser_runs_on_the_reports_time_not_the_wall_clock(store_config: StoreConfig) -> None:
    """Item 5 of issue 22: the same reports give the same events whatever ``now`` (the
    wall clock at delivery) says, e.g. a trace replayed at 10x or as fast as it goes."""

    def events(wall: list[float]) -> list[tuple[str, str, float]]:
        f = Fuser(store_config, resolver_for(store_config), TOPICS)
        me = eid(store_config, MEMBER, T0)
        out: list[tuple[str, bytes]] = []
        for k in range(40):
            ts = T0 + 0.5 * k
            near = "gw-entrance" if k < 20 else "gw-checkout"
            for gw in ("gw-entrance", "gw-checkout", "gw-produce"):
                rssi = -50.0 if gw == near else -80.0
                out += f.handle(*report(gw, ts, [(me, rssi)]), now=wall[k], arrived=wall[k])
        got = []
        for topic, payload in out:
            e = PresenceEvent.model_validate_json(payload)
            got.append((topic, e.action, e.ts))
        return got

    live = events([T0 + 0.5 * k for k in range(40)])
    fast = events([T0 + 0.001 * k for k in range(40)])
    assert live == fast
    assert [a for _, a, _ in live] == ["enter", "leave", "enter"]


def test_the_fuser_status_counts_each_gateways_sightings_and_names_no_one(
    fuser: Fuser, store_config: StoreConfig
) -> None:
    me, stranger = eid(store_config, MEMBER, T0), "00" * 8
    assert FuserStatus.model_validate_json(fuser.status(T0)[1]).ble == {}
    for k in range(4):
        ts = T0 + 0.5 * k
        fuser.handle(*report("gw-entrance", ts, [(me, -55.0), (stranger, -70.0)]), now=ts)
        fuser.handle(*report("gw-checkout", ts, [(stranger, -80.0)]), now=ts)
    fuser.handle(*report("gw-produce", T0 + 2, []), now=T0 + 2)
    fuser.handle(*report("gw-nowhere", T0 + 2, [(me, -50.0)]), now=T0 + 2)  # a dead letter, not counted
    topic, payload = fuser.status(T0 + 10)
    message = decode(TOPICS, topic, payload)
    assert topic == TOPICS.fuser_status("demo-store", "fuser")
    assert isinstance(message.payload, FuserStatus)
    assert (message.payload.producer, message.payload.ts) == ("fuser", T0 + 10)
    assert message.payload.ble == {
        "gw-checkout": GatewayBleCounts(reports=4, resolved=0, unresolved=4),
        "gw-entrance": GatewayBleCounts(reports=4, resolved=4, unresolved=4),
        "gw-produce": GatewayBleCounts(reports=1, resolved=0, unresolved=0),
    }
    assert MEMBER.encode() not in payload and me.encode() not in payload and b"m_" not in payload
