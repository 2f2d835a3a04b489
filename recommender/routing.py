"""Which associate's handheld gets a prompt. Pure state machine, time passed in.

Best associate for a zone: not on a break or signed out, not busy (an associate with an
open prompt is busy), under the action's hourly cap; among those the customer's usual
associate first, then whoever looks after the zone or stands in it, then the nearest
(zone centroids on the floor plan), then the least prompted this hour. Nobody free: the
floor lead. Store-wide prompts go to a manager. A prompt not accepted within
``reroute_after_s`` is offered to the next best associate (:meth:`Router.due`).
Associates' state and zone come from the retained ``AssociateStatus`` topic, which the
handheld API publishes again every ``associate_heartbeat_s`` while a handheld is connected.
With ``rules.require_handheld`` only an associate heard from within the grace period
(3 heartbeats) and not on a break or signed out is on the floor; without it, one never
heard from counts as available in their home zones. Nobody suitable on the floor: the floor
lead at once (if on the floor), else nobody — :meth:`Router.route` says why (the prompt is
then counted unserved with that reason, never silently parked).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Collection
from typing import NamedTuple

from floorwalker.config import StoreConfig

HOUR = 3600.0
#: Open prompts remembered at most (the oldest is forgotten first).
MAX_OPEN = 10_000
#: How long a replica of a share group holds a free associate it just chose, in Redis
#: (:meth:`Recommender` with ``replicated``): long enough for every peer to hear of the
#: prompt on the prompt topic (milliseconds; seconds under a backlog), after which their
#: own routers know the associate is busy. A prompt whose claim fails, or that is
#: dismissed or done, releases its hold at once (with the next batch's writes).
HOLD_S = 2.0
#: The status of an associate never heard from: available, in their home zones (without
#: ``require_handheld``), or not on the floor (with it).
_UNHEARD: tuple[str, str | None] = ("available", None)
_GONE: tuple[str, str | None] = ("signed_out", None)
_AWAY = frozenset({"on_break", "signed_out"})

#: Why a prompt found nobody (counted as ``unserved:{reason}``).
NOBODY_ON_FLOOR = "nobody_on_floor"
NO_MANAGER = "no_manager_on_floor"
ALL_CAPPED = "all_capped"
ALL_TRIED = "all_tried"


class Route(NamedTuple):
    """Where a prompt goes: the associate (None: unserved), and ``how``: ``routed``,
    ``escalated`` (nobody suitable: the floor lead) or, unserved, the reason."""

    associate: str | None
    how: str


class OpenPrompt(NamedTuple):
    """A prompt on a handheld, not yet answered. Immutable: a change is a new one
    (:meth:`Router.sent` returns the one it tracks)."""

    prompt_id: str
    associate: str
    zone: str | None
    usual: str | None
    manager: bool
    sent_at: float
    expires_at: float
    cap_per_hour: int | None
    payload: bytes
    accepted: bool = False
    #: Associates it was offered to, in order (a re-route never goes back to one).
    tried: tuple[str, ...] = ()


#: How the router keeps an open prompt: its fields in a plain tuple. Thousands are open at
#: once (until they expire), and the garbage collector untracks a plain tuple of plain
#: values, so they never enter its full passes. Kept as objects (dataclasses with a set of
#: associates tried), each full pass took ~9 ms on the decision thread every few seconds
#: (measured in ``bench e2e`` at 2 000 events/s); a NamedTuple is still tracked.
_Row = tuple[str, str, str | None, str | None, bool, float, float, int | None, bytes, bool, tuple[str, ...]]
_prompt = OpenPrompt._make


def _row(prompt: OpenPrompt) -> _Row:
    return prompt[:]  # a plain tuple (a slice of a NamedTuple is one): see _Row


def _centroid(poly: list[tuple[float, float]]) -> tuple[float, float]:
    return (sum(p[0] for p in poly) / len(poly), sum(p[1] for p in poly) / len(poly))


class Router:
    def __init__(self, config: StoreConfig, reroute_after_s: float = 45.0) -> None:
        self.reroute_after_s = reroute_after_s
        self._associates = {a.id: a for a in config.associates}
        self._lead = config.floor_lead
        self._by_lane = {lane.id: lane.associate for lane in config.lanes}
        self._lane_zone = {lane.id: lane.zone for lane in config.lanes}
        centroids = {z.id: _centroid(z.polygon) for z in config.zones if z.polygon}
        #: Zone to zone, and each associate's home zones to zone, computed once: routing
        #: ranks every associate on every prompt.
        self._dist = {(a, b): math.dist(ca, cb) for a, ca in centroids.items() for b, cb in centroids.items()}
        self._home_dist = {
            (a.id, z): min((self._dist[(h, z)] for h in a.zones if (h, z) in self._dist), default=1e6)
            for a in config.associates
            for z in centroids
        }
        self._zones = {a.id: frozenset(a.zones) for a in config.associates}
        #: Per associate: state, zone, and when it was last heard (the router's clock).
        self._status: dict[str, tuple[str, str | None, float]] = {}
        self._grace = config.rules.associate_grace_s if config.rules.require_handheld else None
        self._open: dict[str, _Row] = {}
        #: Per associate: their open prompts' expiry, oldest first (busy() in O(1) amortized).
        self._held: dict[str, dict[str, float]] = {a: {} for a in self._associates}
        self._sent: dict[str, deque[float]] = {a: deque() for a in self._associates}
        #: Prompts other replicas of a share group sent (prompt id -> associate), seen on the
        #: prompt topic: they make their associate busy and count towards the hourly cap
        #: here too. Re-routing them is their sender's job. Oldest first, at most MAX_OPEN.
        self._peers: dict[str, str] = {}

    # -- inputs ------------------------------------------------------------------------

    def set_status(self, associate: str, state: str, zone: str | None, now: float = 0.0) -> None:
        """The associate's handheld says ``state`` (heard at ``now``: a heartbeat too)."""
        if associate in self._associates:
            self._status[associate] = (state, zone, now)

    def state(self, associate: str, now: float) -> tuple[str, str | None]:
        """State and zone as routing sees them at ``now``: with ``require_handheld``, an
        associate never heard from, or not for longer than the grace period, is signed out."""
        heard = self._status.get(associate)
        if heard is None:
            return _UNHEARD if self._grace is None else _GONE
        if self._grace is not None and now - heard[2] > self._grace:
            return _GONE
        return heard[0], heard[1]

    def on_floor(self, associate: str, now: float) -> bool:
        return self.state(associate, now)[0] not in _AWAY

    def busy(self, associate: str, now: float) -> bool:
        held = self._held.get(associate)
        while held:
            pid, expires_at = next(iter(held.items()))
            if expires_at > now:
                return True
            del held[pid]  # expired: no longer holds them
        return False

    def free(self, associate: str, now: float) -> bool:
        """Available and holding no open prompt: the kind of associate :meth:`choose` prefers."""
        return self.state(associate, now)[0] == "available" and not self.busy(associate, now)

    def hold(self, associate: str, until: float) -> None:
        """Count ``associate`` as busy until ``until``: another replica just gave them a
        prompt that has not reached us yet (it will, through :meth:`observe`)."""
        held = self._held.get(associate)
        if held is not None:
            held.pop("", None)  # one hold at a time ("" is no prompt's id)
            held[""] = until

    def _distance(self, associate: str, here: str | None, zone: str | None) -> float:
        """From where ``associate`` stands (``here``), else their nearest home zone."""
        if zone is None or (zone, zone) not in self._dist:
            return 0.0
        if here:
            return self._dist.get((here, zone), 1e6)
        return self._home_dist[(associate, zone)]

    def _hourly(self, associate: str, now: float) -> int:
        sent = self._sent[associate]
        while sent and now - sent[0] > HOUR:
            sent.popleft()
        return len(sent)

    def choose(
        self,
        zone: str | None,
        now: float,
        *,
        usual: str | None = None,
        manager: bool = False,
        exclude: Collection[str] = (),
        cap_per_hour: int | None = None,
    ) -> str | None:
        """The best associate, or None when nobody on the floor may take it (:meth:`route`)."""
        return self.route(
            zone, now, usual=usual, manager=manager, exclude=exclude, cap_per_hour=cap_per_hour
        ).associate

    def route(
        self,
        zone: str | None,
        now: float,
        *,
        usual: str | None = None,
        manager: bool = False,
        exclude: Collection[str] = (),
        cap_per_hour: int | None = None,
    ) -> Route:
        """The best associate on the floor; nobody suitable: the floor lead (escalated);
        nobody at all: None, with the reason."""
        ranked = []
        on_floor = capped = 0
        for a in self._associates.values():
            aid = a.id
            if manager and a.role != "manager":
                continue
            state, at = self.state(aid, now)
            if state in _AWAY:
                continue
            on_floor += 1
            if aid in exclude:
                continue
            hourly = self._hourly(aid, now)
            if cap_per_hour is not None and hourly >= cap_per_hour:
                capped += 1
                continue
            free = state == "available" and not self.busy(aid, now)
            home = zone is not None and (zone in self._zones[aid] or at == zone)
            ranked.append((not free, aid != usual, not home, self._distance(aid, at, zone), hourly, aid))
        lead = self._lead
        lead_capped = cap_per_hour is not None and self._hourly(lead, now) >= cap_per_hour
        lead_here = self.on_floor(lead, now) or self._grace is None  # legacy: the lead, wherever
        lead_ok = not manager and lead not in exclude and not lead_capped and lead_here
        if ranked:
            best = min(ranked)
            if best[0] and self._grace is not None and lead_ok:
                return Route(lead, "escalated")  # nobody free on the floor: the lead, at once
            return Route(best[-1], "routed")
        if lead_ok:
            return Route(lead, "escalated")  # nobody suitable: the floor lead at once
        if on_floor == 0:
            return Route(None, NO_MANAGER if manager else NOBODY_ON_FLOOR)
        return Route(None, ALL_CAPPED if capped else ALL_TRIED)

    def for_lane(self, lane: str, now: float, cap_per_hour: int | None = None) -> str | None:
        return self.lane_route(lane, now, cap_per_hour).associate

    def lane_route(self, lane: str, now: float, cap_per_hour: int | None = None) -> Route:
        """A till prompt: the lane's associate (they are serving this customer) unless on a
        break, signed out or over the cap; else the best one near the lane."""
        own = self._by_lane.get(lane)
        state = self.state(own, now)[0] if own is not None else "signed_out"
        capped = own is not None and cap_per_hour is not None and self._hourly(own, now) >= cap_per_hour
        if own is not None and state in ("available", "busy") and not capped:
            return Route(own, "routed")
        return self.route(self._lane_zone.get(lane), now, usual=own, cap_per_hour=cap_per_hour)

    # -- open prompts ------------------------------------------------------------------

    def sent(self, prompt: OpenPrompt) -> OpenPrompt:
        """Track ``prompt`` as open on its associate's handheld; returns it as tracked."""
        if prompt.associate not in prompt.tried:
            prompt = prompt._replace(tried=(*prompt.tried, prompt.associate))
        self._sent[prompt.associate].append(prompt.sent_at)
        self._open[prompt.prompt_id] = _row(prompt)
        self._held[prompt.associate][prompt.prompt_id] = prompt.expires_at
        while len(self._open) > MAX_OPEN:
            self._forget(next(iter(self._open)))
        return prompt

    def observe(self, prompt_id: str, associate: str, sent_at: float, expires_at: float) -> None:
        """A prompt another replica sent, or re-routed, to ``associate``."""
        if associate not in self._associates or self._peers.get(prompt_id) == associate:
            return  # not one of ours, or seen already (a redelivery)
        before = self._peers.pop(prompt_id, None)
        if before is not None:  # re-routed by its sender: off the previous associate's hands
            self._held[before].pop(prompt_id, None)
        self._peers[prompt_id] = associate
        self._sent[associate].append(sent_at)
        self._held[associate][prompt_id] = expires_at
        while len(self._peers) > MAX_OPEN:
            oldest = next(iter(self._peers))
            self._held[self._peers.pop(oldest)].pop(oldest, None)

    def forget_if(self, doomed: Callable[[OpenPrompt], bool]) -> None:
        """Stop tracking the open prompts ``doomed`` picks (an erased member's)."""
        for prompt_id in [pid for pid, row in self._open.items() if doomed(_prompt(row))]:
            self._forget(prompt_id)

    def withdraw(self, prompt: OpenPrompt) -> None:
        """Undo :meth:`sent` for a prompt routed ahead of its claim that was not claimed."""
        sent = self._sent[prompt.associate]
        if prompt.sent_at in sent:
            sent.remove(prompt.sent_at)
        self._forget(prompt.prompt_id)

    def _forget(self, prompt_id: str) -> None:
        row = self._open.pop(prompt_id, None)
        if row is not None:
            self._held[_prompt(row).associate].pop(prompt_id, None)

    def answered(self, prompt_id: str, outcome: str) -> OpenPrompt | None:
        """Feedback: accepted stops re-routing; dismissed or done frees the associate (a
        peer's prompt too). Returns the prompt if it is one of ours."""
        row = self._open.get(prompt_id)
        if row is None:
            peer = self._peers.get(prompt_id)
            if peer is not None and outcome != "accepted":
                self._held[peer].pop(prompt_id, None)
            return None
        prompt = _prompt(row)
        if outcome == "accepted":
            prompt = prompt._replace(accepted=True)
            self._open[prompt_id] = _row(prompt)
        else:
            self._forget(prompt_id)
        return prompt

    def reassign(self, prompt_id: str, associate: str, now: float) -> OpenPrompt | None:
        """A manager moves an open, unanswered prompt of ours to ``associate`` (the
        dashboard's Reassign): tracked as offered to them now, off the first associate's
        hands. None (nothing changes) if it is not ours, accepted, expired, already
        theirs, or ``associate`` is not one of the store's."""
        row = self._open.get(prompt_id)
        if row is None or associate not in self._associates:
            return None
        prompt = _prompt(row)
        if prompt.accepted or prompt.expires_at <= now or prompt.associate == associate:
            return None
        del self._open[prompt_id]
        self._held[prompt.associate].pop(prompt_id, None)
        return self.sent(prompt._replace(associate=associate, sent_at=now))

    def due(self, now: float) -> list[tuple[OpenPrompt, str]]:
        """Prompts not accepted in time, each with the associate to offer it to next.

        Open prompts are kept in the order they were (last) offered, so this stops at the
        first one offered less than ``reroute_after_s`` ago: one call costs what is due,
        not what is open. (A younger prompt that already expired is forgotten once it
        gets that far; :meth:`busy` looks at expiry on its own.)"""
        waited = []
        for pid, row in self._open.items():
            prompt = _prompt(row)
            if now - prompt.sent_at < self.reroute_after_s:
                break
            waited.append((pid, prompt))
        out = []
        for pid, prompt in waited:
            if prompt.expires_at <= now:
                self._forget(pid)
                continue
            if prompt.accepted:
                continue
            nxt = self.choose(
                prompt.zone,
                now,
                usual=prompt.usual,
                manager=prompt.manager,
                exclude=prompt.tried,
                cap_per_hour=prompt.cap_per_hour,
            )
            del self._open[pid]  # offered again: back of the line
            if nxt is None:
                # Nobody else: leave it where it is, look again later.
                self._open[pid] = _row(prompt._replace(sent_at=now))
                continue
            self._held[prompt.associate].pop(pid, None)
            out.append((self.sent(prompt._replace(associate=nxt, sent_at=now)), nxt))
        return out
