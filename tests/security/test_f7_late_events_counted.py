"""Finding 7 (late events): after a broker outage several gateways' outboxes drain at once,
and a member's older-but-true events arrive after a newer one. A late event never moves the
member back and never prompts about its past moment; what it still truly says (when the
visit, or the stay in the member's current zone, began) is applied, and every late event
is counted by what happened to it (``late:applied_to_visit``, ``late:discarded_superseded``,
``late:discarded_previous_visit``), never passed off as an ordinary delivery."""

from __future__ import annotations

import time

import pytest
import redis
from typer.testing import CliRunner

from broker_config.contract import EnvelopeSource, PresenceEvent, PromptKind, Topics, encode
from floorwalker.cli import app as cli
from floorwalker.config import Endpoints, StoreConfig
from recommender.crm import load_into_redis, read_crm
from recommender.engine import Recommender
from recommender.keys import Keys
from tests.integration.test_recommender import Slice

#: Mrs Chen: gold (greeted at the entrance) and her soy sauce due in the pantry, so each
#: late event below would earn a prompt if it were applied as new.
MEMBER = "m_702cc64d"


@pytest.mark.integration
def test_f7_late_events_apply_what_is_true_prompt_nobody_and_are_counted(
    running: Slice, services: Endpoints, prefix: str, store_config: StoreConfig
) -> None:
    now = time.time()
    visit_ttl = store_config.rules.visit_ttl_s

    def presence(gateway: str, zone: str, ts: float, action: str = "enter") -> PresenceEvent:
        event = EnvelopeSource(gateway).make(PresenceEvent, ts, member=MEMBER, action=action)
        running.send(running.topics.presence(running.store, zone), encode(event))
        return event

    newest = presence("gw-dairy", "dairy", now)
    # The other gateways' outboxes drain after the outage: older events, all true.
    late = [
        presence("gw-entrance", "entrance", now - 30),  # the visit began here, earlier
        presence("gw-pantry", "pantry", now - 20),  # superseded by the dairy
        presence("gw-pantry", "pantry", now - 10, "leave"),  # superseded
        presence("gw-chill", "dairy", now - 5),  # in the dairy since earlier than known
        presence("gw-entrance", "entrance", now - visit_ttl - 3600),  # a visit long over
    ]
    running.sentinel()

    # Not moved back: the member is where their newest event put them.
    visit = {k.decode(): v.decode() for k, v in running.redis.hgetall(running.keys.visit(MEMBER)).items()}
    assert visit["zone"] == "dairy" and float(visit["last_ts"]) == newest.ts
    # What is true is applied: the visit began at the entrance, the dairy stay 5 s earlier.
    assert float(visit["started"]) == late[0].ts
    assert float(visit["zone_since"]) == late[3].ts
    # No prompt about a past moment (the greeting and the soy sauce would have been due).
    late_ids = {e.event_id for e in late}
    assert running.prompts_for(late_ids) == []
    assert [p.kind for p in running.member_prompts(MEMBER) if p.cause_event_id != newest.event_id] == []
    # Delivered and kept: each late event is in the member's dedupe set (a redelivery is a duplicate).
    for e in late:
        assert running.redis.zscore(running.keys.member_seen(MEMBER), e.event_id) is not None

    # Counted, each by what happened to it; the counts add up to every late event.
    def counted() -> dict[str, int]:
        raw = running.redis.hgetall(running.keys.stats)
        return {k.decode(): int(v) for k, v in raw.items() if k.startswith(b"late:")}

    deadline = time.monotonic() + 10  # the service writes its counters once a second
    while sum(counted().values()) < len(late):
        if time.monotonic() > deadline:
            pytest.fail(f"late events not all counted: {counted()}")
        time.sleep(0.05)
    assert counted() == {
        "late:applied_to_visit": 2,
        "late:discarded_superseded": 2,
        "late:discarded_previous_visit": 1,
    }
    assert int(running.redis.hget(running.keys.stats, "outcome:out_of_order") or 0) == len(late)

    # And the report says so, discards by name.
    result = CliRunner().invoke(
        cli, ["report", "outcomes", "--redis-url", services.redis_url, "--key-prefix", prefix]
    )
    assert result.exit_code == 0, result.output
    assert (
        "late events: 5 (2 applied to the visit; discarded: 2 superseded, 1 previous visit)" in result.output
    )


@pytest.mark.integration
def test_f7_a_late_enter_does_not_cancel_the_members_dwell_check(
    redis_client: redis.Redis, prefix: str, store_config: StoreConfig
) -> None:
    """A late enter in another zone must not take the place of the member's real stay: the
    long-dwell check of the zone they are in still comes (on the engine, time passed in)."""
    t0 = 1_800_000_000.0
    keys = Keys(store_config.store, prefix)
    assert store_config.crm is not None
    model = load_into_redis(redis_client, keys, read_crm(store_config.crm).members, t0)
    engine = Recommender(store_config, redis_client, Topics(prefix), keys, model=model)
    try:

        def enter(gateway: str, zone: str, ts: float, now: float) -> None:
            event = EnvelopeSource(gateway).make(PresenceEvent, ts, member="m_330b99e8", action="enter")
            engine.handle(engine.topics.presence(engine.config.store, zone), encode(event), now)

        enter("gw-produce", "produce", t0, t0)
        enter("gw-pantry", "pantry", t0 - 10, t0 + 1)  # late, from another gateway's outbox
        out = engine.tick(t0 + 130)
        kinds = [o for o in out if o.topic.endswith("/prompt")]
        assert len(kinds) == 1
        assert b"produce" in kinds[0].payload.lower()
        assert PromptKind.LONG_DWELL_HELP.value.encode() in kinds[0].payload
    finally:
        engine.close()
