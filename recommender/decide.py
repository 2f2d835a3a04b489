"""The Redis side of a decision: one pipelined read of what the core needs, and one Lua
call per event that deduplicates, updates the customer's state and claims the chosen
prompt — atomically, so a redelivered event or two replicas racing on one customer cannot
both claim it.

A batch costs two round trips when it holds a member not kept in memory: the reads of
those members (profile, visit, contact history), then the scripts of every event, each
pipelined; one when every member's state is kept (:mod:`recommender.member_cache`): the
presence script then checks that the state decided on is still the state in Redis.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import hiredis
import redis
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError

from recommender import cluster
from recommender.keys import Keys
from recommender.member_cache import Raw

#: Bytes read from Redis at a time (a batch's replies usually fit in one read).
_READ_SIZE = 65536


class Outcome(StrEnum):
    OK = "ok"
    DUPLICATE = "duplicate"
    UNKNOWN_MEMBER = "unknown_member"
    NO_CONSENT = "no_consent"
    OUT_OF_ORDER = "out_of_order"
    STALE = "stale"
    UNKNOWN = "unknown"
    ERASED = "erased"
    #: The state a presence event was decided on is no longer the member's state in Redis
    #: (the reply carries the state found): nothing was done, the event is decided again.
    CHANGED = "changed"
    #: Feedback the script turned down (``rest[0]``: not_holder or answered).
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Reply:
    """A script's answer: the outcome and what follows it (claim result, conversions...)."""

    outcome: Outcome
    rest: tuple[str, ...] = ()
    #: The member's state after the script (or, when CHANGED, the one it found), when the
    #: call asked for it: (profile, visit, contacts), or (visit, contacts) when the caller
    #: has the profile (a presence script never writes it).
    state: tuple[list[str], ...] | None = None

    @property
    def claimed(self) -> bool:
        return self.outcome is Outcome.OK and bool(self.rest) and self.rest[0] == "claimed"


def _load(name: str) -> str:
    lua = Path(__file__).resolve().parent / "lua"
    return (lua / "dedupe.lua").read_text() + "\n" + (lua / name).read_text()


SCRIPTS = {name: _load(f"{name}.lua") for name in ("presence", "checkout", "footfall", "feedback", "read")}
SHAS = {name: hashlib.sha1(src.encode()).hexdigest() for name, src in SCRIPTS.items()}


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _texts(flat: list[Any]) -> list[str]:
    # Only a Redis Cluster client replies in bytes here (our own connection decodes).
    return [v.decode() for v in flat] if flat and isinstance(flat[0], bytes) else flat


def parse_reply(reply: list[Any]) -> Reply:
    """A script's reply: a flat list (outcome, rest...), or ``{that list, state}`` from a
    presence call that asked for the member's state."""
    if reply and isinstance(reply[0], list):
        outcome, state = reply
        fields = [_text(v) for v in outcome]
        return Reply(Outcome(fields[0]), tuple(fields[1:]), tuple(_texts(part) for part in state))
    fields = [_text(v) for v in reply]
    return Reply(Outcome(fields[0]), tuple(fields[1:]))


def member_state(raw: Raw) -> MemberState:
    """The core's view of a state as Redis returned it."""
    profile, visit, contacts = (iter(part) for part in raw)
    return MemberState(
        dict(zip(profile, profile, strict=True)),
        dict(zip(visit, visit, strict=True)),
        [(m, float(s)) for m, s in zip(contacts, contacts, strict=True)],
        raw,
    )


def args(*values: str | int | float) -> list[str]:
    # repr keeps every digit of a float timestamp; Lua reads them back with tonumber.
    return [v if isinstance(v, str) else repr(v) for v in values]


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One EVALSHA to run: which script, on which keys, with which arguments."""

    script: str
    keys: list[str]
    args: list[str]


#: A raw Redis command: name and arguments.
Command = cluster.Command
#: Deferred writes to send ahead of a batch's scripts (taken when called).
Prelude = Callable[[], list[Command]]


@dataclass(frozen=True, slots=True)
class MemberState:
    """What the core reads about one member, from Redis (text, decoded by the client)."""

    profile: dict[str, str]
    visit: dict[str, str]
    contacts: list[tuple[str, float]]
    #: As Redis returned it (for :mod:`recommender.member_cache`).
    raw: Raw | None = None


class Decider:
    """Runs the reads and the scripts, many events per round trip.

    :meth:`run` sends a batch of calls as one non-transactional pipeline: Redis still runs
    each script atomically and in order (so one customer's events keep their order), but
    the client pays one round trip per batch instead of one per event.
    """

    def __init__(self, client: cluster.RedisClient, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        # Checked once: RedisCluster's bases include a typing Protocol, which makes every
        # isinstance() against it cost several microseconds (measured, twice per round trip).
        self._cluster: RedisCluster | None = client if isinstance(client, RedisCluster) else None
        self._conn: redis.connection.AbstractConnection | None = None
        self._reader = hiredis.Reader(encoding="utf-8", replyError=redis.ResponseError)
        self._lock = threading.Lock()
        self.load()

    def load(self) -> None:
        """(Re)load the scripts into Redis's script cache."""
        for source in SCRIPTS.values():
            self._client.script_load(source)

    def read(self, members: Sequence[str], since: float) -> list[MemberState | redis.ResponseError]:
        """Profile, visit and contact history (since ``since``) of each member: one round trip.

        A member whose keys cannot be read (a corrupted key) gets the error, not a crash.
        """
        if not members:
            return []
        k = self._keys
        calls = [
            ScriptCall("read", [k.profile(m), k.visit(m), k.contacts(m)], [repr(since)]) for m in members
        ]
        replies = self._execute(calls)[0]
        if any(isinstance(r, NoScriptError) for r in replies):
            self.load()
            replies = self._execute(calls)[0]
        out: list[MemberState | redis.ResponseError] = []
        for reply in replies:
            if isinstance(reply, redis.ResponseError):
                out.append(reply)
                continue
            profile, visit, contacts = (_texts(part) for part in reply)
            out.append(member_state((profile, visit, contacts)))
        return out

    def run(
        self, calls: Sequence[ScriptCall], prelude: Prelude | None = None
    ) -> list[Reply | redis.ResponseError]:
        """Run ``calls`` in order, one round trip; a script error is returned, not raised.

        Connection errors are raised: nothing in the batch is acknowledged, and a retry is
        safe because the scripts deduplicate on event id.
        """
        return self.run_then(calls, prelude)[0]

    def run_then(
        self, calls: Sequence[ScriptCall], prelude: Prelude | None = None, then: Sequence[Command] = ()
    ) -> tuple[list[Reply | redis.ResponseError], list[Any]]:
        """:meth:`run`, with ``then`` sent after the scripts in the same round trip; their
        replies (an error in its place) come second."""
        if not calls:
            return [], (self.raw(then) if then else [])
        replies, after = self._execute(calls, prelude, then)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:  # Redis restarted or its script cache was flushed: load and rerun those
            self.load()
            for i, reply in zip(missing, self._execute([calls[i] for i in missing])[0], strict=True):
                replies[i] = reply
        parsed = [r if isinstance(r, redis.ResponseError) else parse_reply(r) for r in replies]
        return parsed, after

    def one(self, call: ScriptCall) -> Reply:
        result = self.run([call])[0]
        if isinstance(result, redis.ResponseError):
            raise result
        return result

    def _execute(
        self, calls: Sequence[ScriptCall], prelude: Prelude | None = None, then: Sequence[Command] = ()
    ) -> tuple[list[Any], list[Any]]:
        """(the calls' replies, ``then``'s replies)."""
        before = prelude() if prelude is not None else []
        refused: dict[int, cluster.CrossSlotScript] = {}
        if self._cluster is not None:
            # Checked here, where the script's name is known: the error names it.
            for i, c in enumerate(calls):
                try:
                    cluster.check_one_slot(c.script, c.keys)
                except cluster.CrossSlotScript as exc:
                    refused[i] = exc
        sent = [c for i, c in enumerate(calls) if i not in refused]
        commands = before + [("EVALSHA", SHAS[c.script], len(c.keys), *c.keys, *c.args) for c in sent]
        everything = self.raw([*commands, *then])
        replies = iter(everything[len(before) : len(commands)])
        # A refused call's error stands in its place (a ResponseError: the event is dead-lettered).
        return [
            redis.ResponseError(str(refused[i])) if i in refused else next(replies) for i in range(len(calls))
        ], everything[len(commands) :]

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.disconnect()  # type: ignore[no-untyped-call]
            self._conn = None

    def _socket(self) -> socket.socket:
        """Our own connection, held (the pool's checks on every get and release cost more
        than the round trip's own work). redis-py connects it (address, TLS, AUTH, db);
        from then on the hot path speaks RESP through hiredis directly: redis-py's
        per-command packing and reply reading cost ~16 µs a round trip (measured)."""
        if self._conn is None:
            assert isinstance(self._client, redis.Redis)  # a cluster goes through cluster.send
            pool = self._client.connection_pool
            conn: redis.connection.AbstractConnection = pool.connection_class(**pool.connection_kwargs)
            conn.connect()  # type: ignore[no-untyped-call]
            self._conn = conn
            # Replies decoded to text in C (cheaper than decoding every profile field here).
            self._reader = hiredis.Reader(encoding="utf-8", replyError=redis.ResponseError)
        sock = self._conn._sock
        if sock is None:
            raise redis.ConnectionError("the Redis connection closed while connecting")
        return sock

    def raw(self, commands: Sequence[Command]) -> list[Any]:
        """Send ``commands`` in one write and read every reply: a pipeline without
        redis-py's per-pipeline machinery (measured: a sizeable part of an event's CPU).
        A command's error is returned in its place; a connection error is raised (and the
        connection dropped: the next call connects again).
        On Redis Cluster each node owning a slot in the batch gets its own packed write."""
        if self._cluster is not None:
            return cluster.send(self._cluster, commands)
        with self._lock:
            try:
                sock = self._socket()
                # (hiredis's stub types the argument as a 1-tuple; any length is fine.)
                sock.sendall(b"".join([hiredis.pack_command(c) for c in commands]))  # type: ignore[arg-type]
                replies: list[Any] = []
                reader = self._reader
                while len(replies) < len(commands):
                    reply = reader.gets()
                    if reply is False:
                        data = sock.recv(_READ_SIZE)
                        if not data:
                            raise redis.ConnectionError("Redis closed the connection")
                        reader.feed(data)
                    elif isinstance(reply, redis.ResponseError) and str(reply).startswith("NOSCRIPT"):
                        replies.append(NoScriptError(str(reply)))
                    else:
                        replies.append(reply)
                return replies
            except TimeoutError as exc:
                self._drop()
                raise redis.TimeoutError(f"Redis did not answer in time ({exc})") from exc
            except (redis.ConnectionError, hiredis.ProtocolError, OSError) as exc:
                self._drop()
                if isinstance(exc, redis.ConnectionError):
                    raise
                raise redis.ConnectionError(f"Redis connection failed ({exc})") from exc
