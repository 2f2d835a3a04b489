"""The gateway's sighting table: reports on change and at a heartbeat, never per advert;
bad adverts are counted and dropped; only ephemeral ids leave; memory stays bounded."""

from __future__ import annotations

import uuid

from edge_agent.ble.frames import encode_ibeacon, encode_member_advert
from edge_agent.ble.sightings import Advert, SightingTable
from floorwalker.config import BleCalibration

EID = bytes.fromhex("0102030405060708")
ADV = encode_member_advert(EID, -59)


def table(**kw: float) -> SightingTable:
    return SightingTable(BleCalibration(measured_power_dbm=-59, path_loss_exponent=2.0), **kw)  # type: ignore[arg-type]


def test_reports_on_change_and_heartbeat_not_per_advert() -> None:
    t = table(change_db=2.0, heartbeat_s=3.0)
    reports = []
    for i in range(100):  # 10 s of adverts every 100 ms at a steady -79 dBm
        ts = 1000.0 + i * 0.1
        t.add(Advert(ts, -79, ADV))
        if i % 5 == 4:  # a report tick every 0.5 s
            reports.append(t.report(ts)[1])
    sent = [s for r in reports for s in r]
    assert 3 <= len(sent) <= 5  # the first, then one per 3 s heartbeat
    first = sent[0]
    assert (first.eid, first.rssi_dbm, first.adverts) == (EID.hex(), -79.0, 5)
    assert first.distance_m == 10.0
    assert sum(s.adverts for s in sent) <= 100


def test_a_change_beyond_the_threshold_is_reported_at_the_next_tick() -> None:
    t = table(change_db=2.0, heartbeat_s=30.0)
    for i in range(10):
        t.add(Advert(i * 0.1, -80, ADV))
    assert len(t.report(1.0)[1]) == 1
    for i in range(10):
        t.add(Advert(1.0 + i * 0.1, -80, ADV))
    assert t.report(2.0)[1] == []
    for i in range(30):
        t.add(Advert(2.0 + i * 0.1, -65, ADV))
    [moved] = t.report(5.0)[1]
    assert moved.rssi_dbm > -70


def test_bad_adverts_are_counted_and_dropped() -> None:
    t = table()
    t.add(Advert(0, -200, ADV))
    t.add(Advert(0, -60, ADV[:-3]))
    t.add(Advert(0, -60, encode_ibeacon(uuid.UUID(int=1), 1, 2, -59)))
    t.add(Advert(0, -60, bytes.fromhex("0709466f6f626172")))
    assert len(t) == 0 and t.report(1.0)[1] == []
    c = t.counters
    assert (c["dropped:rssi_range"], c["dropped:truncated"], c["beacon"], c["other"]) == (1, 1, 1, 1)
    assert "dropped rssi_range 1, truncated 1" in t.summary()


def test_ids_are_bounded_and_forgotten() -> None:
    t = table(forget_s=5.0, max_ids=3)
    for i in range(5):
        t.add(Advert(float(i), -70, encode_member_advert(bytes([i]) * 8, -59)))
    assert len(t) == 3 and t.counters["evicted"] == 2
    t.report(20.0)
    assert len(t) == 0


def test_the_apps_motion_hint_is_carried_and_a_change_reported_at_once() -> None:
    t = table(change_db=2.0, heartbeat_s=30.0)
    still, walking = encode_member_advert(EID, -59, False), encode_member_advert(EID, -59, True)
    for i in range(10):
        t.add(Advert(i * 0.1, -80, still))
    [first] = t.report(1.0)[1]
    assert first.moving is False and first.fields()["moving"] is False
    for i in range(10):
        t.add(Advert(1.0 + i * 0.1, -80, still))
    assert t.report(2.0)[1] == []  # same level, same hint: nothing to say
    for i in range(5):
        t.add(Advert(2.0 + i * 0.1, -80, walking))
    [started] = t.report(2.5)[1]  # the level did not move, the hint did
    assert started.moving is True
    t.add(Advert(2.6, -80, ADV))  # an app without the hint
    assert t.report(3.0)[1][0].moving is None
