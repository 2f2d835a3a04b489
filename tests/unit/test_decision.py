"""The decision core, table-driven: each of the ten actions fires when it should and not
otherwise; caps, cool-down, the contact policy, consent and the holdout; arbitration."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from broker_config.contract import PromptKind
from recommender.arbitration import Blocked
from recommender.catalog import DEFAULT_CATALOG, Catalog, load_catalog
from recommender.crm import DAY, CrmModel, model_from_json
from recommender.decision import Core
from recommender.eligibility import Moment, Settings
from recommender.holdout import in_holdout
from recommender.prompts import word
from recommender.propensity import Propensity

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC).timestamp()
MEMBER = "m_test00001"


def _catalog(holdout_pct: float = 0.0) -> Catalog:
    catalog = load_catalog(DEFAULT_CATALOG)
    return catalog.model_copy(
        update={"policy": catalog.policy.model_copy(update={"holdout_pct": holdout_pct})}
    )


MODEL: CrmModel = model_from_json(None)
CORE = Core(_catalog(), Propensity.from_prior(), MODEL, Settings(discount_pct=5))

PANTRY = ("sauces", "noodles", "rice", "tea")


def moment(trigger: str = "enter", zone: str = "pantry", **more: object) -> Moment:
    cats = PANTRY if zone == "pantry" else ()
    return Moment(trigger, NOW, zone, zone.capitalize(), cats, **more)  # type: ignore[arg-type]


def profile(**fields: object) -> dict[str, str]:
    """A consenting silver member, active: bought every 10 days, last 5 days ago."""
    base = {
        "tier": "silver",
        "points": "120",
        "consent": "1",
        "mkt": "0",
        "orders": "6",
        "spend": "12000",
        "first": f"{NOW - 55 * DAY:.0f}",
        "last": f"{NOW - 5 * DAY:.0f}",
        "clv": "80",
    }
    base.update({k: str(v) for k, v in fields.items()})
    return {k: v for k, v in base.items() if v != "DROP"}


@dataclass
class Case:
    name: str
    profile: dict[str, str]
    moment: Moment
    expected: PromptKind | None
    visit: dict[str, str] = field(default_factory=dict)
    contacts: list[tuple[str, float]] = field(default_factory=list)
    blocked: Blocked | None = None


TODAY = datetime.fromtimestamp(NOW, UTC).strftime("%m-%d")
IN_40_DAYS = datetime.fromtimestamp(NOW + 40 * DAY, UTC).strftime("%m-%d")
SOY_DUE = {
    "last:sauces": f"{NOW - 32 * DAY:.0f}",
    "interval:sauces": f"{31 * DAY:.0f}",
    "label:sauces": "Kikkoman",
}
LAPSING = {"first": f"{NOW - 140 * DAY:.0f}", "last": f"{NOW - 100 * DAY:.0f}", "orders": "5"}

CASES = [
    Case("vip greeted", profile(tier="gold"), moment(zone="entrance"), PromptKind.GREET_VIP),
    Case("silver not greeted", profile(), moment(zone="entrance"), None),
    Case("replenishment due here", profile(**SOY_DUE), moment(), PromptKind.REPLENISHMENT_DUE),
    Case("replenishment not shelved here", profile(**SOY_DUE), moment(zone="produce"), None),
    Case(
        "replenishment too early",
        profile(**(SOY_DUE | {"last:sauces": f"{NOW - 5 * DAY:.0f}"})),
        moment(),
        None,
    ),
    Case(
        "replenishment too late (switched)",
        profile(**(SOY_DUE | {"last:sauces": f"{NOW - 200 * DAY:.0f}"})),
        moment(),
        None,
    ),
    Case("cross-sell shelved here", profile(xsell="noodles<sauces"), moment(), PromptKind.CROSS_SELL),
    Case("cross-sell not shelved here", profile(xsell="noodles<sauces"), moment(zone="produce"), None),
    Case(
        "cross-sell not to a lapsing member",
        profile(xsell="noodles<sauces", winback="DROP", **LAPSING),
        moment(zone="produce"),
        PromptKind.WIN_BACK,
    ),
    Case("birthday today", profile(bday=TODAY, mkt=1), moment(zone="entrance"), PromptKind.BIRTHDAY),
    Case("birthday without marketing consent", profile(bday=TODAY), moment(zone="entrance"), None),
    Case("birthday far off", profile(bday=IN_40_DAYS, mkt=1), moment(zone="entrance"), None),
    Case(
        "points expiring soon",
        profile(exp_at=f"{NOW + 5 * DAY:.0f}", exp_label="400 points", mkt=1),
        moment(zone="entrance"),
        PromptKind.EXPIRING_POINTS,
    ),
    Case(
        "points expiring later",
        profile(exp_at=f"{NOW + 40 * DAY:.0f}", exp_label="400 points", mkt=1),
        moment(zone="entrance"),
        None,
    ),
    Case(
        "open complaint",
        profile(complaint="leaky bottle"),
        moment(zone="entrance"),
        PromptKind.COMPLAINT_FOLLOW_UP,
    ),
    Case(
        "complaint first, before the VIP greeting",
        profile(complaint="late delivery", tier="gold"),
        moment(zone="entrance"),
        PromptKind.COMPLAINT_FOLLOW_UP,
    ),
    Case("lapsing member won back", profile(**LAPSING), moment(zone="entrance"), PromptKind.WIN_BACK),
    Case("active member is not a win-back", profile(), moment(zone="entrance"), None),
    Case("long dwell", profile(), moment("dwell", dwell_s=150.0), PromptKind.LONG_DWELL_HELP),
    Case("short dwell", profile(), moment("dwell", dwell_s=60.0), None),
    Case("dwell check does not greet", profile(tier="gold"), moment("dwell", dwell_s=30.0), None),
    Case(
        "replenishment beats cross-sell (priority)",
        profile(xsell="noodles<sauces", **SOY_DUE),
        moment(),
        PromptKind.REPLENISHMENT_DUE,
    ),
    Case("no consent", profile(tier="gold", consent=0), moment(zone="entrance"), None),
    Case("unknown member", {}, moment(zone="entrance"), None),
    # caps, cool-down and the contact policy
    Case(
        "never the same thing twice in a visit",
        profile(tier="gold"),
        moment(zone="entrance"),
        None,
        visit={"done:greet_vip": "p1", "n": "1", "n:greet_vip": "1", "lastp": f"{NOW - 600:.0f}"},
        blocked=Blocked.SAME_THING,
    ),
    Case(
        "next best when the first was done",
        profile(tier="gold", **SOY_DUE),
        moment(),
        PromptKind.GREET_VIP,
        visit={
            "done:replenishment_due:sauces": "p1",
            "n:replenishment_due": "1",
            "n": "1",
            "lastp": f"{NOW - 600:.0f}",
        },
    ),
    Case(
        "visit policy: two prompts is enough",
        profile(tier="gold"),
        moment(zone="entrance"),
        None,
        visit={"n": "2", "lastp": f"{NOW - 600:.0f}"},
        blocked=Blocked.VISIT_POLICY,
    ),
    Case(
        "min gap between prompts",
        profile(tier="gold"),
        moment(zone="entrance"),
        None,
        visit={"n": "1", "lastp": f"{NOW - 10:.0f}"},
        blocked=Blocked.MIN_GAP,
    ),
    Case(
        "per-day cap",
        profile(tier="gold"),
        moment(zone="entrance"),
        None,
        contacts=[("p|greet_vip|a", NOW - 3600), ("p|greet_vip|b", NOW - 7200)],
        blocked=Blocked.PER_DAY,
    ),
    Case(
        "per-week cap",
        profile(complaint="x"),
        moment(zone="entrance"),
        None,
        contacts=[("p|complaint_follow_up|a", NOW - 2 * DAY), ("p|complaint_follow_up|b", NOW - 3 * DAY)],
        blocked=Blocked.PER_WEEK,
    ),
    Case(
        "cool-down after a dismissal",
        profile(tier="gold"),
        moment(zone="entrance"),
        None,
        contacts=[("x|greet_vip|a", NOW - 600)],
        blocked=Blocked.COOLDOWN,
    ),
    Case(
        "cool-down over",
        profile(tier="gold"),
        moment(zone="entrance"),
        PromptKind.GREET_VIP,
        contacts=[("x|greet_vip|a", NOW - 2 * 3600)],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_member_actions(case: Case) -> None:
    result = CORE.decide_member(MEMBER, case.profile, case.visit, case.contacts, case.moment)
    got = result.choice.action.kind if result.choice else None
    assert got is case.expected
    if case.blocked is not None:
        assert case.blocked in result.blocked
    if result.choice is not None:
        w = word(result.choice)  # every chosen action can be worded from its facts
        assert w.headline and w.why
        assert result.choice.score.total == pytest.approx(
            result.choice.score.propensity * result.choice.score.value * result.choice.score.context
        )


def test_the_soy_sauce_prompt_says_what_and_why() -> None:
    result = CORE.decide_member(MEMBER, profile(**SOY_DUE), {}, [], moment())
    assert result.choice is not None
    w = word(result.choice)
    assert w.headline == "Kikkoman due"
    assert w.why == "Buys Kikkoman about every 31 days; last bought 32 days ago."
    assert "members get 5% off" in w.suggestion
    assert result.choice.facts["category"] == "sauces"


@pytest.mark.parametrize(
    ("trigger", "queue", "expected"),
    [("footfall", 5, PromptKind.OPEN_TILL), ("footfall", 2, None), ("footfall", None, None)],
)
def test_open_till_when_the_queue_is_long(
    trigger: str, queue: int | None, expected: PromptKind | None
) -> None:
    result = CORE.decide_store(moment(trigger, zone="checkout", queue=queue))
    assert (result.choice.action.kind if result.choice else None) is expected


@pytest.mark.parametrize(("trigger", "expected"), [("checkout", PromptKind.JOIN_INVITE), ("enter", None)])
def test_join_invite_only_at_a_till(trigger: str, expected: PromptKind | None) -> None:
    result = CORE.decide_guest(moment(trigger, zone="lane-1", basket_cents=1250))
    assert (result.choice.action.kind if result.choice else None) is expected
    if result.choice:
        assert word(result.choice).why == "Paid at Lane-1 without a member card."


def test_long_queue_weighs_member_prompts_down() -> None:
    calm = CORE.decide_member(MEMBER, profile(tier="gold"), {}, [], moment(zone="entrance"))
    busy = CORE.decide_member(MEMBER, profile(tier="gold"), {}, [], moment(zone="entrance", queue=6))
    assert calm.choice is not None and busy.choice is not None
    assert busy.choice.score.context == pytest.approx(calm.choice.score.context / 2)


#: Under this salt, sha256("fw-test-holdout:" + member)[:4] as an integer, mod 10 000, is 336
#: for HELD and 5233 for NOT_HELD (worked out by hand, not by the code under test): HELD is
#: in any holdout above 3.36 %, NOT_HELD in none up to the 50 % the catalog allows.
SALT, HELD, NOT_HELD = "fw-test-holdout", "m_hold000034", "m_hold000000"


@pytest.mark.parametrize(
    ("member", "pct", "held"),
    [
        (HELD, 10, True),
        (HELD, 3.37, True),
        (HELD, 3.36, False),  # 336 is not below 336
        (HELD, 0, False),
        (NOT_HELD, 10, False),
        (NOT_HELD, 50, False),
    ],
)
def test_holdout_membership_is_the_salted_hash_below_the_share(member: str, pct: float, held: bool) -> None:
    assert in_holdout(member, pct, SALT) is held


def test_holdout_is_a_fixed_hash_based_share() -> None:
    members = [f"m_hold{i:06d}" for i in range(4000)]
    held = [m for m in members if in_holdout(m, 10, SALT)]
    assert 0.08 < len(held) / len(members) < 0.12
    assert held == [m for m in members if in_holdout(m, 10, SALT)]  # persistent
    assert in_holdout(HELD, 10, "another salt") is False  # the salt moves everyone


@pytest.mark.parametrize(
    ("member", "pct", "held"), [(HELD, 10, True), (NOT_HELD, 10, False), (HELD, 0, False)]
)
def test_a_held_out_member_is_still_decided_and_marked(member: str, pct: float, held: bool) -> None:
    """The held-out member is decided ("would have been prompted"), marked as holdout."""
    catalog = _catalog(holdout_pct=pct)
    catalog = catalog.model_copy(update={"policy": catalog.policy.model_copy(update={"holdout_salt": SALT})})
    core = Core(catalog, Propensity.from_prior(), MODEL, Settings())
    result = core.decide_member(member, profile(tier="gold"), {}, [], moment(zone="entrance"))
    assert result.choice is not None and result.choice.holdout is held
