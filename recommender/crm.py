"""CRM import: members, consent, tiers, points, coupons, purchases and complaints, and the
compact profile the engine reads in one round trip.

Two input formats (see docs/engine.md, "CRM import"):

* JSON: ``{"members": [ {member...}, ... ]}`` with each member as :class:`Member`.
  Purchases give ``days_ago`` (relative to import time, for fixtures) or ``at`` (ISO time).
* CSV: a directory with ``members.csv`` and ``purchases.csv`` (columns in
  :data:`MEMBER_COLUMNS` and :data:`PURCHASE_COLUMNS`).

A row that does not parse is reported as ``file:row N: key: problem`` and skipped; the rest
is imported. :func:`derive_profiles` turns the members into Redis hashes plus the
store-level :class:`CrmModel` (CLV parameters, RFM cut points, cross-sell table). Pure:
``now`` is passed in.
"""

from __future__ import annotations

import csv
import itertools
import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import numpy as np
import redis
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from broker_config.contract import Ident, MemberRef
from floorwalker.config import describe
from floorwalker.errors import ConfigError
from recommender import clv as clv_model
from recommender import rfm
from recommender.keys import Keys

DAY = 86_400.0
#: Cross-sell: suggest B to a buyer of A when this share of A's buyers also buy B.
CROSS_SELL_MIN_CONFIDENCE = 0.3
CROSS_SELL_PER_MEMBER = 3


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Label = Annotated[str, StringConstraints(max_length=80)]


class Purchase(_Strict):
    category: Ident
    sku: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    label: Label = ""
    amount_cents: int = Field(default=0, ge=0, le=10_000_000)
    days_ago: float | None = Field(default=None, ge=0)
    at: datetime | None = None

    @model_validator(mode="after")
    def _one_time(self) -> Purchase:
        if (self.days_ago is None) == (self.at is None):
            raise ValueError("give exactly one of days_ago or at")
        return self

    def timestamp(self, now: float) -> float:
        if self.at is not None:
            at = self.at if self.at.tzinfo else self.at.replace(tzinfo=UTC)
            return at.timestamp()
        assert self.days_ago is not None
        return now - self.days_ago * DAY


class Consent(_Strict):
    #: Recognized in store (presence) and prompted about.
    recognition: bool = False
    #: Offers (birthday treats, expiring points, win-back).
    marketing: bool = False


class Expiring(_Strict):
    """Points or a coupon that expire: ``in_days`` (fixtures) or ``at``."""

    label: Label
    in_days: float | None = Field(default=None, ge=0)
    at: datetime | None = None

    @model_validator(mode="after")
    def _one_time(self) -> Expiring:
        if (self.in_days is None) == (self.at is None):
            raise ValueError("give exactly one of in_days or at")
        return self

    def timestamp(self, now: float) -> float:
        if self.at is not None:
            at = self.at if self.at.tzinfo else self.at.replace(tzinfo=UTC)
            return at.timestamp()
        assert self.in_days is not None
        return now + self.in_days * DAY


class Complaint(_Strict):
    summary: Annotated[str, StringConstraints(min_length=1, max_length=80)]
    open: bool = True


class Member(_Strict):
    member: MemberRef
    display_name: Annotated[str, StringConstraints(min_length=1, max_length=60)]
    tier: Annotated[str, StringConstraints(min_length=1, max_length=20)]
    points: int = Field(ge=0)
    consent: Consent = Consent()
    #: ``MM-DD`` (the year is not needed) or, for fixtures, ``birthday_in_days``.
    birthday: Annotated[str, StringConstraints(pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")] | None = (
        None
    )
    birthday_in_days: int | None = Field(default=None, ge=0, le=365)
    #: Associate id who usually serves this member (routing prefers them).
    usual_associate: Ident | None = None
    expiring: list[Expiring] = []
    complaints: list[Complaint] = []
    purchases: list[Purchase] = []

    def birthday_mmdd(self, now: float) -> str | None:
        if self.birthday is not None:
            return self.birthday
        if self.birthday_in_days is not None:
            return datetime.fromtimestamp(now + self.birthday_in_days * DAY, UTC).strftime("%m-%d")
        return None


class CrmFixture(_Strict):
    members: list[Member]


@dataclass
class CrmImport:
    """What an import produced: the members that parsed, and one line per rejected row."""

    members: list[Member]
    errors: list[str] = field(default_factory=list)


# -- reading ---------------------------------------------------------------------------


def read_crm(path: Path) -> CrmImport:
    """Read a JSON fixture or a CSV directory; bad rows are reported, the rest imported."""
    if path.is_dir():
        return _read_csv_dir(path)
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{path}: CRM data not found (check the store config's `crm` key)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: Invalid JSON ({exc})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("members"), list):
        raise ConfigError(f'{path}: expected {{"members": [...]}} at the top level')
    result = CrmImport([])
    for i, row in enumerate(raw["members"]):
        try:
            result.members.append(Member.model_validate(row))
        except ValidationError as exc:
            result.errors.append(f"{path}: members[{i}]: {describe(exc)}")
    return result


def read_fixture(path: Path) -> CrmFixture:
    """The members of a CRM file that parse (what the simulator walks around the store)."""
    return CrmFixture(members=read_crm(path).members)


#: members.csv columns (header row required; empty cells mean "not given").
MEMBER_COLUMNS = (
    "member",
    "display_name",
    "tier",
    "points",
    "consent_recognition",
    "consent_marketing",
    "birthday",
    "usual_associate",
    "expiring_label",
    "expiring_at",
    "complaint",
)
#: purchases.csv columns.
PURCHASE_COLUMNS = ("member", "at", "category", "sku", "label", "amount_cents")


def _rows(path: Path, columns: tuple[str, ...], errors: list[str]) -> list[tuple[int, dict[str, str]]]:
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in columns[:1] if c not in (reader.fieldnames or [])]
            unknown = [c for c in reader.fieldnames or [] if c not in columns]
            if missing or unknown:
                raise ConfigError(
                    f"{path}: row 1: header must use the columns {', '.join(columns)}"
                    f" ({'missing ' + missing[0] if missing else 'unknown ' + unknown[0]})"
                )
            return [
                (i + 2, {k: (v or "").strip() for k, v in row.items() if k}) for i, row in enumerate(reader)
            ]
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: not found (a CSV CRM directory needs members.csv and purchases.csv)"
        ) from None


def _bool(v: str) -> bool:
    if v.lower() in ("1", "true", "yes", "y"):
        return True
    if v.lower() in ("", "0", "false", "no", "n"):
        return False
    raise ValueError(f"expected true/false, got {v!r}")


def _read_csv_dir(path: Path) -> CrmImport:
    errors: list[str] = []
    purchases: dict[str, list[dict[str, object]]] = {}
    p_file = path / "purchases.csv"
    for row_no, row in _rows(p_file, PURCHASE_COLUMNS, errors):
        try:
            item = {
                "category": row.get("category", ""),
                "sku": row.get("sku", ""),
                "label": row.get("label", ""),
                "amount_cents": int(row.get("amount_cents") or 0),
                "at": row.get("at", ""),
            }
            Purchase.model_validate(item)
        except (ValidationError, ValueError) as exc:
            why = describe(exc) if isinstance(exc, ValidationError) else str(exc)
            errors.append(f"{p_file}: row {row_no}: {why}")
            continue
        purchases.setdefault(row.get("member", ""), []).append(item)
    result = CrmImport([], errors)
    m_file = path / "members.csv"
    for row_no, row in _rows(m_file, MEMBER_COLUMNS, errors):
        try:
            data: dict[str, object] = {
                "member": row.get("member", ""),
                "display_name": row.get("display_name", ""),
                "tier": row.get("tier", ""),
                "points": int(row.get("points") or 0),
                "consent": {
                    "recognition": _bool(row.get("consent_recognition", "")),
                    "marketing": _bool(row.get("consent_marketing", "")),
                },
                "purchases": purchases.get(row.get("member", ""), []),
            }
            for key in ("birthday", "usual_associate"):
                if row.get(key):
                    data[key] = row[key]
            if row.get("expiring_label"):
                data["expiring"] = [{"label": row["expiring_label"], "at": row.get("expiring_at", "")}]
            if row.get("complaint"):
                data["complaints"] = [{"summary": row["complaint"]}]
            result.members.append(Member.model_validate(data))
        except (ValidationError, ValueError) as exc:
            why = describe(exc) if isinstance(exc, ValidationError) else str(exc)
            errors.append(f"{m_file}: row {row_no}: {why}")
    return result


# -- deriving the profile --------------------------------------------------------------


def usual_interval(times: list[float]) -> float | None:
    """The household's usual gap between purchases of one category (median), if known.

    Purchases less than a day apart count as one shopping occasion.
    """
    occasions = _occasions(times)
    if len(occasions) < 2:
        return None
    return statistics.median(b - a for a, b in itertools.pairwise(occasions))


def _occasions(times: list[float]) -> list[float]:
    occasions: list[float] = []
    for t in sorted(times):
        if not occasions or t - occasions[-1] > DAY:
            occasions.append(t)
    return occasions


@dataclass(frozen=True, slots=True)
class CrmModel:
    """Store-level results of an import that profiles are scored against."""

    clv: clv_model.ClvParams
    rfm: rfm.Cuts
    #: category -> [(other category, confidence)] best first.
    cross_sell: dict[str, list[tuple[str, float]]]


@dataclass(frozen=True, slots=True)
class _Summary:
    orders: int
    first: float | None
    last: float | None
    spend_cents: int


def _summary(member: Member, now: float) -> _Summary:
    times = [p.timestamp(now) for p in member.purchases]
    occasions = _occasions(times)
    return _Summary(
        orders=len(occasions),
        first=min(times) if times else None,
        last=max(times) if times else None,
        spend_cents=sum(p.amount_cents for p in member.purchases),
    )


def clv_inputs(orders: int, first: float, last: float, spend_cents: int, now: float) -> tuple[float, ...]:
    """(x repeat purchases, t_x, T in weeks, mean value per purchase in currency units)."""
    return (
        max(orders - 1, 0),
        (last - first) / clv_model.WEEK,
        (now - first) / clv_model.WEEK,
        spend_cents / 100 / max(orders, 1),
    )


def cross_sell_table(baskets: list[set[str]]) -> dict[str, list[tuple[str, float]]]:
    """For each category A, the categories B that at least a share of A's buyers also buy."""
    buyers: Counter[str] = Counter()
    both: Counter[tuple[str, str]] = Counter()
    for cats in baskets:
        buyers.update(cats)
        both.update((a, b) for a in cats for b in cats if a != b)
    table: dict[str, list[tuple[str, float]]] = {}
    for (a, b), n in both.items():
        conf = n / buyers[a]
        if conf >= CROSS_SELL_MIN_CONFIDENCE and n >= 2:
            table.setdefault(a, []).append((b, round(conf, 3)))
    for a in table:
        table[a].sort(key=lambda t: (-t[1], t[0]))
    return table


def fit_model(members: list[Member], now: float) -> CrmModel:
    summaries = [_summary(m, now) for m in members]
    buyers = [s for s in summaries if s.first is not None and s.last is not None]
    rows = np.array(
        [clv_inputs(s.orders, s.first, s.last, s.spend_cents, now) for s in buyers if s.first and s.last]
        or np.zeros((0, 4))
    ).reshape(-1, 4)
    params = clv_model.fit(rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3])
    cuts = rfm.cuts(
        recency_days=[(now - s.last) / DAY for s in buyers if s.last],
        frequency=[s.orders for s in buyers],
        monetary=[s.spend_cents / 100 for s in buyers],
    )
    table = cross_sell_table([{p.category for p in m.purchases} for m in members if m.purchases])
    return CrmModel(params, cuts, table)


def derive_profile(member: Member, now: float, model: CrmModel | None = None) -> dict[str, str]:
    """The member's Redis profile hash (fields in docs/architecture.md)."""
    model = model or fit_model([member], now)
    s = _summary(member, now)
    profile = {
        "name": member.display_name,  # read only by the handheld API on the store server
        "tier": member.tier,
        "points": str(member.points),
        "consent": "1" if member.consent.recognition else "0",
        "mkt": "1" if member.consent.marketing else "0",
        "orders": str(s.orders),
        "spend": str(s.spend_cents),
    }
    if s.first is not None and s.last is not None:
        profile["first"] = f"{s.first:.0f}"
        profile["last"] = f"{s.last:.0f}"
        profile["clv"] = (
            f"{clv_model.clv(model.clv, *clv_inputs(s.orders, s.first, s.last, s.spend_cents, now)):.2f}"
        )
    else:
        profile["clv"] = "0"
    if (bday := member.birthday_mmdd(now)) is not None:
        profile["bday"] = bday
    if member.usual_associate:
        profile["assoc"] = member.usual_associate
    upcoming = sorted((e.timestamp(now), e.label) for e in member.expiring if e.timestamp(now) > now)
    if upcoming:
        profile["exp_at"] = f"{upcoming[0][0]:.0f}"
        profile["exp_label"] = upcoming[0][1]
    open_complaints = [c.summary for c in member.complaints if c.open]
    if open_complaints:
        profile["complaint"] = open_complaints[-1]
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
    owned = set(by_category)
    offers: dict[str, tuple[float, str]] = {}
    for a in sorted(owned):
        for b, conf in model.cross_sell.get(a, []):
            if b not in owned and conf > offers.get(b, (0.0, ""))[0]:
                offers[b] = (conf, a)
    best = sorted(offers.items(), key=lambda kv: (-kv[1][0], kv[0]))[:CROSS_SELL_PER_MEMBER]
    if best:
        profile["xsell"] = " ".join(f"{b}<{a}" for b, (_, a) in best)
    return profile


def derive_profiles(members: list[Member], now: float) -> tuple[dict[str, dict[str, str]], CrmModel]:
    model = fit_model(members, now)
    return {m.member: derive_profile(m, now, model) for m in members}, model


def load_into_redis(client: redis.Redis, keys: Keys, members: list[Member], now: float) -> CrmModel:
    """Write every member's profile (replacing what was there) and the store's CRM model."""
    profiles, model = derive_profiles(members, now)
    # An erased member stays erased, whatever the CRM export still holds.
    erased = client.pipeline(transaction=False)
    for member in profiles:
        erased.exists(keys.erased(member))
    gone = {m for m, flag in zip(profiles, erased.execute(), strict=True) if flag}
    pipe = client.pipeline(transaction=False)
    for member, profile in profiles.items():
        if member in gone:
            continue
        key = keys.profile(member)
        pipe.delete(key)
        pipe.hset(key, mapping=profile)
    pipe.set(keys.crm_model, model_to_json(model))
    pipe.execute()
    return model


def model_to_json(model: CrmModel) -> str:
    return json.dumps(
        {
            "clv": [getattr(model.clv, f) for f in ("r", "alpha", "a", "b", "p", "q", "v", "fitted")],
            "rfm": [list(model.rfm.recency_days), list(model.rfm.frequency), list(model.rfm.monetary)],
            "cross_sell": model.cross_sell,
        }
    )


def model_from_json(data: str | bytes | None) -> CrmModel:
    """The stored CRM model, or the published CDNOW priors with no RFM cut points."""
    if not data:
        return CrmModel(clv_model.CDNOW_PARAMS, rfm.Cuts((), (), ()), {})
    raw = json.loads(data)
    c = raw["clv"]
    return CrmModel(
        clv_model.ClvParams(*[float(v) for v in c[:7]], fitted=bool(c[7])),  # type: ignore[misc, arg-type]
        rfm.Cuts(*(tuple(float(v) for v in cut) for cut in raw["rfm"])),
        {k: [(b, float(conf)) for b, conf in v] for k, v in raw["cross_sell"].items()},
    )


def mmdd_to_date(mmdd: str, year: int) -> date:
    month, day = int(mmdd[:2]), int(mmdd[3:])
    if (month, day) == (2, 29):
        try:
            return date(year, 2, 29)
        except ValueError:
            return date(year, 2, 28)
    return date(year, month, day)
