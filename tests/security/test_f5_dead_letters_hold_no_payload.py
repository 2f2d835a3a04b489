"""Finding 5: a dead letter keeps why, where, sizes and a hash of what was refused — never
the refused payload's values (a name or phone number a broken producer put in it)."""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from broker_config.contract import BleReport, DeadLetter, EnvelopeSource, Topics, decode, encode
from floorwalker.config import StoreConfig
from presence.fuser import Fuser, resolver_for
from tests.integration.test_recommender import Slice

pytestmark = pytest.mark.integration

SECRETS = ("Mrs Chen", "Chen", "7700 900123", "+44")


def _presence_with_personal_data(source: EnvelopeSource) -> bytes:
    return json.dumps(
        {
            "schema_version": 1,
            "event_id": "ab" * 16,
            "producer": source.producer,
            "seq": 1,
            "ts": time.time(),
            "member": "Mrs Chen",
            "action": "enter",
            "phone": "+44 7700 900123",
        }
    ).encode()


def test_f5_recommender_dead_letter_has_reason_sizes_and_hash_but_no_values(running: Slice) -> None:
    payload = _presence_with_personal_data(running.gw_entrance)
    topic = running.topics.presence(running.store, "entrance")
    running.send(topic, payload)
    running.deadletters.wait_for(lambda msgs: len(msgs) == 1)

    on_wire = running.deadletters.on("/deadletter")[0]
    entries = running.redis.xrange(running.keys.deadletter)
    assert len(entries) == 1
    in_stream = entries[0][1][b"record"]
    for raw in (on_wire, in_stream):
        for secret in SECRETS:
            assert secret.encode() not in raw, (secret, raw)
        record = DeadLetter.model_validate_json(raw)
        assert record.reason.value == "invalid_field"
        assert record.topic == topic
        assert record.payload_size == len(payload)
        assert record.payload_sha256 == hashlib.sha256(payload).hexdigest()


def test_f5_fuser_dead_letter_holds_no_values(store_config: StoreConfig) -> None:
    topics = Topics()
    fuser = Fuser(store_config, resolver_for(store_config), topics)
    good = EnvelopeSource("gw-pantry").make(BleReport, time.time(), window_s=1.0, sightings=[])
    doc = json.loads(encode(good))
    doc["owner"] = "Mrs Chen +44 7700 900123"
    payload = json.dumps(doc).encode()
    [(topic, raw)] = fuser.handle(topics.ble(store_config.store, "gw-pantry"), payload, time.time())
    for secret in SECRETS:
        assert secret.encode() not in raw
    record = decode(topics, topic, raw).payload
    assert isinstance(record, DeadLetter)
    assert record.payload_sha256 == hashlib.sha256(payload).hexdigest()
