"""The bench's pure parts: samples -> results, the floor, ids, pacing order, the report."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from bench.e2e import (
    TARGET_P99_MS,
    BenchError,
    Floor,
    floor_from_samples,
    member_id,
    paced,
    percentile,
    report,
    restamp,
    summarize,
)
from broker_config.contract import CheckoutEvent, EnvelopeSource, PresenceEvent, encode

REQUIRED_RATE_FIELDS = {
    "rate_eps", "achieved_eps", "duration_s", "sent", "prompts_expected", "prompts_received",
    "lost", "duplicates", "p50_ms", "p90_ms", "p99_ms", "max_ms", "p50_over_floor", "target_met",
    "p50_member_ms", "p50_guest_ms",
}  # fmt: skip


def ids(n: int) -> list[str]:
    return [f"{i:032x}" for i in range(n)]


def test_every_event_answered_once() -> None:
    sent = ids(100)
    receipts = [(e, float(i + 1)) for i, e in enumerate(sent)]  # latencies 1..100 ms
    r = summarize(rate_eps=50, duration_s=2.0, expected_ids=sent, receipts=receipts, floor_p50_ms=1.0)
    assert (r.sent, r.prompts_expected, r.prompts_received, r.lost, r.duplicates) == (100, 100, 100, 0, 0)
    assert r.achieved_eps == 50.0
    assert r.p50_ms == pytest.approx(50.5)
    assert r.p90_ms == pytest.approx(float(np.percentile(np.arange(1, 101), 90)))
    assert r.p99_ms == pytest.approx(99.01)
    assert r.max_ms == 100.0
    assert r.p50_over_floor == pytest.approx(50.5)
    assert not r.target_met  # p99 of 99 ms is far over 10 ms


def test_lost_duplicate_and_unexpected_prompts() -> None:
    sent = ids(5)
    receipts = [
        (sent[0], 2.0),
        (sent[1], 3.0),
        (sent[0], 9.0),  # duplicate: does not count for latency
        ("f" * 32, 1.0),  # warm-up or stray: not ours
        (sent[3], 4.0),
    ]
    r = summarize(rate_eps=5, duration_s=1.0, expected_ids=sent, receipts=receipts, floor_p50_ms=1.0)
    assert r.prompts_received == 3
    assert r.lost == 2
    assert r.duplicates == 1
    assert r.unexpected == 1
    assert r.max_ms == 4.0
    assert not r.target_met  # something was lost


@pytest.mark.parametrize(
    ("latency_ms", "floor_ms", "met"),
    [
        (3.0, 1.0, True),  # p50 exactly 3x the floor, p99 3 ms
        (3.01, 1.0, False),  # p50 just over 3x the floor
        (TARGET_P99_MS, 4.0, True),  # p99 exactly at the limit
        (TARGET_P99_MS + 0.01, 4.0, False),  # p99 just over the limit
    ],
)
def test_target(latency_ms: float, floor_ms: float, met: bool) -> None:
    sent = ids(10)
    receipts = [(e, latency_ms) for e in sent]
    r = summarize(rate_eps=10, duration_s=1.0, expected_ids=sent, receipts=receipts, floor_p50_ms=floor_ms)
    assert r.target_met is met


def test_nothing_received() -> None:
    sent = ids(3)
    r = summarize(rate_eps=3, duration_s=1.0, expected_ids=sent, receipts=[], floor_p50_ms=1.0)
    assert r.lost == 3
    assert r.p50_ms is None and r.p99_ms is None and r.max_ms is None and r.p50_over_floor is None
    assert not r.target_met


def test_percentile_of_nothing() -> None:
    assert percentile([], 50) is None
    assert percentile([4.0], 99) == 4.0


def test_floor_is_hop_plus_evalsha() -> None:
    floor = floor_from_samples([0.2, 0.3, 0.4], [0.05, 0.06, 0.07])
    assert floor.mqtt_hop_p50_ms == pytest.approx(0.3)
    assert floor.evalsha_p50_ms == pytest.approx(0.06)
    assert floor.floor_p50_ms == pytest.approx(0.36)
    assert (floor.mqtt_hop_samples, floor.evalsha_samples) == (3, 3)
    assert floor.relay_p50_ms is None and floor.relay_samples == 0
    with pytest.raises(BenchError):
        floor_from_samples([], [0.1])


def test_relay_floor_and_the_factor_over_it() -> None:
    floor = floor_from_samples([0.2, 0.3, 0.4], [0.05, 0.06, 0.07], [0.5, 0.6, 0.7, 2.0])
    assert floor.relay_p50_ms == pytest.approx(0.65)
    assert floor.relay_samples == 4
    assert floor.floor_p50_ms == pytest.approx(0.36)  # the relay is not part of the floor
    sent = ids(3)
    receipts = [(sent[0], 1.0), (sent[1], 1.3), (sent[2], 2.0)]
    r = summarize(rate_eps=3, duration_s=1.0, expected_ids=sent, receipts=receipts,
                  floor_p50_ms=floor.floor_p50_ms, relay_p50_ms=floor.relay_p50_ms)  # fmt: skip
    assert r.p50_over_relay == pytest.approx(1.3 / 0.65)
    assert r.p50_over_floor == pytest.approx(1.3 / 0.36)
    doc = report(floor, [r])
    assert doc["relay_over_floor"] == pytest.approx(0.65 / 0.36)
    without = summarize(rate_eps=3, duration_s=1.0, expected_ids=sent, receipts=receipts, floor_p50_ms=0.36)
    assert without.p50_over_relay is None


@pytest.mark.parametrize("rate", [0.5, 200, 500, 2000, 1_000_000])
def test_member_ids_fit_the_contract(rate: float) -> None:
    for i in (0, 7, 9_999_999):
        for kind in ("x", "w"):
            m = member_id(rate, i, kind)
            assert re.fullmatch(r"m_[A-Za-z0-9]{6,40}", m)
            PresenceEvent(schema_version=1, event_id="a" * 32, producer="gw", seq=0, ts=2e9,
                          member=m, action="enter")  # fmt: skip
    assert member_id(500, 1) != member_id(500, 1, "w") != member_id(2000, 1)


def test_paced_yields_every_index_in_order() -> None:
    got = list(paced(50, 100_000.0))
    assert [i for i, _ in got] == list(range(50))
    assert all(lag >= 0 for _, lag in got)


def test_report_has_the_documented_fields() -> None:
    floor = Floor(0.3, 1.0, 100, 0.06, 0.2, 100)
    r = summarize(rate_eps=10, duration_s=1.0, expected_ids=ids(2), receipts=[], floor_p50_ms=0.36)
    doc = json.loads(json.dumps(report(floor, [r])))
    for key in ("floor_p50_ms", "mqtt_hop_p50_ms", "mqtt_hop_p99_ms", "evalsha_p50_ms", "evalsha_p99_ms",
                "timestamp", "machine", "rates"):  # fmt: skip
        assert key in doc
    assert doc["floor_p50_ms"] == pytest.approx(0.36)
    assert {"cpu_count", "platform", "python"} <= set(doc["machine"])
    assert set(doc["rates"][0]) >= REQUIRED_RATE_FIELDS
    assert doc["rates"][0]["lost"] == 2


def test_restamp_sets_the_envelope_ts_and_nothing_else() -> None:
    source = EnvelopeSource("pos-1")
    event = source.make(
        CheckoutEvent,
        1_790_000_000.25,
        member=None,
        items=[{"sku": "ts", "category": "tea", "qty": 1, "amount_cents": 250}],
        total_cents=250,
    )
    stamped = restamp(encode(event), 1_790_000_123.0625)
    back = CheckoutEvent.model_validate_json(stamped)
    assert back.ts == 1_790_000_123.0625
    assert back.model_copy(update={"ts": event.ts}) == event


def test_p50_of_member_entries_and_guest_checkouts_apart() -> None:
    sent = ids(6)
    receipts = [(e, ms) for e, ms in zip(sent, [2.0, 1.0, 4.0, 1.5, 3.0, 0.5], strict=True)]
    r = summarize(
        rate_eps=6, duration_s=1, expected_ids=sent, receipts=receipts, floor_p50_ms=1, member_ids=sent[0::2]
    )
    assert (r.p50_member_ms, r.p50_guest_ms) == (3.0, 1.0)
    assert r.p50_ms == 1.75
