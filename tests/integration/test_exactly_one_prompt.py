"""Exactly one prompt per decision: the presence script writes the claim and the prompt
together, so a crash after the script but before the publish loses nothing (the restart
publishes it) and repeats nothing (the redelivered event is a duplicate)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import redis

from broker_config.contract import (
    CheckoutEvent,
    EnvelopeSource,
    FootfallEvent,
    PresenceEvent,
    Prompt,
    PromptKind,
    TopicKind,
    Topics,
    encode,
)
from floorwalker.config import Endpoints, StoreConfig
from recommender.crm import load_into_redis, read_crm
from recommender.engine import Recommender
from recommender.keys import Keys
from recommender.service import RecommenderService
from tests.conftest import Collector

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0


def _engine(client: redis.Redis, prefix: str, config: StoreConfig) -> Recommender:
    keys = Keys(config.store, prefix)
    assert config.crm is not None
    model = load_into_redis(client, keys, read_crm(config.crm).members, T0)
    return Recommender(config, client, Topics(prefix), keys, model=model)


def _enter(e: Recommender, member: str, ts: float) -> tuple[str, bytes]:
    event = EnvelopeSource("gw-fresh").make(PresenceEvent, ts, member=member, action="enter")
    return e.topics.presence(e.config.store, "pantry"), encode(event)


def test_a_claimed_prompt_survives_a_crash_before_its_publish(
    redis_client: redis.Redis, prefix: str, store_config: StoreConfig
) -> None:
    first = _engine(redis_client, prefix, store_config)
    topic, data = _enter(first, "m_702cc64d", T0)
    out = first.handle(topic, data, T0)
    assert len(out) == 1 and out[0].unsent is not None
    # ...and the process dies here, before publishing. The restart finds it:
    second = _engine(redis_client, prefix, store_config)
    recovered = second.unsent_prompts()
    assert [(o.topic, o.payload) for o in recovered] == [(out[0].topic, out[0].payload)]
    # The broker redelivers the event that caused it: a duplicate, no second decision.
    assert second.handle(topic, data, T0 + 1) == []
    # Once the broker confirmed the prompt, it is no longer kept.
    # Past its expiry it would not be sent again at all.
    expiry = Prompt.model_validate_json(out[0].payload).expires_at
    assert len(second.unsent_prompts(expiry - 1)) == 1
    assert second.unsent_prompts(expiry + 1) == [] and second.unsent_prompts() == []
    second.mark_sent([o.unsent for o in recovered if o.unsent is not None])
    assert second.unsent_prompts() == []


def test_store_and_till_prompts_are_kept_with_their_claim_too(
    redis_client: redis.Redis, prefix: str, store_config: StoreConfig
) -> None:
    first = _engine(redis_client, prefix, store_config)
    queue = EnvelopeSource("gw-checkout").make(
        FootfallEvent, T0, window_s=10, entered=3, exited=1, occupancy=9, queue_length=6
    )
    guest = EnvelopeSource("pos-1").make(CheckoutEvent, T0, member=None, items=[], total_cents=0)
    messages = [
        (first.topics.footfall(first.config.store, "checkout"), encode(queue)),
        (first.topics.checkout(first.config.store, "lane-1"), encode(guest)),
    ]
    out = [o for r in first.handle_batch(messages, T0) for o in r]
    kinds = {Prompt.model_validate_json(o.payload).kind for o in out}
    assert kinds == {PromptKind.OPEN_TILL, PromptKind.JOIN_INVITE}
    # Crash before publishing: the restart has both, byte for byte; redelivery adds nothing.
    second = _engine(redis_client, prefix, store_config)
    assert sorted(o.payload for o in second.unsent_prompts()) == sorted(o.payload for o in out)
    assert [o for r in second.handle_batch(messages, T0 + 1) for o in r] == []
    second.mark_sent([o.unsent for o in out if o.unsent is not None])
    assert second.unsent_prompts() == []


def test_no_claim_no_prompt_record(redis_client: redis.Redis, prefix: str, store_config: StoreConfig) -> None:
    e = _engine(redis_client, prefix, store_config)
    topic, data = _enter(e, "m_702cc64d", T0)
    assert len(e.handle(topic, data, T0)) == 1
    assert len(e.unsent_prompts()) == 1
    # The same member again within the visit: the caps block the claim, so the prompt
    # built ahead of it is neither recorded nor published.
    topic2, data2 = _enter(e, "m_702cc64d", T0 + 5)
    assert e.handle(topic2, data2, T0 + 5) == []
    assert len(e.unsent_prompts()) == 1


def test_the_service_publishes_prompts_claimed_before_it_started(
    services: Endpoints,
    redis_client: redis.Redis,
    prefix: str,
    store_config: StoreConfig,
    collect: Callable[[list[str]], Collector],
) -> None:
    crashed = _engine(redis_client, prefix, store_config)
    lost = crashed.handle(*_enter(crashed, "m_702cc64d", T0), T0)
    prompts = collect([Topics(prefix).subscription(TopicKind.PROMPT)])
    service = RecommenderService(
        store_config, services, topic_prefix=prefix, key_prefix=prefix, client_id="rec-x1"
    )
    service.start()
    thread = threading.Thread(target=service.serve, daemon=True)
    thread.start()
    try:
        prompts.wait_for(lambda msgs: len(msgs) >= 1)
        got = [Prompt.model_validate_json(p) for p in prompts.on("/prompt")]
        assert [p.event_id for p in got] == [Prompt.model_validate_json(lost[0].payload).event_id]
        # After the broker's PUBACK (the service checks once a second) the copy is gone.
        deadline_checks = 50
        while service.engine.unsent_prompts() and deadline_checks:
            threading.Event().wait(0.1)
            deadline_checks -= 1
        assert service.engine.unsent_prompts() == []
    finally:
        service.stop()
        thread.join(10)


def test_a_starting_replica_leaves_a_live_peers_unsent_prompts_alone(
    redis_client: redis.Redis, prefix: str, store_config: StoreConfig
) -> None:
    """At start a replica publishes the unsent copies it made itself, and a peer's only
    once nobody can be about to publish them (older than ORPHAN_AFTER_S), or when it
    adopts that peer's session (``of``)."""
    from recommender.handoff import ORPHAN_AFTER_S

    keys = _engine(redis_client, prefix, store_config).keys  # the CRM, loaded
    a, b = (
        Recommender(store_config, redis_client, Topics(prefix), keys, producer=f"rec-{r}", replicated=True)
        for r in "ab"
    )
    topic, data = _enter(a, "m_702cc64d", T0)
    [claimed] = a.handle(topic, data, T0)
    soon = T0 + 1
    assert [o.payload for o in a.unsent_prompts(soon)] == [claimed.payload]  # its own
    assert b.unsent_prompts(soon) == []  # a live peer's: it publishes it itself
    assert [o.payload for o in b.unsent_prompts(soon, of="rec-a")] == [claimed.payload]
    assert b.unsent_prompts(soon, of="rec-c") == []
    assert [o.payload for o in b.unsent_prompts(T0 + ORPHAN_AFTER_S + 1)] == [claimed.payload]  # orphaned
