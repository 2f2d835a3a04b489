"""Redis Cluster for the recommender: the client chosen by URL scheme, a packed batch routed
by slot, and scripts refused before they run when their keys span slots.

``redis+cluster://host:port`` (or ``rediss+cluster://``) selects redis-py's
:class:`~redis.cluster.RedisCluster`; ``redis://`` stays a single Redis. Every Lua script
of the recommender touches the keys of one customer, one lane or one zone, all sharing a
hash tag (:mod:`recommender.keys`), so each script runs on one cluster slot. A call whose
keys span slots is a :class:`CrossSlotScript` naming the script and its keys, raised
before anything is sent: on a single Redis the same script would run, and quietly stop
running the day the store moves to a cluster.

A batch (reads, deferred writes, scripts) is split by the node that owns each command's
slot and sent to each node as one packed write. Commands of one slot go to one node in
their original order, so one customer's events keep their order, as on a single Redis.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import AskError, ClusterDownError, MovedError, RedisClusterException, TryAgainError

from floorwalker.errors import ConfigError, PermanentError, ServiceUnavailable
from floorwalker.redis_accounts import redact

#: URL schemes that select Redis Cluster (the part after ``+`` is dropped for redis-py).
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

#: Either client; the recommender works with both.
RedisClient = redis.Redis | RedisCluster

#: A raw Redis command: name and arguments (as :mod:`recommender.decide` sends them).
Command = tuple[str | bytes | int | float, ...]


class CrossSlotScript(PermanentError):
    """A Lua script was given keys on more than one Redis Cluster slot."""


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def connect(url: str) -> RedisClient:
    """A client that answered PING: :class:`RedisCluster` for a ``redis+cluster://`` URL.

    One line when Redis cannot be reached, or when a cluster URL points at a Redis that is
    not a cluster (no silent fallback to a single node)."""
    if not is_cluster_url(url):
        client: RedisClient = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=3, health_check_interval=30
        )
        what = "Redis"
    else:
        parts = urlsplit(url)
        plain = urlunsplit((CLUSTER_SCHEMES[parts.scheme], *parts[1:]))
        what = "Redis Cluster"
        try:
            client = RedisCluster.from_url(plain, socket_timeout=5, socket_connect_timeout=3)  # type: ignore[no-untyped-call]
        except (redis.RedisError, RedisClusterException) as exc:
            if (
                "cluster mode is not enabled" in str(exc).lower()
                or "cluster support disabled" in str(exc).lower()
            ):
                raise ConfigError(
                    f"{redact(url)} names Redis Cluster but the Redis there runs without cluster mode "
                    "(cluster-enabled no): use a redis:// URL for a single Redis, or point at a cluster"
                ) from None
            raise ServiceUnavailable(
                f"cannot reach Redis Cluster at {redact(url)} ({exc}): check that every master is up "
                "and the cluster state is ok (`redis-cli cluster info`)"
            ) from None
    try:
        client.ping()
    except redis.AuthenticationError as exc:
        client.close()
        # A store run with --secrets: no anonymous user, and a wrong password is final too.
        raise ConfigError(
            f"{what} at {redact(url)} refused our login ({exc}): pass --redis-credentials FILE "
            "(or FLOORWALKER_REDIS_CREDENTIALS), a service's devices/svc-NAME.json or the "
            "operator's devices/redis-admin.json from the secrets directory"
        ) from None
    except redis.RedisError as exc:
        raise ServiceUnavailable(
            f"cannot reach {what} at {redact(url)} ({exc}): start it with `floorwalker services up` "
            "or point --redis-url at a running Redis"
        ) from None
    return client


def check_one_slot(script: str, keys: Sequence[str]) -> int:
    """The one slot of a script's keys, or :class:`CrossSlotScript` naming what differs."""
    slots = {key: key_slot(key.encode()) for key in keys}
    distinct = set(slots.values())
    if len(distinct) > 1:
        listed = ", ".join(f"{k} (slot {s})" for k, s in slots.items())
        raise CrossSlotScript(
            f"Lua script {script!r} would touch keys on {len(distinct)} Redis Cluster slots: {listed}; "
            "every key of one script must share a hash tag {...} (recommender/keys.py)"
        )
    return distinct.pop() if distinct else 0


def command_slot(command: Command) -> int:
    """The slot of one command the recommender sends (EVALSHA: its keys; else its key)."""
    name = str(command[0]).upper()
    if name in ("EVALSHA", "EVAL"):
        n = int(command[2])
        keys = [str(k) for k in command[3 : 3 + n]]
        return check_one_slot(str(command[1]), keys)
    return key_slot(str(command[1]).encode())


def send(client: RedisCluster, commands: Sequence[Command]) -> list[Any]:
    """Send ``commands`` to the nodes owning their slots, one packed write per node.

    Replies come back in the order of ``commands``; a command's error is returned in its
    place. A command redirected (MOVED/ASK: the cluster is resharding or failing over) is
    sent again through redis-py, which follows the redirection and refreshes its slot map.
    Connection errors are raised (the caller retries the batch; the scripts deduplicate).
    """
    by_node: dict[str, tuple[Any, list[int]]] = {}
    for i, command in enumerate(commands):
        node = client.nodes_manager.get_node_from_slot(command_slot(command))
        by_node.setdefault(node.name, (node, []))[1].append(i)
    replies: list[Any] = [None] * len(commands)
    for node, indexes in by_node.values():
        pool = node.redis_connection.connection_pool
        conn = pool.get_connection()
        try:
            batch = [commands[i] for i in indexes]
            conn.send_packed_command(conn.pack_commands(batch))
            for i in indexes:
                try:
                    replies[i] = conn.read_response()
                except redis.ResponseError as exc:
                    replies[i] = exc
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            conn.disconnect()
            # A master may have failed over: learn the new slot map before the retry.
            with contextlib.suppress(redis.RedisError):
                client.nodes_manager.initialize()  # type: ignore[no-untyped-call]
            raise
        finally:
            pool.release(conn)
    for i, reply in enumerate(replies):
        if isinstance(reply, (MovedError, AskError, TryAgainError, ClusterDownError)):
            try:
                replies[i] = client.execute_command(*commands[i])  # type: ignore[no-untyped-call]
            except redis.ResponseError as exc:
                replies[i] = exc
    return replies
