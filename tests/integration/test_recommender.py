"""The thin slice, end to end on the real broker and Redis: sensor event in, prompt out.

Each test waits for a *sentinel* prompt sent after the events under test: the recommender
handles one connection's messages in order, so once the sentinel's prompt is here every
earlier event has been handled, and "exactly one prompt" can be asserted without sleeping.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from broker_config.contract import (
    MAX_PAYLOAD_BYTES,
    AssociateStatus,
    CheckoutEvent,
    DeadLetter,
    EnvelopeSource,
    PresenceEvent,
    Prompt,
    PromptKind,
    TopicKind,
    Topics,
    encode,
)
from floorwalker.config import Endpoints, StoreConfig
from floorwalker.mqtt import MqttLink
from floorwalker.services import free_port
from recommender.catalog import DEFAULT_CATALOG
from recommender.keys import Keys
from recommender.service import RecommenderService, Share
from tests.conftest import Collector

pytestmark = pytest.mark.integration


@dataclass
class Slice:
    topics: Topics
    keys: Keys
    store: str
    link: MqttLink  # a raw producer connection: publishes exact bytes
    prompts: Collector
    deadletters: Collector
    gw_entrance: EnvelopeSource
    gw_fresh: EnvelopeSource
    pos1: EnvelopeSource
    pos2: EnvelopeSource
    redis: redis.Redis

    def send(self, topic: str, payload: bytes) -> None:
        self.link.publish(topic, payload, qos=1).wait_for_publish(5)

    def enter(self, zone: str, member: str, source: EnvelopeSource | None = None) -> PresenceEvent:
        source = source or (self.gw_entrance if zone == "entrance" else self.gw_fresh)
        event = source.make(PresenceEvent, time.time(), member=member, action="enter")
        self.send(self.topics.presence(self.store, zone), encode(event))
        return event

    def checkout(self, member: str | None = None, lane: str = "lane-1") -> CheckoutEvent:
        source = self.pos1 if lane == "lane-1" else self.pos2
        event = checkout_event(source, member)
        self.send(self.topics.checkout(self.store, lane), encode(event))
        return event

    def sentinel(self) -> None:
        """Send a non-member checkout and wait for its invite: all earlier events are handled."""
        event = self.checkout()
        self.prompts.wait_for(lambda msgs: any(event.event_id.encode() in p for _, p in msgs))

    def prompts_for(self, cause_ids: set[str]) -> list[Prompt]:
        found = [Prompt.model_validate_json(p) for p in self.prompts.on("/prompt")]
        return [p for p in found if p.cause_event_id in cause_ids]

    def member_prompts(self, member: str) -> list[Prompt]:
        return [
            p
            for p in (Prompt.model_validate_json(b) for b in self.prompts.on("/prompt"))
            if p.customer.member == member
        ]


def checkout_event(pos: EnvelopeSource, member: str | None = None) -> CheckoutEvent:
    """A basket with a bottle of soy sauce at ``pos``'s till (a guest's earns a join invite)."""
    return pos.make(
        CheckoutEvent,
        time.time(),
        member=member,
        items=[{"sku": "kikkoman-500", "category": "sauces", "qty": 1, "amount_cents": 399}],
        total_cents=399,
    )


def producer(services: Endpoints, prefix: str, role: str) -> MqttLink:
    """A raw connection that publishes exact bytes, as a device would."""
    link = MqttLink(services.mqtt_host, services.mqtt_port, client_id=f"{prefix[:-1]}-{role}")
    link.connect()
    return link


@contextlib.contextmanager
def serving(*services: RecommenderService) -> Iterator[None]:
    """Start each service and serve it on a thread of its own until the block ends."""
    threads: list[threading.Thread] = []
    try:
        for service in services:
            service.start()
            threads.append(threading.Thread(target=service.serve, daemon=True))
            threads[-1].start()
        yield
    finally:
        for service in services:
            service.stop()
        for thread in threads:
            thread.join(10)


@pytest.fixture
def running(
    services: Endpoints,
    prefix: str,
    store_config: StoreConfig,
    redis_client: redis.Redis,
    collect: Callable[[list[str]], Collector],
) -> Iterator[Slice]:
    topics = Topics(prefix)
    prompts = collect([topics.subscription(TopicKind.PROMPT)])
    deadletters = collect([topics.subscription(TopicKind.DEADLETTER)])
    service = RecommenderService(
        store_config,
        services,
        topic_prefix=prefix,
        key_prefix=prefix,
        client_id="rec-test",
    )
    with serving(service):
        link = producer(services, prefix, "producer")
        s = Slice(
            topics,
            Keys(store_config.store, prefix),
            store_config.store,
            link,
            prompts,
            deadletters,
            EnvelopeSource("gw-entrance"),
            EnvelopeSource("gw-fresh"),
            EnvelopeSource("pos-1"),
            EnvelopeSource("pos-2"),
            redis_client,
        )
        s.sentinel()  # the recommender is subscribed and serving
        yield s
        link.close()


def test_member_entering_a_zone_gets_exactly_one_greeting_with_a_reason(running: Slice) -> None:
    event = running.enter("entrance", "m_cbbd5a3c")
    running.sentinel()

    prompts = running.member_prompts("m_cbbd5a3c")
    assert len(prompts) == 1
    greeting = prompts[0]
    assert greeting.kind is PromptKind.GREET_VIP
    assert greeting.cause_event_id == event.event_id
    assert greeting.customer.tier == "platinum"
    assert greeting.customer.points == 7400
    assert "Platinum member" in greeting.why and "Entrance" in greeting.why
    # The machine-readable reason: the catalog rule, the facts and the scores.
    assert greeting.reason is not None and greeting.reason.rule == "greet_vip"
    assert greeting.reason.facts["tier"] == "Platinum" and greeting.reason.facts["zone"] == "Entrance"
    scores = greeting.reason.scores
    assert scores["score"] == pytest.approx(
        scores["propensity"] * scores["value"] * scores["context"], rel=1e-3
    )
    # Routed to the associate who looks after the entrance, on that handheld's topic.
    assert any(
        event.event_id.encode() in p
        for p in running.prompts.on(running.topics.prompt(running.store, "a-amy"))
    )


def test_redelivered_event_and_later_zones_do_not_greet_twice(running: Slice) -> None:
    event = running.gw_entrance.make(PresenceEvent, time.time(), member="m_cbbd5a3c", action="enter")
    data = encode(event)
    topic = running.topics.presence(running.store, "entrance")
    running.send(topic, data)
    running.send(topic, data)  # same event_id: a QoS 1 redelivery
    running.enter("produce", "m_cbbd5a3c")  # a second zone in the same visit
    running.sentinel()

    prompts = running.member_prompts("m_cbbd5a3c")
    assert [p.kind for p in prompts] == [PromptKind.GREET_VIP]
    assert running.redis.hget(running.keys.visit("m_cbbd5a3c"), "zone") == b"produce"


def test_non_member_checkout_gets_exactly_one_join_invite(running: Slice) -> None:
    event = running.checkout(member=None, lane="lane-2")
    running.sentinel()

    invites = running.prompts_for({event.event_id})
    assert len(invites) == 1
    invite = invites[0]
    assert invite.kind is PromptKind.JOIN_INVITE
    assert invite.customer.member is None
    assert invite.lane == "lane-2"
    assert "without a member card" in invite.why
    assert any(event.event_id.encode() in p for p in running.prompts.on("/handheld/a-dan/prompt"))


def test_member_without_consent_gets_no_prompt_and_leaves_no_visit(running: Slice) -> None:
    running.enter("pantry", "m_d0b30907")  # gold, soy sauce due, but no consent
    running.sentinel()

    assert running.member_prompts("m_d0b30907") == []
    assert running.redis.exists(running.keys.visit("m_d0b30907")) == 0


def test_replenishment_due_says_what_and_why(running: Slice) -> None:
    """The soy-sauce story: Mrs Chen buys Kikkoman about monthly; the last was 32 days ago."""
    running.enter("pantry", "m_702cc64d")
    running.sentinel()

    prompts = running.member_prompts("m_702cc64d")
    assert [p.kind for p in prompts] == [PromptKind.REPLENISHMENT_DUE]
    assert prompts[0].headline == "Kikkoman soy sauce 500 ml due"
    assert "about every 31 days; last bought 32 days ago" in prompts[0].why
    assert "5% off" in prompts[0].suggestion
    # Routed to the pantry's associate.
    assert running.prompts.on("/handheld/a-ben/prompt")


def _presence(running: Slice, **changes: object) -> bytes:
    body = json.loads(
        encode(running.gw_entrance.make(PresenceEvent, time.time(), member="m_f6b11e66", action="enter"))
    )
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


BAD_INPUTS: list[tuple[str, str, Callable[[Slice], tuple[str, bytes]]]] = [
    (
        "malformed json",
        "malformed_json",
        lambda s: (s.topics.presence(s.store, "entrance"), b'{"schema_version": 1,'),
    ),
    ("not an object", "malformed_json", lambda s: (s.topics.presence(s.store, "entrance"), b"[1, 2, 3]")),
    (
        "wrong schema_version",
        "bad_schema_version",
        lambda s: (s.topics.presence(s.store, "entrance"), _presence(s, schema_version=2)),
    ),
    (
        "missing schema_version",
        "bad_schema_version",
        lambda s: (s.topics.presence(s.store, "entrance"), _presence(s, schema_version=None)),
    ),
    (
        "oversized payload",
        "too_large",
        lambda s: (s.topics.presence(s.store, "entrance"), b"{" + b" " * (MAX_PAYLOAD_BYTES + 100) + b"}"),
    ),
    (
        "unknown store",
        "unknown_store",
        lambda s: (s.topics.presence("other-store", "entrance"), _presence(s)),
    ),
    (
        "unknown gateway",
        "unknown_producer",
        lambda s: (s.topics.presence(s.store, "entrance"), _presence(s, producer="gw-rogue")),
    ),
    (
        "gateway reporting a zone it does not cover",
        "unknown_producer",
        lambda s: (s.topics.presence(s.store, "dairy"), _presence(s)),
    ),
    ("unknown zone", "unknown_zone", lambda s: (s.topics.presence(s.store, "roof"), _presence(s))),
    (
        "field out of range",
        "invalid_field",
        lambda s: (s.topics.presence(s.store, "entrance"), _presence(s, confidence=1.5)),
    ),
    (
        "member id that is not pseudonymous",
        "invalid_field",
        lambda s: (s.topics.presence(s.store, "entrance"), _presence(s, member="jane.doe@example.com")),
    ),
    (
        "unknown lane",
        "unknown_lane",
        lambda s: (
            s.topics.checkout(s.store, "lane-9"),
            encode(s.pos1.make(CheckoutEvent, time.time(), member=None, items=[], total_cents=0)),
        ),
    ),
]


@pytest.mark.parametrize(("case", "reason", "make"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_dead_lettered_with_its_reason_and_serving_goes_on(
    running: Slice, case: str, reason: str, make: Callable[[Slice], tuple[str, bytes]]
) -> None:
    topic, payload = make(running)
    running.send(topic, payload)
    good = running.enter("entrance", "m_1d54fa96")  # a good event after the bad one
    running.prompts.wait_for(lambda msgs: any(good.event_id.encode() in p for _, p in msgs))

    # Redis: a capped stream entry with the reason, the sizes and a hash (never the bytes).
    entries = running.redis.xrange(running.keys.deadletter)
    assert len(entries) == 1, case
    record = DeadLetter.model_validate_json(entries[0][1][b"record"])
    assert record.reason.value == reason
    assert record.topic == topic
    assert record.payload_size == len(payload)
    assert record.payload_sha256 == hashlib.sha256(payload).hexdigest()
    assert running.redis.hget(running.keys.stats, f"rejected:{reason}") == b"1"
    # MQTT: the same record on the store's dead-letter topic.
    running.deadletters.wait_for(lambda msgs: len(msgs) == 1)
    assert DeadLetter.model_validate_json(running.deadletters.on("/deadletter")[0]).reason.value == reason


def test_state_script_failure_is_dead_lettered_and_serving_goes_on(running: Slice) -> None:
    running.redis.set(running.keys.visit("m_f6b11e66"), "not a hash")  # a corrupted key
    event = running.enter("entrance", "m_f6b11e66")
    running.sentinel()

    entries = running.redis.xrange(running.keys.deadletter)
    assert len(entries) == 1
    record = DeadLetter.model_validate_json(entries[0][1][b"record"])
    assert record.reason.value == "processing_error"
    assert "WRONGTYPE" in record.detail
    assert record.payload_sha256 == hashlib.sha256(encode(event)).hexdigest()


def test_an_edited_catalog_takes_effect_without_a_restart(
    services: Endpoints,
    prefix: str,
    store_config: StoreConfig,
    collect: Callable[[list[str]], Collector],
    tmp_path: Path,
) -> None:
    """The service re-reads a changed catalog within a tick; a broken edit is refused and
    the catalog in force stays."""
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(DEFAULT_CATALOG.read_text())
    topics = Topics(prefix)
    prompts = collect([topics.subscription(TopicKind.PROMPT)])
    service = RecommenderService(
        store_config.model_copy(update={"catalog": catalog}),
        services,
        topic_prefix=prefix,
        key_prefix=prefix,
        client_id="rec-reload",
    )
    link = producer(services, prefix, "reload-producer")
    pos = EnvelopeSource("pos-2")

    def invite_headline() -> str:
        event = checkout_event(pos)
        link.publish(topics.checkout(store_config.store, "lane-2"), encode(event), qos=1).wait_for_publish(5)
        prompts.wait_for(lambda msgs: any(event.event_id.encode() in p for _, p in msgs))
        found = [Prompt.model_validate_json(p) for p in prompts.on("/prompt")]
        [prompt] = [q for q in found if q.cause_event_id == event.event_id]
        return prompt.headline

    def edit(old: str, new: str) -> None:
        text = catalog.read_text()
        assert text.count(old) == 1, old
        catalog.write_text(text.replace(old, new))
        st = catalog.stat()
        os.utime(catalog, (st.st_atime, st.st_mtime + 2))  # a new mtime even on a coarse clock

    with serving(service):
        assert invite_headline() == "Invite to join at Lane 2"
        edit('headline: "Invite to join at {zone}"', 'headline: "Ask about the card at {zone}"')
        deadline = time.monotonic() + 10
        while (headline := invite_headline()) != "Ask about the card at Lane 2":
            assert time.monotonic() < deadline, headline
            time.sleep(0.2)
        # A broken edit that would also change the headline: an unknown field, refused.
        watcher, engine = service.engine.catalog, service.engine
        in_force = watcher.current
        assert watcher.last_error is None and engine.core.catalog is in_force
        edit(
            'headline: "Ask about the card at {zone}"\n',
            'headline: "Broken edit at {zone}"\n      colour: blue\n',
        )
        deadline = time.monotonic() + 10
        # Either outcome ends the wait: refused (an error recorded), or read and put in force.
        while watcher.last_error is None and not (
            watcher.current is not in_force and engine.core.catalog is watcher.current
        ):
            assert time.monotonic() < deadline, "the service never re-read the catalog"
            time.sleep(0.05)
        assert invite_headline() == "Ask about the card at Lane 2"  # the previous one stays
        assert watcher.last_error is not None and "colour" in watcher.last_error
    link.close()


def test_counters_survive_a_failed_stats_write(
    services: Endpoints, prefix: str, store_config: StoreConfig, redis_client: redis.Redis
) -> None:
    """Stats are written outside the engine lock; a write Redis refuses puts them back."""
    service = RecommenderService(store_config, services, topic_prefix=prefix, key_prefix=prefix)
    engine = service.engine
    try:
        engine.counters["prompts"] += 3
        shared = engine._redis
        engine._redis = redis.Redis(port=free_port(), socket_connect_timeout=1)  # nothing listens
        service._flush_stats()
        assert engine.counters["prompts"] == 3  # kept for the next flush
        engine.counters["prompts"] += 1  # counted meanwhile
        engine._redis = shared
        service._flush_stats()
        assert engine.counters == Counter()
        assert redis_client.hget(engine.keys.stats, "prompts") == b"4"
    finally:
        engine.close()
        service.redis.close()


def test_every_replica_hears_associates_status(
    services: Endpoints,
    prefix: str,
    store_config: StoreConfig,
    collect: Callable[[list[str]], Collector],
) -> None:
    """Two replicas behind one shared subscription split the events, but each gets every
    associate status: Dan goes on a break, so neither sends him the join invites of his
    own lane. (A status sent before they subscribed reaches both anyway: it is retained.)"""
    topics = Topics(prefix)
    store = store_config.store
    link = producer(services, prefix, "status-producer")
    prompts = collect([topics.subscription(TopicKind.PROMPT)])
    replicas = [
        RecommenderService(
            store_config, services, topic_prefix=prefix, key_prefix=prefix, share=Share("st", r)
        )
        for r in ("r1", "r2")
    ]
    pos = EnvelopeSource("pos-2")
    try:
        with serving(*replicas):
            on_break = EnvelopeSource("handheld-a-dan").make(AssociateStatus, time.time(), state="on_break")
            status = topics.associate_status(store, "a-dan")
            link.publish(status, encode(on_break), qos=1, retain=True).wait_for_publish(5)
            events = [checkout_event(pos) for _ in range(12)]
            for event in events:
                link.publish(topics.checkout(store, "lane-2"), encode(event), qos=1).wait_for_publish(5)
            prompts.wait_for(lambda msgs: len(msgs) >= len(events))
            invites = [(t, Prompt.model_validate_json(p)) for t, p in prompts.messages]
            assert sorted(p.cause_event_id for _, p in invites) == sorted(e.event_id for e in events)
            assert not [t for t, _ in invites if "/a-dan/" in t]
            assert {p.producer for _, p in invites} == {"st-r1", "st-r2"}  # both had a share
    finally:
        link.publish(topics.associate_status(store, "a-dan"), b"", qos=1, retain=True).wait_for_publish(5)
        link.close()
