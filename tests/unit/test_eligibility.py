"""Eligibility, table-driven: each detector's candidates (subject, facts, relevance) at the
edges of its window, the member filters, the facts every member prompt carries, and the
guest and store candidates. Expected values are worked out by hand from the rules."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from broker_config.contract import FactValue, PromptKind
from recommender.catalog import Action, Catalog, Lifecycle
from recommender.crm import DAY
from recommender.eligibility import (
    Moment,
    Settings,
    guest_candidates,
    member_candidates,
    member_facts,
    store_candidates,
)
from recommender.profile import Profile

#: Monday 15 June 2026, noon UTC.
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC).timestamp()
TEXT = {"headline": "h", "suggestion": "s", "why": "w"}
SETTINGS = Settings(replenish_from=0.9, replenish_until=3.0, discount_pct=5)
RFM, STAGE = (4, 4, 5), Lifecycle.ACTIVE  # a champion
BASE: dict[str, FactValue] = {
    "tier": "Gold",
    "points": 1840,
    "zone": "Pantry",
    "discount_pct": 5,
    "segment": "champions",
    "lifecycle": "active",
    "rfm": "445",
    "clv": 123.46,
}


def _action(kind: PromptKind, **eligible: Any) -> Action:
    return Action(id=kind.value, kind=kind, value=5, text=TEXT, eligible=eligible)


def _profile(**fields: str) -> Profile:
    return Profile("m_test0001", dict(fields), tier="gold", points=1840, consent=True, clv=123.456)


def _moment(
    trigger: str = "enter", ts: float = NOW, zone: str = "pantry", dwell_s: float = 0.0, **more: Any
) -> Moment:
    cats = ("tea", "rice", "sauces") if zone == "pantry" else ()
    return Moment(trigger, ts, zone, zone.capitalize(), cats, dwell_s=dwell_s, **more)  # type: ignore[arg-type]


def found(
    action: Action, profile: Profile, moment: Moment | None = None
) -> list[tuple[str, dict[str, Any], float]]:
    """(subject, the facts beyond the member's, relevance) of each candidate."""
    moment = moment or _moment()
    out = member_candidates(Catalog(actions=[action]), profile, moment, SETTINGS, RFM, STAGE)
    base = member_facts(profile, moment, SETTINGS, RFM, STAGE)
    for c in out:
        assert c.action is action and {k: c.facts[k] for k in base} == base
    return [(c.subject, {k: v for k, v in c.facts.items() if k not in base}, c.relevance) for c in out]


def test_the_facts_every_member_prompt_carries() -> None:
    assert member_facts(_profile(), _moment(), SETTINGS, RFM, STAGE) == BASE
    hibernating = member_facts(_profile(), _moment(), SETTINGS, (1, 2, 3), Lifecycle.LAPSING)
    assert (hibernating["segment"], hibernating["rfm"], hibernating["lifecycle"]) == (
        "hibernating",
        "123",
        "lapsing",
    )


def test_greeting_is_about_the_member_not_a_subject() -> None:
    assert found(_action(PromptKind.GREET_VIP), _profile()) == [("", {}, 1.0)]
    assert found(_action(PromptKind.GREET_VIP), Profile("m_test0001", {}, consent=False)) == []


# -- replenishment: from 0.9 to 3 usual intervals since the last purchase --------------


def _bought(cat: str, days_ago: float, every_days: float, label: str | None = None) -> dict[str, str]:
    fields = {f"last:{cat}": f"{NOW - days_ago * DAY}", f"interval:{cat}": f"{every_days * DAY}"}
    if label:
        fields[f"label:{cat}"] = label
    return fields


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # 9 of 10 days: due from here (exactly 0.9), relevance 0.9
        (_bought("tea", 9, 10), [("tea", 9, 10, 0.9, "tea")]),
        (_bought("tea", 8.9, 10), []),
        # 30 of 10 days: still due (exactly 3 intervals), relevance capped at 1
        (_bought("tea", 30, 10, "Jasmine tea"), [("tea", 30, 10, 1.0, "Jasmine tea")]),
        (_bought("tea", 30.1, 10), []),
        (_bought("tea", 20, 10), [("tea", 20, 10, 1.0, "tea")]),
        # no history, or no usual interval, for the first category: the next one still counts
        ({"last:tea": f"{NOW}", **_bought("rice", 12, 12)}, [("rice", 12, 12, 1.0, "rice")]),
        ({"interval:tea": f"{10 * DAY}", **_bought("rice", 12, 12)}, [("rice", 12, 12, 1.0, "rice")]),
        # categories not shelved here do not count
        (_bought("milk", 9, 10), []),
    ],
)
def test_replenishment_due(fields: dict[str, str], expected: list[tuple[str, int, int, float, str]]) -> None:
    got = found(_action(PromptKind.REPLENISHMENT_DUE, category_due=True), _profile(**fields))
    assert got == [
        (
            cat,
            {"category": cat, "label": label, "interval_days": every, "since_days": ago},
            pytest.approx(rel),
        )
        for cat, ago, every, rel, label in expected
    ]


def test_cross_sell_names_the_category_and_what_it_goes_with() -> None:
    profile = _profile(xsell="rice<sauces noodles<tea milk<tea", **{"label:sauces": "Kikkoman soy sauce"})
    assert found(_action(PromptKind.CROSS_SELL), profile) == [
        ("rice", {"category": "rice", "because": "Kikkoman soy sauce"}, 1.0)
    ]
    assert found(_action(PromptKind.CROSS_SELL), _profile()) == []


# -- birthday: within 3 days either side by default ---------------------------------------


@pytest.mark.parametrize(
    ("bday", "within", "expected"),
    [
        ("06-15", None, ("today", 0)),
        ("06-16", None, ("tomorrow", 1)),
        ("06-17", None, ("in 2 days", 2)),
        ("06-18", None, ("in 3 days", 3)),
        ("06-19", None, None),
        ("06-14", None, ("yesterday", -1)),
        ("06-12", None, ("3 days ago", -3)),
        ("06-11", None, None),
        ("06-20", 5, ("in 5 days", 5)),
        ("06-21", 5, None),
        ("06-16", 0, None),
        ("06-15", 0, ("today", 0)),
    ],
)
def test_birthday_window(bday: str, within: int | None, expected: tuple[str, int] | None) -> None:
    eligible = {} if within is None else {"birthday_within_days": within}
    got = found(_action(PromptKind.BIRTHDAY, **eligible), _profile(bday=bday))
    want = (
        []
        if expected is None
        else [("", {"birthday_when": expected[0], "days_to_birthday": expected[1]}, 1.0)]
    )
    assert got == want


@pytest.mark.parametrize(
    ("today", "bday", "offset"),
    [
        (datetime(2026, 12, 30, 12, tzinfo=UTC), "01-02", 3),  # next year's
        (datetime(2027, 1, 2, 12, tzinfo=UTC), "12-31", -2),  # last year's
        (datetime(2027, 1, 1, 12, tzinfo=UTC), "12-31", -1),
    ],
)
def test_birthday_across_new_year(today: datetime, bday: str, offset: int) -> None:
    got = found(_action(PromptKind.BIRTHDAY), _profile(bday=bday), _moment(ts=today.timestamp()))
    assert [facts["days_to_birthday"] for _, facts, _ in got] == [offset]


@pytest.fixture
def far_east(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone 14 hours ahead of UTC (the store's dates are UTC)."""
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")
    time.tzset()
    assert time.timezone == -14 * 3600
    yield
    monkeypatch.undo()
    time.tzset()


def test_birthday_days_count_in_utc_whatever_the_local_zone(far_east: None) -> None:
    late = datetime(2026, 6, 15, 23, 0, tzinfo=UTC).timestamp()  # already the 16th in Kiritimati
    got = found(_action(PromptKind.BIRTHDAY), _profile(bday="06-15"), _moment(ts=late))
    assert [facts["birthday_when"] for _, facts, _ in got] == ["today"]


# -- expiring points: within 14 days by default -----------------------------------------


@pytest.mark.parametrize(
    ("expires_in", "within", "label", "expected"),
    [
        (14 * DAY, None, None, ("points", 14)),
        (14 * DAY + 1, None, None, None),
        (3.4 * DAY, None, "1 200 points", ("1 200 points", 3)),
        (0.0, None, None, ("points", 1)),  # expiring now: "in 1 day", never "in 0 days"
        (-1.0, None, None, None),  # already expired
        (20 * DAY, 30, None, ("points", 20)),
        (2 * DAY, 1, None, None),
    ],
)
def test_expiring_points(
    expires_in: float, within: int | None, label: str | None, expected: tuple[str, int] | None
) -> None:
    eligible = {} if within is None else {"points_expiring_within_days": within}
    fields = {"exp_at": f"{NOW + expires_in}"} | ({"exp_label": label} if label else {})
    got = found(_action(PromptKind.EXPIRING_POINTS, **eligible), _profile(**fields))
    want = [] if expected is None else [("", {"expiring": expected[0], "expires_in_days": expected[1]}, 1.0)]
    assert got == want


def test_complaint_follow_up_quotes_the_open_complaint() -> None:
    profile = _profile(complaint="Late delivery last week")
    assert found(_action(PromptKind.COMPLAINT_FOLLOW_UP), profile) == [
        ("", {"complaint": "Late delivery last week"}, 1.0)
    ]
    assert found(_action(PromptKind.COMPLAINT_FOLLOW_UP), _profile()) == []


def test_win_back_counts_days_since_the_last_visit_against_the_usual_gap() -> None:
    profile = _profile()
    profile.orders, profile.first, profile.last = 5, NOW - 100 * DAY, NOW - 40 * DAY  # every 15 days
    assert found(_action(PromptKind.WIN_BACK), profile) == [
        ("", {"since_last_days": 40, "usual_gap_days": 15}, 1.0)
    ]
    assert found(_action(PromptKind.WIN_BACK), _profile()) == []  # never bought


@pytest.mark.parametrize(("dwell_s", "minutes"), [(120, 2), (180, 3), (179, 2), (119, None)])
def test_long_dwell_from_the_minimum_on(dwell_s: float, minutes: int | None) -> None:
    action = _action(PromptKind.LONG_DWELL_HELP, min_dwell_s=120)
    got = found(action, _profile(), _moment("dwell", dwell_s=dwell_s))
    assert got == ([] if minutes is None else [("pantry", {"dwell_min": minutes}, 1.0)])
    assert found(action, _profile(), _moment("enter", dwell_s=dwell_s)) == []  # waits for the dwell tick


# -- member filters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("eligible", "profile_update", "zone", "passes"),
    [
        ({"consent": "marketing"}, {"marketing": False}, "pantry", False),
        ({"consent": "marketing"}, {"marketing": True}, "pantry", True),
        ({"tiers": ["platinum"]}, {}, "pantry", False),
        ({"tiers": ["gold", "platinum"]}, {}, "pantry", True),
        ({"lifecycle": ["lapsing"]}, {}, "pantry", False),
        ({"lifecycle": ["active"]}, {}, "pantry", True),
        ({"segments": ["at_risk"]}, {}, "pantry", False),
        ({"segments": ["champions"]}, {}, "pantry", True),
        ({"zones": ["dairy"]}, {}, "pantry", False),
        ({"zones": ["pantry"]}, {}, "pantry", True),
        ({"min_clv": 123.457}, {}, "pantry", False),
        ({"min_clv": 123.456}, {}, "pantry", True),
        ({"min_clv": 100, "zones": ["pantry"], "tiers": ["gold"]}, {}, "pantry", True),
    ],
)
def test_member_filters(
    eligible: dict[str, Any], profile_update: dict[str, Any], zone: str, passes: bool
) -> None:
    profile = _profile()
    for k, v in profile_update.items():
        setattr(profile, k, v)
    got = found(_action(PromptKind.GREET_VIP, **eligible), profile, _moment(zone=zone))
    assert got == ([("", {}, 1.0)] if passes else [])


# -- guests and the store ------------------------------------------------------------------


def test_a_guest_at_the_till_is_invited_to_join() -> None:
    invite = Action(id="join", kind=PromptKind.JOIN_INVITE, value=5, text=TEXT, eligible={"member": False})
    catalog = Catalog(actions=[invite, _action(PromptKind.GREET_VIP)])
    [c] = guest_candidates(catalog, _moment("checkout", zone="lane-1", basket_cents=1234), SETTINGS)
    assert (c.action, c.subject, c.facts) == (
        invite,
        "",
        {"zone": "Lane-1", "discount_pct": 5, "basket_eur": 12.34},
    )
    assert guest_candidates(catalog, _moment("enter", basket_cents=1234), SETTINGS) == []


@pytest.mark.parametrize(
    ("eligible", "queue", "zone", "expected"),
    [
        ({"min_queue": 4}, 4, "checkout", 4),
        ({"min_queue": 4}, 3, "checkout", None),
        ({"min_queue": 2, "zones": ["checkout"]}, 5, "checkout", 2),
        ({"min_queue": 2, "zones": ["checkout"]}, 5, "entrance", None),
        ({"min_queue": 2}, None, "checkout", None),
    ],
)
def test_open_till_from_the_queue_threshold(
    eligible: dict[str, Any], queue: int | None, zone: str, expected: int | None
) -> None:
    till = Action(id="till", kind=PromptKind.OPEN_TILL, value=20, text=TEXT, eligible=eligible)
    got = store_candidates(Catalog(actions=[till]), _moment("footfall", zone=zone, queue=queue))
    want = (
        []
        if expected is None
        else [(zone, {"zone": zone.capitalize(), "queue": queue, "min_queue": expected})]
    )
    assert [(c.subject, c.facts) for c in got] == want
    assert store_candidates(Catalog(actions=[till]), _moment("enter", zone=zone, queue=queue)) == []
