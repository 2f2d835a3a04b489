"""`floorwalker member erase`: everything about the member goes at once, on the real
Redis and broker; a tombstone keeps a late event or a CRM reload from bringing them back; the
retained notice empties the outboxes of producers online and offline (gateways and POS
adapters) and makes the recommender forget the member in memory."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from broker_config.contract import (
    EnvelopeSource,
    ErasureNotice,
    PresenceEvent,
    Prompt,
    PromptKind,
    TopicKind,
    Topics,
    encode,
)
from edge_agent.outbox import Outbox
from edge_agent.publisher import EdgePublisher
from floorwalker.config import Endpoints, StoreConfig, load_store_config
from presence.fuser import Fuser, resolver_for
from recommender.crm import load_into_redis, read_crm
from recommender.engine import Recommender
from recommender.keys import Keys
from recommender.outbound import Outbound
from tests.conftest import DEMO_STORE, Collector

pytestmark = pytest.mark.integration

GONE, STAYS, DWELLS = "m_702cc64d", "m_1d54fa96", "m_330b99e8"
DEADLINE_S = 15.0


def _store_copy(tmp_path: Path) -> tuple[Path, StoreConfig]:
    """The demo store with its key file and CRM copied, so erasure revokes in the copy (no
    handhelds run here: ``rules.require_handheld`` off, every associate on the floor)."""
    for name in (DEMO_STORE.name, "demo_ble_keys.json", "demo_crm.json"):
        shutil.copy(DEMO_STORE.parent / name, tmp_path / name)
    path = tmp_path / DEMO_STORE.name
    path.write_text(path.read_text().replace("\nrules:\n", "\nrules:\n  require_handheld: false\n"))
    return path, load_store_config(path)


def _until(what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not done():
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE_S} s"
        time.sleep(0.02)


def _erase_with_the_cli(services: Endpoints, store: Path, prefix: str, member: str) -> str:
    """`floorwalker member erase` as an operator runs it; its one line of output."""
    done = subprocess.run(
        [
            sys.executable, "-m", "floorwalker", "member", "erase", member,
            "--store-config", str(store), "--mqtt-url", f"mqtt://{services.mqtt_host}:{services.mqtt_port}",
            "--redis-url", services.redis_url, "--topic-prefix", prefix, "--key-prefix", prefix,
        ],
        capture_output=True, text=True, timeout=60, cwd=store.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def _everything(client: redis.Redis, keys: Keys) -> dict[str, bytes]:
    """Every key of the test's prefix with its whole content as bytes."""
    out: dict[str, bytes] = {}
    for key in client.scan_iter(match=keys.pattern(), count=1000):
        kind = client.type(key)
        if kind == b"hash":
            value = repr(client.hgetall(key))
        elif kind == b"zset":
            value = repr(client.zrange(key, 0, -1))
        elif kind == b"stream":
            value = repr(client.xrange(key))
        elif kind == b"string":
            value = repr(client.get(key))
        else:
            value = repr(kind)
        out[key.decode()] = value.encode()
    return out


def test_erase_removes_the_member_everywhere_and_a_late_event_cannot_resurrect_them(
    services: Endpoints, redis_client: redis.Redis, prefix: str, store_config: StoreConfig, tmp_path: Path
) -> None:
    store, config = _store_copy(tmp_path)
    assert config.ble_presence.secrets is not None and config.crm is not None
    keys, topics, now = Keys(config.store, prefix), Topics(prefix), time.time()
    members = read_crm(config.crm).members
    engine = Recommender(
        config, redis_client, topics, keys, model=load_into_redis(redis_client, keys, members, now)
    )
    gw = EnvelopeSource("gw-fresh")

    def enter(member: str, ts: float) -> list[object]:
        event = gw.make(PresenceEvent, ts, member=member, action="enter")
        return list(engine.handle(topics.presence(config.store, "pantry"), encode(event), ts))

    # The member has a profile, a visit, a prompt (records, a handheld stream entry) and a
    # dead letter quoting them.
    prompt = enter(GONE, now)
    assert prompt, "the member should have earned a prompt"
    engine.after_publish()
    enter(STAYS, now)
    engine.after_publish()
    redis_client.xadd(keys.handheld_prompts("a-ben"), {"p": prompt[0].payload})  # type: ignore[attr-defined]
    bad = f'{{"member": "{GONE}", "oops": true}}'.encode()
    from broker_config.contract import ContractError, RejectReason

    engine.reject(
        topics.presence(config.store, "pantry"), bad, ContractError(RejectReason.INVALID_FIELD, "x"), now
    )
    assert any(GONE.encode() in v or GONE in k for k, v in _everything(redis_client, keys).items())

    # Producers hold the member's events in their outboxes (no recommender acknowledges
    # them): a gateway online now, and a gateway and a POS adapter offline at the erasure
    # (they have never connected: only a retained notice can reach them later).
    outboxes: dict[str, Outbox] = {}

    def producer(name: str, *, status: bool = True) -> EdgePublisher:
        outboxes[name] = Outbox(tmp_path / f"{name}.db")
        return EdgePublisher(
            config.store, name, services.mqtt_host, services.mqtt_port,
            topics=topics, outbox=outboxes[name], status=status,
        )  # fmt: skip

    online, offline, till = producer("gw-fresh"), producer("gw-checkout"), producer("pos-1", status=False)
    online.start(now)
    basket = [{"sku": "soy-1", "category": "sauces", "qty": 1, "amount_cents": 500}]
    for i in range(3):
        for pub in (online, offline):
            pub.presence("pantry", GONE, "enter", now + i)
            pub.presence("pantry", STAYS, "enter", now + i)
        till.checkout("lane-1", now + i, member=GONE, items=basket)
        till.checkout("lane-1", now + i, member=STAYS, items=basket)
    assert {name: ob.pending() for name, ob in outboxes.items()} == dict.fromkeys(outboxes, 6)

    said = _erase_with_the_cli(services, store, prefix, GONE)
    assert said.startswith(f"erased {GONE} in ") and "BLE ids revoked" in said, said

    # Redis: nothing mentions the member except its tombstone, the moment erase returns.
    left = {k: v for k, v in _everything(redis_client, keys).items() if GONE.encode() in v or GONE in k}
    assert list(left) == [keys.erased(GONE)]
    # The other member is untouched.
    assert redis_client.exists(keys.profile(STAYS), keys.visit(STAYS)) == 2

    # Every outbox drops the member's waiting events on the retained notice: the online
    # gateway's at once, the others' when they connect.
    offline.start(time.time())
    till.start(time.time())
    for name, ob in outboxes.items():
        _until(f"{name} drops the erased member's events", lambda ob=ob: ob.pending() == 3)  # type: ignore[misc]
        assert all(GONE.encode() not in r.payload for r in ob.after(0, 10)), name
        assert ob.health(time.time()).erased == 3, name
    for pub in (online, offline, till):
        pub.stop(time.time())

    # A late event, a redelivery or a CRM reload cannot bring the member back.
    assert enter(GONE, time.time()) == []
    load_into_redis(redis_client, keys, members, time.time())
    left = {k for k, v in _everything(redis_client, keys).items() if GONE.encode() in v or GONE in k}
    assert left == {keys.erased(GONE)}

    # The BLE fuser stops resolving them (live, from the notice; and after a restart).
    fuser = Fuser(config, resolver_for(store_config), topics)
    assert GONE in fuser.resolver
    notice = EnvelopeSource("recommender").make(ErasureNotice, time.time(), member=GONE)
    assert fuser.handle(topics.erasure(config.store, GONE), encode(notice), time.time()) == []
    assert GONE not in fuser.resolver
    assert GONE not in resolver_for(config) and STAYS in resolver_for(config)


def test_the_recommender_forgets_an_erased_member_no_dwell_check_no_rerouted_prompt(
    services: Endpoints,
    redis_client: redis.Redis,
    prefix: str,
    tmp_path: Path,
    collect: Callable[[list[str]], Collector],
) -> None:
    """The notice `floorwalker member erase` retains reaches the recommender: the member's
    dwell timer and their prompt still open for re-routing go; another member's stay."""
    store, config = _store_copy(tmp_path)
    assert config.crm is not None
    keys, topics, t0 = Keys(config.store, prefix), Topics(prefix), time.time()
    model = load_into_redis(redis_client, keys, read_crm(config.crm).members, t0)
    engine = Recommender(config, redis_client, topics, keys, model=model)
    reroute_after = engine.core.catalog.policy.reroute_after_s
    gateways = {"pantry": EnvelopeSource("gw-fresh"), "produce": EnvelopeSource("gw-produce")}
    gateways["dairy"] = EnvelopeSource("gw-dairy")

    def enter(zone: str, member: str) -> list[Prompt]:
        event = gateways[zone].make(PresenceEvent, t0, member=member, action="enter")
        out = engine.handle(topics.presence(config.store, zone), encode(event), t0)
        engine.after_publish()
        return [Prompt.model_validate_json(o.payload) for o in out if o.topic.endswith("/prompt")]

    def about(out: list[Outbound]) -> list[tuple[str, str | None]]:
        said = [Prompt.model_validate_json(o.payload) for o in out]
        return sorted((p.event_id, p.customer.member) for p in said)

    # Each of the two members has a greeting open for re-routing and a dwell timer running;
    # a third, with no prompt on entry, will earn the long-dwell one.
    [gone] = enter("pantry", GONE)
    [stays] = enter("dairy", STAYS)
    assert (gone.customer.member, stays.customer.member) == (GONE, STAYS)
    assert enter("produce", DWELLS) == []

    notices = collect([topics.subscription(TopicKind.ERASURE, config.store)])  # before the erasure
    _erase_with_the_cli(services, store, prefix, GONE)
    notices.wait_for(lambda msgs: len(msgs) == 1)
    [(topic, payload)] = notices.messages
    assert engine.handle(topic, payload, t0 + 1) == []
    engine.take_stats()

    # Not accepted in time: only the other member's greeting goes to the next associate.
    assert about(engine.tick(t0 + reroute_after + 5)) == [(stays.event_id, STAYS)]
    # Long dwell: the other two earn their prompt; for the erased member no check runs at
    # all (a script would refuse it, and count the refusal).
    dwell = [Prompt.model_validate_json(o.payload) for o in engine.tick(t0 + 130)]
    long_dwell = {p.customer.member for p in dwell if p.kind is PromptKind.LONG_DWELL_HELP}
    assert long_dwell == {STAYS, DWELLS}
    assert GONE not in {p.customer.member for p in dwell}
    checks = {k: v for k, v in engine.take_stats().items() if k.startswith("outcome:")}
    assert checks == {"outcome:ok": 2}
    assert "outcome:erased" not in engine.take_stats()
