"""Arbitration: at most one prompt per customer per moment, within every cap and the
contact policy, never the same thing twice in a visit; the holdout is decided here too.
Pure: candidates, visit, contact history and time in; one :class:`Choice` (or none) out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from broker_config.contract import FactValue
from recommender.catalog import Action, Policy
from recommender.eligibility import Candidate
from recommender.profile import Contact, Visit
from recommender.scoring import Score

DAY = 86_400.0


class Blocked(StrEnum):
    """Why an eligible candidate was not chosen (counted as ``blocked:{why}``)."""

    SAME_THING = "same_thing"
    PER_VISIT = "per_visit"
    PER_DAY = "per_day"
    PER_WEEK = "per_week"
    COOLDOWN = "cooldown"
    VISIT_POLICY = "visit_policy"
    MIN_GAP = "min_gap"


@dataclass(slots=True)
class Choice:
    candidate: Candidate
    score: Score
    #: A held-out member: recorded as "would have been prompted", never sent.
    holdout: bool

    @property
    def action(self) -> Action:
        return self.candidate.action

    @property
    def facts(self) -> dict[str, FactValue]:
        return self.candidate.facts


@dataclass(slots=True)
class Arbitration:
    choice: Choice | None
    blocked: tuple[Blocked, ...] = ()


def blocked_by(
    candidate: Candidate, visit: Visit, contacts: Sequence[Contact], policy: Policy, now: float
) -> Blocked | None:
    action, caps = candidate.action, candidate.action.caps
    if visit.done(candidate.claim):
        return Blocked.SAME_THING
    if caps.per_visit is not None and visit.count(action.id) >= caps.per_visit:
        return Blocked.PER_VISIT
    if not contacts:  # the usual case: nothing below can block
        return None
    mine = [c for c in contacts if c.action == action.id]
    if action.cooldown_after_dismiss_s and any(
        c.dismissed and now - c.ts < action.cooldown_after_dismiss_s for c in mine
    ):
        return Blocked.COOLDOWN
    sent = [c.ts for c in mine if not c.dismissed]
    if caps.per_day is not None and sum(1 for t in sent if now - t < DAY) >= caps.per_day:
        return Blocked.PER_DAY
    if caps.per_week is not None and sum(1 for t in sent if now - t < 7 * DAY) >= caps.per_week:
        return Blocked.PER_WEEK
    return None


def visit_blocked(visit: Visit, policy: Policy, now: float) -> Blocked | None:
    """The contact policy across the whole visit."""
    if visit.prompts >= policy.max_prompts_per_visit:
        return Blocked.VISIT_POLICY
    if visit.last_prompt is not None and now - visit.last_prompt < policy.min_gap_s:
        return Blocked.MIN_GAP
    return None


def arbitrate(
    scored: Sequence[tuple[Candidate, Score]],
    visit: Visit,
    contacts: Sequence[Contact],
    policy: Policy,
    now: float,
    holdout: bool = False,
) -> Arbitration:
    """The best allowed candidate: lowest priority class first, then highest score."""
    if not scored:
        return Arbitration(None)
    if (why := visit_blocked(visit, policy, now)) is not None:
        return Arbitration(None, (why,))
    blocked: list[Blocked] = []
    for candidate, score in sorted(scored, key=lambda cs: (cs[0].action.priority, -cs[1].total, cs[0].claim)):
        why = blocked_by(candidate, visit, contacts, policy, now)
        if why is None:
            return Arbitration(Choice(candidate, score, holdout), tuple(blocked))
        blocked.append(why)
    return Arbitration(None, tuple(blocked))
