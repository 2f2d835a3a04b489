"""The RF model: members' phones only, real member-app frames with the rotating id of the
app-side generator, weaker with distance, deterministic per seed."""

from __future__ import annotations

import statistics

from edge_agent.ble.eid import MemberBeacon, member_secret
from edge_agent.ble.frames import MemberAdvert, parse
from floorwalker.config import StoreConfig
from presence.positions import PositionSample
from simulators.ble_radio import RadioModel, RadioParams

KEY = bytes(range(32))
T0 = 1_800_000_000.0


def still(
    member: str | None, x: float, y: float, seconds: float, shopper: str = "s1"
) -> list[PositionSample]:
    return [PositionSample(T0 + i * 0.5, shopper, member, x, y, "entrance") for i in range(int(seconds * 2))]


def test_only_members_phones_are_heard_with_their_rotating_id(store_config: StoreConfig) -> None:
    samples = still("m_702cc64d", 4, 3, 10) + still(None, 5, 3, 10, shopper="s2")
    records = list(RadioModel(store_config, KEY, seed=1).hear(samples))
    assert records and all(r["ts"] <= T0 + 10 for r in records)
    beacon = MemberBeacon(member_secret(KEY, "m_702cc64d"), 300)
    frames = {parse(bytes.fromhex(r["adv"])) for r in records}
    assert all(isinstance(f, MemberAdvert) and f.tx_power == -59 for f in frames)
    eids = {f.eid for f in frames if isinstance(f, MemberAdvert)}
    # The phone's clock is skewed by up to 30 s, so its id is that of T0 or a neighbour window.
    assert eids <= {beacon.eid(T0 + d) for d in (-30, 0, 30)}
    assert len(eids) == 1
    assert {r["gateway"] for r in records} == {g.id for g in store_config.gateways}
    assert records == sorted(records, key=lambda r: r["ts"])


def test_nearer_gateways_hear_louder(store_config: StoreConfig) -> None:
    records = list(RadioModel(store_config, KEY, seed=2).hear(still("m_702cc64d", 4, 3, 30)))
    near = statistics.median(r["rssi"] for r in records if r["gateway"] == "gw-entrance")  # 0 m
    far = statistics.median(r["rssi"] for r in records if r["gateway"] == "gw-dairy")  # 24 m
    assert near - far > 15


def test_advertising_interval_and_drops(store_config: StoreConfig) -> None:
    params = RadioParams(drop_rate=0.5)
    records = list(RadioModel(store_config, KEY, params, seed=3).hear(still("m_702cc64d", 4, 3, 60)))
    per_gateway = len([r for r in records if r["gateway"] == "gw-entrance"])
    assert 60 / 0.205 * 0.4 < per_gateway < 60 / 0.205 * 0.6


def test_same_seed_same_trace(store_config: StoreConfig) -> None:
    samples = still("m_702cc64d", 10, 10, 5)
    assert list(RadioModel(store_config, KEY, seed=4).hear(samples)) == list(
        RadioModel(store_config, KEY, seed=4).hear(samples)
    )


def test_the_apps_motion_hint_follows_the_walk_late_and_leaves_the_radio_alone(
    store_config: StoreConfig,
) -> None:
    """Walk 10 s at 1 m/s, then stand 10 s: the hint says walking from ~lag after the start
    until ~lag + window after the stop; phones without it send none, heard the same."""
    walk = [PositionSample(T0 + i * 0.5, "s1", "m_702cc64d", 2 + 0.5 * i, 3, "entrance") for i in range(20)]
    stop = [PositionSample(T0 + 10 + i * 0.5, "s1", "m_702cc64d", 12, 3, "entrance") for i in range(20)]
    exact = RadioParams(motion_share=1.0, motion_error=0.0)
    records = [
        r
        for r in RadioModel(store_config, KEY, exact, seed=3).hear(walk + stop)
        if r["gateway"] == "gw-entrance"
    ]

    def hint(r: object) -> bool | None:
        frame = parse(bytes.fromhex(r["adv"]))  # type: ignore[index]
        assert isinstance(frame, MemberAdvert)
        return frame.moving

    lag, window = exact.motion_lag_s, exact.motion_window_s
    assert all(hint(r) for r in records if T0 + lag + window <= r["ts"] <= T0 + 10)
    assert not any(hint(r) for r in records if r["ts"] >= T0 + 10 + lag + window)
    assert not any(hint(r) for r in records if r["ts"] < T0 + lag)  # not yet noticed
    without = RadioParams(motion_share=0.0)
    plain = [
        r
        for r in RadioModel(store_config, KEY, without, seed=3).hear(walk + stop)
        if r["gateway"] == "gw-entrance"
    ]
    assert {hint(r) for r in plain} == {None}
    assert [(r["ts"], r["rssi"]) for r in plain] == [(r["ts"], r["rssi"]) for r in records]
