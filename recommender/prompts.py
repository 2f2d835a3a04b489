"""Prompt wording: the catalog's templates filled with the choice's facts, plus the
machine-readable reason. Pure.

Nothing here names the customer: the prompt travels over MQTT, where only pseudonymous
ids are allowed. The handheld API, on the store server, puts the name on the screen.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TypedDict

from broker_config.contract import EnvelopeSource, FactValue, Prompt
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


@dataclass(slots=True)  # built on every prompt: a frozen one pays object.__setattr__ per field
class Wording:
    headline: str
    suggestion: str
    why: str


def word(choice: Choice) -> Wording:
    text, facts = choice.action.text, choice.facts
    return Wording(
        headline=text.headline.format_map(facts)[:120],
        suggestion=text.suggestion.format_map(facts)[:300],
        why=text.why.format_map(facts)[:300],
    )


class Reason(TypedDict):
    """The fields of the contract's ``PromptReason``, validated with the prompt."""

    rule: str
    facts: dict[str, FactValue]
    scores: dict[str, float]


def reason(choice: Choice) -> Reason:
    facts = choice.facts
    if len(facts) > MAX_FACTS:
        facts = dict(itertools.islice(facts.items(), MAX_FACTS))
    return Reason(rule=choice.action.id, facts=facts, scores=choice.score.as_dict())


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
    # Plain values, nested ones too: the prompt is validated once, as a whole.
    return source.make(
        Prompt,
        now,
        kind=choice.action.kind,
        customer={"member": cause.member, "tier": tier or None, "points": points},
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
