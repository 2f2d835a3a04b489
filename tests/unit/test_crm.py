"""CRM import and profiles: interpurchase intervals, RFM, CLV, lifecycle, cross-sell, the
compact Redis profile, and bad rows reported with their row numbers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from floorwalker.errors import ConfigError
from recommender import clv, rfm
from recommender.catalog import Lifecycle
from recommender.crm import (
    DAY,
    Member,
    cross_sell_table,
    derive_profile,
    derive_profiles,
    fit_model,
    model_from_json,
    model_to_json,
    read_crm,
    read_fixture,
    usual_interval,
)
from recommender.profile import parse_profile
from tests.conftest import REPO

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("days", "expected_days"),
    [
        ([], None),
        ([10], None),
        ([10, 10.2], None),  # same shopping trip
        ([60, 30], 30),
        ([90, 62, 31, 0], 30),  # median of 28, 31, 31 ... in any order
        ([100, 70, 69.8, 40], 30),  # two purchases in one trip count once
        ([120, 100, 10, 0], 20),  # median resists one long gap
    ],
)
def test_usual_interval(days: list[float], expected_days: float | None) -> None:
    result = usual_interval([NOW - d * DAY for d in days])
    if expected_days is None:
        assert result is None
    else:
        assert result == pytest.approx(expected_days * DAY, rel=0.05)


def _member(member: str, days: list[float], category: str = "sauces", **more: object) -> Member:
    return Member.model_validate(
        {
            "member": member,
            "display_name": "X",
            "tier": "gold",
            "points": 10,
            "consent": {"recognition": True},
            "purchases": [
                {"days_ago": d, "category": category, "sku": "s", "amount_cents": 1000} for d in days
            ],
            **more,
        }
    )


def test_profile_has_what_the_engine_reads() -> None:
    member = Member.model_validate(
        {
            "member": "m_702cc64d",
            "display_name": "Mrs Chen",
            "tier": "gold",
            "points": 1840,
            "consent": {"recognition": True, "marketing": True},
            "birthday": "03-14",
            "usual_associate": "a-ben",
            "expiring": [{"label": "400 points", "in_days": 5}, {"label": "old coupon", "in_days": 0}],
            "complaints": [{"summary": "leaky bottle"}, {"summary": "closed one", "open": False}],
            "purchases": [
                {
                    "days_ago": d,
                    "category": "sauces",
                    "sku": "kikkoman-500",
                    "label": "Kikkoman soy sauce",
                    "amount_cents": 399,
                }
                for d in (93, 62, 32)
            ]
            + [{"days_ago": 2, "category": "milk", "sku": "oat-1l", "amount_cents": 199}],
        }
    )
    profile = derive_profile(member, NOW)
    assert profile["consent"] == "1" and profile["mkt"] == "1"
    assert profile["tier"] == "gold" and profile["points"] == "1840"
    assert float(profile["last:sauces"]) == pytest.approx(NOW - 32 * DAY, abs=1)
    assert float(profile["interval:sauces"]) == pytest.approx(30.5 * DAY, abs=1)
    assert profile["label:sauces"] == "Kikkoman soy sauce"
    assert profile["label:milk"] == "oat-1l"  # falls back to the SKU
    assert "interval:milk" not in profile
    assert profile["orders"] == "4" and profile["spend"] == str(3 * 399 + 199)
    assert float(profile["first"]) == pytest.approx(NOW - 93 * DAY, abs=1)
    assert profile["bday"] == "03-14" and profile["assoc"] == "a-ben"
    assert profile["exp_label"] == "400 points"  # the soonest that has not expired yet
    assert float(profile["exp_at"]) == pytest.approx(NOW + 5 * DAY, abs=1)
    assert profile["complaint"] == "leaky bottle"
    assert float(profile["clv"]) > 0


@pytest.mark.parametrize(
    ("days", "extra", "stage"),
    [
        ([5], {}, Lifecycle.NEW),  # one purchase, five days ago
        ([50, 40, 30, 20, 10], {}, Lifecycle.ACTIVE),  # every 10 days, last 10 days ago
        ([90, 80, 70, 60, 50, 40], {}, Lifecycle.LAPSING),  # every 10 days, but 40 days ago (> 2 gaps)
        ([200, 190, 180, 170, 160], {}, Lifecycle.CHURN_RISK),  # > 4 gaps ago
        ([200, 190, 180, 170, 160], {"winback": f"{NOW - 3 * DAY:.0f}"}, Lifecycle.WON_BACK),
    ],
)
def test_lifecycle_stage(days: list[float], extra: dict[str, str], stage: Lifecycle) -> None:
    raw = derive_profile(_member("m_abcdef12", days), NOW) | extra
    profile = parse_profile("m_abcdef12", raw)
    assert profile is not None and profile.lifecycle(NOW) is stage


def test_rfm_scores_against_quintiles_of_the_base() -> None:
    cuts = rfm.cuts(recency_days=[1, 2, 3, 4, 5], frequency=[1, 2, 3, 4, 5], monetary=[10, 20, 30, 40, 50])
    assert cuts.recency_days == pytest.approx((1.8, 2.6, 3.4, 4.2))
    assert [rfm.score(d, cuts.recency_days, lower_is_better=True) for d in (1, 2, 3, 4, 5)] == [5, 4, 3, 2, 1]
    assert [rfm.score(f, cuts.frequency) for f in (1, 2, 3, 4, 5)] == [1, 2, 3, 4, 5]
    assert rfm.score(7, ()) == 3  # too small a base to cut: everyone in the middle
    assert rfm.segment(5, 5) == "champions" and rfm.segment(1, 5) == "at_risk"
    assert rfm.segment(5, 1) == "promising" and rfm.segment(1, 1) == "hibernating"


def test_bgnbd_matches_the_published_cdnow_example() -> None:
    """Fader, Hardie & Lee (2005): x=2, t_x=30.43, T=38.86 weeks -> 1.226 purchases in 39 weeks."""
    assert clv.expected_purchases(clv.CDNOW_PARAMS, 39, 2, 30.43, 38.86) == pytest.approx(1.226, abs=0.002)
    # Someone who bought often but long ago is probably gone: fewer expected purchases.
    assert clv.expected_purchases(clv.CDNOW_PARAMS, 39, 2, 5.0, 38.86) < 0.5


def test_gamma_gamma_expected_value_by_hand() -> None:
    p, q, v = clv.CDNOW_PARAMS.p, clv.CDNOW_PARAMS.q, clv.CDNOW_PARAMS.v
    assert clv.expected_value(clv.CDNOW_PARAMS, 1, 20.0) == pytest.approx(p * (v + 20) / (p + q - 1))
    assert clv.expected_value(clv.CDNOW_PARAMS, 0, 0.0) == pytest.approx(p * v / (q - 1))  # population mean


def test_fit_on_the_cdnow_extract_beats_the_prior_and_looks_like_the_paper() -> None:
    imported = read_crm(REPO / "simulators" / "data" / "cdnow")
    assert imported.errors == [] and len(imported.members) == 600
    now = datetime(1998, 7, 1, tzinfo=UTC).timestamp()
    model = fit_model(imported.members, now)
    assert model.clv.fitted
    # Near the published fit on the whole sample (r=0.24, alpha=4.4, a=0.79, b=2.4).
    assert (
        0.1 < model.clv.r < 0.5 and 2 < model.clv.alpha < 12 and 0.2 < model.clv.a < 2 and 1 < model.clv.b < 6
    )
    profiles, _ = derive_profiles(imported.members, now)
    rows = np.array([[float(v) for v in (p["orders"], p["first"], p["last"])] for p in profiles.values()])
    x, t_x, big_t = rows[:, 0] - 1, (rows[:, 2] - rows[:, 1]) / clv.WEEK, (now - rows[:, 1]) / clv.WEEK
    fitted = np.array([model.clv.r, model.clv.alpha, model.clv.a, model.clv.b])
    prior = np.array([clv.CDNOW_PARAMS.r, clv.CDNOW_PARAMS.alpha, clv.CDNOW_PARAMS.a, clv.CDNOW_PARAMS.b])
    assert clv.bgnbd_loglik(fitted, x, t_x, big_t) >= clv.bgnbd_loglik(prior, x, t_x, big_t)
    # CLV ranks the big spenders above the one-off buyers.
    top = max(profiles.values(), key=lambda p: float(p["clv"]))
    assert int(top["orders"]) > 3


def test_cross_sell_table_and_offers() -> None:
    table = cross_sell_table([{"sauces", "noodles"}, {"sauces", "noodles"}, {"sauces"}, {"tea"}])
    assert table["noodles"] == [("sauces", 1.0)]
    assert table["sauces"] == [("noodles", pytest.approx(0.667, abs=0.001))]
    buyers = [
        Member.model_validate(
            {
                "member": f"m_xsell00{i}",
                "display_name": "X",
                "tier": "b",
                "points": 0,
                "purchases": [{"days_ago": 3, "category": c, "sku": c} for c in cats],
            }
        )
        for i, cats in enumerate([["sauces", "noodles"], ["sauces", "noodles"], ["sauces"]])
    ]
    profiles, _ = derive_profiles(buyers, NOW)
    assert profiles["m_xsell002"]["xsell"] == "noodles<sauces"  # buys sauces, never noodles
    assert "xsell" not in profiles["m_xsell000"]


def test_model_survives_json_round_trip() -> None:
    _, model = derive_profiles(read_fixture(REPO / "simulators" / "data" / "demo_crm.json").members, NOW)
    assert model_from_json(model_to_json(model)) == model


def test_demo_fixture_is_valid_and_has_what_the_ten_actions_need() -> None:
    imported = read_crm(REPO / "simulators" / "data" / "demo_crm.json")
    assert imported.errors == []
    members = {m.member: m for m in imported.members}
    assert {"m_702cc64d", "m_d0b30907"} <= set(members)
    assert any(m.birthday_in_days is not None or m.birthday for m in members.values())
    assert any(m.complaints for m in members.values()) and any(m.expiring for m in members.values())


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            '{"members": [{"member": "Jane Doe", "display_name": "J", "tier": "gold", "points": 1},'
            ' {"member": "m_abcdef12", "display_name": "J", "tier": "gold", "points": 1}]}',
            "members[0]: member",
        ),
        (
            '{"members": [{"member": "m_abcdef99", "display_name": "J", "tier": "gold", "points": 1,'
            ' "purchases": [{"category": "tea", "sku": "x"}]},'
            ' {"member": "m_abcdef12", "display_name": "J", "tier": "gold", "points": 1}]}',
            "members[0]: purchases.0: give exactly one of days_ago or at",
        ),
    ],
)
def test_bad_json_rows_are_reported_and_the_rest_imported(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "crm.json"
    path.write_text(content)
    imported = read_crm(path)
    assert [m.member for m in imported.members] == ["m_abcdef12"]
    assert len(imported.errors) == 1 and str(path) in imported.errors[0] and problem in imported.errors[0]


@pytest.mark.parametrize(("content", "problem"), [("{", "Invalid JSON"), ("[]", "expected {")])
def test_unreadable_json_names_the_file(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "crm.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=problem) as err:
        read_crm(path)
    assert str(path) in str(err.value)


def test_csv_import_reports_bad_rows_by_number(tmp_path: Path) -> None:
    (tmp_path / "members.csv").write_text(
        "member,display_name,tier,points,consent_recognition,consent_marketing,birthday,usual_associate,"
        "expiring_label,expiring_at,complaint\n"
        "m_abcdef12,Ann,gold,100,true,yes,03-14,a-ben,200 points,2030-01-01T00:00:00,late delivery\n"
        "m_bcdefg23,Bob,silver,lots,true,false,,,,,\n"
        "m_cdefgh34,Cy,bronze,5,maybe,false,,,,,\n"
        "m_defghi45,Di,bronze,5,1,0,13-40,,,,\n"
    )
    (tmp_path / "purchases.csv").write_text(
        "member,at,category,sku,label,amount_cents\n"
        "m_abcdef12,2029-12-01T10:00:00,sauces,kikkoman-500,Kikkoman,399\n"
        "m_abcdef12,yesterday,sauces,kikkoman-500,Kikkoman,399\n"
    )
    imported = read_crm(tmp_path)
    assert [m.member for m in imported.members] == ["m_abcdef12"]
    ann = imported.members[0]
    assert ann.consent.marketing and ann.birthday == "03-14" and ann.complaints[0].summary == "late delivery"
    assert len(ann.purchases) == 1 and ann.expiring[0].label == "200 points"
    errors = "\n".join(imported.errors)
    assert "purchases.csv: row 3: at" in errors
    assert "members.csv: row 3: invalid literal" in errors or "members.csv: row 3" in errors
    assert "members.csv: row 4: expected true/false, got 'maybe'" in errors
    assert "members.csv: row 5: birthday" in errors
    assert len(imported.errors) == 4


def test_csv_with_a_wrong_header_is_refused(tmp_path: Path) -> None:
    (tmp_path / "members.csv").write_text("member,name\nm_abcdef12,Ann\n")
    (tmp_path / "purchases.csv").write_text("member,at,category,sku,label,amount_cents\n")
    with pytest.raises(ConfigError, match=r"members.csv: row 1: header .*unknown name"):
        read_crm(tmp_path)


_cells = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)


@given(
    rows=st.lists(
        st.tuples(_cells, _cells, st.sampled_from(["true", "no", "maybe", ""]), _cells), max_size=12
    )
)
@settings(max_examples=60, deadline=None)
def test_csv_import_never_crashes_and_accounts_for_every_row(rows: list[tuple[str, str, str, str]]) -> None:
    """Whatever the cells hold: every row is either imported or reported with its number."""
    import csv
    import io
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        members = io.StringIO()
        w = csv.writer(members)
        w.writerow(["member", "display_name", "tier", "points", "consent_recognition"])
        for i, (name, tier, consent, points) in enumerate(rows):
            w.writerow([f"m_prop{i:04d}", name, tier, points, consent])
        (path / "members.csv").write_text(members.getvalue())
        (path / "purchases.csv").write_text("member,at,category,sku,label,amount_cents\n")
        imported = read_crm(path)
    assert len(imported.members) + len(imported.errors) == len(rows)
    reported = {int(e.split(": row ")[1].split(":")[0]) for e in imported.errors}
    assert reported <= set(range(2, len(rows) + 2))
