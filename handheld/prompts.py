"""Each associate's prompts: a capped Redis stream (for pages that reconnect) and a live
fan-out to the pages open now.

A prompt arrives once per associate however often MQTT redelivers it: its owner record
(``HSETNX``) is written first and only the first writer appends it to the stream. The
stream id orders the prompts; the SSE stream uses it as the event id, so a reconnecting
page names the last prompt it saw and gets exactly the ones after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import redis
from pydantic import BaseModel, ConfigDict, Field
from redis.cluster import RedisCluster

from broker_config.contract import DismissReason, Prompt, PromptKind
from handheld import sse
from handheld.auth import live_sessions, session_valid
from recommender.keys import PROMPT_STREAM_MAXLEN, PROMPT_TTL_S, Keys

log = logging.getLogger(__name__)

Outcome = Literal["accepted", "dismissed", "done"]
#: Outcomes after which a prompt is closed (accepted still needs a "done").
CLOSED: Final = frozenset({"dismissed", "done"})
#: Prompts a freshly opened page gets.
RECENT: Final = 20
#: Per-page queue bound: a page that falls this far behind is made to reconnect and resume.
QUEUE_SIZE: Final = 100
GUEST: Final = "Guest"
#: Shown when a member's profile has no name: the prompt is still useful.
UNNAMED_MEMBER: Final = "Member"
_SID = re.compile(r"^(\d{1,20})-(\d{1,20})$")
#: Each half of a Redis stream id is an unsigned 64-bit number.
_SID_LIMIT: Final = 2**64


def parse_sid(value: str | None) -> tuple[int, int] | None:
    """A Redis stream id as a comparable pair, or None if ``value`` is not one."""
    m = _SID.fullmatch(value or "")
    if m is None:
        return None
    ms, seq = int(m.group(1)), int(m.group(2))
    return (ms, seq) if ms < _SID_LIMIT and seq < _SID_LIMIT else None


class HandheldPrompt(BaseModel):
    """A prompt as the handheld shows it: the wire prompt plus the locally added name."""

    model_config = ConfigDict(frozen=True)

    prompt_id: str
    associate: str
    kind: PromptKind
    #: Display name for members, "Guest" for non-members; never sent over MQTT.
    customer_name: str
    member: str | None
    tier: str | None
    points: int | None
    zone: str | None
    lane: str | None
    headline: str
    suggestion: str
    why: str
    ts: float
    #: When the sensed event happened (the customer arrived): "how long they've been there".
    since: float
    expires_at: float
    #: Position in the associate's stream (the SSE event id); empty until stored.
    sid: str = ""
    #: The associate's latest answer, if any.
    outcome: Outcome | None = None
    dismiss_reason: DismissReason | None = None
    #: Set on a re-route's delivery: the associate it moved from (never stored or sent).
    moved_from: str | None = Field(default=None, exclude=True)

    @classmethod
    def from_prompt(cls, associate: str, prompt: Prompt, name: str | None) -> HandheldPrompt:
        c = prompt.customer
        return cls(
            prompt_id=prompt.event_id,
            associate=associate,
            kind=prompt.kind,
            customer_name=GUEST if c.member is None else (name or UNNAMED_MEMBER),
            member=c.member,
            tier=c.tier,
            points=c.points,
            zone=prompt.zone,
            lane=prompt.lane,
            headline=prompt.headline,
            suggestion=prompt.suggestion,
            why=prompt.why,
            ts=prompt.ts,
            since=prompt.cause_ts,
            expires_at=prompt.expires_at,
        )

    def is_open(self, now: float) -> bool:
        return self.outcome not in CLOSED and now <= self.expires_at


@dataclass(frozen=True, slots=True)
class Stored:
    """A prompt newly stored for its associate, and the sessions its open pages may show it on."""

    view: HandheldPrompt
    #: The sessions whose validity was read when it was stored (the pages open then).
    checked: frozenset[str] = frozenset()
    #: Of those, the ones still valid: the others' pages are ended instead of shown it.
    live: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class PromptRecord:
    """Whose a prompt is and what became of it (the owner hash)."""

    associate: str
    kind: str
    outcome: Outcome | None
    member: str | None


#: Storing one prompt in one round trip: drop it if its member was erased; claim its
#: delivery to this associate in the owner record (``to:{associate}``: a redelivery stops
#: here; a re-route to another associate under the same id is a new delivery, and the
#: record's holder moves to them); look up the member's display name; append the view to
#: the associate's stream with that name (JSON-encoded by cjson, spliced between the view's
#: two halves); then the record's fields, its expiry and the member's index (for erasure).
#: Last, in the same step, the expiry of each session that has a page of the associate open
#: (its page gets the prompt only if its session is still valid: no round trip per page).
#: KEYS: owner record, stream, member's index, erasure tombstone, profile (the last three
#: unused for a guest), then the open pages' session records. ARGV: associate, kind, member
#: ('' for a guest), prompt id, TTL, stream MAXLEN, the view's JSON before and after the
#: name, the name when none is found, when it was delivered ('at': to this holder; time to
#: accept counts from there). Replies {0} erased, {1} a redelivery, {2, stream id, name
#: shown, previous holder or '', each session's expires_at (nil: none)}.
_ADD_LUA: Final = """
local member = ARGV[3]
if member ~= '' and redis.call('EXISTS', KEYS[4]) == 1 then return {0} end
if redis.call('HSETNX', KEYS[1], 'to:' .. ARGV[1], '1') == 0 then return {1} end
local before = redis.call('HGET', KEYS[1], 'associate') or ''
local shown = ARGV[9]
if member ~= '' then
  local name = redis.call('HGET', KEYS[5], 'name')
  if name and name ~= '' then shown = name end
end
local sid = redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'p',
  ARGV[7] .. cjson.encode(shown) .. ARGV[8])
if type(sid) == 'table' and sid.err then
  redis.call('HDEL', KEYS[1], 'to:' .. ARGV[1])  -- let the redelivery store it
  return sid
end
redis.call('HSET', KEYS[1], 'associate', ARGV[1], 'kind', ARGV[2], 'member', member, 'sid', sid,
  'at', ARGV[10])
redis.call('EXPIRE', KEYS[1], ARGV[5])
if member ~= '' then
  redis.call('SADD', KEYS[3], ARGV[4])
  redis.call('EXPIRE', KEYS[3], ARGV[5])
end
local reply = {2, sid, shown, before}
for i = 6, #KEYS do reply[#reply + 1] = redis.call('HGET', KEYS[i], 'expires_at') end
return reply
"""
_NAME_FIELD: Final = '"customer_name":'
#: A stored view's prompt id (its first field), without parsing the whole view.
_PROMPT_ID: Final = re.compile(rb'^\{"prompt_id":"([0-9a-f]{32})"')

#: One answer per prompt, atomically, from its holder (or a manager): checks who holds it
#: and whether it is still open, and records the answer, in one step, so that of many
#: answers sent at once exactly one wins. KEYS: owner record. ARGV: who answers, '1' if a
#: manager, outcome, reason ('' for none), now. Replies {'ok', the outcome before ('' for
#: none)}, {'missing'}, {'not_holder', holder} or {'closed', its outcome}.
_ANSWER_LUA: Final = """
local r = redis.call('HMGET', KEYS[1], 'associate', 'outcome')
if not r[1] then return {'missing'} end
if ARGV[2] ~= '1' and r[1] ~= ARGV[1] then return {'not_holder', r[1]} end
local before = r[2] or ''
if before == 'dismissed' or before == 'done' or before == ARGV[3] then return {'closed', before} end
redis.call('HSET', KEYS[1], 'outcome', ARGV[3], 'reason', ARGV[4], 'by', ARGV[1], ARGV[3] .. '_at', ARGV[5])
return {'ok', before}
"""


class PromptStore:
    """The Redis side: owner records and per-associate streams. Blocking: call off the loop."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys
        # On Redis Cluster the prompt's keys live in different slots: one command each there.
        self._one_script = not isinstance(client, RedisCluster)
        self._add_script = client.register_script(_ADD_LUA)
        self._answer_script = client.register_script(_ANSWER_LUA)

    def add_prompt(
        self, associate: str, prompt: Prompt, now: float | None = None
    ) -> HandheldPrompt | Literal["erased", "redelivered"]:
        """Store a prompt as its associate's page shows it (with the member's display name,
        read here: names never travel over MQTT) and return it with its stream id; or say
        that it was about an erased member (dropped) or is a redelivery (already stored).
        ``now``: when it was delivered (the dashboard's time to accept counts from there;
        None records none). One round trip on a single Redis."""
        stored = self.store_prompt(associate, prompt, now)
        return stored if isinstance(stored, str) else stored.view

    def store_prompt(
        self,
        associate: str,
        prompt: Prompt,
        now: float | None = None,
        sessions: Sequence[str] = (),
    ) -> Stored | Literal["erased", "redelivered"]:
        """:meth:`add_prompt`, and in the same round trip which of ``sessions`` (the public
        ids of the sessions whose pages are open) are still valid: only their pages may show
        it."""
        [stored] = self.store_prompts([(associate, prompt, now, sessions)])
        return stored

    def store_prompts(
        self, prompts: Sequence[tuple[str, Prompt, float | None, Sequence[str]]]
    ) -> list[Stored | Literal["erased", "redelivered"]]:
        """:meth:`store_prompt` for each (associate, prompt, when delivered, open pages'
        sessions), in order, in one round trip on a single Redis (prompts that queued up
        while the API was busy). A Redis error raises: some may be stored, and storing
        them again is a redelivery."""
        if not self._one_script:
            return [self._store_apart(*item) for item in prompts]
        pipe = self._redis.pipeline(transaction=False)
        views = []
        for associate, prompt, now, sessions in prompts:
            view, keys, args = self._script_call(associate, prompt, now, sessions)
            self._add_script(keys, args, client=pipe)
            views.append(view)
        replies: list[list[Any]] = pipe.execute()
        checked_at = time.time()
        return [
            self._stored(view, reply, sessions, checked_at)
            for view, reply, (_, _, _, sessions) in zip(views, replies, prompts, strict=True)
        ]

    def _script_call(
        self, associate: str, prompt: Prompt, now: float | None, sessions: Sequence[str]
    ) -> tuple[HandheldPrompt, list[str], list[Any]]:
        """The view without its name, and the store script's keys and arguments."""
        member = prompt.customer.member
        view = HandheldPrompt.from_prompt(associate, prompt, None)
        data = view.model_dump_json()
        # The field order puts the name after ids and the kind, which cannot hold the needle.
        at = data.index(_NAME_FIELD) + len(_NAME_FIELD)
        value = json.dumps(view.customer_name)
        head, tail = data[:at], data[at + len(value) :]
        k = self._keys
        keys = [k.handheld_prompt(view.prompt_id), k.handheld_prompts(associate)]
        if member is None:
            keys += [keys[0]] * 3
        else:
            keys += [k.member_handheld_prompts(member), k.erased(member), k.profile(member)]
        keys += [k.session(sid) for sid in sessions]
        delivered = "" if now is None else f"{now:.3f}"
        args: list[Any] = [associate, view.kind.value, member or "", view.prompt_id, PROMPT_TTL_S,
                           PROMPT_STREAM_MAXLEN, head, tail, view.customer_name, delivered]  # fmt: skip
        return view, keys, args

    @staticmethod
    def _stored(
        view: HandheldPrompt, reply: list[Any], sessions: Sequence[str], now: float
    ) -> Stored | Literal["erased", "redelivered"]:
        """The store script's reply as what became of the prompt."""
        if reply[0] == 0:
            return "erased"
        if reply[0] == 1:
            return "redelivered"
        sid, name, before = (
            v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in reply[1:4]
        )
        live = frozenset(
            s for s, expires in zip(sessions, reply[4:], strict=True) if session_valid(expires, now)
        )
        moved = before if before and before != view.associate else None
        view = view.model_copy(update={"sid": sid, "customer_name": name, "moved_from": moved})
        return Stored(view, frozenset(sessions), live)

    def _store_apart(
        self, associate: str, prompt: Prompt, now: float | None, sessions: Sequence[str]
    ) -> Stored | Literal["erased", "redelivered"]:
        """:meth:`store_prompt` one command at a time (Redis Cluster)."""
        apart = self._add_apart(associate, prompt, "" if now is None else f"{now:.3f}")
        if isinstance(apart, str):
            return apart
        alive = live_sessions(self._redis, self._keys, list(sessions), time.time()) if sessions else set()
        return Stored(apart, frozenset(sessions), frozenset(alive))

    def _add_apart(
        self, associate: str, prompt: Prompt, at: str = ""
    ) -> HandheldPrompt | Literal["erased", "redelivered"]:
        """:meth:`add_prompt` one command at a time (Redis Cluster)."""
        member = prompt.customer.member
        if member is not None and self._redis.exists(self._keys.erased(member)):
            return "erased"
        view = HandheldPrompt.from_prompt(associate, prompt, self._display_name(member))
        stored = self.add(view, at)
        return "redelivered" if stored is None else stored

    def _display_name(self, member: str | None) -> str | None:
        if member is None:
            return None
        try:
            raw: object = self._redis.hget(self._keys.profile(member), "name")
        except redis.RedisError as exc:
            # A prompt without a name beats no prompt: deliver it anyway.
            log.warning("could not read the name of %s from Redis (%s)", member, exc)
            return None
        if isinstance(raw, bytes):
            return raw.decode(errors="replace")
        return raw if isinstance(raw, str) else None

    def add(self, view: HandheldPrompt, at: str = "") -> HandheldPrompt | None:
        """Store a new prompt and return it with its stream id; None for a redelivery.
        ``at``: when it was delivered (Unix seconds as text; '' for unknown)."""
        key = self._keys.handheld_prompt(view.prompt_id)
        delivery = f"to:{view.associate}"
        if not self._redis.hsetnx(key, delivery, "1"):
            return None
        raw_before: object = self._redis.hget(key, "associate")
        before = raw_before.decode() if isinstance(raw_before, bytes) else None
        try:
            sid_raw = self._redis.xadd(
                self._keys.handheld_prompts(view.associate),
                {"p": view.model_dump_json()},
                maxlen=PROMPT_STREAM_MAXLEN,
                approximate=True,
            )
        except redis.RedisError:
            # Let the redelivery store it: forget that we claimed it (best effort).
            with contextlib.suppress(redis.RedisError):
                self._redis.hdel(key, delivery)
            raise
        sid = sid_raw.decode() if isinstance(sid_raw, bytes) else str(sid_raw)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(
            key,
            mapping={
                "associate": view.associate,
                "kind": view.kind.value,
                "member": view.member or "",
                "sid": sid,
                "at": at,
            },
        )
        pipe.expire(key, PROMPT_TTL_S)
        if view.member is not None:
            index = self._keys.member_handheld_prompts(view.member)
            pipe.sadd(index, view.prompt_id)
            pipe.expire(index, PROMPT_TTL_S)
        pipe.execute()
        moved = before if before and before != view.associate else None
        return view.model_copy(update={"sid": sid, "moved_from": moved})

    def record(self, prompt_id: str) -> PromptRecord | None:
        raw: dict[bytes, bytes] = self._redis.hgetall(self._keys.handheld_prompt(prompt_id))  # type: ignore[assignment]
        if not raw:
            return None
        r = {k.decode(): v.decode() for k, v in raw.items()}
        outcome = r.get("outcome")
        return PromptRecord(
            associate=r.get("associate", ""),
            kind=r.get("kind", ""),
            outcome=outcome if outcome in ("accepted", "dismissed", "done") else None,  # type: ignore[arg-type]
            member=r.get("member") or None,
        )

    def answer(
        self,
        prompt_id: str,
        who: str,
        manager: bool,
        outcome: Outcome,
        reason: DismissReason | None,
        now: float,
    ) -> tuple[str, str]:
        """Record ``who``'s answer if they hold the prompt (or are a manager) and it is still
        open, atomically: ``("ok", outcome before)``, ``("missing", "")``, ``("not_holder",
        holder)`` or ``("closed", its outcome)``."""
        reply: list[Any] = self._answer_script(
            [self._keys.handheld_prompt(prompt_id)],
            [who, "1" if manager else "0", outcome, reason.value if reason else "", f"{now:.3f}"],
        )
        verdict, *rest = (v.decode() if isinstance(v, bytes) else str(v) for v in reply)
        return verdict, rest[0] if rest else ""

    def undo_answer(self, prompt_id: str, before: str) -> None:
        """The answer could not be published: the prompt is open again as it was."""
        key = self._keys.handheld_prompt(prompt_id)
        if before:
            self._redis.hset(key, mapping={"outcome": before, "reason": ""})
        else:
            self._redis.hdel(key, "outcome", "reason")

    def set_outcome(self, prompt_id: str, outcome: Outcome, reason: DismissReason | None) -> None:
        self._redis.hset(
            self._keys.handheld_prompt(prompt_id),
            mapping={"outcome": outcome, "reason": reason.value if reason else ""},
        )

    def withdraw(self, member: str, associates: Iterable[str]) -> int:
        """Delete every stored prompt about ``member`` (an erasure): their owner records and
        their entries in the associates' streams; returns how many of either."""
        index = self._keys.member_handheld_prompts(member)
        ids: list[bytes] = self._redis.smembers(index)  # type: ignore[assignment]
        removed = 0
        for pid in ids:
            removed += int(self._redis.delete(self._keys.handheld_prompt(pid.decode())))  # type: ignore[arg-type]
        self._redis.delete(index)
        needle = f'"member":"{member}"'.encode()
        for associate in associates:
            stream = self._keys.handheld_prompts(associate)
            entries: list[tuple[bytes, dict[bytes, bytes]]]
            entries = self._redis.xrange(stream)  # type: ignore[assignment]
            doomed: list[bytes] = []
            for sid, fields in entries:
                blob = fields.get(b"p", b"")
                if needle not in blob:
                    continue
                try:
                    view = HandheldPrompt.model_validate_json(blob)
                except ValueError:
                    continue
                if view.member == member:
                    doomed.append(sid)
                    self._redis.delete(self._keys.handheld_prompt(view.prompt_id))
            if doomed:
                removed += int(self._redis.xdel(stream, *doomed))  # type: ignore[arg-type]
        return removed

    def backlog(self, associate: str, after: tuple[int, int] | None) -> list[HandheldPrompt]:
        """Prompts after stream id ``after`` (all kept ones), or the most recent few; oldest first."""
        stream = self._keys.handheld_prompts(associate)
        entries: list[tuple[bytes, dict[bytes, bytes]]]
        if after is None:
            entries = list(reversed(self._redis.xrevrange(stream, count=RECENT)))  # type: ignore[arg-type]
        else:
            entries = self._redis.xrange(stream, min=f"({after[0]}-{after[1]}")  # type: ignore[assignment]
        return self._with_outcomes(entries)

    def recent(self, associate: str, count: int = RECENT) -> list[HandheldPrompt]:
        """The newest ``count`` prompts, newest first."""
        entries: list[tuple[bytes, dict[bytes, bytes]]]
        entries = self._redis.xrevrange(self._keys.handheld_prompts(associate), count=count)  # type: ignore[assignment]
        return self._with_outcomes(entries)

    def open_prompts(self, associates: Iterable[str], now: float) -> list[HandheldPrompt]:
        """Every associate's open prompts (unanswered or accepted, not done, not expired),
        oldest first: the dashboard's list. Each is listed under its holder only."""
        found = [p for a in associates for p in self.recent(a) if p.is_open(now)]
        return sorted(found, key=lambda p: p.ts)

    def delivered_at(self, prompt_ids: Iterable[str]) -> dict[str, float]:
        """When each prompt reached its current holder (prompts with no such record left out)."""
        ids = list(prompt_ids)
        pipe = self._redis.pipeline(transaction=False)
        for pid in ids:
            pipe.hget(self._keys.handheld_prompt(pid), "at")
        out: dict[str, float] = {}
        for pid, raw in zip(ids, pipe.execute(), strict=True):
            with contextlib.suppress(TypeError, ValueError, AttributeError):
                out[pid] = float(raw.decode())
        return out

    def accept_times(self, associates: Iterable[str]) -> list[tuple[str, float]]:
        """(holder, seconds from delivery to acceptance) of every accepted prompt still in
        the associates' streams (the last PROMPT_STREAM_MAXLEN each, a day at most); a
        re-routed prompt counts once, for whoever held it when it was accepted."""
        ids: dict[str, None] = {}
        for a in associates:
            entries: list[tuple[bytes, dict[bytes, bytes]]]
            entries = self._redis.xrevrange(self._keys.handheld_prompts(a), count=PROMPT_STREAM_MAXLEN)  # type: ignore[assignment]
            for _, fields in entries:
                m = _PROMPT_ID.search(fields.get(b"p", b""))
                if m is not None:
                    ids[m.group(1).decode()] = None
        pipe = self._redis.pipeline(transaction=False)
        for pid in ids:
            pipe.hmget(self._keys.handheld_prompt(pid), ["associate", "at", "accepted_at"])
        out: list[tuple[str, float]] = []
        for holder, at, accepted in pipe.execute():
            if not (holder and at and accepted):
                continue
            with contextlib.suppress(ValueError):
                out.append((holder.decode(), max(0.0, float(accepted) - float(at))))
        return out

    def _with_outcomes(self, entries: Iterable[tuple[bytes, dict[bytes, bytes]]]) -> list[HandheldPrompt]:
        views: list[HandheldPrompt] = []
        for sid, fields in entries:
            try:
                view = HandheldPrompt.model_validate_json(fields[b"p"])
            except (KeyError, ValueError):
                log.warning("skipping an unreadable entry %s in a handheld stream", sid)
                continue
            views.append(view.model_copy(update={"sid": sid.decode()}))
        if not views:
            return views
        pipe = self._redis.pipeline(transaction=False)
        for v in views:
            pipe.hmget(self._keys.handheld_prompt(v.prompt_id), ["outcome", "reason", "associate"])
        out: list[HandheldPrompt] = []
        for v, (outcome, reason, holder) in zip(views, pipe.execute(), strict=True):
            if holder and holder.decode() != v.associate:
                continue  # re-routed to someone else since: no longer this associate's
            o = outcome.decode() if outcome else None
            r = reason.decode() if reason else None
            out.append(
                v.model_copy(
                    update={
                        "outcome": o if o in ("accepted", "dismissed", "done") else None,
                        "dismiss_reason": DismissReason(r)
                        if r and r in DismissReason._value2member_map_
                        else None,
                    }
                )
            )
        return out


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """An erased member: open pages drop every card about them."""

    member: str


@dataclass(frozen=True, slots=True)
class Moved:
    """A prompt re-routed to another associate: this associate's pages drop its card."""

    associate: str
    prompt_id: str


@dataclass(frozen=True, slots=True)
class LivePrompt:
    """A prompt on its way to its associate's open pages, its SSE event encoded once."""

    view: HandheldPrompt
    #: The event as every page writes it (:func:`prompt_event`).
    frame: bytes
    #: The sessions found still valid when it was stored; a page of another session (opened
    #: since) checks its own before it shows it.
    live: frozenset[str] = frozenset()


def prompt_event(view: HandheldPrompt) -> bytes:
    """A stored prompt as its SSE event: ``prompt``, the view as JSON, the stream id as id."""
    return sse.event("prompt", view.model_dump_json(), id=view.sid)


FeedItem = LivePrompt | Withdrawal | Moved | None


@dataclass(eq=False)
class Subscription:
    """One open page of one session: its bounded queue; ``None`` in the queue ends the stream."""

    associate: str
    #: The session's public id: the stream ends when the session does.
    session: str = ""
    #: One slot more than QUEUE_SIZE items, for the end marker.
    queue: asyncio.Queue[FeedItem] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE + 1))
    ended: bool = False

    def drain(self) -> list[FeedItem]:
        """Everything queued now, in order, up to and including an end marker (nothing waits)."""
        items: list[FeedItem] = []
        while not self.queue.empty():
            item = self.queue.get_nowait()
            items.append(item)
            if item is None:
                break
        return items

    async def next_batch(self, wait_s: float) -> list[FeedItem]:
        """What the page should write next: everything queued since its last write, in order,
        waiting up to ``wait_s`` for the first item; ``[]`` if none came (time for a ping)."""
        if self.queue.empty():
            try:
                async with asyncio.timeout(wait_s):
                    first = await self.queue.get()
            except TimeoutError:
                return []
            if first is None:
                return [None]
            return [first, *self.drain()]
        return self.drain()


class LiveFeed:
    """Open pages per associate. Touched only on the event loop, so it needs no locks;
    :meth:`open_sessions` alone may be read from another thread."""

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = {}
        #: Per associate, the sessions with a page open: an immutable tuple replaced whole on
        #: the loop, so MQTT's thread can read it while it stores a prompt.
        self._sessions: dict[str, tuple[str, ...]] = {}
        #: Streams ended because their page did not keep up.
        self.overflows = 0

    @property
    def open_streams(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def subscribe(self, associate: str, session: str = "") -> Subscription:
        sub = Subscription(associate, session)
        self._subs.setdefault(associate, set()).add(sub)
        self._note_sessions(associate)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.associate)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.associate]
            self._note_sessions(sub.associate)

    def _note_sessions(self, associate: str) -> None:
        sessions = tuple(sorted({sub.session for sub in self._subs.get(associate, ()) if sub.session}))
        if sessions:
            self._sessions[associate] = sessions
        else:
            self._sessions.pop(associate, None)

    def open_sessions(self, associate: str) -> tuple[str, ...]:
        """The sessions with a page of ``associate`` open now (any thread: a snapshot)."""
        return self._sessions.get(associate, ())

    def has(self, associate: str) -> bool:
        """Whether ``associate`` has a page with an open stream."""
        return bool(self._subs.get(associate))

    def publish(
        self,
        prompt: HandheldPrompt,
        checked: Collection[str] = frozenset(),
        live: Collection[str] = frozenset(),
    ) -> None:
        """Hand a stored prompt to its associate's open pages. ``checked``: the sessions whose
        validity was read when it was stored; ``live``: those of them still valid. A page of a
        checked session that is no longer valid is ended instead: not one more prompt."""
        subs = self._subs.get(prompt.associate)
        if not subs:
            return
        item = LivePrompt(prompt, prompt_event(prompt), frozenset(live))
        for sub in list(subs):
            if sub.session in checked and sub.session not in item.live:
                if not sub.ended:
                    log.info("ended an open stream of %s: its session ended", sub.associate)
                self._end(sub)
            else:
                self._offer(sub, item)

    def sessions(self) -> list[str]:
        """The sessions that have a page open now."""
        return sorted({sub.session for subs in self._subs.values() for sub in subs if sub.session})

    def end_sessions(self, ended: set[str]) -> int:
        """End the streams of these sessions (signed out, revoked, expired) at once: what was
        still queued for them is dropped, not written. Returns how many streams."""
        doomed = [sub for subs in self._subs.values() for sub in subs if sub.session in ended]
        for sub in doomed:
            self._end(sub)
        return len(doomed)

    def moved(self, associate: str, prompt_id: str) -> None:
        """Tell ``associate``'s open pages that a prompt of theirs went to someone else."""
        for sub in self._subs.get(associate, ()):
            self._offer(sub, Moved(associate, prompt_id))

    def withdraw(self, member: str) -> None:
        """Tell every open page to drop its cards about an erased member."""
        for subs in self._subs.values():
            for sub in subs:
                self._offer(sub, Withdrawal(member))

    def end_streams(self) -> None:
        """Ask every open stream to finish, so a shutdown need not wait for or cancel them."""
        for subs in self._subs.values():
            for sub in subs:
                self._offer(sub, None)

    def _end(self, sub: Subscription) -> None:
        """End a stream whose session is over: drop what it has queued, then the end marker."""
        if sub.ended:
            return
        while not sub.queue.empty():
            sub.queue.get_nowait()
        self._offer(sub, None)

    def _offer(self, sub: Subscription, item: FeedItem) -> None:
        if sub.ended:
            return
        if item is not None and sub.queue.qsize() >= QUEUE_SIZE:
            # End this stream instead of dropping a prompt: the browser reconnects with
            # Last-Event-ID and gets everything it missed from the Redis stream.
            while not sub.queue.empty():
                sub.queue.get_nowait()
            self.overflows += 1
            log.warning(
                "handheld stream of %s is not keeping up; ending it so that it resumes", sub.associate
            )
            item = None
        if item is None:
            sub.ended = True
        sub.queue.put_nowait(item)
