"""Erasure of one member (``floorwalker member erase ID``), at once and for good.

1. Redis: the member's profile, visit, dedupe set, contact history, suggestions and
   unsent prompts; the recommender's and the handheld API's record of every prompt about
   them; their prompts in the associates' handheld streams; dead-letter records that quote
   their id.
2. A tombstone (``cust:{m}:erased``, no TTL, holding only the erasure time) in the
   member's slot: the presence and checkout scripts check it before anything else, so a
   late or redelivered event cannot bring the member back, and the CRM loader skips them.
3. A retained :class:`~broker_config.contract.ErasureNotice`: gateways and POS adapters
   delete the member's events still waiting in their outboxes (also those offline now,
   when they reconnect), the BLE fuser stops resolving the member's ids, the recommender
   forgets them in memory.
4. The BLE key file (when the store has one) lists the member as revoked, so the fuser
   keeps ignoring them after a restart.
5. Redis's append-only file is rewritten (``BGREWRITEAOF``, waited for): until then the
   deleted values would still be on disk in the commands that wrote them.

Everything here is synchronous: when :func:`erase_member` returns, Redis holds no more
data about the member and the notice is on the broker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

import redis

from broker_config.contract import EnvelopeSource, ErasureNotice, Prompt, Topics, encode
from floorwalker.config import StoreConfig
from floorwalker.errors import ServiceUnavailable
from floorwalker.mqtt import MqttLink
from recommender.keys import DEADLETTER_MAXLEN, Keys


@dataclass(frozen=True, slots=True)
class Erased:
    member: str
    keys_deleted: int
    prompts_deleted: int
    stream_entries_deleted: int
    deadletters_deleted: int
    ble_revoked: bool


def erase_member(
    client: redis.Redis,
    keys: Keys,
    topics: Topics,
    config: StoreConfig,
    member: str,
    now: float,
    link: MqttLink | None,
) -> Erased:
    """Erase ``member`` (a validated :data:`~broker_config.contract.MemberRef`)."""
    # The tombstone first: from this moment the scripts refuse the member's events.
    client.set(keys.erased(member), f"{now:.0f}")
    prompt_ids = _prompt_ids(client, keys, member)
    member_keys = [
        keys.profile(member),
        keys.visit(member),
        keys.member_seen(member),
        keys.contacts(member),
        keys.suggested(member),
        keys.unsent(member),
    ]
    pipe = client.pipeline(transaction=False)
    pipe.delete(*member_keys)
    for pid in prompt_ids:
        # One key per DEL: on Redis Cluster the two records live in different slots.
        pipe.delete(keys.prompt(pid))
        pipe.delete(keys.handheld_prompt(pid))
    deleted = pipe.execute()
    needle = member.encode()
    streams = 0
    for associate in config.associates:
        streams += _xdel_matching(client, keys.handheld_prompts(associate.id), needle, 1_000)
    deadletters = _xdel_matching(client, keys.deadletter, needle, DEADLETTER_MAXLEN * 2)
    revoked = _revoke_ble(config, member)
    rewrite_aof(client)
    if link is not None:
        notice = EnvelopeSource("recommender").make(ErasureNotice, now, member=member)
        info = link.publish(topics.erasure(config.store, member), encode(notice), qos=1, retain=True)
        info.wait_for_publish(5.0)
    return Erased(
        member,
        int(deleted[0]),
        sum(int(n) for n in deleted[1:]),
        streams,
        deadletters,
        revoked,
    )


def rewrite_aof(client: redis.Redis, timeout_s: float = 120.0) -> bool:
    """Rewrite Redis's append-only file and wait until the new one is in place, so deleted
    values leave the disk too; False when Redis keeps no AOF. (On Redis Cluster run
    ``redis-cli --cluster call HOST:PORT BGREWRITEAOF`` after an erasure.)"""
    if not isinstance(client, redis.Redis):
        return False
    info = _persistence(client)
    if not info.get("aof_enabled"):
        return False
    before = int(info.get("aof_rewrites", 0))
    try:
        client.execute_command("BGREWRITEAOF")  # type: ignore[no-untyped-call]  # scheduled if one is running: ours starts after it
    except redis.ResponseError as exc:
        if "already in progress" not in str(exc):
            raise
    deadline = time.monotonic() + timeout_s
    while True:
        info = _persistence(client)
        done = int(info.get("aof_rewrites", before)) > before or "aof_rewrites" not in info
        if done and not info.get("aof_rewrite_in_progress") and not info.get("aof_rewrite_scheduled"):
            break
        if time.monotonic() > deadline:
            raise ServiceUnavailable(
                f"Redis did not finish rewriting its append-only file within {timeout_s:.0f} s: "
                "the erased data is gone from memory; run `redis-cli BGREWRITEAOF` and check its log"
            )
        time.sleep(0.05)
    if info.get("aof_last_bgrewrite_status") != "ok":
        raise ServiceUnavailable(
            "Redis could not rewrite its append-only file (aof_last_bgrewrite_status "
            f"{info.get('aof_last_bgrewrite_status')!r}): see its log, then `redis-cli BGREWRITEAOF`"
        )
    return True


def _persistence(client: redis.Redis) -> dict[str, Any]:
    return cast(dict[str, Any], client.info("persistence"))


def _prompt_ids(client: redis.Redis, keys: Keys, member: str) -> set[str]:
    """Prompts about the member: their contact history names each one (``p|action|id``)."""
    ids: set[str] = set()
    entries: list[bytes] = client.zrange(keys.contacts(member), 0, -1)  # type: ignore[assignment]
    for entry in entries:
        parts = entry.decode().split("|")
        if len(parts) == 3 and parts[0] in ("p", "x"):
            ids.add(parts[2])
    blobs: list[bytes] = client.hvals(keys.unsent(member))  # type: ignore[assignment]
    for blob in blobs:
        _, _, payload = blob.partition(b"\n")
        ids.add(Prompt.model_validate_json(payload).event_id)
    return ids


def _xdel_matching(client: redis.Redis, stream: str, needle: bytes, limit: int) -> int:
    """Delete the entries of a capped stream whose fields mention ``needle``."""
    doomed = [
        sid
        for sid, fields in client.xrange(stream, count=limit)  # type: ignore[union-attr]
        if any(needle in v for v in fields.values())
    ]
    if doomed:
        client.xdel(stream, *doomed)
    return len(doomed)


def _revoke_ble(config: StoreConfig, member: str) -> bool:
    path = config.ble_presence.secrets
    if path is None or not path.is_file():
        return False
    from floorwalker.ble_keys import read_key_file, write_key_file

    key = read_key_file(path)
    if member not in key.revoked:
        write_key_file(path, key.model_copy(update={"revoked": [*key.revoked, member]}))
    return True
