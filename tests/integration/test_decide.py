"""The decision scripts on a real Redis, with time passed in: exact and fast."""

from __future__ import annotations

import pytest
import redis

from broker_config.contract import CheckoutEvent, EnvelopeSource, PresenceEvent, PromptKind
from floorwalker.config import RulesConfig
from recommender.crm import DAY
from recommender.decide import Decider, Outcome
from recommender.keys import Keys

pytestmark = pytest.mark.integration

T0 = 1_800_000_000.0
RULES = RulesConfig(max_event_age_s=60, visit_ttl_s=3600, dedupe_window=16)


@pytest.fixture
def keys(prefix: str) -> Keys:
    return Keys("s1", prefix)


@pytest.fixture
def decider(redis_client: redis.Redis, keys: Keys) -> Decider:
    return Decider(redis_client, keys, RULES)


def member(
    client: redis.Redis, keys: Keys, ref: str, *, tier: str = "silver", consent: bool = True, **fields: str
) -> str:
    client.hset(
        keys.profile(ref),
        mapping={"tier": tier, "points": "10", "consent": "1" if consent else "0", **fields},
    )
    return ref


gw = EnvelopeSource("gw-1")
pos = EnvelopeSource("pos-1")


def enter(ref: str, ts: float) -> PresenceEvent:
    return gw.make(PresenceEvent, ts, member=ref, action="enter")


def test_same_event_twice_is_a_duplicate(redis_client: redis.Redis, keys: Keys, decider: Decider) -> None:
    ref = member(redis_client, keys, "m_vip000001", tier="gold")
    event = enter(ref, T0)
    first = decider.presence(event, "a", [], now=T0)
    again = decider.presence(event, "a", [], now=T0 + 1)
    assert (first.outcome, first.kind) == (Outcome.OK, PromptKind.GREET_VIP)
    assert again.outcome is Outcome.DUPLICATE


def test_vip_is_greeted_once_per_visit_and_again_after_checkout(
    redis_client: redis.Redis, keys: Keys, decider: Decider
) -> None:
    ref = member(redis_client, keys, "m_vip000002", tier="platinum")
    kinds = [decider.presence(enter(ref, T0 + i), z, [], now=T0 + i).kind for i, z in enumerate("abc")]
    assert kinds == [PromptKind.GREET_VIP, None, None]
    paid = pos.make(CheckoutEvent, T0 + 10, member=ref, items=[], total_cents=0)
    assert decider.checkout(paid, "lane-1", now=T0 + 10).outcome is Outcome.OK
    assert redis_client.exists(keys.visit(ref)) == 0  # the visit ended at the till
    assert decider.presence(enter(ref, T0 + 3600), "a", [], now=T0 + 3600).kind is PromptKind.GREET_VIP


def test_late_older_event_does_not_move_the_customer_back(
    redis_client: redis.Redis, keys: Keys, decider: Decider
) -> None:
    ref = member(redis_client, keys, "m_walker001")
    assert decider.presence(enter(ref, T0 + 5), "b", [], now=T0 + 5).outcome is Outcome.OK
    assert decider.presence(enter(ref, T0 + 1), "a", [], now=T0 + 6).outcome is Outcome.OUT_OF_ORDER
    assert redis_client.hget(keys.visit(ref), "zone") == b"b"


def test_leave_clears_only_the_zone_left(redis_client: redis.Redis, keys: Keys, decider: Decider) -> None:
    ref = member(redis_client, keys, "m_walker002")
    decider.presence(enter(ref, T0), "b", [], now=T0)
    decider.presence(gw.make(PresenceEvent, T0 + 1, member=ref, action="leave"), "a", [], now=T0 + 1)
    assert redis_client.hget(keys.visit(ref), "zone") == b"b"
    decider.presence(gw.make(PresenceEvent, T0 + 2, member=ref, action="leave"), "b", [], now=T0 + 2)
    assert redis_client.hget(keys.visit(ref), "zone") is None


def test_stale_event_updates_state_but_prompts_nobody(
    redis_client: redis.Redis, keys: Keys, decider: Decider
) -> None:
    ref = member(redis_client, keys, "m_vip000003", tier="gold")
    late = decider.presence(enter(ref, T0), "a", [], now=T0 + RULES.max_event_age_s + 1)
    assert (late.outcome, late.kind) == (Outcome.STALE, None)
    assert redis_client.hget(keys.visit(ref), "zone") == b"a"


def test_visit_and_dedupe_state_expire_and_stay_bounded(
    redis_client: redis.Redis, keys: Keys, decider: Decider
) -> None:
    ref = member(redis_client, keys, "m_walker003")
    for i in range(RULES.dedupe_window + 10):
        decider.presence(enter(ref, T0 + i), "a", [], now=T0 + i)
    assert redis_client.zcard(keys.member_seen(ref)) == RULES.dedupe_window
    assert 0 < redis_client.ttl(keys.visit(ref)) <= RULES.visit_ttl_s
    assert 0 < redis_client.ttl(keys.member_seen(ref)) <= RULES.dedupe_ttl_s


@pytest.mark.parametrize(
    ("elapsed_days", "due"),
    [(20, False), (26, False), (27.5, True), (30, True), (85, True), (95, False)],
)
def test_replenishment_window(
    redis_client: redis.Redis, keys: Keys, decider: Decider, elapsed_days: float, due: bool
) -> None:
    """Usual interval 30 days: due from 0.9x (27 days) to 3x (90 days)."""
    ref = member(
        redis_client,
        keys,
        "m_soy000001",
        **{"last:sauces": f"{T0 - elapsed_days * DAY:.0f}", "interval:sauces": f"{30 * DAY:.0f}"},
        **{"label:sauces": "Kikkoman soy sauce"},
    )
    decision = decider.presence(enter(ref, T0), "pantry", ["tea", "sauces"], now=T0)
    assert (decision.kind is PromptKind.REPLENISHMENT_DUE) is due
    if due:
        assert (decision.category, decision.label) == ("sauces", "Kikkoman soy sauce")
        assert decision.interval_s == 30 * DAY


def test_replenishment_for_a_vip_replaces_the_greeting(
    redis_client: redis.Redis, keys: Keys, decider: Decider
) -> None:
    ref = member(
        redis_client,
        keys,
        "m_soy000002",
        tier="gold",
        **{"last:sauces": f"{T0 - 31 * DAY:.0f}", "interval:sauces": f"{30 * DAY:.0f}"},
    )
    first = decider.presence(enter(ref, T0), "pantry", ["sauces"], now=T0)
    later = decider.presence(enter(ref, T0 + 60), "dairy", [], now=T0 + 60)
    assert (first.kind, later.kind) == (PromptKind.REPLENISHMENT_DUE, None)


@pytest.mark.parametrize(
    ("consent", "known", "outcome"),
    [(False, True, Outcome.NO_CONSENT), (True, False, Outcome.UNKNOWN_MEMBER)],
)
def test_no_prompt_without_consent_or_profile(
    redis_client: redis.Redis, keys: Keys, decider: Decider, consent: bool, known: bool, outcome: Outcome
) -> None:
    ref = "m_private01"
    if known:
        member(redis_client, keys, ref, tier="gold", consent=consent)
    decision = decider.presence(enter(ref, T0), "a", [], now=T0)
    assert (decision.outcome, decision.kind) == (outcome, None)
    assert redis_client.exists(keys.visit(ref)) == 0


def test_member_checkout_learns_the_purchase_interval(
    redis_client: redis.Redis, keys: Keys, decider: Decider
) -> None:
    ref = member(
        redis_client,
        keys,
        "m_learner01",
        **{"last:sauces": f"{T0 - 20 * DAY:.0f}", "interval:sauces": f"{30 * DAY:.0f}"},
    )
    items = [
        {"sku": "kikkoman-500", "category": "sauces", "qty": 1, "amount_cents": 399},
        {"sku": "oat-1l", "category": "milk", "qty": 2, "amount_cents": 398},
    ]
    paid = pos.make(CheckoutEvent, T0, member=ref, items=items, total_cents=797)
    assert decider.checkout(paid, "lane-1", now=T0).kind is None  # members get no join invite
    profile = redis_client.hgetall(keys.profile(ref))
    assert float(profile[b"interval:sauces"]) == pytest.approx((0.7 * 30 + 0.3 * 20) * DAY, abs=1)
    assert float(profile[b"last:sauces"]) == T0
    assert float(profile[b"last:milk"]) == T0
    assert b"interval:milk" not in profile  # one purchase is no interval yet
    assert decider.checkout(paid, "lane-1", now=T0 + 1).outcome is Outcome.DUPLICATE


def test_non_member_checkout_is_invited_once(decider: Decider) -> None:
    paid = pos.make(CheckoutEvent, T0, member=None, items=[], total_cents=0)
    first = decider.checkout(paid, "lane-1", now=T0)
    again = decider.checkout(paid, "lane-1", now=T0)
    assert (first.kind, again.outcome) == (PromptKind.JOIN_INVITE, Outcome.DUPLICATE)


def test_scripts_reload_after_redis_lost_its_script_cache(
    redis_client: redis.Redis, keys: Keys, decider: Decider
) -> None:
    ref = member(redis_client, keys, "m_vip000009", tier="gold")
    redis_client.script_flush()  # as after a Redis restart
    assert decider.presence(enter(ref, T0), "a", [], now=T0).kind is PromptKind.GREET_VIP
