"""The CRM fixture: members with tier, points, consent and purchases by category.

File format (JSON)::

    {"members": [
      {"member": "m_chen0001", "display_name": "Mrs Chen", "tier": "gold", "points": 1840,
       "consent": {"recognition": true},
       "purchases": [{"days_ago": 32, "category": "sauces", "sku": "kikkoman-500",
                      "label": "Kikkoman soy sauce 500 ml"}, ...]}]}

A purchase gives either ``days_ago`` (relative to load time, handy for fixtures) or ``at``
(an ISO timestamp). :func:`derive_profile` turns a member into the compact Redis hash the
decision script reads in one round trip; it is pure and takes ``now``.
"""

from __future__ import annotations

import itertools
import statistics
from datetime import datetime
from pathlib import Path
from typing import Annotated

import redis
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from broker_config.contract import Ident, MemberRef
from floorwalker.config import describe
from floorwalker.errors import ConfigError
from recommender.keys import Keys

DAY = 86_400.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Purchase(_Strict):
    category: Ident
    sku: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    label: Annotated[str, StringConstraints(max_length=80)] = ""
    days_ago: float | None = Field(default=None, ge=0)
    at: datetime | None = None

    @model_validator(mode="after")
    def _one_time(self) -> Purchase:
        if (self.days_ago is None) == (self.at is None):
            raise ValueError("give exactly one of days_ago or at")
        return self

    def timestamp(self, now: float) -> float:
        if self.at is not None:
            return self.at.timestamp()
        assert self.days_ago is not None
        return now - self.days_ago * DAY


class Consent(_Strict):
    #: Recognized in store (presence) and prompted about.
    recognition: bool = False


class Member(_Strict):
    member: MemberRef
    display_name: Annotated[str, StringConstraints(min_length=1, max_length=60)]
    tier: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    points: int = Field(ge=0)
    consent: Consent = Consent()
    purchases: list[Purchase] = []


class CrmFixture(_Strict):
    members: list[Member]


def usual_interval(times: list[float]) -> float | None:
    """The household's usual gap between purchases of one category (median), if known.

    Purchases less than a day apart count as one shopping occasion.
    """
    occasions: list[float] = []
    for t in sorted(times):
        if not occasions or t - occasions[-1] > DAY:
            occasions.append(t)
    if len(occasions) < 2:
        return None
    return statistics.median(b - a for a, b in itertools.pairwise(occasions))


def derive_profile(member: Member, now: float) -> dict[str, str]:
    """The member's Redis profile hash: display data, consent, and per category the last
    purchase time, usual interval and the product they usually buy."""
    profile = {
        "name": member.display_name,  # read only by the handheld API on the store server
        "tier": member.tier,
        "points": str(member.points),
        "consent": "1" if member.consent.recognition else "0",
    }
    by_category: dict[str, list[Purchase]] = {}
    for p in member.purchases:
        by_category.setdefault(p.category, []).append(p)
    for category, purchases in by_category.items():
        times = [p.timestamp(now) for p in purchases]
        latest = max(purchases, key=lambda p: p.timestamp(now))
        profile[f"last:{category}"] = f"{max(times):.0f}"
        profile[f"label:{category}"] = latest.label or latest.sku
        interval = usual_interval(times)
        if interval is not None:
            profile[f"interval:{category}"] = f"{interval:.0f}"
    return profile


def read_fixture(path: Path) -> CrmFixture:
    try:
        return CrmFixture.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{path}: CRM fixture not found (check the store config's `crm` key)") from None
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe(exc)}") from None


def load_into_redis(client: redis.Redis, keys: Keys, fixture: CrmFixture, now: float) -> int:
    """Write every member's profile (replacing what was there); return how many."""
    pipe = client.pipeline(transaction=False)
    for member in fixture.members:
        key = keys.profile(member.member)
        pipe.delete(key)
        pipe.hset(key, mapping=derive_profile(member, now))
    pipe.execute()
    return len(fixture.members)
