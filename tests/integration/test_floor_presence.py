"""Who is on the floor, end to end (issue 20): the real recommender, the real store server
on a real port, Mosquitto and Redis; associates' handhelds are SSE streams held open the
way the page holds them.

Finding 1: the router used to count an associate it had never heard from as available, so
prompts went to associates nobody was holding. Now the API heartbeats an associate while a
page of theirs is open (``rules.require_handheld`` on by default), publishes ``signed_out``
when their last page has been closed longer than the grace period, and routing only picks
associates on the floor.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest
import redis

from broker_config.contract import (
    AssociateStatus,
    EnvelopeSource,
    PresenceEvent,
    Prompt,
    TopicKind,
    Topics,
    decode,
    encode,
)
from floorwalker.config import Endpoints, StoreConfig, load_store_config
from floorwalker.mqtt import MqttLink
from floorwalker.services import free_port
from handheld.auth import issue_token, open_session
from recommender.keys import Keys
from recommender.service import RecommenderService
from tests.conftest import DEMO_STORE, Collector
from tests.integration.test_api import SseReader
from tests.integration.test_browser import RunningApi

pytestmark = pytest.mark.integration

#: Short heartbeats so that a closed page leaves the floor within seconds in the test
#: (routing's grace is 3 heartbeats, the API's page grace one).
HEARTBEAT_S = 2.0
DEADLINE_S = 15.0
#: Gold members of the demo CRM (opaque ids, simulators/data/demo_crm.json).
CHEN, OKAFOR = "m_702cc64d", "m_1d54fa96"


@dataclass
class Floor:
    config: StoreConfig
    api: RunningApi
    keys: Keys
    topics: Topics
    link: MqttLink
    redis: redis.Redis

    def bearer(self, associate: str) -> dict[str, str]:
        issued = issue_token(self.redis, self.keys, self.config, associate)
        session, _ = open_session(self.redis, self.keys, self.config, issued.token, time.time())
        return {"Authorization": f"Bearer {session}"}

    def enter(self, zone: str, member: str) -> PresenceEvent:
        event = EnvelopeSource("gw-fresh").make(PresenceEvent, time.time(), member=member, action="enter")
        self.link.publish(self.topics.presence(self.config.store, zone), encode(event), qos=1)
        return event


@pytest.fixture
def floor(services: Endpoints, prefix: str, redis_client: redis.Redis) -> Iterator[Floor]:
    """The demo store with its default rules (require_handheld on), a short heartbeat."""
    base = load_store_config(DEMO_STORE)
    config = base.model_copy(
        update={"rules": base.rules.model_copy(update={"associate_heartbeat_s": HEARTBEAT_S})}
    )
    assert config.rules.require_handheld, "routing must only count associates with a handheld"
    service = RecommenderService(config, services, topic_prefix=prefix, key_prefix=prefix)
    service.start()
    worker = threading.Thread(target=service.serve, daemon=True)
    worker.start()
    api = RunningApi(config, services, prefix, free_port())
    api.start()
    link = MqttLink(services.mqtt_host, services.mqtt_port, client_id=f"{prefix[:-1]}-gateways")
    link.connect()
    yield Floor(config, api, Keys(config.store, prefix), Topics(prefix), link, redis_client)
    link.close()
    api.stop()
    service.stop()
    worker.join(10)


def open_page(stack: ExitStack, floor: Floor, headers: dict[str, str]) -> tuple[httpx.Response, SseReader]:
    """A handheld page's stream, held open until ``stack`` closes (or the test closes it)."""
    client = stack.enter_context(httpx.Client(base_url=floor.api.base, timeout=None))
    resp = stack.enter_context(client.stream("GET", "/api/stream", headers=headers))
    assert resp.status_code == 200
    reader = SseReader(resp)
    # Closing the page must reach the server now, as a browser's would. A plain close()
    # while the reader thread is blocked in recv() sends no FIN until that recv returns
    # (at the server's next write, the 15 s ping): shut the socket down first.
    sock = resp.extensions["network_stream"].get_extra_info("socket")
    stack.callback(sock.shutdown, socket.SHUT_RDWR)
    event = reader.next()
    while event["event"] != "ready":
        event = reader.next()
    return resp, reader


def next_prompt(reader: SseReader) -> dict[str, object]:
    while (event := reader.next())["event"] != "prompt":
        pass
    body: dict[str, object] = json.loads(event["data"])
    return body


def wait_states(
    floor: Floor, statuses: Collector, associate: str, until: Callable[[list[str]], bool]
) -> list[str]:
    """The states published for ``associate``, once ``until`` holds for them."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        states: list[str] = []
        for t, p in list(statuses.messages):
            m = decode(floor.topics, t, p)
            if m.address.subject == associate and isinstance(m.payload, AssociateStatus):
                states.append(m.payload.state)
        if until(states):
            return states
        assert time.monotonic() < deadline, f"{associate}'s statuses stayed {states}"
        time.sleep(0.05)


def test_prompts_go_only_to_associates_whose_handheld_is_open(
    floor: Floor, collect: Callable[[list[str]], Collector]
) -> None:
    """Ben looks after pantry but has never opened his handheld; Cara has hers open. A gold
    member walks into pantry: the prompt goes to Cara (on the floor), never to Ben."""
    prompts = collect([floor.topics.subscription(TopicKind.PROMPT, floor.config.store)])
    with ExitStack() as stack:
        _, cara = open_page(stack, floor, floor.bearer("a-cara"))
        event = floor.enter("pantry", CHEN)
        prompts.wait_for(lambda msgs: len(msgs) >= 1)
        to = [floor.topics.parse(t).subject for t, _ in prompts.messages]
        assert to == ["a-cara"], f"the prompt went to {to}, Ben's page was never open"
        prompt = Prompt.model_validate_json(prompts.messages[0][1])
        assert prompt.cause_event_id == event.event_id
        shown = next_prompt(cara)
        assert shown["member"] == CHEN and shown["associate"] == "a-cara"


def test_a_closed_page_takes_its_associate_off_the_floor(
    floor: Floor, collect: Callable[[list[str]], Collector]
) -> None:
    """Ben opens his handheld (published available, then heartbeats), then closes it: after
    the grace period he is published signed out, and the next pantry member goes to Dan,
    whose page is open, not to Ben."""
    statuses = collect([floor.topics.associate_status(floor.config.store, "+")])
    prompts = collect([floor.topics.subscription(TopicKind.PROMPT, floor.config.store)])
    with ExitStack() as dan_stack:
        _, dan = open_page(dan_stack, floor, floor.bearer("a-dan"))
        with ExitStack() as ben_stack:
            open_page(ben_stack, floor, floor.bearer("a-ben"))
            wait_states(floor, statuses, "a-ben", lambda s: s.count("available") >= 2)  # a heartbeat came
        wait_states(floor, statuses, "a-ben", lambda s: bool(s) and s[-1] == "signed_out")
        floor.enter("pantry", OKAFOR)
        prompts.wait_for(lambda msgs: len(msgs) >= 1)
        to = [floor.topics.parse(t).subject for t, _ in prompts.messages]
        assert to == ["a-dan"], f"the prompt went to {to}; Ben's page was closed"
        assert next_prompt(dan)["member"] == OKAFOR


def next_withdraw(reader: SseReader) -> dict[str, object]:
    while (event := reader.next())["event"] != "withdraw":
        pass
    body: dict[str, object] = json.loads(event["data"])
    return body


def test_a_manager_reassigns_an_open_prompt(floor: Floor, collect: Callable[[list[str]], Collector]) -> None:
    """Cara and Dan have their handhelds open; a gold member walks into pantry and the
    prompt goes to one of them. Amy (manager) sees it open on the dashboard with its age and
    holder and reassigns it to the other: the recommender moves it (same id), it leaves the
    first page and appears on the second, and the dashboard names the new holder. The
    second accepts: the response times count it."""
    prompts = collect([floor.topics.subscription(TopicKind.PROMPT, floor.config.store)])
    amy = floor.bearer("a-amy")
    with ExitStack() as stack, httpx.Client(base_url=floor.api.base, timeout=10) as http:
        pages = {a: open_page(stack, floor, floor.bearer(a))[1] for a in ("a-cara", "a-dan")}
        floor.enter("pantry", CHEN)
        prompts.wait_for(lambda msgs: len(msgs) >= 1)
        first = floor.topics.parse(prompts.messages[0][0]).subject
        assert first in pages
        other = "a-dan" if first == "a-cara" else "a-cara"
        shown = next_prompt(pages[first])
        pid = shown["prompt_id"]

        listed = http.get("/api/dashboard/prompts", headers=amy).json()
        row = next(r for r in listed["open"] if r["prompt_id"] == pid)
        assert row["holder"] == first and row["outcome"] is None
        assert row["customer_name"] not in ("", CHEN)  # a display name on the store's screen, not the id
        assert row["age_s"] >= 0 and row["with_holder_s"] is not None

        away = http.post(f"/api/prompts/{pid}/reassign", json={"to": "a-ben"}, headers=amy)
        assert away.status_code == 409 and "Ben is signed out" in away.json()["detail"]
        nobody = http.post(f"/api/prompts/{pid}/reassign", json={"to": "a-zed"}, headers=amy)
        assert nobody.status_code == 404

        started = time.monotonic()
        resp = http.post(f"/api/prompts/{pid}/reassign", json={"to": other}, headers=amy)
        assert resp.status_code == 202, resp.text
        moved = next_prompt(pages[other])
        assert moved["prompt_id"] == pid and moved["associate"] == other
        assert next_withdraw(pages[first]) == {"prompt_id": pid}
        print(f"reassigned {pid} from {first} to {other} in {time.monotonic() - started:.2f} s")
        to = [floor.topics.parse(t).subject for t, _ in prompts.messages]
        assert to[:2] == [first, other], to

        listed = http.get("/api/dashboard/prompts", headers=amy).json()
        assert next(r for r in listed["open"] if r["prompt_id"] == pid)["holder"] == other
        # Only the holder answers now; the first associate's tap is refused.
        first_answer = http.post(
            "/api/feedback", json={"prompt_id": pid, "outcome": "accepted"}, headers=floor.bearer(first)
        )
        assert first_answer.status_code == 403
        accepted = http.post(
            "/api/feedback", json={"prompt_id": pid, "outcome": "accepted"}, headers=floor.bearer(other)
        )
        assert accepted.status_code == 202, accepted.text
        # Accepted: it can no longer be moved.
        again = http.post(f"/api/prompts/{pid}/reassign", json={"to": first}, headers=amy)
        assert again.status_code == 409
        times = http.get("/api/dashboard/prompts", headers=amy).json()["response_times"]
        assert times["overall"]["count"] == 1 and times["by_associate"][other]["count"] == 1
        assert times["by_associate"][first]["count"] == 0


def test_reassign_is_for_managers_and_open_prompts(floor: Floor) -> None:
    """An associate can neither reassign nor list open prompts (403); an unknown prompt is
    a 404."""
    pid = "0" * 32
    with httpx.Client(base_url=floor.api.base, timeout=10) as http:
        ben = http.post(f"/api/prompts/{pid}/reassign", json={"to": "a-dan"}, headers=floor.bearer("a-ben"))
        assert ben.status_code == 403
        amy = floor.bearer("a-amy")
        assert http.post(f"/api/prompts/{pid}/reassign", json={"to": "a-dan"}, headers=amy).status_code == 404
        assert http.get("/api/dashboard/prompts", headers=floor.bearer("a-ben")).status_code == 403
