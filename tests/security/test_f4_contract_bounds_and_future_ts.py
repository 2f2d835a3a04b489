"""Finding 4 (the wire): every number in the contract is bounded and strictly typed, and an
event dated more than the allowed skew (``rules.max_future_skew_s``, 300 s) in the future is
dead-lettered ``future_ts`` instead of freezing a member or prompting about next year."""

from __future__ import annotations

import json
import time

import pytest

from broker_config.contract import (
    BleReport,
    ContractError,
    DeadLetter,
    EnvelopeSource,
    PresenceEvent,
    RejectReason,
    Topics,
    decode,
    encode,
)
from floorwalker.config import StoreConfig
from presence.fuser import Fuser, resolver_for
from tests.integration.test_recommender import Slice

TOPICS = Topics()
PRESENCE = TOPICS.presence("demo-store", "entrance")
DAY = 86_400.0


def _presence(**overrides: object) -> bytes:
    doc = json.loads(
        encode(
            EnvelopeSource("gw-entrance").make(PresenceEvent, time.time(), member="m_a1b2c3", action="enter")
        )
    )
    doc.update(overrides)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "overrides",
    [
        {"seq": 10**30},
        {"seq": 2**63},
        {"seq": "7"},
        {"seq": True},
        {"seq": 7.0},
        {"seq": -1},
        {"ts": "1800000000"},
        {"ts": True},
        {"confidence": "1"},
    ],
    ids=repr,
)
def test_f4_numbers_are_strict_and_bounded(overrides: dict[str, object]) -> None:
    with pytest.raises(ContractError) as caught:
        decode(TOPICS, PRESENCE, _presence(**overrides))
    assert caught.value.reason is RejectReason.INVALID_FIELD


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_f4_non_finite_numbers_are_refused_everywhere(literal: str) -> None:
    """NaN/Infinity in JSON (which Python's json writes) are refused in every float field,
    including those with only a lower bound."""
    status = {
        "schema_version": 1,
        "event_id": "cd" * 16,
        "producer": "gw-entrance",
        "seq": 1,
        "ts": time.time(),
        "state": "online",
        "uptime_s": "__X__",
    }
    raw = json.dumps(status).replace('"__X__"', literal).encode()
    with pytest.raises(ContractError) as caught:
        decode(TOPICS, TOPICS.status("demo-store", "gw-entrance"), raw)
    assert caught.value.reason is RejectReason.INVALID_FIELD
    assert "uptime_s" in caught.value.detail


def test_f4_largest_seq_is_accepted() -> None:
    assert decode(TOPICS, PRESENCE, _presence(seq=2**63 - 1)).payload.seq == 2**63 - 1


@pytest.mark.integration
@pytest.mark.parametrize("ahead_s", [DAY, 365 * DAY], ids=["1 day", "1 year"])
def test_f4_presence_from_the_future_is_dead_lettered_and_later_true_events_still_count(
    running: Slice, ahead_s: float
) -> None:
    member = "m_cbbd5a3c"
    future = running.gw_entrance.make(PresenceEvent, time.time() + ahead_s, member=member, action="enter")
    running.send(running.topics.presence(running.store, "entrance"), encode(future))
    running.deadletters.wait_for(lambda msgs: len(msgs) == 1)
    record = DeadLetter.model_validate_json(running.deadletters.on("/deadletter")[0])
    assert record.reason.value == "future_ts"
    assert running.redis.hget(running.keys.stats, "rejected:future_ts") == b"1"

    # The member is not frozen at a future moment: their real entrance now gets its greeting.
    real = running.enter("entrance", member)
    running.prompts.wait_for(lambda msgs: any(real.event_id.encode() in p for _, p in msgs))
    assert all(p.cause_ts < time.time() + 60 for p in running.member_prompts(member))


def test_f4_fuser_dead_letters_a_report_from_the_future(store_config: StoreConfig) -> None:
    fuser = Fuser(store_config, resolver_for(store_config), TOPICS)
    now = time.time()
    report = EnvelopeSource("gw-pantry").make(BleReport, now + DAY, window_s=1.0, sightings=[])
    [(topic, raw)] = fuser.handle(TOPICS.ble("demo-store", "gw-pantry"), encode(report), now)
    assert topic == TOPICS.deadletter("demo-store")
    assert DeadLetter.model_validate_json(raw).reason.value == "future_ts"
