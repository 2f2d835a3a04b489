"""The store server's API against a real Mosquitto and Redis: tokens, prompts in over MQTT
with names added from Redis, out over JSON and SSE (resumable), feedback and status back
out over MQTT, the dashboard's view, health and metrics, and bad input."""

from __future__ import annotations

import json
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from broker_config.contract import (
    AssociateStatus,
    EnvelopeSource,
    Feedback,
    FootfallEvent,
    GatewayStatus,
    Prompt,
    PromptKind,
    Topics,
    decode,
    encode,
    new_event_id,
)
from floorwalker.config import Endpoints, StoreConfig
from floorwalker.mqtt import MqttLink
from floorwalker.services import Services, free_port
from handheld import create_app
from handheld.auth import COOKIE, issue_token, open_session
from recommender.keys import Keys

pytestmark = pytest.mark.integration

DEADLINE_S = 5.0
MEMBER = "m_702cc64d"


@pytest.fixture
def api(
    services: Endpoints, prefix: str, store_config: StoreConfig, redis_client: redis.Redis
) -> Iterator[TestClient]:
    redis_client.hset(
        Keys(store_config.store, prefix).profile(MEMBER),
        mapping={
            "name": "Mrs Chen",
            "tier": "gold",
            "points": "1840",
            "last:sauces": f"{time.time() - 32 * 86400:.0f}",
            "label:sauces": "Kikkoman soy sauce 500 ml",
            "last:tea": f"{time.time() - 3 * 86400:.0f}",
            "label:tea": "Jasmine tea",
            "complaint": "Late delivery last week",
        },
    )
    app = create_app(store_config, services, topic_prefix=prefix, key_prefix=prefix)
    with TestClient(app) as client:  # runs the lifespan: connects MQTT and Redis
        yield client


@pytest.fixture
def token(redis_client: redis.Redis, prefix: str, store_config: StoreConfig) -> Callable[..., dict[str, str]]:
    """Authorization headers for an associate of the demo store: a fresh link's token,
    exchanged for a session as a script does (``POST /api/sessions``), each call."""

    def make(associate: str, **kw: Any) -> dict[str, str]:
        keys = Keys(store_config.store, prefix)
        issued = issue_token(redis_client, keys, store_config, associate, **kw)
        now = kw.get("now", time.time())
        session, _ = open_session(redis_client, keys, store_config, issued.token, now)
        return {"Authorization": f"Bearer {session}"}

    return make


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


def poll(client: TestClient, path: str, headers: dict[str, str], until: Callable[[Any], bool]) -> Any:
    """GET ``path`` until ``until(body)`` holds; fail with the last body after the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        resp = client.get(path, headers=headers)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        if until(body):
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not reach the expected state within {DEADLINE_S} s: {body}")
        time.sleep(0.02)


def ids(body: list[dict[str, Any]]) -> list[str]:
    return [p["prompt_id"] for p in body]


def test_prompt_reaches_only_its_associate_with_the_name_added(
    api: TestClient, recommender: Recommender, token: Callable[..., dict[str, str]]
) -> None:
    ben, amy = token("a-ben"), token("a-amy")
    sent = recommender.prompt("a-ben")
    body = poll(api, "/api/prompts", ben, lambda b: sent.event_id in ids(b))
    p = body[0]
    assert p["customer_name"] == "Mrs Chen" and p["tier"] == "gold" and p["zone"] == "pantry"
    assert p["since"] == pytest.approx(sent.cause_ts) and p["sid"]
    assert api.get("/api/prompts", headers=amy).json() == []


def test_a_redelivered_prompt_is_stored_once(
    api: TestClient, recommender: Recommender, token: Callable[..., dict[str, str]]
) -> None:
    ben = token("a-ben")
    sent = recommender.prompt("a-ben")
    recommender.send_raw("a-ben", encode(sent))  # the same event id again
    recommender.send_raw("a-ben", b"{not json")  # ignored, the API keeps serving
    marker = recommender.prompt("a-ben")
    body = poll(api, "/api/prompts", ben, lambda b: marker.event_id in ids(b))
    assert ids(body) == [marker.event_id, sent.event_id]


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ({}, "not signed in"),
        ({"Authorization": "Bearer nonsense"}, "not a Floorwalker sign-in token"),
        ({"Authorization": "Bearer fwt_" + "x" * 43}, "a sign-in link's token"),
        ({"Authorization": "Bearer fws_" + "x" * 43}, "signed out, ended or revoked"),
        ({"Cookie": f"{COOKIE}=fws_{'y' * 43}"}, "signed out, ended or revoked"),
    ],
)
def test_missing_or_wrong_token_is_401_with_a_reason(
    api: TestClient, headers: dict[str, str], says: str
) -> None:
    for path in ("/api/me", "/api/prompts", "/api/stream", "/api/dashboard"):
        resp = api.get(path, headers=headers)
        assert resp.status_code == 401, (path, resp.text)
        assert says in resp.json()["detail"]


def test_expired_token_is_401_saying_expired(api: TestClient, token: Callable[..., dict[str, str]]) -> None:
    old = token("a-ben", ttl_s=60, now=time.time() - 3600)
    resp = api.get("/api/me", headers=old)
    assert resp.status_code == 401 and "your session ended at" in resp.json()["detail"]


def test_a_token_of_another_store_is_unknown_here(
    api: TestClient, redis_client: redis.Redis, prefix: str, store_config: StoreConfig
) -> None:
    other = store_config.model_copy(update={"store": "other-store"})
    issued = issue_token(redis_client, Keys("other-store", prefix), other, "a-ben")
    session, _ = open_session(redis_client, Keys("other-store", prefix), other, issued.token, time.time())
    resp = api.get("/api/me", headers={"Authorization": f"Bearer {session}"})
    assert resp.status_code == 401 and "session in store demo-store was signed out" in resp.text
    link = api.get(
        f"/signin?token={issue_token(redis_client, Keys('other-store', prefix), other, 'a-ben').token}"
    )
    assert link.status_code == 401 and "unknown or revoked token for store demo-store" in link.text


def test_signin_link_sets_a_cookie_and_opens_the_page_for_the_role(
    api: TestClient, redis_client: redis.Redis, prefix: str, store_config: StoreConfig
) -> None:
    keys = Keys(store_config.store, prefix)
    ben = issue_token(redis_client, keys, store_config, "a-ben").token
    resp = api.get(f"/signin?token={ben}", follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/handheld"
    assert "httponly" in resp.headers["set-cookie"].lower()
    page = api.get("/handheld")
    assert page.status_code == 200 and "new EventSource" in page.text
    assert api.get("/api/me").json()["associate"] == "a-ben"
    denied = api.get("/dashboard")
    assert denied.status_code == 403 and "dashboard is for managers" in denied.text
    assert api.get("/api/dashboard").status_code == 403

    amy = issue_token(redis_client, keys, store_config, "a-amy").token  # the demo store's manager
    resp = api.get(f"/signin?token={amy}", follow_redirects=False)
    assert resp.headers["location"] == "/dashboard"
    assert "live floor" in api.get("/dashboard").text

    bad = api.get("/signin?token=fwt_nope", follow_redirects=False)
    assert bad.status_code == 401 and "unknown or revoked token" in bad.text


def test_feedback_is_published_and_recorded(
    api: TestClient,
    recommender: Recommender,
    token: Callable[..., dict[str, str]],
    collect: Callable[[list[str]], Any],
    prefix: str,
    store_config: StoreConfig,
) -> None:
    ben = token("a-ben")
    topics = Topics(prefix)
    inbox = collect([topics.feedback(store_config.store, "a-ben")])
    sent = recommender.prompt("a-ben")
    poll(api, "/api/prompts", ben, lambda b: sent.event_id in ids(b))

    ok = api.post("/api/feedback", headers=ben, json={"prompt_id": sent.event_id, "outcome": "accepted"})
    assert ok.status_code == 202, ok.text
    dismissed = api.post(
        "/api/feedback",
        headers=ben,
        json={"prompt_id": sent.event_id, "outcome": "dismissed", "reason": "customer_busy"},
    )
    assert dismissed.status_code == 202, dismissed.text
    inbox.wait_for(lambda msgs: len(msgs) == 2)
    got = [decode(topics, t, p).payload for t, p in inbox.messages]
    assert all(isinstance(f, Feedback) and f.prompt_id == sent.event_id for f in got)
    assert [(f.outcome, f.reason) for f in got if isinstance(f, Feedback)] == [
        ("accepted", None),
        ("dismissed", "customer_busy"),
    ]
    view = api.get("/api/prompts", headers=ben).json()[0]
    assert view["outcome"] == "dismissed" and view["dismiss_reason"] == "customer_busy"
    again = api.post("/api/feedback", headers=ben, json={"prompt_id": sent.event_id, "outcome": "done"})
    assert again.status_code == 409 and "already dismissed" in again.json()["detail"]
    metrics = api.get("/metrics").text
    assert 'floorwalker_prompt_outcomes_total{kind="greet_vip",outcome="accepted"} 1.0' in metrics
    assert 'floorwalker_prompts_total{kind="greet_vip"} 1.0' in metrics
    assert "floorwalker_prompt_latency_seconds_count 1.0" in metrics


def test_feedback_errors_say_why(
    api: TestClient, recommender: Recommender, token: Callable[..., dict[str, str]]
) -> None:
    ben, cara = token("a-ben"), token("a-cara")  # Cara is not a manager (a manager may answer)
    sent = recommender.prompt("a-ben")
    poll(api, "/api/prompts", ben, lambda b: sent.event_id in ids(b))

    not_hers = api.post("/api/feedback", headers=cara, json={"prompt_id": sent.event_id, "outcome": "done"})
    assert not_hers.status_code == 403 and "another associate" in not_hers.json()["detail"]
    unknown = api.post("/api/feedback", headers=ben, json={"prompt_id": new_event_id(), "outcome": "done"})
    assert unknown.status_code == 404 and "no prompt" in unknown.json()["detail"]
    bad_reason = api.post(
        "/api/feedback",
        headers=ben,
        json={"prompt_id": sent.event_id, "outcome": "done", "reason": "wrong_person"},
    )
    assert bad_reason.status_code == 422 and "only allowed with outcome 'dismissed'" in bad_reason.text
    for body in ({"prompt_id": "x", "outcome": "done"}, {"prompt_id": sent.event_id, "outcome": "maybe"}, []):
        assert api.post("/api/feedback", headers=ben, json=body).status_code == 422
    malformed = api.post(
        "/api/feedback", headers={**ben, "Content-Type": "application/json"}, content=b"{oops"
    )
    assert malformed.status_code == 422
    huge = api.post(
        "/api/feedback", headers={**ben, "Content-Type": "application/json"}, content=b" " * 100_000
    )
    assert huge.status_code == 413 and "too large" in huge.json()["detail"]


def test_customer_card_only_for_your_own_member_prompt(
    api: TestClient, recommender: Recommender, token: Callable[..., dict[str, str]]
) -> None:
    ben, amy = token("a-ben"), token("a-amy")
    sent = recommender.prompt("a-ben")
    guest = recommender.prompt("a-ben", member=None)
    poll(api, "/api/prompts", ben, lambda b: guest.event_id in ids(b))

    card = api.get(f"/api/prompts/{sent.event_id}/customer", headers=ben)
    assert card.status_code == 200, card.text
    c = card.json()
    assert (c["name"], c["tier"], c["points"]) == ("Mrs Chen", "gold", 1840)
    assert [r["category"] for r in c["recent"]] == ["tea", "sauces"]  # newest first
    assert c["recent"][1]["days_ago"] == 32 and c["open_complaint"] == "Late delivery last week"
    assert api.get(f"/api/prompts/{sent.event_id}/customer", headers=amy).status_code == 403
    assert api.get(f"/api/prompts/{guest.event_id}/customer", headers=ben).status_code == 404


def test_status_is_published_retained_on_the_contract_topic(
    api: TestClient,
    token: Callable[..., dict[str, str]],
    collect: Callable[[list[str]], Any],
    prefix: str,
    store_config: StoreConfig,
) -> None:
    ben = token("a-ben")
    topic = Topics(prefix).associate_status(store_config.store, "a-ben")
    assert api.get("/api/me", headers=ben).json()["status"] == "signed_out"
    resp = api.post("/api/status", headers=ben, json={"state": "on_break"})
    assert resp.status_code == 200 and resp.json()["status"] == "on_break"
    assert api.post("/api/status", headers=ben, json={"state": "asleep"}).status_code == 422
    late = collect([topic])  # subscribes after the publish: gets the retained message
    late.wait_for(lambda msgs: len(msgs) == 1)
    status = decode(Topics(prefix), topic, late.messages[0][1]).payload
    assert isinstance(status, AssociateStatus) and status.state == "on_break"


def test_dashboard_shows_floor_funnel_associates_and_gateways(
    api: TestClient,
    recommender: Recommender,
    token: Callable[..., dict[str, str]],
    publisher: MqttLink,
    prefix: str,
    store_config: StoreConfig,
    redis_client: redis.Redis,
) -> None:
    amy, ben = token("a-amy"), token("a-ben")
    topics, store, now = Topics(prefix), store_config.store, time.time()
    keys = Keys(store, prefix)
    redis_client.hset(keys.stats, mapping={"prompts": 7, "prompt:greet_vip": 5, "feedback:accepted": 3})
    redis_client.hset(keys.footfall("2001-01-01"), "9", 4)  # far in the past: not "typical"
    cam = EnvelopeSource("gw-entrance")
    gw = EnvelopeSource("gw-checkout")
    publisher.publish(
        topics.status(store, "gw-checkout"),
        encode(gw.make(GatewayStatus, now, state="online", detail="camera ok; ble ok")),
        qos=1,
        retain=True,
    )
    publisher.publish(
        topics.footfall(store, "entrance"),
        encode(cam.make(FootfallEvent, now, window_s=10, entered=3, exited=1, occupancy=6)),
        qos=1,
    )
    publisher.publish(
        topics.footfall(store, "checkout"),
        encode(cam.make(FootfallEvent, now, window_s=10, entered=2, exited=0, occupancy=4, queue_length=3)),
        qos=1,
    )
    sent = recommender.prompt("a-ben")
    poll(api, "/api/prompts", ben, lambda b: sent.event_id in ids(b))
    d = poll(
        api,
        "/api/dashboard",
        amy,
        lambda d: (
            d["queue_length"] == 3
            and d["occupancy"] == 10
            and any(g["state"] == "online" for g in d["gateways"])
        ),
    )
    assert d["funnel"] | {"by_kind": None} == {
        "sent": 7,
        "accepted": 3,
        "dismissed": 0,
        "done": 0,
        "converted": 0,
        "by_kind": None,
    }
    assert d["funnel"]["by_kind"] == {"greet_vip": 5}
    zones = {z["id"]: z for z in d["zones"]}
    assert zones["entrance"]["occupancy"] == 6 and zones["pantry"]["occupancy"] is None
    assert len(zones["pantry"]["polygon"]) == 4
    hour = time.localtime(now).tm_hour
    assert d["hourly"]["today"][hour] == 3  # entries through the entrance zone only
    assert d["hourly"]["typical_days"] == 0
    loads = {a["id"]: a["open_prompts"] for a in d["associates"]}
    assert loads["a-ben"] == 1 and loads["a-cara"] == 0
    gws = {g["id"]: g for g in d["gateways"]}
    assert gws["gw-checkout"]["detail"] == "camera ok; ble ok" and gws["gw-fresh"]["state"] == "unknown"
    assert 'floorwalker_gateway_up{gateway="gw-checkout"} 1.0' in api.get("/metrics").text


def test_health_ready_metrics_and_openapi(api: TestClient, token: Callable[..., dict[str, str]]) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"ready": True, "mqtt": True, "redis": True}
    metrics = api.get("/metrics")
    assert metrics.status_code == 200 and "floorwalker_deadletters" in metrics.text
    spec = api.get("/openapi.json", headers=token("a-amy")).json()  # for managers only
    for path in ("/api/stream", "/api/feedback", "/api/dashboard", "/readyz", "/metrics"):
        assert path in spec["paths"]


def _ready_becomes(client: TestClient, code: int, body: dict[str, bool]) -> None:
    """Poll /readyz until it answers ``code`` with ``body``; fail with the last answer."""
    deadline = time.monotonic() + 20
    while True:
        resp = client.get("/readyz")
        if resp.status_code == code and resp.json() == body:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"/readyz never answered {code} {body}; last {resp.status_code} {resp.text}")
        time.sleep(0.05)


def test_readyz_is_503_naming_the_service_that_is_down(store_config: StoreConfig, tmp_path: Path) -> None:
    """Its own Mosquitto and Redis (killed here, so never the session's): each one down in
    turn makes /readyz 503, saying which; back up, 200 again."""
    svc = Services(tmp_path / "svc", mqtt_port=free_port(), redis_port=free_port())
    endpoints = svc.up()

    def kill(name: str) -> None:
        os.kill(svc.recorded()[name].pid, signal.SIGKILL)

    try:
        app = create_app(store_config, endpoints, topic_prefix="ready/", key_prefix="ready/")
        with TestClient(app) as client:
            _ready_becomes(client, 200, {"ready": True, "mqtt": True, "redis": True})
            kill("redis")
            _ready_becomes(client, 503, {"ready": False, "mqtt": True, "redis": False})
            svc.up()  # the same ports: the API's clients come back by themselves
            _ready_becomes(client, 200, {"ready": True, "mqtt": True, "redis": True})
            kill("mosquitto")
            _ready_becomes(client, 503, {"ready": False, "mqtt": False, "redis": True})
    finally:
        svc.down()


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


def test_stream_sends_recent_prompts_then_live_ones(
    api: TestClient, recommender: Recommender, token: Callable[..., dict[str, str]]
) -> None:
    ben = token("a-ben")
    earlier = recommender.prompt("a-ben")
    poll(api, "/api/prompts", ben, lambda b: earlier.event_id in ids(b))

    with api.stream("GET", "/api/stream", headers=ben) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        reader = SseReader(resp)
        first = reader.next()
        assert first["event"] == "prompt"
        assert json.loads(first["data"])["prompt_id"] == earlier.event_id
        assert json.loads(first["data"])["customer_name"] == "Mrs Chen"
        assert reader.next()["event"] == "ready"

        live = recommender.prompt("a-ben", headline="Back again")
        recommender.prompt("a-amy")  # not Ben's: must not show up on his stream
        mine = recommender.prompt("a-ben", headline="And again")
        got = [reader.next(), reader.next()]
        assert [json.loads(e["data"])["prompt_id"] for e in got] == [live.event_id, mine.event_id]
        assert got[0]["id"] < got[1]["id"] or len(got[0]["id"]) < len(got[1]["id"])


def test_stream_resumes_after_last_event_id_without_loss_or_repeat(
    api: TestClient, recommender: Recommender, token: Callable[..., dict[str, str]]
) -> None:
    ben = token("a-ben")
    a = recommender.prompt("a-ben")
    poll(api, "/api/prompts", ben, lambda body: a.event_id in ids(body))
    with api.stream("GET", "/api/stream", headers=ben) as resp:
        reader = SseReader(resp)
        seen = reader.next()
        assert json.loads(seen["data"])["prompt_id"] == a.event_id
    # The connection is gone; two prompts arrive meanwhile.
    b = recommender.prompt("a-ben")
    c = recommender.prompt("a-ben")
    poll(api, "/api/prompts", ben, lambda body: c.event_id in ids(body))
    with api.stream("GET", "/api/stream", headers={**ben, "Last-Event-ID": seen["id"]}) as resp:
        reader = SseReader(resp)
        got = [reader.next(), reader.next()]
        assert [json.loads(e["data"])["prompt_id"] for e in got] == [b.event_id, c.event_id]
        assert reader.next()["event"] == "ready"


def test_fuzzed_requests_get_a_4xx_never_a_500(
    api: TestClient, recommender: Recommender, token: Callable[..., dict[str, str]]
) -> None:
    """Random bodies, headers and path pieces against every route: a reason, never a crash."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.fuzz.conftest import EXAMPLES as FUZZ_EXAMPLES

    ben = token("a-ben")
    sent = recommender.prompt("a-ben")
    poll(api, "/api/prompts", ben, lambda b: sent.event_id in ids(b))
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
        max_leaves=12,
    )
    bodies = st.one_of(
        json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=300),
        st.fixed_dictionaries(
            {"prompt_id": st.sampled_from([sent.event_id, "x", "0" * 32]) | st.text(max_size=40)},
            optional={
                "outcome": st.sampled_from(["accepted", "dismissed", "done", "no"]),
                "reason": st.sampled_from(["not_relevant", "wrong_person", "", "?"]),
                "state": st.sampled_from(["available", "busy", "on_break", "gone"]),
                "zone": st.text(max_size=60),
            },
        ).map(lambda d: json.dumps(d).encode()),
    )
    auth = st.sampled_from([ben, {}, {"Authorization": "Bearer fwt_"}, {"Authorization": "Basic abc"}])
    piece = st.text(
        alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="/?#%\\"), max_size=40
    )

    # 150 cases in `make test`; `make fuzz` raises it with the other fuzzers (three requests a case).
    examples = max(150, FUZZ_EXAMPLES // 20)

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(
        route=st.sampled_from(["/api/feedback", "/api/status"]),
        body=bodies,
        headers=auth,
        pid=piece,
    )
    def check(route: str, body: bytes, headers: dict[str, str], pid: str) -> None:
        resp = api.post(route, content=body, headers={**headers, "Content-Type": "application/json"})
        assert resp.status_code < 500, (route, body, resp.text)
        if resp.status_code >= 400:
            assert resp.json()["detail"], resp.text  # a reason comes with every refusal
        card = api.get(f"/api/prompts/{pid}/customer", headers=headers)
        assert card.status_code < 500, (pid, card.text)
        resp = api.get("/signin", params={"token": pid}, follow_redirects=False)
        assert resp.status_code < 500, (pid, resp.text)

    check()


def test_stream_resumes_from_the_query_parameter_too(
    api: TestClient, recommender: Recommender, token: Callable[..., dict[str, str]]
) -> None:
    ben = token("a-ben")
    a = recommender.prompt("a-ben")
    b = recommender.prompt("a-ben")
    body = poll(api, "/api/prompts", ben, lambda body: b.event_id in ids(body))
    sid_of_a = next(p["sid"] for p in body if p["prompt_id"] == a.event_id)
    with api.stream("GET", f"/api/stream?last_event_id={sid_of_a}", headers=ben) as resp:
        reader = SseReader(resp)
        assert json.loads(reader.next()["data"])["prompt_id"] == b.event_id
        assert reader.next()["event"] == "ready"


def test_signout_publishes_signed_out_and_forgets_the_cookie(
    api: TestClient,
    redis_client: redis.Redis,
    prefix: str,
    store_config: StoreConfig,
    collect: Callable[[list[str]], Any],
) -> None:
    topic = Topics(prefix).associate_status(store_config.store, "a-cara")
    statuses = collect([topic])
    cara = issue_token(redis_client, Keys(store_config.store, prefix), store_config, "a-cara").token
    api.get(f"/signin?token={cara}")
    assert api.post("/api/status", json={"state": "busy"}).status_code == 200
    out = api.post("/signout", follow_redirects=False)
    assert out.status_code == 303 and 'fw_session=""' in out.headers["set-cookie"]
    statuses.wait_for(lambda msgs: len(msgs) == 2)
    states = [decode(Topics(prefix), t, p).payload for t, p in statuses.messages]
    assert [s.state for s in states if isinstance(s, AssociateStatus)] == ["busy", "signed_out"]
    api.cookies.clear()
    assert api.get("/api/me").status_code == 401


def _events_until(reader: SseReader, done: Callable[[dict[str, str]], bool]) -> list[dict[str, str]]:
    """SSE events read until one satisfies ``done`` (included)."""
    got = [reader.next()]
    while not done(got[-1]):
        got.append(reader.next())
    return got


def test_a_rerouted_prompt_reaches_the_new_associate_and_leaves_the_first(
    api: TestClient,
    recommender: Recommender,
    token: Callable[..., dict[str, str]],
    redis_client: redis.Redis,
    prefix: str,
    store_config: StoreConfig,
) -> None:
    """Issue 20, finding 2: the recommender re-routes an unanswered prompt under the same id
    (the same payload, on the next associate's topic). It used to be dropped as a redelivery:
    the owner record said Cara, Amy's page never showed it. Now delivery is per (prompt,
    associate): Amy gets it once (across a reconnect too), Cara's card is withdrawn."""
    cara, amy = token("a-cara"), token("a-amy")
    prompt = recommender.prompt("a-cara")
    poll(api, "/api/prompts", cara, lambda b: prompt.event_id in ids(b))
    with (
        api.stream("GET", "/api/stream", headers=cara) as cara_resp,
        api.stream("GET", "/api/stream", headers=amy) as amy_resp,
    ):
        cara_page, amy_page = SseReader(cara_resp), SseReader(amy_resp)
        _events_until(cara_page, lambda e: e["event"] == "ready")
        _events_until(amy_page, lambda e: e["event"] == "ready")
        recommender.send_raw("a-amy", encode(prompt))  # the re-route: same id, same bytes
        moved = _events_until(amy_page, lambda e: e["event"] == "prompt")[-1]
        assert json.loads(moved["data"])["prompt_id"] == prompt.event_id
        gone = _events_until(cara_page, lambda e: e["event"] == "withdraw")[-1]
        assert json.loads(gone["data"]) == {"prompt_id": prompt.event_id}
    key = Keys(store_config.store, prefix).handheld_prompt(prompt.event_id)
    assert redis_client.hget(key, "associate") == b"a-amy"
    assert prompt.event_id not in ids(api.get("/api/prompts", headers=cara).json())
    assert ids(api.get("/api/prompts", headers=amy).json()).count(prompt.event_id) == 1
    # A redelivery of the re-route is dropped; Amy's reconnecting page gets nothing again.
    recommender.send_raw("a-amy", encode(prompt))
    marker = recommender.prompt("a-amy")  # a positive marker: after it, the redelivery was handled
    poll(api, "/api/prompts", amy, lambda b: marker.event_id in ids(b))
    assert ids(api.get("/api/prompts", headers=amy).json()).count(prompt.event_id) == 1
    with api.stream("GET", "/api/stream", headers={**amy, "Last-Event-ID": moved["id"]}) as resp:
        again = _events_until(SseReader(resp), lambda e: e["event"] == "ready")
        assert [json.loads(e["data"])["prompt_id"] for e in again if e["event"] == "prompt"] == [
            marker.event_id
        ]
    # Cara's reconnecting page does not get it back either; Cara may no longer answer it.
    with api.stream("GET", "/api/stream", headers=cara) as resp:
        backlog = _events_until(SseReader(resp), lambda e: e["event"] == "ready")
        assert prompt.event_id not in [json.loads(e["data"])["prompt_id"] for e in backlog[:-1]]
    refused = api.post(
        "/api/feedback", json={"prompt_id": prompt.event_id, "outcome": "accepted"}, headers=cara
    )
    assert refused.status_code == 403
    metrics = api.get("/metrics").text
    assert 'floorwalker_handheld_withdrawals_total{reason="rerouted"} 1.0' in metrics


def test_concurrent_answers_to_one_prompt_one_wins_the_rest_409(
    api: TestClient,
    recommender: Recommender,
    token: Callable[..., dict[str, str]],
    collect: Callable[[list[str]], Any],
    prefix: str,
    store_config: StoreConfig,
) -> None:
    """Issue 20, finding 3: 20 simultaneous answers to one open prompt (10 done, 10
    dismissed) gave 16 x 202 and 16 Feedback messages mixing outcomes. Exactly one wins."""
    from concurrent.futures import ThreadPoolExecutor

    ben = token("a-ben")
    prompt, marker = recommender.prompt("a-ben"), recommender.prompt("a-ben")
    poll(api, "/api/prompts", ben, lambda b: {prompt.event_id, marker.event_id} <= set(ids(b)))
    feedback = collect([Topics(prefix).feedback(store_config.store, "a-ben")])
    start = threading.Barrier(20)

    def answer(i: int) -> int:
        body: dict[str, str] = {"prompt_id": prompt.event_id, "outcome": "done" if i % 2 else "dismissed"}
        start.wait()
        return api.post("/api/feedback", json=body, headers=ben).status_code

    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(answer, range(20)))
    assert sorted(codes) == [202] + [409] * 19, codes
    # A positive marker: Ben's answer to another prompt, published after the 20 were handled.
    assert (
        api.post(
            "/api/feedback", json={"prompt_id": marker.event_id, "outcome": "accepted"}, headers=ben
        ).status_code
        == 202
    )
    feedback.wait_for(lambda msgs: any(marker.event_id.encode() in p for _, p in msgs))
    answers = [decode(Topics(prefix), t, p).payload for t, p in feedback.messages]
    about = [a for a in answers if isinstance(a, Feedback) and a.prompt_id == prompt.event_id]
    assert len(about) == 1, about
    shown = next(p for p in api.get("/api/prompts", headers=ben).json() if p["prompt_id"] == prompt.event_id)
    assert shown["outcome"] == about[0].outcome


def test_only_the_holder_or_a_manager_may_answer(
    api: TestClient, recommender: Recommender, token: Callable[..., dict[str, str]]
) -> None:
    ben, cara, amy = token("a-ben"), token("a-cara"), token("a-amy")
    prompt = recommender.prompt("a-ben")
    poll(api, "/api/prompts", ben, lambda b: prompt.event_id in ids(b))
    assert (
        api.post(
            "/api/feedback", json={"prompt_id": prompt.event_id, "outcome": "done"}, headers=cara
        ).status_code
        == 403
    )
    # Amy is a manager: she may close it (e.g. Ben went home without answering).
    assert (
        api.post(
            "/api/feedback", json={"prompt_id": prompt.event_id, "outcome": "done"}, headers=amy
        ).status_code
        == 202
    )
    assert (
        api.post(
            "/api/feedback", json={"prompt_id": prompt.event_id, "outcome": "done"}, headers=ben
        ).status_code
        == 409
    )
