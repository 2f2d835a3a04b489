"""CRM profiles: the usual interpurchase interval and the compact Redis profile."""

from __future__ import annotations

from pathlib import Path

import pytest

from floorwalker.errors import ConfigError
from recommender.crm import DAY, Member, derive_profile, read_fixture, usual_interval
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


def test_profile_has_what_the_decision_script_reads() -> None:
    member = Member.model_validate(
        {
            "member": "m_chen0001",
            "display_name": "Mrs Chen",
            "tier": "gold",
            "points": 1840,
            "consent": {"recognition": True},
            "purchases": [
                {"days_ago": d, "category": "sauces", "sku": "kikkoman-500", "label": "Kikkoman soy sauce"}
                for d in (93, 62, 32)
            ]
            + [{"days_ago": 2, "category": "milk", "sku": "oat-1l"}],
        }
    )
    profile = derive_profile(member, NOW)
    assert profile["consent"] == "1" and profile["tier"] == "gold" and profile["points"] == "1840"
    assert float(profile["last:sauces"]) == pytest.approx(NOW - 32 * DAY, abs=1)
    assert float(profile["interval:sauces"]) == pytest.approx(30.5 * DAY, abs=1)
    assert profile["label:sauces"] == "Kikkoman soy sauce"
    assert profile["label:milk"] == "oat-1l"  # falls back to the SKU
    assert "interval:milk" not in profile


def test_demo_fixture_is_valid() -> None:
    fixture = read_fixture(REPO / "simulators" / "data" / "demo_crm.json")
    assert {m.member for m in fixture.members} >= {"m_chen0001", "m_berg0005"}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            '{"members": [{"member": "Jane Doe", "display_name": "J", "tier": "gold", "points": 1}]}',
            "members.0.member",
        ),
        (
            '{"members": [{"member": "m_abcdef12", "display_name": "J", "tier": "gold", "points": 1,'
            ' "purchases": [{"category": "tea", "sku": "x"}]}]}',
            "exactly one of days_ago or at",
        ),
        ("{", "Invalid JSON"),
    ],
)
def test_broken_fixture_names_file_and_key(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "crm.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as err:
        read_fixture(path)
    assert str(path) in str(err.value) and problem in str(err.value)
