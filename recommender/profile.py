"""The decision core's view of a customer: profile, visit and contact history, parsed from
the Redis replies read in one round trip. Pure: raw hashes in, typed values out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from recommender import rfm
from recommender.catalog import Lifecycle
from recommender.crm import DAY

#: A member without a known rhythm "lapses" after this many days without a purchase.
DEFAULT_GAP_DAYS = 30.0
NEW_FOR_DAYS = 60.0
WON_BACK_FOR_DAYS = 60.0
LAPSING_AFTER_GAPS = 2.0
CHURN_RISK_AFTER_GAPS = 4.0

Raw = Mapping[bytes, bytes] | Mapping[str, str]


def _str_map(raw: Raw) -> dict[str, str]:
    # A Redis reply is all bytes (or all str): one type check, not two per field. A text
    # reply is used as it is, not copied (nothing here writes to it).
    if raw and isinstance(next(iter(raw)), bytes):
        return {k.decode(): v.decode() for k, v in raw.items()}  # type: ignore[union-attr]
    return raw if type(raw) is dict else dict(raw)  # type: ignore[arg-type]


def _num(d: Mapping[str, str], key: str) -> float | None:
    v = d.get(key)
    return float(v) if v else None


@dataclass(slots=True)
class Profile:
    member: str
    fields: dict[str, str]
    tier: str = ""
    points: int = 0
    consent: bool = False
    marketing: bool = False
    orders: int = 0
    spend_cents: int = 0
    first: float | None = None
    last: float | None = None
    winback: float | None = None
    clv: float = 0.0
    usual_associate: str | None = None

    def category(self, cat: str) -> tuple[float | None, float | None, str]:
        """(last purchase ts, usual interval s, label) for a category."""
        f = self.fields
        return _num(f, f"last:{cat}"), _num(f, f"interval:{cat}"), f.get(f"label:{cat}", cat)

    def usual_gap_s(self) -> float:
        if self.orders >= 2 and self.first is not None and self.last is not None and self.last > self.first:
            return (self.last - self.first) / (self.orders - 1)
        return DEFAULT_GAP_DAYS * DAY

    def lifecycle(self, now: float) -> Lifecycle:
        if self.winback is not None and now - self.winback <= WON_BACK_FOR_DAYS * DAY:
            return Lifecycle.WON_BACK
        if self.last is None or self.first is None:
            return Lifecycle.NEW
        since = now - self.last
        gap = max(self.usual_gap_s(), 7 * DAY)
        if since > CHURN_RISK_AFTER_GAPS * gap:
            return Lifecycle.CHURN_RISK
        if since > LAPSING_AFTER_GAPS * gap:
            return Lifecycle.LAPSING
        if self.orders <= 2 and now - self.first <= NEW_FOR_DAYS * DAY:
            return Lifecycle.NEW
        return Lifecycle.ACTIVE

    def rfm(self, cuts: rfm.Cuts, now: float) -> tuple[int, int, int]:
        recency = (now - self.last) / DAY if self.last is not None else 10_000.0
        return (
            rfm.score(recency, cuts.recency_days, lower_is_better=True),
            rfm.score(self.orders, cuts.frequency),
            rfm.score(self.spend_cents / 100, cuts.monetary),
        )


def parse_profile(member: str, raw: Raw) -> Profile | None:
    """The profile, or None when the member is unknown (empty hash)."""
    if not raw:
        return None
    d = _str_map(raw)
    return Profile(
        member=member,
        fields=d,
        tier=d.get("tier", ""),
        points=int(d.get("points") or 0),
        consent=d.get("consent") == "1",
        marketing=d.get("mkt") == "1",
        orders=int(d.get("orders") or 0),
        spend_cents=int(d.get("spend") or 0),
        first=_num(d, "first"),
        last=_num(d, "last"),
        winback=_num(d, "winback"),
        clv=float(d.get("clv") or 0),
        usual_associate=d.get("assoc") or None,
    )


@dataclass(slots=True)
class Visit:
    """This visit so far: where, since when, and what was already prompted."""

    zone: str | None = None
    zone_since: float | None = None
    started: float | None = None
    prompts: int = 0
    last_prompt: float | None = None
    #: claim keys (``done:{action}:{subject}``) and per-action counts (``n:{action}``).
    fields: dict[str, str] = field(default_factory=dict)

    def done(self, claim: str) -> bool:
        return f"done:{claim}" in self.fields

    def count(self, action: str) -> int:
        return int(self.fields.get(f"n:{action}", "0"))


def parse_visit(raw: Raw) -> Visit:
    d = _str_map(raw)
    return Visit(
        zone=d.get("zone") or None,
        zone_since=_num(d, "zone_since"),
        started=_num(d, "started"),
        prompts=int(d.get("n") or 0),
        last_prompt=_num(d, "lastp"),
        fields=d,
    )


@dataclass(slots=True)
class Contact:
    ts: float
    action: str
    dismissed: bool


def parse_contacts(raw: Sequence[tuple[bytes | str, float]]) -> list[Contact]:
    """Contact history zset members ``p|{action}|{prompt}`` (prompted) / ``x|...`` (dismissed)."""
    out = []
    for member, score in raw:
        text = member.decode() if isinstance(member, bytes) else member
        kind, _, rest = text.partition("|")
        action = rest.partition("|")[0]
        out.append(Contact(float(score), action, kind == "x"))
    return out
