"""Arbitration, table-driven at the boundaries: per-visit, per-day and per-week caps, the
cool-down after a dismissal, the visit's contact policy, and the order among candidates
(priority class, then score); what blocked the ones passed over is reported."""

from __future__ import annotations

import pytest

from broker_config.contract import PromptKind
from recommender.arbitration import DAY, Blocked, arbitrate, blocked_by, visit_blocked
from recommender.catalog import Action, Policy
from recommender.eligibility import Candidate
from recommender.profile import Contact, Visit
from recommender.scoring import Score

NOW = 1_800_000_000.0
TEXT = {"headline": "h", "suggestion": "s", "why": "w"}
POLICY = Policy(max_prompts_per_visit=2, min_gap_s=90)


def _action(
    id: str = "tip",
    *,
    priority: int = 3,
    per_visit: int | None = None,
    per_day: int | None = None,
    per_week: int | None = None,
    cooldown: float = 0.0,
) -> Action:
    caps = {"per_visit": per_visit, "per_day": per_day, "per_week": per_week}
    return Action(
        id=id, kind=PromptKind.CROSS_SELL, priority=priority, value=5, text=TEXT,
        caps=caps, cooldown_after_dismiss_s=cooldown,
    )  # fmt: skip


def _sent(ago: float, action: str = "tip", dismissed: bool = False) -> Contact:
    return Contact(NOW - ago, action, dismissed)


@pytest.mark.parametrize(
    ("action", "visit", "contacts", "expected"),
    [
        # per visit: the visit's count of this action against the cap
        (_action(per_visit=1), Visit(fields={"n:tip": "1"}), [], Blocked.PER_VISIT),
        (_action(per_visit=2), Visit(fields={"n:tip": "1"}), [], None),
        (_action(per_visit=2), Visit(fields={"n:tip": "2"}), [], Blocked.PER_VISIT),
        (_action(per_visit=1), Visit(fields={"n:other": "1"}), [], None),
        (_action(per_visit=None), Visit(fields={"n:tip": "9"}), [], None),
        # the same thing twice in a visit, whatever the caps
        (_action(), Visit(fields={"done:tip": "1"}), [], Blocked.SAME_THING),
        # per day: contacts of the last 24 h, not older, not dismissed ones
        (_action(per_day=2), Visit(), [_sent(3600)], None),
        (_action(per_day=2), Visit(), [_sent(3600), _sent(7200)], Blocked.PER_DAY),
        (_action(per_day=1), Visit(), [_sent(DAY)], None),
        (_action(per_day=1), Visit(), [_sent(DAY - 1)], Blocked.PER_DAY),
        (_action(per_day=1), Visit(), [_sent(60, dismissed=True)], None),
        (_action(per_day=1), Visit(), [_sent(60, action="other")], None),
        # per week: the last 7 days
        (_action(per_week=2), Visit(), [_sent(2 * DAY)], None),
        (_action(per_week=2), Visit(), [_sent(2 * DAY), _sent(3 * DAY)], Blocked.PER_WEEK),
        (_action(per_week=1), Visit(), [_sent(7 * DAY)], None),
        (_action(per_week=1), Visit(), [_sent(7.5 * DAY)], None),
        (_action(per_week=1), Visit(), [_sent(7 * DAY - 1)], Blocked.PER_WEEK),
        # cool-down after a dismissal of this action
        (_action(cooldown=600), Visit(), [_sent(599, dismissed=True)], Blocked.COOLDOWN),
        (_action(cooldown=600), Visit(), [_sent(600, dismissed=True)], None),
        (_action(cooldown=600), Visit(), [_sent(60, action="other", dismissed=True)], None),
    ],
)
def test_blocked_by(action: Action, visit: Visit, contacts: list[Contact], expected: Blocked | None) -> None:
    assert blocked_by(Candidate(action, "", {}), visit, contacts, POLICY, NOW) is expected


@pytest.mark.parametrize(
    ("visit", "expected"),
    [
        (Visit(prompts=1, last_prompt=NOW - 91), None),
        (Visit(prompts=1, last_prompt=NOW - 90), None),
        (Visit(prompts=1, last_prompt=NOW - 89), Blocked.MIN_GAP),
        (Visit(prompts=2, last_prompt=NOW - 3600), Blocked.VISIT_POLICY),
        (Visit(prompts=0), None),
    ],
)
def test_visit_policy(visit: Visit, expected: Blocked | None) -> None:
    assert visit_blocked(visit, POLICY, NOW) is expected


def _scored(action: Action, total: float, subject: str = "") -> tuple[Candidate, Score]:
    return Candidate(action, subject, {}), Score(propensity=total, value=1.0, context=1.0)


def test_the_lower_priority_class_wins_then_the_higher_score() -> None:
    urgent, tip, hint = _action("urgent", priority=1), _action("tip"), _action("hint")
    result = arbitrate(
        [_scored(tip, 0.5), _scored(hint, 0.9), _scored(urgent, 0.1)], Visit(), [], POLICY, NOW
    )
    assert result.choice is not None and result.choice.action.id == "urgent"
    result = arbitrate([_scored(tip, 0.5), _scored(hint, 0.9)], Visit(), [], POLICY, NOW)
    assert result.choice is not None and result.choice.action.id == "hint" and result.blocked == ()
    assert result.choice.holdout is False  # not a held-out member unless said


def test_the_ones_passed_over_say_why() -> None:
    capped, tip = _action("capped", priority=1, per_day=1), _action("tip")
    contacts = [_sent(60, action="capped")]
    result = arbitrate(
        [_scored(capped, 0.9), _scored(tip, 0.1)], Visit(), contacts, POLICY, NOW, holdout=True
    )
    assert result.choice is not None and result.choice.action.id == "tip" and result.choice.holdout is True
    assert result.blocked == (Blocked.PER_DAY,)
    result = arbitrate([_scored(capped, 0.9)], Visit(), contacts, POLICY, NOW)
    assert result.choice is None and result.blocked == (Blocked.PER_DAY,)


def test_the_visit_policy_blocks_every_candidate_at_once() -> None:
    result = arbitrate([_scored(_action(), 0.5)], Visit(prompts=2), [], POLICY, NOW)
    assert result.choice is None and result.blocked == (Blocked.VISIT_POLICY,)
    assert arbitrate([], Visit(prompts=2), [], POLICY, NOW).blocked == ()
