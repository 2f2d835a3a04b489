"""The outcome loop end to end on real services: a member walks into the pantry, the
prompt reaches Ben's handheld page, Ben accepts it there, the member buys the suggested
category at the till, and `floorwalker report outcomes` shows acceptance and conversion."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from broker_config.contract import CheckoutEvent, EnvelopeSource, PresenceEvent, Topics, encode
from floorwalker.cli import app as cli
from floorwalker.config import Endpoints, StoreConfig
from floorwalker.mqtt import MqttLink
from handheld import create_app
from handheld.auth import issue_token, open_session
from recommender.keys import Keys
from recommender.service import RecommenderService

pytestmark = pytest.mark.integration

DEADLINE_S = 10.0


def _until(what: str, check: object) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def store(services: Endpoints, prefix: str, store_config: StoreConfig) -> Iterator[RecommenderService]:
    service = RecommenderService(
        store_config, services, topic_prefix=prefix, key_prefix=prefix, client_id="rec-loop"
    )
    service.start()
    thread = threading.Thread(target=service.serve, daemon=True)
    thread.start()
    yield service
    service.stop()
    thread.join(10)


def test_visit_accept_convert_report(
    store: RecommenderService,
    services: Endpoints,
    prefix: str,
    store_config: StoreConfig,
    redis_client: redis.Redis,
) -> None:
    topics, keys = Topics(prefix), Keys(store_config.store, prefix)
    link = MqttLink(services.mqtt_host, services.mqtt_port, client_id=f"{prefix[:-1]}-loop-producer")
    link.connect()
    app = create_app(store_config, services, topic_prefix=prefix, key_prefix=prefix)
    try:
        ben = issue_token(redis_client, keys, store_config, "a-ben")
        session, _ = open_session(redis_client, keys, store_config, ben.token, time.time())
        with TestClient(app, headers={"Authorization": f"Bearer {session}"}) as api:
            # 1. Mrs Chen walks into the pantry; her soy sauce is due.
            enter = EnvelopeSource("gw-fresh").make(
                PresenceEvent, time.time(), member="m_702cc64d", action="enter"
            )
            link.publish(
                topics.presence(store_config.store, "pantry"), encode(enter), qos=1
            ).wait_for_publish(5)

            # 2. Ben's handheld page shows the prompt, with her name added on the store server.
            def on_page() -> list[dict[str, object]]:
                body: list[dict[str, object]] = api.get("/api/prompts").json()
                return body

            _until("the prompt on Ben's page", lambda: on_page())
            [prompt] = on_page()
            assert prompt["kind"] == "replenishment_due"
            assert "Mrs Chen" in json.dumps(prompt)

            # 3. Ben accepts it there.
            resp = api.post("/api/feedback", json={"prompt_id": prompt["prompt_id"], "outcome": "accepted"})
            assert resp.status_code == 202, resp.text

        # 4. She pays for soy sauce at lane 1.
        basket = [{"sku": "kikkoman-500", "category": "sauces", "qty": 1, "amount_cents": 399}]
        paid = EnvelopeSource("pos-1").make(
            CheckoutEvent, time.time(), member="m_702cc64d", items=basket, total_cents=399
        )
        link.publish(topics.checkout(store_config.store, "lane-1"), encode(paid), qos=1).wait_for_publish(5)
    finally:
        link.close()

    def counted() -> bool:
        stats = redis_client.hgetall(keys.stats)
        return stats.get(b"converted:replenishment_due") == b"1" and stats.get(b"feedback:accepted") == b"1"

    _until("the conversion and the acceptance in the stats", counted)

    # 5. The outcome report.
    result = CliRunner().invoke(
        cli,
        ["report", "outcomes", "--json", "--redis-url", services.redis_url, "--key-prefix", prefix],
    )
    assert result.exit_code == 0, result.output
    rows = {r["kind"]: r for r in json.loads(result.output)}
    row = rows["replenishment_due"]
    assert (row["prompted"], row["accepted"], row["converted"]) == (1, 1, 1)
    assert row["acceptance"][0] == 1.0 and 0.0 < row["acceptance"][1] < 1.0  # 1 of 1, wide interval
    assert row["conversion"][0] == 1.0
    assert rows["all"]["prompted"] >= 1
