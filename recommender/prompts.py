"""Prompt wording: what the associate should do and why, from a decision. Pure.

Nothing here names the customer: the prompt travels over MQTT, where only pseudonymous
ids are allowed. The handheld API, on the store server, puts the name on the screen.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker_config.contract import CustomerCard, EnvelopeSource, Prompt, PromptKind
from floorwalker.config import StoreConfig
from recommender.crm import DAY
from recommender.decide import Decision


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


def word(decision: Decision, cause: Cause, config: StoreConfig) -> Wording:
    zone = config.zone(cause.zone) if cause.zone else None
    place = zone.name if zone else (cause.lane or "the store")
    tier = decision.tier.capitalize()
    pct = config.rules.member_discount_pct
    if decision.kind is PromptKind.GREET_VIP:
        points = f" They have {decision.points:,} points." if decision.points is not None else ""
        return Wording(
            headline=f"{tier} member in {place}",
            suggestion=f"Greet them by name and offer help.{points}",
            why=f"{tier} member, just walked into {place}; no one has greeted them this visit.",
        )
    if decision.kind is PromptKind.REPLENISHMENT_DUE:
        label = decision.label or decision.category
        usual = round((decision.interval_s or 0) / DAY)
        since = round((cause.ts - (decision.last_purchase_ts or cause.ts)) / DAY)
        return Wording(
            headline=f"{label} due",
            suggestion=f"Mention {label}, shelved in {place}; members get {pct}% off.",
            why=f"Buys {label} about every {usual} days; last bought {since} days ago.",
        )
    if decision.kind is PromptKind.JOIN_INVITE:
        return Wording(
            headline=f"Invite to join at {place}",
            suggestion=f"Offer the loyalty card: {pct}% off for members, starting with this basket.",
            why=f"Paid at {place} without a member card.",
        )
    raise ValueError(f"no wording for decision {decision!r}")


def build_prompt(
    decision: Decision, cause: Cause, config: StoreConfig, source: EnvelopeSource, now: float
) -> Prompt:
    w = word(decision, cause, config)
    return source.make(
        Prompt,
        now,
        kind=decision.kind,
        customer=CustomerCard(member=cause.member, tier=decision.tier or None, points=decision.points),
        zone=cause.zone,
        lane=cause.lane,
        headline=w.headline,
        suggestion=w.suggestion,
        why=w.why,
        cause_event_id=cause.event_id,
        cause_ts=cause.ts,
        expires_at=now + config.rules.prompt_ttl_s,
    )
