"""The ESPresense bridge's core over recorded messages (tests/data/espresense/): member
iBeacons become our gateways' sightings; everything else is refused and counted by reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker_config.contract import BleSighting
from edge_agent.ble.eid import eid_for, member_secret, window_index
from floorwalker.config import StoreConfig
from floorwalker.errors import ConfigError
from integrations.espresense import (
    EspresenseConfig,
    ReceiverCore,
    Refusal,
    Refused,
    decode_member_id,
    load_espresense_config,
    member_ibeacon_id,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "espresense"
T0 = 1767225600.0
MEMBER_EID = eid_for(
    member_secret(bytes.fromhex(json.loads((DATA / "ble_keys.json").read_text())["store_key"]), "m_esp0walk"),
    window_index(T0, 300),
)


def recording() -> list[tuple[float, str, bytes]]:
    rows = [json.loads(line) for line in (DATA / "walk.jsonl").read_text().splitlines()]
    return [(T0 + r["t"], r["topic"], r["payload"].encode()) for r in rows]


@pytest.mark.parametrize("moving", [None, True, False])
def test_member_id_round_trips(moving: bool | None) -> None:
    eid = bytes.fromhex("0011223344556677")
    ident = member_ibeacon_id(eid, moving)
    assert ident.startswith("iBeacon:46570100-0000-0000-0011-")
    assert decode_member_id(ident) == (eid, moving)


@pytest.mark.parametrize(
    ("ident", "reason"),
    [
        ("c0a8f1e2d3b4", Refusal.NOT_MEMBER),
        ("name:jane-s-iphone", Refusal.NOT_MEMBER),
        ("iBeacon:e5ca1ade-f007-ba11-0000-000000000000-100-1", Refusal.NOT_MEMBER),
        ("iBeacon:46570200-0000-0000-0011-223344556677-0-0", Refusal.BAD_MEMBER_ID),  # version 2
        ("iBeacon:46570100-0000-0000-0011-223344556677-1-0", Refusal.BAD_MEMBER_ID),  # major 1
        ("iBeacon:46570100-0000-0000-0011-223344556677-0-7", Refusal.BAD_MEMBER_ID),  # minor 7
        ("iBeacon:46570100-0000-0000-0011-22334455667-0-0", Refusal.NOT_MEMBER),  # short uuid
    ],
)
def test_other_ids_are_refused(ident: str, reason: Refusal) -> None:
    with pytest.raises(Refused) as info:
        decode_member_id(ident)
    assert info.value.reason is reason


def test_recorded_walk_becomes_the_members_sightings_only(store_config: StoreConfig) -> None:
    core = ReceiverCore(store_config, load_espresense_config(DATA / "rooms.yaml", store_config))
    reports: dict[str, list[BleSighting]] = {"gw-entrance": [], "gw-produce": [], "gw-checkout": []}
    messages = recording()
    tick = T0 + 0.5
    for ts, topic, payload in messages:
        while ts >= tick:
            for gw, (_window, due) in core.report(tick).items():
                reports[gw] += [BleSighting.model_validate(s.fields()) for s in due]
            tick += 0.5
        core.handle(topic, payload, ts)
    c = core.counters
    assert c["messages"] == len(messages)
    assert c["refused:not_member"] == 7  # MAC, name, companion-app iBeacon, apple, msft, md, irk
    assert c["refused:bad_member_id"] == 1 and c["refused:unknown_room"] == 1 and c["refused:not_json"] == 1
    assert c["member"] == 48
    assert core.room_state == {"entrance": "online", "produce": "online", "checkout-till": "online"}
    assert {s.eid for ss in reports.values() for s in ss} == {MEMBER_EID.hex()}
    assert reports["gw-checkout"] == []
    near = [s.rssi_dbm for s in reports["gw-entrance"] if s.last_seen < T0 + 6]
    far = [s.rssi_dbm for s in reports["gw-produce"] if s.last_seen < T0 + 6]
    assert near and far and min(near) > max(far) + 15
    assert any(s.moving for s in reports["gw-produce"])  # the walking hint made it through
    detail = core.detail("gw-entrance")
    assert detail.startswith("espresense room entrance: online;")
    assert "refused" in core.summary() and "not_member 7" in core.summary()


def test_rooms_config_errors_name_file_and_key(tmp_path: Path, store_config: StoreConfig) -> None:
    path = tmp_path / "rooms.yaml"
    path.write_text("rooms: {entrance: gw-nowhere}\n")
    with pytest.raises(ConfigError, match=r"rooms\.yaml: rooms\.entrance: gateway 'gw-nowhere' is not in"):
        load_espresense_config(path, store_config)
    path.write_text("rooms: {a: gw-entrance, b: gw-entrance}\n")
    with pytest.raises(ConfigError, match=r"rooms\.b: gateway 'gw-entrance' already stands for room 'a'"):
        load_espresense_config(path, store_config)
    path.write_text("rooms: {a: gw-entrance}\nbase_topics: x\n")
    with pytest.raises(ConfigError, match=r"rooms\.yaml: .*base_topics"):
        load_espresense_config(path, store_config)
    assert EspresenseConfig(rooms={"a": "gw-entrance"}).base_topic == "espresense"
