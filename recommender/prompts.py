"""Prompt wording: the catalog's templates filled with the choice's facts, plus the
machine-readable reason. Pure.

Nothing here names the customer: the prompt travels over MQTT, where only pseudonymous
ids are allowed. The handheld API, on the store server, puts the name on the screen.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker_config.contract import CustomerCard, EnvelopeSource, Prompt, PromptReason
from recommender.arbitration import Choice

#: Reason facts kept on the wire (the contract allows 24); the template variables first.
MAX_FACTS = 24


@dataclass(frozen=True, slots=True)
class Cause:
    """The event a prompt answers."""

    event_id: str
    ts: float
    member: str | None
    zone: str | None = None
    lane: str | None = None


@dataclass(frozen=True, slots=True)
class Wording:
    headline: str
    suggestion: str
    why: str


def word(choice: Choice) -> Wording:
    text, facts = choice.action.text, choice.facts
    return Wording(
        headline=text.headline.format(**facts)[:120],
        suggestion=text.suggestion.format(**facts)[:300],
        why=text.why.format(**facts)[:300],
    )


def reason(choice: Choice) -> PromptReason:
    facts = dict(list(choice.facts.items())[:MAX_FACTS])
    return PromptReason(rule=choice.action.id, facts=facts, scores=choice.score.as_dict())


def build_prompt(
    choice: Choice,
    cause: Cause,
    source: EnvelopeSource,
    now: float,
    *,
    tier: str | None = None,
    points: int | None = None,
) -> Prompt:
    w = word(choice)
    return source.make(
        Prompt,
        now,
        kind=choice.action.kind,
        customer=CustomerCard(member=cause.member, tier=tier or None, points=points),
        zone=cause.zone,
        lane=cause.lane,
        headline=w.headline,
        suggestion=w.suggestion,
        why=w.why,
        cause_event_id=cause.event_id,
        cause_ts=cause.ts,
        expires_at=now + choice.action.expires_s,
        reason=reason(choice),
    )
