"""The engine on a real Redis with time passed in: dedupe, claims, caps across events,
conversions at checkout, feedback, holdout, open-till, long dwell, re-routing, hot reload."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from broker_config.contract import (
    AssociateStatus,
    CheckoutEvent,
    DeadLetter,
    EnvelopeSource,
    Feedback,
    FootfallEvent,
    PresenceEvent,
    Prompt,
    PromptKind,
    RejectReason,
    Topics,
    encode,
)
from floorwalker.config import StoreConfig
from recommender.crm import DAY, load_into_redis, read_crm
from recommender.engine import Recommender
from recommender.keys import Keys
from recommender.outbound import Outbound

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0


@pytest.fixture
def engine(redis_client: redis.Redis, prefix: str, store_config: StoreConfig) -> Iterator[Recommender]:
    keys = Keys(store_config.store, prefix)
    assert store_config.crm is not None
    model = load_into_redis(redis_client, keys, read_crm(store_config.crm).members, T0)
    yield Recommender(store_config, redis_client, Topics(prefix), keys, model=model)


gw = EnvelopeSource("gw-fresh")
gw_entrance = EnvelopeSource("gw-entrance")
gw_checkout = EnvelopeSource("gw-checkout")
pos = EnvelopeSource("pos-1")


def enter(
    e: Recommender, zone: str, member: str, ts: float, action: str = "enter"
) -> tuple[PresenceEvent, bytes]:
    source = gw_entrance if zone == "entrance" else gw
    event = source.make(PresenceEvent, ts, member=member, action=action)
    return event, encode(event)


def send(e: Recommender, zone: str, member: str, ts: float, now: float | None = None) -> list[Prompt]:
    _, data = enter(e, zone, member, ts)
    return prompts(e.handle(e.topics.presence(e.config.store, zone), data, now or ts))


def checkout(e: Recommender, member: str | None, ts: float, *categories: str) -> list[Prompt]:
    items = [{"sku": f"{c}-1", "category": c, "qty": 1, "amount_cents": 500} for c in categories]
    event = pos.make(CheckoutEvent, ts, member=member, items=items, total_cents=500 * len(items))
    out = e.handle(e.topics.checkout(e.config.store, "lane-1"), encode(event), ts)
    e.after_publish()
    return prompts(out)


def prompts(out: list[Outbound]) -> list[Prompt]:
    return [Prompt.model_validate_json(o.payload) for o in out if o.topic.endswith("/prompt")]


def feedback(e: Recommender, prompt: Prompt, associate: str, outcome: str, ts: float, **more: object) -> None:
    fb = EnvelopeSource(f"handheld-{associate}").make(
        Feedback, ts, prompt_id=prompt.event_id, outcome=outcome, **more
    )
    assert e.handle(e.topics.feedback(e.config.store, associate), encode(fb), ts) == []
    e.after_publish()


def stats(e: Recommender, client: redis.Redis) -> dict[str, int]:
    e.write_stats(e.take_stats())
    return {k.decode(): int(v) for k, v in client.hgetall(e.keys.stats).items()}  # type: ignore[union-attr]


def test_a_redelivered_event_never_prompts_twice(engine: Recommender) -> None:
    _, data = enter(engine, "pantry", "m_702cc64d", T0)
    topic = engine.topics.presence(engine.config.store, "pantry")
    first = prompts(engine.handle(topic, data, T0))
    again = prompts(engine.handle(topic, data, T0 + 1))
    assert [p.kind for p in first] == [PromptKind.REPLENISHMENT_DUE] and again == []
    assert first[0].reason is not None and first[0].reason.rule == "replenishment_due"
    assert first[0].reason.facts["category"] == "sauces"


def test_two_events_of_one_member_in_one_batch_see_each_others_claims(engine: Recommender) -> None:
    topic = engine.topics.presence(engine.config.store, "entrance")
    batch = [(topic, enter(engine, "entrance", "m_cbbd5a3c", T0 + i)[1]) for i in range(3)]
    out = engine.handle_batch(batch, T0 + 3)
    assert [p.kind for r in out for p in prompts(r)] == [PromptKind.GREET_VIP]


def test_contact_policy_spans_the_visit_and_checkout_ends_it(engine: Recommender) -> None:
    # Chen: replenishment in the pantry; the VIP greeting is held back by the minimum gap...
    assert [p.kind for p in send(engine, "pantry", "m_702cc64d", T0)] == [PromptKind.REPLENISHMENT_DUE]
    assert send(engine, "entrance", "m_702cc64d", T0 + 10) == []
    # ... and comes once the gap has passed; then the visit policy (two prompts) is reached.
    assert [p.kind for p in send(engine, "produce", "m_702cc64d", T0 + 200)] == [PromptKind.GREET_VIP]
    assert send(engine, "pantry", "m_702cc64d", T0 + 400) == []  # cross-sell noodles, but 2 per visit
    assert checkout(engine, "m_702cc64d", T0 + 500, "milk") == []
    # A new visit (soy sauce still not bought): replenishment may come again, within its per-day cap of 2.
    again = send(engine, "pantry", "m_702cc64d", T0 + 900)
    assert [p.kind for p in again] == [PromptKind.REPLENISHMENT_DUE]


def test_conversion_at_checkout_counts_once_and_updates_the_profile(
    engine: Recommender, redis_client: redis.Redis
) -> None:
    [prompt] = send(engine, "pantry", "m_702cc64d", T0)
    engine.after_publish()
    feedback(engine, prompt, "a-ben", "accepted", T0 + 20)
    feedback(engine, prompt, "a-ben", "accepted", T0 + 21)  # a repeated tap counts once
    orders_before = int(redis_client.hget(engine.keys.profile("m_702cc64d"), "orders") or 0)
    checkout(engine, "m_702cc64d", T0 + 300, "sauces", "milk")
    checkout(engine, "m_702cc64d", T0 + 400, "sauces")  # the suggestion converts only once
    s = stats(engine, redis_client)
    assert s["feedback:accepted"] == 1 and s["feedback:accepted:replenishment_due"] == 1
    assert s["converted"] == 1 and s["converted:replenishment_due"] == 1
    profile = redis_client.hgetall(engine.keys.profile("m_702cc64d"))
    assert int(profile[b"orders"]) == orders_before + 1  # two tills the same day: one occasion
    assert float(profile[b"last:sauces"]) == pytest.approx(T0 + 400)
    # The usual interval moved towards the 32-day gap (0.7 x 31 + 0.3 x 32 days).
    assert float(profile[b"interval:sauces"]) == pytest.approx((0.7 * 31 + 0.3 * 32) * DAY, rel=0.01)
    assert redis_client.exists(engine.keys.visit("m_702cc64d")) == 0


def test_feedback_right_after_the_prompt_finds_its_record(
    engine: Recommender, redis_client: redis.Redis
) -> None:
    [prompt] = send(engine, "pantry", "m_702cc64d", T0)  # its record is written with the next batch
    fb = EnvelopeSource("handheld-a-ben").make(Feedback, T0 + 1, prompt_id=prompt.event_id, outcome="done")
    engine.handle(engine.topics.feedback(engine.config.store, "a-ben"), encode(fb), T0 + 1)
    assert stats(engine, redis_client)["feedback:done:replenishment_due"] == 1


def test_dismissal_starts_the_cool_down(engine: Recommender, redis_client: redis.Redis) -> None:
    [greet] = send(engine, "entrance", "m_cbbd5a3c", T0)
    engine.after_publish()
    feedback(engine, greet, "a-amy", "dismissed", T0 + 5, reason="customer_busy")
    checkout(engine, "m_cbbd5a3c", T0 + 100)  # visit over
    assert send(engine, "entrance", "m_cbbd5a3c", T0 + 1000) == []  # within the 1 h cool-down
    checkout(engine, "m_cbbd5a3c", T0 + 1100)
    assert [p.kind for p in send(engine, "entrance", "m_cbbd5a3c", T0 + 4000)] == [PromptKind.GREET_VIP]
    s = stats(engine, redis_client)
    assert s["feedback:dismissed:greet_vip"] == 1 and s["dismissed:customer_busy"] == 1
    assert s["blocked:cooldown"] == 1


def _answer(e: Recommender, prompt: Prompt, sender: str, outcome: str, ts: float) -> list[Outbound]:
    fb = EnvelopeSource(f"handheld-{sender}").make(Feedback, ts, prompt_id=prompt.event_id, outcome=outcome)
    out = e.handle(e.topics.feedback(e.config.store, sender), encode(fb), ts)
    e.after_publish()
    return out


def _cool_downs(client: redis.Redis, e: Recommender, member: str) -> list[bytes]:
    contacts: list[bytes] = client.zrange(e.keys.contacts(member), 0, -1)  # type: ignore[assignment]
    return [c for c in contacts if c.startswith(b"x|")]


def test_feedback_on_another_associates_prompt_is_refused_and_writes_nothing(
    engine: Recommender, redis_client: redis.Redis
) -> None:
    """Finding 4 of issue 20: a-cara dismissing a-ben's prompt started a cool-down."""
    topic = engine.topics.presence(engine.config.store, "pantry")
    [sent] = engine.handle(topic, enter(engine, "pantry", "m_702cc64d", T0)[1], T0)
    engine.after_publish()
    assert sent.topic.endswith("/handheld/a-ben/prompt")
    prompt = Prompt.model_validate_json(sent.payload)
    [dead] = _answer(engine, prompt, "a-cara", "dismissed", T0 + 5)
    assert dead.topic.endswith("/deadletter")
    record = DeadLetter.model_validate_json(dead.payload)
    assert record.reason is RejectReason.NOT_HOLDER
    assert b"m_702cc64d" not in dead.payload and b"m_702cc64d" not in record.detail.encode()
    assert _cool_downs(redis_client, engine, "m_702cc64d") == []
    assert redis_client.hget(engine.keys.prompt(prompt.event_id), "outcome") is None
    assert engine.router.busy("a-ben", T0 + 6)  # still a-ben's: the refusal frees nobody
    # The holder's own answer still counts; the manager may answer any prompt.
    assert _answer(engine, prompt, "a-ben", "accepted", T0 + 8) == []
    assert _answer(engine, prompt, "a-amy", "done", T0 + 9) == []
    s = stats(engine, redis_client)
    assert s["feedback_refused:not_holder"] == 1 and s["rejected:not_holder"] == 1
    assert "feedback:dismissed" not in s and s["feedback:accepted"] == 1 and s["feedback:done"] == 1
    assert redis_client.hget(engine.keys.prompt(prompt.event_id), "outcome") == b"done"


def test_the_first_of_two_conflicting_outcomes_wins(engine: Recommender, redis_client: redis.Redis) -> None:
    [prompt] = send(engine, "pantry", "m_702cc64d", T0)
    engine.after_publish()
    fb = EnvelopeSource("handheld-a-ben").make(Feedback, T0 + 5, prompt_id=prompt.event_id, outcome="done")
    topic = engine.topics.feedback(engine.config.store, "a-ben")
    assert engine.handle(topic, encode(fb), T0 + 5) == []
    assert engine.handle(topic, encode(fb), T0 + 6) == []  # the same answer again: a duplicate
    [dead] = _answer(engine, prompt, "a-ben", "dismissed", T0 + 7)  # the other answer: refused
    assert DeadLetter.model_validate_json(dead.payload).reason is RejectReason.ALREADY_ANSWERED
    assert _answer(engine, prompt, "a-ben", "accepted", T0 + 8) != []  # closed: nothing more
    assert _cool_downs(redis_client, engine, "m_702cc64d") == []
    s = stats(engine, redis_client)
    assert s["feedback:done"] == 1 and "feedback:dismissed" not in s and "feedback:accepted" not in s
    assert s["feedback_refused:answered"] == 2 and s["feedback_duplicate"] == 1
    assert redis_client.hget(engine.keys.prompt(prompt.event_id), "outcome") == b"done"


def test_holdout_member_is_never_prompted_but_counted(engine: Recommender, redis_client: redis.Redis) -> None:
    # Mr Rossi is in the demo catalog's holdout; he buys vegetables weekly, the last 9 days ago.
    assert send(engine, "produce", "m_0f721d37", T0) == []
    checkout(engine, "m_0f721d37", T0 + 300, "vegetables")
    s = stats(engine, redis_client)
    assert s["holdout"] == 1 and s.get("prompts", 0) == 0
    assert s["holdout_converted"] == 1


def test_non_member_checkout_is_invited_once(engine: Recommender) -> None:
    event = pos.make(CheckoutEvent, T0, member=None, items=[], total_cents=0)
    topic = engine.topics.checkout(engine.config.store, "lane-1")
    first = engine.handle(topic, encode(event), T0)
    assert [p.kind for p in prompts(first)] == [PromptKind.JOIN_INVITE]
    assert first[0].topic.endswith("/handheld/a-dan/prompt")
    assert engine.handle(topic, encode(event), T0 + 1) == []


def test_long_queue_asks_a_manager_to_open_a_till_once_per_cool_down(engine: Recommender) -> None:
    topic = engine.topics.footfall(engine.config.store, "checkout")

    def count(queue: int, ts: float) -> list[Outbound]:
        event = gw_checkout.make(
            FootfallEvent, ts, window_s=10, entered=3, exited=1, occupancy=9, queue_length=queue
        )
        return engine.handle(topic, encode(event), ts)

    assert count(2, T0) == []
    out = count(6, T0 + 10)
    [prompt] = prompts(out)
    assert prompt.kind is PromptKind.OPEN_TILL and prompt.customer.member is None
    assert out[0].topic.endswith("/handheld/a-amy/prompt")  # the demo store's manager
    assert "6 people queue" in prompt.suggestion
    assert count(7, T0 + 20) == []  # cool-down (5 minutes)
    assert prompts(count(7, T0 + 400))


def test_long_dwell_is_noticed_on_the_tick(engine: Recommender) -> None:
    send(engine, "produce", "m_330b99e8", T0)  # nothing due in produce for him
    assert engine.tick(T0 + 60) == []
    [prompt] = prompts(engine.tick(T0 + 130))
    assert prompt.kind is PromptKind.LONG_DWELL_HELP and "2 minutes" in prompt.why
    assert engine.tick(T0 + 140) == []  # once per stay in a zone


def test_not_accepted_in_time_is_rerouted(engine: Recommender) -> None:
    [prompt] = send(engine, "pantry", "m_702cc64d", T0)
    assert engine.tick(T0 + 30) == []
    [moved] = engine.tick(T0 + 50)
    assert moved.topic.endswith("/handheld/a-amy/prompt")
    assert Prompt.model_validate_json(moved.payload).event_id == prompt.event_id  # the same prompt


def test_associate_status_steers_routing(engine: Recommender) -> None:
    status = EnvelopeSource("handheld-a-ben").make(AssociateStatus, T0, state="on_break")
    assert (
        engine.handle(engine.topics.associate_status(engine.config.store, "a-ben"), encode(status), T0) == []
    )
    out = engine.handle(
        engine.topics.presence(engine.config.store, "pantry"),
        enter(engine, "pantry", "m_702cc64d", T0)[1],
        T0,
    )
    assert len(out) == 1 and not out[0].topic.endswith("/a-ben/prompt")


def test_catalog_hot_reload_and_a_broken_file_keeps_the_old(
    engine: Recommender, tmp_path: Path, store_config: StoreConfig
) -> None:
    from recommender.catalog import DEFAULT_CATALOG, CatalogWatcher

    path = tmp_path / "catalog.yaml"
    path.write_text(DEFAULT_CATALOG.read_text())
    engine.catalog = CatalogWatcher.open(path)
    path.write_text(DEFAULT_CATALOG.read_text().replace("tiers: [gold, platinum]", "tiers: [gold]"))
    os.utime(path, (1, 1))
    assert engine.reload_catalog()
    assert send(engine, "entrance", "m_cbbd5a3c", T0) == []  # platinum is no longer greeted
    path.write_text("actions: [")
    os.utime(path, (2, 2))
    assert not engine.reload_catalog()
    assert engine.core.catalog.by_kind(PromptKind.GREET_VIP)[0].eligible.tiers == ["gold"]


def test_scripts_reload_after_redis_lost_its_script_cache(
    engine: Recommender, redis_client: redis.Redis
) -> None:
    redis_client.script_flush()
    assert [p.kind for p in send(engine, "entrance", "m_cbbd5a3c", T0)] == [PromptKind.GREET_VIP]


def test_late_older_event_does_not_move_the_customer_back(
    engine: Recommender, redis_client: redis.Redis
) -> None:
    send(engine, "produce", "m_330b99e8", T0 + 10)
    send(engine, "pantry", "m_330b99e8", T0 + 5, now=T0 + 11)  # older, arrives late
    assert redis_client.hget(engine.keys.visit("m_330b99e8"), "zone") == b"produce"
    assert stats(engine, redis_client)["outcome:out_of_order"] == 1


def test_leave_clears_only_the_zone_left(engine: Recommender, redis_client: redis.Redis) -> None:
    send(engine, "pantry", "m_330b99e8", T0)
    topic = engine.topics.presence(engine.config.store, "produce")
    engine.handle(topic, enter(engine, "produce", "m_330b99e8", T0 + 1, "leave")[1], T0 + 1)
    assert redis_client.hget(engine.keys.visit("m_330b99e8"), "zone") == b"pantry"
    topic = engine.topics.presence(engine.config.store, "pantry")
    engine.handle(topic, enter(engine, "pantry", "m_330b99e8", T0 + 2, "leave")[1], T0 + 2)
    assert redis_client.hget(engine.keys.visit("m_330b99e8"), "zone") is None


def test_stale_event_updates_state_but_prompts_nobody(engine: Recommender, redis_client: redis.Redis) -> None:
    assert send(engine, "pantry", "m_702cc64d", T0, now=T0 + 600) == []  # 10 minutes late
    assert redis_client.hget(engine.keys.visit("m_702cc64d"), "zone") == b"pantry"
    assert stats(engine, redis_client)["outcome:stale"] == 1


def test_per_customer_state_expires_and_stays_bounded(engine: Recommender, redis_client: redis.Redis) -> None:
    for i in range(200):
        send(engine, "pantry" if i % 2 else "produce", "m_330b99e8", T0 + i)
    k = engine.keys
    assert redis_client.zcard(k.member_seen("m_330b99e8")) == engine.config.rules.dedupe_window
    for key in (k.member_seen("m_330b99e8"), k.visit("m_330b99e8")):
        assert 0 < redis_client.ttl(key) <= engine.config.rules.dedupe_ttl_s
    [prompt] = send(engine, "pantry", "m_702cc64d", T0 + 300)
    engine.after_publish()
    for key in (k.contacts("m_702cc64d"), k.suggested("m_702cc64d"), k.prompt(prompt.event_id)):
        assert redis_client.ttl(key) > 0


def test_acks_gather_across_batches_and_only_for_batches_that_completed(
    engine: Recommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    from broker_config.contract import EventAck

    first, data1 = enter(engine, "entrance", "m_cbbd5a3c", T0)
    second, data2 = enter(engine, "entrance", "m_702cc64d", T0 + 1)
    topic = engine.topics.presence(engine.config.store, "entrance")
    engine.handle(topic, data1, T0)
    engine.handle(topic, data2, T0 + 1)
    assert engine.acks_pending == 2

    def redis_down(*_args: object, **_kw: object) -> object:
        raise redis.ConnectionError("Redis went away")

    _, data3 = enter(engine, "entrance", "m_okafor011", T0 + 2)
    monkeypatch.setattr(engine._decider, "run_then", redis_down)
    with pytest.raises(redis.ConnectionError):
        engine.handle(topic, data3, T0 + 2)
    assert engine.acks_pending == 2  # the failed batch is redelivered, so not acknowledged

    out = engine.take_acks(T0 + 3)
    assert [o.topic for o in out] == [engine.topics.ack(engine.config.store, "gw-entrance")]
    ack = EventAck.model_validate_json(out[0].payload)
    assert ack.event_ids == [first.event_id, second.event_id]
    assert engine.acks_pending == 0 and engine.take_acks(T0 + 4) == []


def test_deferred_writes_survive_a_connection_lost_under_them(
    engine: Recommender, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prompt's record rides with the next batch's scripts; if that call breaks, the
    record goes again with the call after (not lost: feedback on it must still count)."""
    [prompt] = send(engine, "entrance", "m_cbbd5a3c", T0)
    record = engine.keys.prompt(prompt.event_id)
    assert not redis_client.exists(record)  # deferred: waits for the next batch or the tick

    real_raw = engine._decider.raw
    broken: list[int] = []

    def breaks_once(commands: list[tuple[object, ...]]) -> list[object]:
        if not broken and any(c[0] == "HSET" and c[1] == record for c in commands):
            broken.append(len(commands))
            raise redis.ConnectionError("connection reset under the batch")
        return real_raw(commands)  # type: ignore[arg-type]

    monkeypatch.setattr(engine._decider, "raw", breaks_once)
    _, data = enter(engine, "entrance", "m_702cc64d", T0 + 1)
    topic = engine.topics.presence(engine.config.store, "entrance")
    with pytest.raises(redis.ConnectionError):
        engine.handle(topic, data, T0 + 1)
    assert broken and not redis_client.exists(record)
    [_] = prompts(engine.handle(topic, data, T0 + 1))  # the broker redelivers the event
    assert redis_client.hget(record, "kind") == b"greet_vip"


def test_replicas_see_each_others_prompts_and_answers(
    engine: Recommender, redis_client: redis.Redis, prefix: str, store_config: StoreConfig
) -> None:
    """Two replicas of a share group: each one's prompts (seen on the prompt topic) make
    the associate busy for the other, a re-route moves that, and a feedback (every replica
    gets it) frees the associate in both, though only the first to run it counts it."""
    a = Recommender(store_config, redis_client, Topics(prefix), engine.keys, producer="rec-a")
    b = Recommender(store_config, redis_client, Topics(prefix), engine.keys, producer="rec-b")
    _, data = enter(a, "pantry", "m_702cc64d", T0)
    [sent] = a.handle(a.topics.presence(a.config.store, "pantry"), data, T0)
    a.after_publish()
    assert sent.topic.endswith("/handheld/a-ben/prompt")
    for replica in (a, b):  # both hear it on the prompt topic; a knows it already
        assert replica.handle(sent.topic, sent.payload, T0) == []
    assert b.router.busy("a-ben", T0 + 1) and a.router.busy("a-ben", T0 + 1)
    assert b.router.choose("pantry", T0 + 1) != "a-ben"

    [moved] = a.tick(T0 + 50)  # not accepted in time: a offers it to a-amy
    assert b.handle(moved.topic, moved.payload, T0 + 50) == []
    assert not b.router.busy("a-ben", T0 + 51) and b.router.busy("a-amy", T0 + 51)

    prompt = Prompt.model_validate_json(moved.payload)
    fb = EnvelopeSource("handheld-a-amy").make(Feedback, T0 + 60, prompt_id=prompt.event_id, outcome="done")
    for replica in (b, a):  # b runs the feedback script first; a sees a duplicate
        replica.handle(replica.topics.feedback(replica.config.store, "a-amy"), encode(fb), T0 + 60)
    assert not a.router.busy("a-amy", T0 + 61) and not b.router.busy("a-amy", T0 + 61)
    assert stats(b, redis_client)["feedback:done"] == 1
    assert stats(a, redis_client)["feedback:done"] == 1  # the same hash: counted once


@pytest.mark.parametrize(("replicated", "same_associate"), [(True, False), (False, True)])
def test_replicas_deciding_in_the_same_instant_hold_the_associate(
    engine: Recommender,
    redis_client: redis.Redis,
    prefix: str,
    store_config: StoreConfig,
    replicated: bool,
    same_associate: bool,
) -> None:
    """Two replicas route a prompt for the same zone before either has heard of the
    other's. As replicas, the first holds the free associate in Redis and the second
    offers its prompt to the next free one (its unsent copy and record follow); without
    the hold both pick the same associate."""
    a, b = (
        Recommender(
            store_config,
            redis_client,
            Topics(prefix),
            engine.keys,
            producer=f"rec-{r}",
            replicated=replicated,
        )
        for r in "ab"
    )
    [sent_a] = a.handle(
        a.topics.presence(a.config.store, "pantry"), enter(a, "pantry", "m_702cc64d", T0)[1], T0
    )
    [sent_b] = b.handle(
        b.topics.presence(b.config.store, "pantry"), enter(b, "pantry", "m_1d54fa96", T0)[1], T0
    )
    assert sent_a.topic.endswith("/handheld/a-ben/prompt")
    assert (sent_b.topic == sent_a.topic) is same_associate
    for replica in (a, b):
        replica.after_publish()
    moved_to = sent_b.topic.split("/")[-2]
    prompt_b = Prompt.model_validate_json(sent_b.payload)
    assert redis_client.hget(engine.keys.prompt(prompt_b.event_id), "associate") == moved_to.encode()
    unsent = redis_client.hget(engine.keys.unsent("m_1d54fa96"), prompt_b.event_id)
    assert unsent is not None and unsent.split(b"\n", 1)[0] == sent_b.topic.encode()
    assert b.router.busy(moved_to, T0 + 1)
    if replicated:
        assert stats(b, redis_client)["routing:collisions"] == 1
        assert not a.router.busy(moved_to, T0 + 1)  # b's prompt has not reached a yet


@pytest.mark.parametrize("who", ["m_702cc64d", None])
def test_a_prompt_whose_reply_was_lost_goes_out_when_its_event_comes_again(
    engine: Recommender, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch, who: str | None
) -> None:
    """Redis ran the event's script (claim and unsent copy written) but its reply never
    came back (a timeout, a reset): the batch fails and the event comes again. The retry
    finds it a duplicate and still publishes the claimed prompt, to the associate it was
    routed to, with its record; once the broker has confirmed it, never again."""
    from recommender.decide import SHAS

    real_raw = engine._decider.raw
    lost: list[int] = []

    def runs_then_breaks(commands: list[tuple[object, ...]]) -> list[object]:
        replies = real_raw(commands)  # type: ignore[arg-type]
        if not lost and any(c[0] == "EVALSHA" and c[1] != SHAS["read"] for c in commands):
            lost.append(len(commands))
            raise redis.TimeoutError("Redis did not answer in time")
        return replies

    monkeypatch.setattr(engine._decider, "raw", runs_then_breaks)
    if who is not None:
        topic, data = (
            engine.topics.presence(engine.config.store, "entrance"),
            enter(engine, "entrance", who, T0)[1],
        )
    else:
        items = [{"sku": "milk-1", "category": "milk", "qty": 1, "amount_cents": 500}]
        event = pos.make(CheckoutEvent, T0, member=None, items=items, total_cents=500)
        topic, data = engine.topics.checkout(engine.config.store, "lane-1"), encode(event)
    with pytest.raises(redis.TimeoutError):
        engine.handle(topic, data, T0)
    assert lost
    unsent_key = engine.keys.unsent(who) if who else engine.keys.lane_unsent("lane-1")
    [(_, claimed)] = redis_client.hgetall(unsent_key).items()  # type: ignore[union-attr]
    routed_to = claimed.split(b"\n", 1)[0].decode()
    associate = routed_to.split("/")[-2]

    [again] = engine.handle(topic, data, T0 + 0.5)  # the broker redelivers the event
    assert again.topic == routed_to and associate in {a.id for a in engine.config.associates}
    prompt = Prompt.model_validate_json(again.payload)
    assert again.unsent is not None and again.unsent[1] == prompt.event_id
    assert redis_client.hexists(again.unsent[0], prompt.event_id)  # until the broker confirms it
    engine.after_publish()
    assert redis_client.hget(engine.keys.prompt(prompt.event_id), "associate") == associate.encode()
    assert engine.router.busy(associate, T0 + 1)
    assert stats(engine, redis_client)["republished"] == 1

    engine.mark_sent([again.unsent])
    assert engine.handle(topic, data, T0 + 1) == []  # confirmed: a third delivery sends nothing


def test_a_batch_that_never_reached_redis_leaves_no_phantom_prompt(
    engine: Recommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The call fails before Redis ran anything: the retry claims and publishes one prompt,
    and the one routed in the failed attempt is not left open (a re-route would publish
    it, unclaimed, as a second prompt for the event)."""
    from recommender.decide import SHAS

    real_raw = engine._decider.raw
    refused: list[int] = []

    def refuses_once(commands: list[tuple[object, ...]]) -> list[object]:
        if not refused and any(c[0] == "EVALSHA" and c[1] != SHAS["read"] for c in commands):
            refused.append(len(commands))
            raise redis.ConnectionError("Connection refused")
        return real_raw(commands)  # type: ignore[arg-type]

    monkeypatch.setattr(engine._decider, "raw", refuses_once)
    topic, data = (
        engine.topics.presence(engine.config.store, "entrance"),
        enter(engine, "entrance", "m_702cc64d", T0)[1],
    )
    with pytest.raises(redis.ConnectionError):
        engine.handle(topic, data, T0)
    [sent] = engine.handle(topic, data, T0 + 0.5)
    engine.after_publish()
    prompt = Prompt.model_validate_json(sent.payload)
    rerouted = engine.tick(T0 + 60)  # not accepted in time: every open prompt is offered again
    assert [Prompt.model_validate_json(o.payload).event_id for o in rerouted] == [prompt.event_id]


def test_a_hold_ends_when_its_prompt_is_answered_or_not_claimed(
    engine: Recommender, redis_client: redis.Redis, prefix: str, store_config: StoreConfig
) -> None:
    """A replica's hold on an associate lasts while its prompt is open (at most HOLD_S):
    done frees them for every replica at once, and so does a claim the script refused."""
    a, b = (
        Recommender(
            store_config, redis_client, Topics(prefix), engine.keys, producer=f"rec-{r}", replicated=True
        )
        for r in "ab"
    )
    zone = a.topics.presence(a.config.store, "pantry")
    [sent] = a.handle(zone, enter(a, "pantry", "m_702cc64d", T0)[1], T0)
    held = engine.keys.associate_hold("a-ben")
    prompt = Prompt.model_validate_json(sent.payload)
    assert sent.topic.endswith("/a-ben/prompt") and redis_client.get(held) == prompt.event_id.encode()
    a.after_publish()
    feedback(a, prompt, "a-ben", "done", T0 + 1)
    assert redis_client.exists(held) == 0

    # b decides for the same member before it could know: its core chooses a greeting
    # (it reads no visit), routes it to a free associate and holds them; the script, which
    # sees the visit, refuses the claim, and the hold goes with b's next writes.
    real_read = b._decider.read

    def reads_no_visit(members: list[str], since: float) -> list[object]:
        return [replace(s, visit={}, contacts=[]) for s in real_read(members, since)]  # type: ignore[type-var]

    b._decider.read = reads_no_visit  # type: ignore[method-assign,assignment]
    assert b.handle(zone, enter(b, "pantry", "m_702cc64d", T0 + 2)[1], T0 + 2) == []
    assert stats(b, redis_client)["outcome:capped"] == 1
    assert redis_client.keys(f"{prefix}*:assoc:*:hold") != []  # held until the writes go
    b.after_publish()
    assert redis_client.keys(f"{prefix}*:assoc:*:hold") == []


@pytest.mark.parametrize("replicated", [True, False])
def test_a_reroute_takes_a_hold_too(
    engine: Recommender, redis_client: redis.Redis, prefix: str, store_config: StoreConfig, replicated: bool
) -> None:
    """A prompt not accepted in time is offered to the next best associate; as a replica,
    one a peer has just given a prompt (their hold is in Redis) is passed over for the
    next free one, and the re-routed prompt holds whoever gets it."""
    a = Recommender(
        store_config, redis_client, Topics(prefix), engine.keys, producer="rec-a", replicated=replicated
    )
    [sent] = a.handle(
        a.topics.presence(a.config.store, "pantry"), enter(a, "pantry", "m_702cc64d", T0)[1], T0
    )
    a.after_publish()
    assert sent.topic.endswith("/a-ben/prompt")
    later = T0 + 60
    first_choice = a.router.choose("pantry", later, exclude=("a-ben",))
    assert first_choice is not None
    redis_client.set(
        engine.keys.associate_hold(first_choice), "peer-prompt", px=2000
    )  # as a peer's claim does

    [moved] = a.tick(later)
    went_to = moved.topic.split("/")[-2]
    prompt = Prompt.model_validate_json(moved.payload)
    assert redis_client.hget(engine.keys.prompt(prompt.event_id), "associate") == went_to.encode()
    if replicated:
        assert went_to not in (first_choice, "a-ben")
        assert redis_client.get(engine.keys.associate_hold(went_to)) == prompt.event_id.encode()
        assert stats(a, redis_client)["routing:collisions"] == 1
    else:
        assert went_to == first_choice


def test_with_handhelds_required_a_prompt_nobody_can_take_is_counted_unserved(
    redis_client: redis.Redis, prefix: str, store_config: StoreConfig
) -> None:
    """Issue 20, finding 1: prompts went to associates nobody was holding a handheld for."""
    rules = store_config.rules.model_copy(update={"require_handheld": True})
    config = store_config.model_copy(update={"rules": rules})
    keys = Keys(config.store, prefix)
    assert config.crm is not None
    model = load_into_redis(redis_client, keys, read_crm(config.crm).members, T0)
    e = Recommender(config, redis_client, Topics(prefix), keys, model=model)
    assert send(e, "pantry", "m_702cc64d", T0) == []  # nobody signed in: unserved, with the reason
    status = EnvelopeSource("api").make(AssociateStatus, T0 + 1, state="available")
    assert e.handle(e.topics.associate_status(config.store, "a-cara"), encode(status), T0 + 1) == []
    out = e.handle(
        e.topics.presence(config.store, "entrance"), enter(e, "entrance", "m_cbbd5a3c", T0 + 2)[1], T0 + 2
    )
    assert [o.topic.rsplit("/", 2)[-2] for o in out] == ["a-cara"]  # the only one on the floor
    s = stats(e, redis_client)
    assert s["unserved:nobody_on_floor"] == 1 and s["unserved:nobody_on_floor:replenishment_due"] == 1
