"""Members' states kept in memory, on a real Redis: a member's next event is decided
without reading Redis first, and decides what a fresh read would; a state that changed
behind the engine's back (any writer, a CRM import, an expired visit, an erasure) makes the
presence script refuse, and the event is decided again on the state the script found."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
import redis

from broker_config.contract import EnvelopeSource, ErasureNotice, Prompt, PromptKind, Topics, encode
from floorwalker.config import StoreConfig
from recommender.crm import load_into_redis, read_crm
from recommender.decide import MemberState
from recommender.engine import Recommender
from recommender.erasure import erase_member
from recommender.keys import Keys
from recommender.member_cache import MemberCache
from tests.integration.test_engine import T0, checkout, enter, feedback, send, stats

pytestmark = pytest.mark.integration

CHEN = "m_702cc64d"  # demo CRM: rich profile and purchase history
NEW = "m_0cac4e01"  # written by the tests below: a consenting member without history


class Reads:
    """Counts the members an engine reads from Redis before deciding."""

    def __init__(self, e: Recommender) -> None:
        self.members: list[str] = []
        real = e._decider.read

        def read(members: Sequence[str], since: float) -> list[MemberState | redis.ResponseError]:
            self.members.extend(members)
            return real(members, since)

        e._decider.read = read  # type: ignore[method-assign]


def make(config: StoreConfig, client: redis.Redis, prefix: str, **more: object) -> Recommender:
    keys = Keys(config.store, prefix)
    assert config.crm is not None
    model = load_into_redis(client, keys, read_crm(config.crm).members, T0)
    return Recommender(config, client, Topics(prefix), keys, model=model, **more)  # type: ignore[arg-type]


@pytest.fixture
def engine(redis_client: redis.Redis, prefix: str, store_config: StoreConfig) -> Iterator[Recommender]:
    e = make(store_config, redis_client, prefix)
    yield e
    e.close()


def profile(e: Recommender, client: redis.Redis, member: str, tier: str) -> None:
    client.hset(
        e.keys.profile(member),
        mapping={"name": "Zoë Ångström", "tier": tier, "points": "120", "consent": "1"},
    )


def kinds(prompts: list[object]) -> list[PromptKind]:
    return [p.kind for p in prompts]  # type: ignore[attr-defined]


def test_a_members_next_events_need_no_read_and_decide_as_a_fresh_read_does(
    engine: Recommender, redis_client: redis.Redis, prefix: str, store_config: StoreConfig
) -> None:
    fresh = make(store_config, redis_client, prefix + "fresh/", members=MemberCache(size=0))
    walk = [("entrance", 0.0), ("pantry", 100.0), ("produce", 250.0), ("pantry", 400.0), ("produce", 600.0)]
    reads, fresh_reads = Reads(engine), Reads(fresh)
    got = [kinds(send(engine, zone, CHEN, T0 + dt)) for zone, dt in walk]
    want = [kinds(send(fresh, zone, CHEN, T0 + dt)) for zone, dt in walk]
    assert got == want and any(got)
    assert reads.members == [CHEN]  # the first event only: the others were decided on what it left
    assert fresh_reads.members == [CHEN] * len(walk)
    assert "outcome:changed" not in stats(engine, redis_client)  # the kept states were right
    # A checkout rewrites profile and visit: the member's next event reads them again.
    checkout(engine, CHEN, T0 + 700, "sauces")
    checkout(fresh, CHEN, T0 + 700, "sauces")
    assert kinds(send(engine, "pantry", CHEN, T0 + 800)) == kinds(send(fresh, "pantry", CHEN, T0 + 800))
    assert reads.members == [CHEN, CHEN]
    fresh.close()


@pytest.mark.parametrize("writer", ["redis", "crm import"])
def test_a_profile_changed_behind_its_back_is_refused_and_decided_again(
    engine: Recommender, redis_client: redis.Redis, writer: str, store_config: StoreConfig
) -> None:
    profile(engine, redis_client, NEW, "silver")
    reads = Reads(engine)
    assert send(engine, "pantry", NEW, T0) == []  # not a VIP: no greeting; their state is kept
    assert NEW in engine.members
    if writer == "redis":
        profile(engine, redis_client, NEW, "gold")  # any writer, telling nobody
    else:
        assert store_config.crm is not None
        members = read_crm(store_config.crm).members
        chen = next(m for m in members if m.member == CHEN)
        upgraded = chen.model_copy(update={"member": NEW, "tier": "gold", "purchases": []})
        load_into_redis(redis_client, engine.keys, [*members, upgraded], T0)
    # Decided on the kept (silver) state, the core would stay silent; the script finds
    # another state, refuses, and the event is decided again on what it found.
    [greeting] = send(engine, "produce", NEW, T0 + 100)
    assert greeting.kind is PromptKind.GREET_VIP and greeting.customer.tier == "gold"
    assert stats(engine, redis_client)["outcome:changed"] == 1
    assert reads.members == [NEW]  # the second decision used the state the script returned
    assert redis_client.hget(engine.keys.visit(NEW), "n") == b"1"  # claimed once, after the refusal


def test_an_expired_visit_is_a_new_visit_as_for_a_fresh_read(
    engine: Recommender, redis_client: redis.Redis
) -> None:
    profile(engine, redis_client, NEW, "gold")
    assert kinds(send(engine, "pantry", NEW, T0)) == [PromptKind.GREET_VIP]
    redis_client.delete(engine.keys.visit(NEW))  # as its TTL would
    # The kept state says "greeted in this visit"; Redis says there is no visit.
    assert kinds(send(engine, "produce", NEW, T0 + 100)) == [PromptKind.GREET_VIP]
    assert stats(engine, redis_client)["outcome:changed"] == 1


def test_an_erasure_drops_the_kept_state_at_once_and_every_replica_refuses_the_member(
    engine: Recommender, redis_client: redis.Redis, store_config: StoreConfig, prefix: str
) -> None:
    other = Recommender(store_config, redis_client, engine.topics, engine.keys, producer="rec-b")
    profile(engine, redis_client, NEW, "gold")
    assert kinds(send(engine, "pantry", NEW, T0)) == [PromptKind.GREET_VIP]
    assert send(other, "produce", NEW, T0 + 10) == []  # greeted this visit; other keeps it too
    assert NEW in engine.members and NEW in other.members

    # (No BLE key file: the demo's is in the repository.)
    ble = store_config.ble_presence.model_copy(update={"secrets": None})
    no_keys = store_config.model_copy(update={"ble_presence": ble})
    erase_member(redis_client, engine.keys, engine.topics, no_keys, NEW, T0 + 20, None)
    notice = EnvelopeSource("recommender").make(ErasureNotice, T0 + 20, member=NEW)
    assert engine.handle(engine.topics.erasure(store_config.store, NEW), encode(notice), T0 + 20) == []
    assert NEW not in engine.members  # dropped with the notice, before any event

    # A replica that has not had the notice yet still keeps them: the tombstone refuses
    # the event before anything else, and its kept state goes too.
    assert send(other, "pantry", NEW, T0 + 200) == []
    assert NEW not in other.members
    assert stats(other, redis_client)["outcome:erased"] == 1
    assert redis_client.keys(f"{prefix}*{NEW}*") == [engine.keys.erased(NEW).encode()]
    other.close()


def test_a_member_without_consent_or_profile_is_not_kept(
    engine: Recommender, redis_client: redis.Redis
) -> None:
    redis_client.hset(engine.keys.profile(NEW), mapping={"tier": "gold", "consent": "0"})
    assert send(engine, "pantry", NEW, T0) == []
    assert send(engine, "pantry", "m_00000000", T0) == []
    assert NEW not in engine.members and "m_00000000" not in engine.members
    counts = stats(engine, redis_client)
    assert counts["outcome:no_consent"] == 1 and counts["outcome:unknown_member"] == 1


def test_preloaded_profiles_decide_a_first_event_without_a_read_and_a_wrong_guess_is_refused(
    engine: Recommender, redis_client: redis.Redis, prefix: str, store_config: StoreConfig
) -> None:
    profile(engine, redis_client, NEW, "gold")
    redis_client.hset(engine.keys.profile("m_0000000a"), mapping={"tier": "gold", "consent": "0"})
    fresh = make(store_config, redis_client, prefix + "fresh/", members=MemberCache(size=0))
    profile(fresh, redis_client, NEW, "gold")
    assert engine.preload(chunk=7) >= 10  # the demo CRM's consenting members and NEW
    assert NEW in engine.members and CHEN in engine.members
    assert "m_0000000a" not in engine.members  # no consent to recognition: not kept
    reads = Reads(engine)
    # NEW has no visit yet: the guess (no visit, no contact history) holds.
    assert (
        kinds(send(engine, "pantry", NEW, T0))
        == kinds(send(fresh, "pantry", NEW, T0))
        == [PromptKind.GREET_VIP]
    )
    # Chen is in the store already (as another replica saw): the guess is wrong, the
    # script refuses it and the event is decided on what it found, as a fresh read would.
    for e in (engine, fresh):
        redis_client.hset(e.keys.visit(CHEN), mapping={"zone": "entrance", "started": T0, "last_ts": T0})
    assert kinds(send(engine, "pantry", CHEN, T0 + 100)) == kinds(send(fresh, "pantry", CHEN, T0 + 100))
    assert reads.members == []
    assert stats(engine, redis_client)["outcome:changed"] == 1
    fresh.close()


def test_a_dismissal_or_a_checkout_drops_the_kept_state(
    engine: Recommender, redis_client: redis.Redis
) -> None:
    """Both write the member's state after their script (the cool-down and the CLV go with
    the next batch): the member's next event reads it, as every event did before."""
    profile(engine, redis_client, NEW, "gold")
    _, data = enter(engine, "pantry", NEW, T0)
    [out] = engine.handle(engine.topics.presence(engine.config.store, "pantry"), data, T0)
    engine.after_publish()
    assert NEW in engine.members
    holder = out.topic.split("/")[-2]
    feedback(
        engine, Prompt.model_validate_json(out.payload), holder, "dismissed", T0 + 5, reason="customer_busy"
    )
    assert NEW not in engine.members
    send(engine, "produce", NEW, T0 + 200)
    assert NEW in engine.members
    checkout(engine, NEW, T0 + 300, "tea")
    assert NEW not in engine.members


def test_a_state_is_not_kept_while_a_write_to_it_waits_for_the_next_round_trip(
    engine: Recommender, redis_client: redis.Redis
) -> None:
    """A checkout and a leave of one member in one batch: the checkout's new CLV is written
    with the next round trip, so the state the leave's script returned is already old."""
    from broker_config.contract import CheckoutEvent, PresenceEvent

    reads = Reads(engine)
    pos, gw = EnvelopeSource("pos-1"), EnvelopeSource("gw-fresh")
    items = [{"sku": "tea-1", "category": "tea", "qty": 1, "amount_cents": 500}]
    paid = pos.make(CheckoutEvent, T0, member=CHEN, items=items, total_cents=500)
    left = gw.make(PresenceEvent, T0 + 1, member=CHEN, action="leave")
    engine.handle_batch(
        [
            (engine.topics.checkout(engine.config.store, "lane-1"), encode(paid)),
            (engine.topics.presence(engine.config.store, "pantry"), encode(left)),
        ],
        T0 + 1,
    )
    assert CHEN not in engine.members
    send(engine, "pantry", CHEN, T0 + 100)  # read, and decided on the profile with the new CLV
    assert reads.members == [CHEN]
    assert "outcome:changed" not in stats(engine, redis_client)
