"""The handheld API against a real Mosquitto and Redis: prompts in over MQTT, names added
from Redis, out over JSON and SSE; feedback back out over MQTT."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from broker_config.contract import (
    EnvelopeSource,
    Feedback,
    Prompt,
    PromptKind,
    Topics,
    decode,
    encode,
    new_event_id,
)
from floorwalker.api import create_app
from floorwalker.config import Endpoints, StoreConfig
from floorwalker.mqtt import MqttLink, Received
from recommender.keys import Keys

pytestmark = pytest.mark.integration

DEADLINE_S = 5.0
MEMBER = "m_chen0001"


@pytest.fixture
def api(
    services: Endpoints, prefix: str, store_config: StoreConfig, redis_client: redis.Redis
) -> Iterator[TestClient]:
    redis_client.hset(
        Keys(store_config.store, prefix).profile(MEMBER), mapping={"name": "Mrs Chen", "tier": "gold"}
    )
    app = create_app(
        store_config,
        services,
        topic_prefix=prefix,
        key_prefix=prefix,
    )
    with TestClient(app) as client:  # runs the lifespan: connects MQTT and Redis
        yield client


@pytest.fixture
def publisher(services: Endpoints, prefix: str) -> Iterator[MqttLink]:
    link = MqttLink(services.mqtt_host, services.mqtt_port, client_id=f"{prefix.rstrip('/')}-test-pub")
    link.connect()
    yield link
    link.close()


class Recommender:
    """Publishes prompts the way the recommender does."""

    def __init__(self, link: MqttLink, prefix: str, store: str) -> None:
        self.link, self.topics, self.store = link, Topics(prefix), store
        self.source = EnvelopeSource("recommender")

    def prompt(
        self, associate: str, *, member: str | None = MEMBER, ttl: float = 300, **extra: Any
    ) -> Prompt:
        now = time.time()
        fields: dict[str, Any] = {
            "kind": PromptKind.GREET_VIP if member else PromptKind.JOIN_INVITE,
            "customer": {"member": member, "tier": "gold" if member else None},
            "zone": "pantry",
            "headline": "Mrs Chen is in Pantry",
            "suggestion": "Say hello; her soy sauce is due.",
            "why": "Buys Kikkoman about monthly; last bought 32 days ago.",
            "cause_event_id": new_event_id(),
            "cause_ts": now,
            "expires_at": now + ttl,
        }
        fields.update(extra)
        prompt = self.source.make(Prompt, now, **fields)
        self.send_raw(associate, encode(prompt))
        return prompt

    def send_raw(self, associate: str, payload: bytes) -> None:
        info = self.link.publish(self.topics.prompt(self.store, associate), payload, qos=1)
        info.wait_for_publish(DEADLINE_S)


@pytest.fixture
def recommender(publisher: MqttLink, prefix: str, store_config: StoreConfig) -> Recommender:
    return Recommender(publisher, prefix, store_config.store)


def poll(
    client: TestClient, path: str, until: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """GET ``path`` until ``until(body)`` holds; fail with the last body after the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        resp = client.get(path)
        assert resp.status_code == 200, resp.text
        body: list[dict[str, Any]] = resp.json()
        if until(body):
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not reach the expected state within {DEADLINE_S} s: {body}")
        time.sleep(0.02)


def ids(body: list[dict[str, Any]]) -> list[str]:
    return [p["prompt_id"] for p in body]


def test_prompt_reaches_only_its_associate_with_the_name_added(
    api: TestClient, recommender: Recommender
) -> None:
    sent = recommender.prompt("a-ben")

    body = poll(api, "/api/handheld/a-ben/prompts", lambda b: sent.event_id in ids(b))
    assert len(body) == 1
    got = body[0]
    assert got["customer_name"] == "Mrs Chen"  # from Redis: names never travel on MQTT
    assert got["member"] == MEMBER
    assert got["tier"] == "gold"
    assert got["headline"] == sent.headline
    assert got["suggestion"] == sent.suggestion
    assert got["why"] == sent.why
    assert got["expires_at"] == pytest.approx(sent.expires_at)
    assert got["outcome"] is None

    # A later prompt for Amy arrives after Ben's was handled; Amy never sees Ben's.
    for_amy = recommender.prompt("a-amy", zone="produce")
    amy = poll(api, "/api/handheld/a-amy/prompts", lambda b: for_amy.event_id in ids(b))
    assert ids(amy) == [for_amy.event_id]


def test_non_member_is_a_guest_and_a_nameless_member_still_gets_the_prompt(
    api: TestClient, recommender: Recommender
) -> None:
    guest = recommender.prompt("a-dan", member=None, zone=None, lane="lane-1")
    nameless = recommender.prompt("a-dan", member="m_nobody0001")

    body = poll(api, "/api/handheld/a-dan/prompts", lambda b: nameless.event_id in ids(b))
    assert ids(body) == [nameless.event_id, guest.event_id]  # newest first
    assert body[1]["customer_name"] == "Guest"
    assert body[1]["member"] is None
    assert body[0]["customer_name"] == "Member"


def test_invalid_and_duplicate_prompts_are_ignored(api: TestClient, recommender: Recommender) -> None:
    recommender.send_raw("a-ben", b"{not json")
    recommender.send_raw("a-ben", b'{"schema_version": 1, "kind": "greet_vip"}')
    first = recommender.prompt("a-ben")
    recommender.send_raw("a-ben", encode(first))  # a QoS 1 redelivery
    second = recommender.prompt("a-ben")

    body = poll(api, "/api/handheld/a-ben/prompts", lambda b: second.event_id in ids(b))
    assert ids(body) == [second.event_id, first.event_id]
    assert api.get("/api/health").json() == {"mqtt": True, "redis": True}


def test_history_keeps_the_last_twenty(api: TestClient, recommender: Recommender) -> None:
    sent = [recommender.prompt("a-cara", zone="dairy", headline=f"prompt {i}") for i in range(25)]

    body = poll(api, "/api/handheld/a-cara/prompts", lambda b: sent[-1].event_id in ids(b))
    assert ids(body) == [p.event_id for p in reversed(sent[-20:])]


def test_feedback_is_published_on_the_contract_topic(
    api: TestClient, recommender: Recommender, services: Endpoints, prefix: str, store_config: StoreConfig
) -> None:
    topics = Topics(prefix)
    received: queue.Queue[tuple[str, bytes]] = queue.Queue()

    def on_message(msg: Received) -> bool:
        received.put((msg.topic, msg.payload))
        return True

    listener = MqttLink(
        services.mqtt_host,
        services.mqtt_port,
        client_id=f"{prefix.rstrip('/')}-test-fb",
        subscriptions=[(topics.feedback(store_config.store, "+"), 1)],
        on_message=on_message,
    )
    listener.connect()
    try:
        sent = recommender.prompt("a-ben")
        poll(api, "/api/handheld/a-ben/prompts", lambda b: sent.event_id in ids(b))

        resp = api.post(
            "/api/handheld/a-ben/feedback", json={"prompt_id": sent.event_id, "outcome": "accepted"}
        )
        assert resp.status_code == 202, resp.text

        topic, payload = received.get(timeout=DEADLINE_S)
    finally:
        listener.close()
    assert topic == topics.feedback(store_config.store, "a-ben")
    msg = decode(topics, topic, payload)
    fb = msg.payload
    assert isinstance(fb, Feedback)
    assert fb.prompt_id == sent.event_id
    assert fb.outcome == "accepted"
    assert fb.producer == "handheld-a-ben"
    assert resp.json() == {"feedback_id": fb.event_id, "prompt_id": sent.event_id, "outcome": "accepted"}
    # A page opened later shows the answer.
    assert api.get("/api/handheld/a-ben/prompts").json()[0]["outcome"] == "accepted"


def test_feedback_errors(api: TestClient, recommender: Recommender) -> None:
    sent = recommender.prompt("a-ben")
    poll(api, "/api/handheld/a-ben/prompts", lambda b: sent.event_id in ids(b))

    bad_outcome = api.post(
        "/api/handheld/a-ben/feedback", json={"prompt_id": sent.event_id, "outcome": "maybe"}
    )
    assert bad_outcome.status_code == 422
    bad_id = api.post("/api/handheld/a-ben/feedback", json={"prompt_id": "xyz", "outcome": "done"})
    assert bad_id.status_code == 422

    unknown = api.post("/api/handheld/a-ben/feedback", json={"prompt_id": new_event_id(), "outcome": "done"})
    assert unknown.status_code == 404
    assert "no recent prompt" in unknown.json()["detail"]
    # Ben's prompt is not Amy's to answer.
    not_hers = api.post("/api/handheld/a-amy/feedback", json={"prompt_id": sent.event_id, "outcome": "done"})
    assert not_hers.status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/handheld/a-zed"),
        ("GET", "/api/handheld/a-zed/prompts"),
        ("GET", "/api/handheld/a-zed/stream"),
        ("POST", "/api/handheld/a-zed/feedback"),
    ],
)
def test_unknown_associate_is_404(api: TestClient, method: str, path: str) -> None:
    resp = api.request(method, path, json={"prompt_id": new_event_id(), "outcome": "done"})
    assert resp.status_code == 404
    detail = resp.json()["detail"]
    assert "a-zed" in detail and "a-ben" in detail  # says what is wrong and what exists


def test_pages(api: TestClient) -> None:
    index = api.get("/")
    assert index.status_code == 200
    assert 'href="/handheld/a-ben"' in index.text and "Floorwalker Demo Market" in index.text

    page = api.get("/handheld/a-ben")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'data-associate="a-ben"' in page.text
    assert "new EventSource" in page.text and "__ASSOCIATE" not in page.text


class SseReader:
    """Reads an SSE response on a thread so the test can wait for events with a deadline."""

    def __init__(self, resp: httpx.Response) -> None:
        self.events: queue.Queue[dict[str, str]] = queue.Queue()
        self.error: Exception | None = None
        self._resp = resp
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        event: dict[str, str] = {}
        try:
            for line in self._resp.iter_lines():
                if not line:
                    if event:
                        self.events.put(event)
                    event = {}
                elif not line.startswith(":"):
                    key, _, value = line.partition(":")
                    event[key] = value.removeprefix(" ")
        except Exception as exc:  # expected once the test closes the stream; reported if earlier
            self.error = exc

    def next(self) -> dict[str, str]:
        try:
            return self.events.get(timeout=DEADLINE_S)
        except queue.Empty:
            pytest.fail(f"no SSE event within {DEADLINE_S} s (reader stopped by: {self.error!r})")


def test_stream_sends_recent_prompts_then_live_ones(api: TestClient, recommender: Recommender) -> None:
    earlier = recommender.prompt("a-ben")
    poll(api, "/api/handheld/a-ben/prompts", lambda b: earlier.event_id in ids(b))

    with api.stream("GET", "/api/handheld/a-ben/stream") as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        reader = SseReader(resp)

        first = reader.next()
        assert first["event"] == "prompt"
        assert first["id"] == earlier.event_id
        assert json.loads(first["data"])["customer_name"] == "Mrs Chen"
        assert reader.next()["event"] == "ready"

        live = recommender.prompt("a-ben", headline="Back again")
        recommender.prompt("a-amy")  # not Ben's: must not show up on his stream
        mine = recommender.prompt("a-ben", headline="And again")
        got = [reader.next(), reader.next()]
        assert [e["id"] for e in got] == [live.event_id, mine.event_id]
        assert json.loads(got[0]["data"])["headline"] == "Back again"


def test_stream_resumes_after_last_event_id(api: TestClient, recommender: Recommender) -> None:
    a = recommender.prompt("a-ben")
    b = recommender.prompt("a-ben")
    poll(api, "/api/handheld/a-ben/prompts", lambda body: b.event_id in ids(body))

    with api.stream("GET", "/api/handheld/a-ben/stream", headers={"Last-Event-ID": a.event_id}) as resp:
        reader = SseReader(resp)
        assert reader.next()["id"] == b.event_id
        assert reader.next()["event"] == "ready"
