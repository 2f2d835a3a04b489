"""The outcome report's statistics against published values, and its rows from counters."""

from __future__ import annotations

import pytest

from recommender.outcomes import decode_stats, newcombe, outcome_rows, wilson


def test_wilson_interval() -> None:
    assert wilson(0, 0) is None
    rate, low, high = wilson(5, 10)  # type: ignore[misc]
    assert (rate, low, high) == pytest.approx((0.5, 0.2366, 0.7634), abs=1e-4)
    assert wilson(0, 10)[1] == 0.0 and wilson(10, 10)[2] == pytest.approx(1.0)  # type: ignore[index]


def test_newcombe_difference_matches_the_paper() -> None:
    """Newcombe (1998), example (a): 56/70 vs 48/80 -> 0.2000, 95% CI 0.0524 to 0.3339."""
    d, low, high = newcombe(56, 70, 48, 80)  # type: ignore[misc]
    assert (d, low, high) == pytest.approx((0.2, 0.0524, 0.3339), abs=1e-4)
    assert newcombe(1, 2, 0, 0) is None


def test_rows_per_kind_and_total() -> None:
    stats = decode_stats(
        {
            b"prompts": b"20",
            b"prompt:greet_vip": b"12",
            b"prompt:replenishment_due": b"8",
            b"feedback:accepted": b"10",
            b"feedback:accepted:greet_vip": b"7",
            b"feedback:accepted:replenishment_due": b"3",
            b"feedback:dismissed:greet_vip": b"2",
            b"converted": b"4",
            b"converted:replenishment_due": b"4",
            b"holdout": b"3",
            b"holdout:replenishment_due": b"3",
            b"holdout_converted": b"0",
            b"events": b"99",
            b"not-a-number": b"x",
        }
    )
    rows = {r.kind: r for r in outcome_rows(stats)}
    assert list(rows) == ["greet_vip", "replenishment_due", "all"]
    rep = rows["replenishment_due"]
    assert (rep.prompted, rep.accepted, rep.converted, rep.holdout) == (8, 3, 4, 3)
    assert rep.conversion is not None and rep.conversion[0] == 0.5
    assert rep.uplift is not None and rep.uplift[0] == 0.5 and rep.uplift[1] < 0.5 < rep.uplift[2]
    assert rows["greet_vip"].uplift is None  # no holdout for it yet
    assert rows["greet_vip"].dismissed == 2
    assert rows["all"].prompted == 20 and rows["all"].acceptance is not None
    assert rows["all"].acceptance[0] == 0.5
