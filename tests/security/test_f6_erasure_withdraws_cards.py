"""Finding 6 (the page's part): after ``floorwalker member erase`` an open handheld page
kept the member's card, and a prompt about them still in flight was stored and shown."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from broker_config.contract import Topics
from floorwalker.config import Endpoints, StoreConfig
from floorwalker.mqtt import MqttLink
from handheld import create_app
from recommender.erasure import erase_member
from recommender.keys import Keys
from tests.integration.test_api import Recommender, ids, poll
from tests.security.webapp import StreamReader, sign_in, signin_link

pytestmark = pytest.mark.integration

ERASED = "m_f6erased01"
KEPT = "m_f6kept0001"


@pytest.fixture
def api(services: Endpoints, prefix: str, store_config: StoreConfig) -> Iterator[TestClient]:
    app = create_app(store_config, services, topic_prefix=prefix, key_prefix=prefix)
    with TestClient(app) as client:
        yield client


@pytest.fixture
def link(services: Endpoints, prefix: str) -> Iterator[MqttLink]:
    link = MqttLink(services.mqtt_host, services.mqtt_port, client_id=f"{prefix.rstrip('/')}-f6-pub")
    link.connect()
    yield link
    # The erasure notice is retained: clear it so no later test's broker state carries it.
    link.publish(Topics(prefix).erasure("demo-store", ERASED), b"", qos=1, retain=True).wait_for_publish(5)
    link.close()


def test_erasure_withdraws_the_members_cards_from_open_pages(
    api: TestClient,
    link: MqttLink,
    redis_client: redis.Redis,
    prefix: str,
    store_config: StoreConfig,
    tmp_path: Path,
) -> None:
    keys, topics = Keys(store_config.store, prefix), Topics(prefix)
    # Erasure also revokes the member's BLE secret in the key file: use a copy, never the repo's.
    secrets = store_config.ble_presence.secrets
    assert secrets is not None
    key_copy = tmp_path / "ble_keys.json"
    shutil.copyfile(secrets, key_copy)
    ble = store_config.ble_presence.model_copy(update={"secrets": key_copy})
    erasing_config = store_config.model_copy(update={"ble_presence": ble})
    redis_client.hset(keys.profile(ERASED), mapping={"name": "Mrs Erased", "tier": "gold"})
    recommender = Recommender(link, prefix, store_config.store)
    sign_in(api, signin_link(redis_client, prefix, store_config, "a-ben"))
    with api.stream("GET", "/api/stream") as resp:
        reader = StreamReader(resp)
        reader.until(lambda e: e.get("event") == "ready")
        shown = recommender.prompt("a-ben", member=ERASED)
        got = reader.until(lambda e: e.get("event") == "prompt")
        assert json.loads(got[-1]["data"])["customer_name"] == "Mrs Erased"

        erase_member(redis_client, keys, topics, erasing_config, ERASED, time.time(), link)
        withdrawn = reader.until(lambda e: e.get("event") == "withdraw")
        assert json.loads(withdrawn[-1]["data"]) == {"member": ERASED}

        # A prompt about the member that was already in flight: never stored, never shown.
        recommender.prompt("a-ben", member=ERASED, headline="In flight during the erasure")
        marker = recommender.prompt("a-ben", member=KEPT)
        later = reader.until(lambda e: e.get("event") == "prompt")
        assert [json.loads(e["data"])["prompt_id"] for e in later if e.get("event") == "prompt"] == [
            marker.event_id
        ]
    body = poll(api, "/api/prompts", {}, lambda b: marker.event_id in ids(b))
    assert ids(body) == [marker.event_id] and shown.event_id not in ids(body)
    assert not redis_client.exists(keys.handheld_prompt(shown.event_id))
