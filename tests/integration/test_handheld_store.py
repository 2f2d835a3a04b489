"""Storing a prompt for the handheld in one script: the name read from the profile, the
redelivery and the erased member, on a real Redis; and the same answers one command at a
time (the Redis Cluster path)."""

from __future__ import annotations

import time
from typing import cast

import pytest
import redis

from broker_config.contract import EnvelopeSource, Prompt, PromptKind, new_event_id
from handheld.prompts import GUEST, UNNAMED_MEMBER, HandheldPrompt, PromptStore, Stored
from recommender.keys import Keys

NAME = 'Zoë "Z" O\'Brien / 北'


def _prompt(member: str | None) -> Prompt:
    now = time.time()
    return EnvelopeSource("recommender").make(
        Prompt,
        now,
        kind=PromptKind.GREET_VIP if member else PromptKind.JOIN_INVITE,
        customer={"member": member, "tier": "gold" if member else None},
        zone="pantry",
        headline="Gold member in Pantry",
        suggestion="Greet them by name.",
        why="Gold member, just walked into Pantry.",
        cause_event_id=new_event_id(),
        cause_ts=now - 1,
        expires_at=now + 300,
    )


@pytest.mark.parametrize("one_script", [True, False], ids=["one-script", "apart"])
def test_a_prompt_is_stored_once_with_the_members_name(
    redis_client: redis.Redis, prefix: str, one_script: bool
) -> None:
    keys = Keys("s", prefix)
    store = PromptStore(redis_client, keys)
    store._one_script = one_script
    redis_client.hset(keys.profile("m_named01"), "name", NAME)
    redis_client.hset(keys.profile("m_noname01"), "tier", "gold")

    prompts = {m: _prompt(m) for m in ("m_named01", "m_noname01", None)}
    stored = {m: store.add_prompt("a-ben", p) for m, p in prompts.items()}
    shown = {m: v.customer_name for m, v in stored.items() if isinstance(v, HandheldPrompt)}
    assert shown == {"m_named01": NAME, "m_noname01": UNNAMED_MEMBER, None: GUEST}

    # What a reconnecting page reads back from the stream is what the live page got.
    backlog = store.backlog("a-ben", None)
    assert backlog == [stored[m] for m in prompts]
    assert all(v.sid for v in backlog)
    record = store.record(prompts["m_named01"].event_id)
    assert record is not None and (record.associate, record.member) == ("a-ben", "m_named01")
    assert redis_client.smembers(keys.member_handheld_prompts("m_named01")) == {
        prompts["m_named01"].event_id.encode()
    }
    ttl = cast(int, redis_client.ttl(keys.handheld_prompt(prompts[None].event_id)))
    assert ttl > 0

    # MQTT redelivers: stored once.
    assert store.add_prompt("a-ben", prompts["m_named01"]) == "redelivered"
    assert len(store.backlog("a-ben", None)) == 3


@pytest.mark.parametrize("one_script", [True, False], ids=["one-script", "apart"])
def test_a_prompt_about_an_erased_member_is_dropped(
    redis_client: redis.Redis, prefix: str, one_script: bool
) -> None:
    keys = Keys("s", prefix)
    store = PromptStore(redis_client, keys)
    store._one_script = one_script
    redis_client.set(keys.erased("m_gone0001"), "1")
    prompt = _prompt("m_gone0001")
    assert store.add_prompt("a-ben", prompt) == "erased"
    assert store.backlog("a-ben", None) == []
    assert store.record(prompt.event_id) is None


@pytest.mark.parametrize("one_script", [True, False], ids=["one-script", "apart"])
def test_storing_a_prompt_tells_which_open_pages_sessions_are_still_valid(
    redis_client: redis.Redis, prefix: str, one_script: bool
) -> None:
    """The open pages' sessions are read in the store step itself (no round trip per page):
    a valid one may show the prompt; a signed-out, revoked or expired one may not."""
    keys = Keys("s", prefix)
    store = PromptStore(redis_client, keys)
    store._one_script = one_script
    now = time.time()
    valid, expired, revoked = "a" * 64, "b" * 64, "c" * 64
    redis_client.hset(keys.session(valid), "expires_at", f"{now + 3600:.3f}")
    redis_client.hset(keys.session(expired), "expires_at", f"{now - 1:.3f}")  # revoked: no record

    stored = store.store_prompt("a-ben", _prompt("m_named01"), now, (valid, expired, revoked))
    assert isinstance(stored, Stored)
    assert stored.checked == {valid, expired, revoked} and stored.live == {valid}
    assert store.backlog("a-ben", None) == [stored.view]

    guest = store.store_prompt("a-ben", _prompt(None), now, ())
    assert isinstance(guest, Stored) and guest.checked == guest.live == frozenset()
    # An erased member's prompt is still dropped before anything else.
    redis_client.set(keys.erased("m_gone0001"), "1")
    assert store.store_prompt("a-ben", _prompt("m_gone0001"), now, (valid,)) == "erased"


@pytest.mark.parametrize("one_script", [True, False], ids=["one-script", "apart"])
def test_prompts_that_queued_up_are_stored_in_order_in_one_go(
    redis_client: redis.Redis, prefix: str, one_script: bool
) -> None:
    keys = Keys("s", prefix)
    store = PromptStore(redis_client, keys)
    store._one_script = one_script
    redis_client.set(keys.erased("m_gone0001"), "1")
    first, erased, guest = _prompt("m_named01"), _prompt("m_gone0001"), _prompt(None)
    now = time.time()
    # The same prompt twice in one batch (MQTT redelivered it meanwhile): stored once.
    batch = [("a-ben", p, now, ()) for p in (first, erased, guest, first)]
    results = store.store_prompts(batch)
    assert [r if isinstance(r, str) else r.view.prompt_id for r in results] == [
        first.event_id,
        "erased",
        guest.event_id,
        "redelivered",
    ]
    assert [v.prompt_id for v in store.backlog("a-ben", None)] == [first.event_id, guest.event_id]
