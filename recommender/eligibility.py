"""Eligibility: which catalog actions could fire at this moment for this customer, with the
facts each would state. Pure: profile, visit, moment and catalog in; candidates out.

The action's ``kind`` decides what the engine looks for (a category due on a shelf here, an
open complaint, a birthday, a long queue...); the catalog's ``eligible`` filters narrow it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from broker_config.contract import FactValue, PromptKind
from recommender.catalog import Action, Catalog, Lifecycle
from recommender.crm import DAY, mmdd_to_date
from recommender.profile import Profile
from recommender.rfm import segment

Trigger = Literal["enter", "leave", "dwell", "checkout", "footfall"]


@dataclass(slots=True)
class Moment:
    """Where and when: the event that asks for a decision, with its store context."""

    trigger: Trigger
    ts: float
    zone: str
    zone_name: str
    categories: tuple[str, ...] = ()
    dwell_s: float = 0.0
    #: Latest checkout queue length (from footfall), when known.
    queue: int | None = None
    basket_cents: int = 0


@dataclass(frozen=True, slots=True)
class Settings:
    """Store parameters the detectors use (from the store config's ``rules``)."""

    replenish_from: float = 0.9
    replenish_until: float = 3.0
    discount_pct: int = 5


# Not frozen: built several times per decision on the hot path, and a frozen
# dataclass pays object.__setattr__ per field (measured ~3x slower to build).
@dataclass(slots=True)
class Candidate:
    action: Action
    #: What the action is about (a category, or ""): one claim per action+subject per visit.
    subject: str
    facts: dict[str, FactValue]
    #: 0..1, how much this zone is the place for it.
    relevance: float = 1.0

    @property
    def claim(self) -> str:
        return f"{self.action.id}:{self.subject}" if self.subject else self.action.id


def _days(seconds: float) -> int:
    return round(seconds / DAY)


def _birthday_offset(mmdd: str, now: float) -> int:
    """Days from today to the nearest birthday (negative: it was a few days ago)."""
    today = datetime.fromtimestamp(now, UTC).date()
    best = 400
    for year in (today.year - 1, today.year, today.year + 1):
        d = (mmdd_to_date(mmdd, year) - today).days
        if abs(d) < abs(best):
            best = d
    return best


def _when(days: int) -> str:
    if days == 0:
        return "today"
    if days == 1:
        return "tomorrow"
    if days > 0:
        return f"in {days} days"
    return "yesterday" if days == -1 else f"{-days} days ago"


def member_facts(
    profile: Profile, moment: Moment, settings: Settings, rfm: tuple[int, int, int], stage: Lifecycle
) -> dict[str, FactValue]:
    r, f, m = rfm
    return {
        "tier": profile.tier.capitalize(),
        "points": profile.points,
        "zone": moment.zone_name,
        "discount_pct": settings.discount_pct,
        "segment": segment(r, f),
        "lifecycle": stage.value,
        "rfm": f"{r}{f}{m}",
        "clv": round(profile.clv, 2),
    }


# One detector per kind: what the action is about, for this customer, here and now.
Detector = Callable[[Action, Profile, Moment, Settings, dict[str, FactValue]], list[Candidate]]


def _greet_vip(
    action: Action, profile: Profile, moment: Moment, settings: Settings, base: dict[str, FactValue]
) -> list[Candidate]:
    return [Candidate(action, "", base)]


def _replenishment_due(
    action: Action, profile: Profile, moment: Moment, settings: Settings, base: dict[str, FactValue]
) -> list[Candidate]:
    found = []
    for cat in moment.categories:
        last, interval, label = profile.category(cat)
        if last is None or not interval:
            continue
        elapsed = moment.ts - last
        if settings.replenish_from * interval <= elapsed <= settings.replenish_until * interval:
            facts = {
                **base,
                "category": cat,
                "label": label,
                "interval_days": _days(interval),
                "since_days": _days(elapsed),
            }
            found.append(Candidate(action, cat, facts, min(1.0, elapsed / interval)))
    return found


def _cross_sell(
    action: Action, profile: Profile, moment: Moment, settings: Settings, base: dict[str, FactValue]
) -> list[Candidate]:
    found = []
    for pair in profile.fields.get("xsell", "").split():
        cat, _, because = pair.partition("<")
        if cat in moment.categories:
            _, _, because_label = profile.category(because)
            found.append(Candidate(action, cat, {**base, "category": cat, "because": because_label}))
    return found


def _birthday(
    action: Action, profile: Profile, moment: Moment, settings: Settings, base: dict[str, FactValue]
) -> list[Candidate]:
    bday = profile.fields.get("bday")
    el = action.eligible
    within = el.birthday_within_days if el.birthday_within_days is not None else 3
    if bday:
        offset = _birthday_offset(bday, moment.ts)
        if abs(offset) <= within:
            return [
                Candidate(action, "", {**base, "birthday_when": _when(offset), "days_to_birthday": offset})
            ]
    return []


def _expiring_points(
    action: Action, profile: Profile, moment: Moment, settings: Settings, base: dict[str, FactValue]
) -> list[Candidate]:
    at = profile.fields.get("exp_at")
    el = action.eligible
    within = el.points_expiring_within_days if el.points_expiring_within_days is not None else 14
    if at and 0 <= float(at) - moment.ts <= within * DAY:
        left = max(1, _days(float(at) - moment.ts))
        facts = {**base, "expiring": profile.fields.get("exp_label", "points"), "expires_in_days": left}
        return [Candidate(action, "", facts)]
    return []


def _complaint_follow_up(
    action: Action, profile: Profile, moment: Moment, settings: Settings, base: dict[str, FactValue]
) -> list[Candidate]:
    complaint = profile.fields.get("complaint")
    return [Candidate(action, "", {**base, "complaint": complaint})] if complaint else []


def _win_back(
    action: Action, profile: Profile, moment: Moment, settings: Settings, base: dict[str, FactValue]
) -> list[Candidate]:
    if profile.last is None:
        return []
    facts: dict[str, FactValue] = {
        **base,
        "since_last_days": _days(moment.ts - profile.last),
        "usual_gap_days": _days(profile.usual_gap_s()),
    }
    return [Candidate(action, "", facts)]


def _long_dwell_help(
    action: Action, profile: Profile, moment: Moment, settings: Settings, base: dict[str, FactValue]
) -> list[Candidate]:
    el = action.eligible
    if el.min_dwell_s is not None and moment.dwell_s >= el.min_dwell_s:
        return [Candidate(action, moment.zone, {**base, "dwell_min": int(moment.dwell_s // 60)})]
    return []


#: A dict, not a chain of ``if kind is ...``: the core asks for every action on every event.
#: Kinds not here (join invite, open till) are not about a member.
_DETECTORS: dict[PromptKind, Detector] = {
    PromptKind.GREET_VIP: _greet_vip,
    PromptKind.REPLENISHMENT_DUE: _replenishment_due,
    PromptKind.CROSS_SELL: _cross_sell,
    PromptKind.BIRTHDAY: _birthday,
    PromptKind.EXPIRING_POINTS: _expiring_points,
    PromptKind.COMPLAINT_FOLLOW_UP: _complaint_follow_up,
    PromptKind.WIN_BACK: _win_back,
    PromptKind.LONG_DWELL_HELP: _long_dwell_help,
}


def _filters_pass(action: Action, profile: Profile, facts: dict[str, FactValue], moment: Moment) -> bool:
    el = action.eligible
    if not el.filters_members:
        return True
    if el.consent == "marketing" and not profile.marketing:
        return False
    if el.tiers is not None and profile.tier not in el.tiers:
        return False
    if el.lifecycle is not None and facts["lifecycle"] not in el.lifecycle:
        return False
    if el.segments is not None and facts["segment"] not in el.segments:
        return False
    if el.zones is not None and moment.zone not in el.zones:
        return False
    return el.min_clv is None or profile.clv >= el.min_clv


def member_candidates(
    catalog: Catalog,
    profile: Profile,
    moment: Moment,
    settings: Settings,
    rfm: tuple[int, int, int],
    stage: Lifecycle,
) -> list[Candidate]:
    """Every member action eligible now (caps and policy are arbitration's job).
    ``rfm`` and ``stage`` are the profile's scores and lifecycle stage at ``moment.ts``."""
    if not profile.consent:
        return []
    actions = catalog.member_triggers.get(moment.trigger, ())
    if not actions:
        return []
    base = member_facts(profile, moment, settings, rfm, stage)
    out: list[Candidate] = []
    for action in actions:
        detect = _DETECTORS.get(action.kind)
        if detect is not None and _filters_pass(action, profile, base, moment):
            out.extend(detect(action, profile, moment, settings, base))
    return out


def guest_candidates(catalog: Catalog, moment: Moment, settings: Settings) -> list[Candidate]:
    """A checkout without a member card: the join invite."""
    if moment.trigger != "checkout":
        return []
    facts: dict[str, FactValue] = {
        "zone": moment.zone_name,
        "discount_pct": settings.discount_pct,
        "basket_eur": round(moment.basket_cents / 100, 2),
    }
    return [Candidate(a, "", facts) for a in catalog.by_kind(PromptKind.JOIN_INVITE) if not a.eligible.member]


def store_candidates(catalog: Catalog, moment: Moment) -> list[Candidate]:
    """Store-level actions: open another till when the queue is long."""
    if moment.trigger != "footfall" or moment.queue is None:
        return []
    out = []
    for a in catalog.by_kind(PromptKind.OPEN_TILL):
        threshold = a.eligible.min_queue or 1
        if moment.queue >= threshold and (a.eligible.zones is None or moment.zone in a.eligible.zones):
            facts: dict[str, FactValue] = {
                "zone": moment.zone_name,
                "queue": moment.queue,
                "min_queue": threshold,
            }
            out.append(Candidate(a, moment.zone, facts))
    return out
