"""Simulated associates on a shift: they sign in, take breaks, sign out, and answer (or
ignore) the prompts their handhelds show, after human-like delays. Pure and seeded; time is
passed in (event time, Unix seconds), never read here.

They produce exactly what the handheld API publishes on an associate's behalf
(:mod:`handheld.hub`): an ``AssociateStatus`` (retained) at sign-in, every
``rules.associate_heartbeat_s`` while signed in (``available``, or ``on_break``), at each
change and ``signed_out`` at the end; and a ``Feedback`` per answer, from the associate's
handheld producer id. A prompt is ignored with some probability; else, after a lognormal
delay, dismissed (sometimes) or accepted, and an accepted one is ``done`` after the work.

Every random draw for a prompt is keyed by the seed, the prompt's cause event and kind
and the associate — not by the order prompts arrive in, nor by the prompt's random id —
so the same trace gives the same answers however it is replayed.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from dataclasses import dataclass, field

from broker_config.contract import (
    AssociateStatus,
    DismissReason,
    Envelope,
    EnvelopeSource,
    Feedback,
    Prompt,
    Topics,
)
from floorwalker.config import StoreConfig
from handheld.hub import handheld_producer


@dataclass(frozen=True, slots=True)
class Shift:
    """One associate's day, in seconds from the start of the simulated day."""

    associate: str
    sign_in: float
    sign_out: float
    #: (start, end) of each break, inside the shift, in order.
    breaks: tuple[tuple[float, float], ...] = ()

    def state(self, offset: float) -> str:
        """``available``, ``on_break`` or ``signed_out`` at ``offset``."""
        if not self.sign_in <= offset < self.sign_out:
            return "signed_out"
        if any(b0 <= offset < b1 for b0, b1 in self.breaks):
            return "on_break"
        return "available"


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How associates answer prompts (development assumptions, not measured behaviour)."""

    #: Share of prompts nobody looks at (the recommender re-routes them after a while).
    ignore_p: float = 0.15
    #: Share of the prompts looked at that are dismissed rather than accepted.
    dismiss_p: float = 0.1
    #: Time from a prompt on the handheld to the answer: lognormal with this median ...
    answer_median_s: float = 12.0
    #: ... and this sigma (of the log), clipped to [min_answer_s, max_answer_s].
    answer_sigma: float = 0.6
    #: No answer comes sooner (the harness relies on it: :func:`simulators.harness.replay_staffed`).
    min_answer_s: float = 3.0
    max_answer_s: float = 150.0
    #: From accepted to done: lognormal with this median (sigma 0.5).
    work_median_s: float = 90.0


def plan_shifts(
    config: StoreConfig,
    hours: float,
    seed: int,
    *,
    break_s: float = 15 * 60,
    sign_in_after_s: float = 0.0,
) -> list[Shift]:
    """A shift per associate: signing in within the first 10 minutes (after
    ``sign_in_after_s``), one break of ``break_s`` in the middle of the day (staggered, so
    the floor is never emptied by breaks) when the day is longer than an hour, signing out
    in the last 10 minutes."""
    rng = random.Random(seed)
    day = hours * 3600.0
    staff = sorted(a.id for a in config.associates)
    shifts = []
    for i, aid in enumerate(staff):
        sign_in = min(day, sign_in_after_s + rng.uniform(0, min(600.0, day / 10)))
        sign_out = max(sign_in, day - rng.uniform(0, min(600.0, day / 10)))
        breaks: tuple[tuple[float, float], ...] = ()
        if day > 3600 and sign_out - sign_in > 2 * break_s:
            # Spread the breaks over the middle half of the shift, one after another.
            middle = sign_in + (sign_out - sign_in) / 4
            span = (sign_out - sign_in) / 2 - break_s
            start = middle + span * (i + rng.random() * 0.5) / max(1, len(staff))
            breaks = ((start, start + break_s),)
        shifts.append(Shift(aid, sign_in, sign_out, breaks))
    return shifts


@dataclass(order=True, slots=True)
class _Due:
    ts: float
    order: int
    topic: str = field(compare=False)
    payload: Envelope = field(compare=False)
    #: The prompt this answers (None: a status), and whether a re-route cancelled it.
    prompt_id: str | None = field(default=None, compare=False)
    associate: str = field(default="", compare=False)
    cancelled: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class Answer:
    """Feedback the simulated associates sent (what :mod:`simulators.service_level` scores)."""

    prompt_id: str
    associate: str
    outcome: str
    ts: float


class AssociateSimulator:
    """The associates of ``config`` on their ``shifts``; day start at event time ``origin``."""

    def __init__(
        self,
        config: StoreConfig,
        shifts: list[Shift],
        origin: float,
        *,
        behaviour: Behaviour | None = None,
        seed: int = 1,
        topic_prefix: str = "",
    ) -> None:
        self.store = config.store
        self.origin = origin
        self.behaviour = behaviour or Behaviour()
        self.seed = seed
        self.shifts = {s.associate: s for s in shifts}
        self._topics = Topics(topic_prefix)
        self._sources = {
            a.id: EnvelopeSource(handheld_producer(a.id), new_id=self._new_id) for a in config.associates
        }
        self._ids = 0
        self._order = 0
        self._heap: list[_Due] = []
        #: Answers scheduled per prompt id (a re-route cancels the previous holder's).
        self._pending: dict[str, list[_Due]] = {}
        self.answers: list[Answer] = []
        for shift in shifts:
            self._schedule_shift(shift, config.rules.associate_heartbeat_s)

    def _new_id(self) -> str:
        # Event ids derived from the seed: two runs of the same day send the same bytes.
        self._ids += 1
        return hashlib.sha256(f"associates|{self.seed}|{self._ids}".encode()).hexdigest()[:32]

    def _push(self, due: _Due) -> None:
        heapq.heappush(self._heap, due)

    def _status(self, associate: str, offset: float, state: str) -> None:
        self._order += 1
        ts = self.origin + offset
        payload = self._sources[associate].make(AssociateStatus, ts, state=state, zone=None)
        self._push(_Due(ts, self._order, self._topics.associate_status(self.store, associate), payload))

    def _schedule_shift(self, shift: Shift, heartbeat_s: float) -> None:
        changes = sorted({shift.sign_in, shift.sign_out, *(t for b in shift.breaks for t in b)})
        t = shift.sign_in
        while t < shift.sign_out:
            self._status(shift.associate, t, shift.state(t))
            nxt = min((c for c in changes if c > t), default=math.inf)
            t = min(t + heartbeat_s, nxt)
        self._status(shift.associate, shift.sign_out, "signed_out")

    def state(self, associate: str, ts: float) -> str:
        """The associate's state at event time ``ts`` (by their shift)."""
        shift = self.shifts.get(associate)
        return "signed_out" if shift is None else shift.state(ts - self.origin)

    def available(self, associate: str, ts: float) -> bool:
        return self.state(associate, ts) == "available"

    # -- prompts -------------------------------------------------------------------------

    def on_prompt(self, associate: str, prompt: Prompt, seen_at: float) -> None:
        """``prompt`` shows on ``associate``'s handheld at event time ``seen_at``: schedule
        their answer (or nothing). An earlier holder's unsent answer is cancelled."""
        for due in self._pending.get(prompt.event_id, []):
            if due.associate != associate and due.ts > seen_at:
                due.cancelled = True
        b = self.behaviour
        # Keyed by what the prompt is, on the day's own clock: never by an id that carries an
        # absolute time (a long-dwell prompt's cause id hashes its wall-clock start), so two
        # replays of the day, started at different times, draw the same answers.
        since_origin_ms = round((prompt.cause_ts - self.origin) * 1000)
        key = f"{self.seed}|{since_origin_ms}|{prompt.kind.value}|{associate}"
        rng = random.Random(hashlib.sha256(key.encode()).digest())
        ignore, dismiss = rng.random() < b.ignore_p, rng.random() < b.dismiss_p
        delay = min(
            b.max_answer_s, max(b.min_answer_s, b.answer_median_s * math.exp(rng.gauss(0, b.answer_sigma)))
        )
        work = b.work_median_s * math.exp(rng.gauss(0, 0.5))
        answer_at = seen_at + delay
        if ignore or not self.available(associate, seen_at) or not self.available(associate, answer_at):
            return  # not looked at, or looked at only after the break or the shift
        if dismiss:
            self._answer(associate, prompt.event_id, answer_at, "dismissed", DismissReason.CUSTOMER_BUSY)
            return
        self._answer(associate, prompt.event_id, answer_at, "accepted")
        self._answer(associate, prompt.event_id, answer_at + work, "done")

    def _answer(
        self, associate: str, prompt_id: str, ts: float, outcome: str, reason: DismissReason | None = None
    ) -> None:
        self._order += 1
        payload = self._sources[associate].make(
            Feedback, ts, prompt_id=prompt_id, outcome=outcome, reason=reason
        )
        due = _Due(
            ts, self._order, self._topics.feedback(self.store, associate), payload, prompt_id, associate
        )
        self._pending.setdefault(prompt_id, []).append(due)
        self._push(due)

    # -- out -------------------------------------------------------------------------------

    def next_ts(self) -> float | None:
        """Event time of the next message due (None: nothing left)."""
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0].ts if self._heap else None

    def pop(self) -> tuple[float, str, Envelope]:
        """The next message due: event time, topic (without prefix), payload."""
        self.next_ts()
        due = heapq.heappop(self._heap)
        if due.prompt_id is not None:
            pending = self._pending.get(due.prompt_id, [])
            if due in pending:
                pending.remove(due)
            if not pending:
                self._pending.pop(due.prompt_id, None)
            assert isinstance(due.payload, Feedback)
            self.answers.append(Answer(due.prompt_id, due.associate, due.payload.outcome, due.ts))
        return due.ts, due.topic, due.payload
