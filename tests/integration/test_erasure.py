"""`floorwalker member erase`: everything about the member goes at once, on the real
Redis and broker; a tombstone keeps a late event or a CRM reload from bringing them back."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import redis

from broker_config.contract import EnvelopeSource, ErasureNotice, PresenceEvent, Topics, encode
from edge_agent.outbox import Outbox
from edge_agent.publisher import EdgePublisher
from floorwalker.config import Endpoints, StoreConfig
from floorwalker.mqtt import MqttLink
from presence.fuser import Fuser, resolver_for
from recommender.crm import load_into_redis, read_crm
from recommender.engine import Recommender
from recommender.erasure import erase_member
from recommender.keys import Keys

pytestmark = pytest.mark.integration

GONE, STAYS = "m_chen0001", "m_haddad008"


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
    assert store_config.ble_presence.secrets is not None and store_config.crm is not None
    secrets = tmp_path / "ble_keys.json"
    shutil.copy(store_config.ble_presence.secrets, secrets)
    config = store_config.model_copy(
        update={"ble_presence": store_config.ble_presence.model_copy(update={"secrets": secrets})}
    )
    keys, topics, now = Keys(config.store, prefix), Topics(prefix), time.time()
    members = read_crm(store_config.crm).members
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

    # A gateway holds the member's events in its outbox (no recommender acknowledges them).
    outbox = Outbox(tmp_path / "outbox.db")
    pub = EdgePublisher(
        config.store, "gw-fresh", services.mqtt_host, services.mqtt_port, topics=topics, outbox=outbox
    )
    pub.start(now)
    for i in range(3):
        pub.presence("pantry", GONE, "enter", now + i)
        pub.presence("pantry", STAYS, "enter", now + i)
    assert outbox.pending() == 6

    link = MqttLink(services.mqtt_host, services.mqtt_port, client_id=f"{prefix[:-1]}-erase")
    link.connect()
    t0 = time.perf_counter()
    done = erase_member(redis_client, keys, topics, config, GONE, time.time(), link)
    erase_ms = (time.perf_counter() - t0) * 1000
    link.close()

    # Redis: nothing mentions the member except its tombstone, the moment erase returns.
    left = {k: v for k, v in _everything(redis_client, keys).items() if GONE.encode() in v or GONE in k}
    assert list(left) == [keys.erased(GONE)]
    assert done.prompts_deleted >= 1 and done.stream_entries_deleted == 1 and done.deadletters_deleted == 1
    # The other member is untouched.
    assert redis_client.exists(keys.profile(STAYS), keys.visit(STAYS)) == 2

    # The gateway's outbox drops the member's waiting events on the retained notice.
    t1 = time.perf_counter()
    while outbox.pending() != 3 and time.perf_counter() - t1 < 10:
        time.sleep(0.02)
    outbox_ms = (time.perf_counter() - t1) * 1000 + erase_ms
    assert outbox.pending() == 3
    assert all(GONE.encode() not in r.payload for r in outbox.after(0, 10))
    assert outbox.health(time.time()).erased == 3
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
    print(f"\nERASE redis_ms={erase_ms:.0f} outbox_ms={outbox_ms:.0f}")
