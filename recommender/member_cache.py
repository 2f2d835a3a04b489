"""What the decision core read about each member lately, kept in memory so that a member's
next event is decided without reading Redis first (one round trip per event).

An entry is the state exactly as Redis returned it (:data:`Raw`: the profile and the visit
as flat field/value lists, the contact history as member/score, scores as Redis wrote
them), from the member's last read or from the reply of their last presence script, which
returns the state it leaves behind. A decision made on an entry sends the entry's
:func:`digest` with the presence script; the script computes the digest of the state in
Redis at that moment and, when they differ (any write since, by anyone: another replica,
a CRM import, an erasure, a key that expired), changes nothing and returns the state it
found, on which the event is decided again. So a stale entry costs a round trip, never a
different decision.

At start the recommender also keeps the profiles of consenting members already in Redis
(:meth:`Recommender.preload <recommender.engine.Recommender.preload>`), each with no visit
and no contact history: a guess, checked like any kept state, that lets a member's first
event be decided without a read too.

Bounded: at most ``size`` members (least recently used dropped first), each for at most
``ttl_s`` seconds (:data:`PRELOAD_TTL_S` for a preloaded profile). An erased member's
entry is dropped when the erasure notice arrives (and whenever a script answers
``erased``); a member without consent to recognition is not kept. Entries are plain
tuples of strings, which the garbage collector stops tracking, so many entries do not
lengthen its full passes.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence

#: The state as Redis returns it: profile and visit as flat field/value lists, the
#: contact history (since a bound) as a flat member/score list.
Raw = tuple[Sequence[str], Sequence[str], Sequence[str]]

#: Members kept at most.
DEFAULT_SIZE = 100_000
#: Seconds an entry is kept at most (monotonic clock), however often it is used.
DEFAULT_TTL_S = 3600.0
#: Seconds a profile preloaded at start is kept (a store's day).
PRELOAD_TTL_S = 12 * 3600.0

_Kept = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]
#: (state, the contact history's lower bound it was read with, monotonic expiry, the
#: lowest contact score (inf: none; a later bound up to it filters nothing), digest, ''
#: until first used).
_Entry = tuple[_Kept, float, float, float, str]


def digest(profile: Sequence[str], visit: Sequence[str], contacts: Sequence[str]) -> str:
    """SHA-1 (hex) of the state as the presence script computes it (lua/dedupe.lua
    ``state_digest``): per part its length, \\x01, its values joined by NUL, \\x01.
    (Values are CRM and visit text; a NUL inside one could make two states look alike.)"""
    text = (
        f"{len(profile)}\1" + "\0".join(profile) + f"\1{len(visit)}\1" + "\0".join(visit)
        + f"\1{len(contacts)}\1" + "\0".join(contacts) + "\1"
    )  # fmt: skip
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


class MemberCache:
    def __init__(self, size: int = DEFAULT_SIZE, ttl_s: float = DEFAULT_TTL_S) -> None:
        if size < 0 or ttl_s < 0:
            raise ValueError("size and ttl_s must not be negative")
        self.size = size
        self.ttl_s = ttl_s
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, member: object) -> bool:
        return member in self._entries

    @property
    def full(self) -> bool:
        return len(self._entries) >= self.size

    def put(
        self,
        member: str,
        raw: Raw,
        since: float,
        mono: float,
        ttl_s: float | None = None,
        *,
        digested: bool = False,
    ) -> None:
        """Keep ``raw``, read with contacts since ``since``, at monotonic time ``mono``,
        for ``ttl_s`` (:attr:`ttl_s` if None); its digest is computed when it is first
        used, or now with ``digested`` (at start, off the events' path)."""
        if self.size == 0:
            return
        kept = (tuple(raw[0]), tuple(raw[1]), tuple(raw[2]))
        scores = kept[2][1::2]
        lowest = min(float(s) for s in scores) if scores else float("inf")
        expires = mono + (self.ttl_s if ttl_s is None else ttl_s)
        self._entries[member] = (kept, since, expires, lowest, digest(*kept) if digested else "")
        self._entries.move_to_end(member)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def get(self, member: str, since: float, mono: float) -> tuple[Raw, str] | None:
        """The state to decide on with contacts since ``since``, and its digest; None if
        not kept, too old, or read with a later bound (it may lack contacts)."""
        entry = self._entries.get(member)
        if entry is None or mono >= entry[2] or since < entry[1]:
            if entry is not None:
                del self._entries[member]
            self.misses += 1
            return None
        self._entries.move_to_end(member)
        self.hits += 1
        raw = entry[0]
        if since <= entry[3]:
            if not entry[4]:
                entry = (raw, entry[1], entry[2], entry[3], digest(*raw))
                self._entries[member] = entry
            return raw, entry[4]
        profile, visit, contacts = raw
        kept = tuple(
            x
            for i in range(0, len(contacts), 2)
            if float(contacts[i + 1]) >= since
            for x in contacts[i : i + 2]
        )
        return (profile, visit, kept), digest(profile, visit, kept)

    def drop(self, member: str) -> None:
        self._entries.pop(member, None)

    def clear(self) -> None:
        self._entries.clear()
