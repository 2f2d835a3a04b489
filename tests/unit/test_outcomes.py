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
    rows = {r.kind: r for r in outcome_rows(stats, min_sample=3)}
    assert list(rows) == ["greet_vip", "replenishment_due", "all"]
    rep = rows["replenishment_due"]
    assert (rep.prompted, rep.accepted, rep.converted, rep.holdout) == (8, 3, 4, 3)
    assert rep.conversion is not None and rep.conversion[0] == 0.5
    assert rep.uplift is not None and rep.uplift[0] == 0.5 and rep.uplift[1] < 0.5 < rep.uplift[2]
    assert rows["greet_vip"].uplift is None  # no holdout for it yet
    assert rows["all"].uplift is None and "greet_vip" in rows["all"].note
    assert rows["greet_vip"].dismissed == 2
    assert rows["all"].prompted == 20 and rows["all"].acceptance is not None
    assert rows["all"].acceptance[0] == 0.5


def _stats(**kinds: tuple[int, int, int, int]) -> dict[str, int]:
    """Counters for kinds given as (prompted, converted, holdout, holdout converted), with
    the totals summed the way the engine counts them."""
    out: dict[str, int] = {}
    for kind, (prompted, converted, held, held_conv) in kinds.items():
        for name, n in (("prompt", prompted), ("converted", converted), ("holdout", held)):
            out[f"{name}:{kind}"] = n
        out[f"holdout_converted:{kind}"] = held_conv
        for total, n in (("prompts", prompted), ("converted", converted), ("holdout", held)):
            out[total] = out.get(total, 0) + n
        out["holdout_converted"] = out.get("holdout_converted", 0) + held_conv
    return out


@pytest.mark.parametrize(
    ("stats", "kind", "uplift", "note"),
    [
        # Enough on both arms: the kind's uplift is given.
        (_stats(replenishment_due=(300, 150, 40, 10)), "replenishment_due", 0.25, ""),
        # Below the minimum on the holdout arm: refused, said why.
        (_stats(replenishment_due=(300, 150, 29, 10)), "replenishment_due", None, "not enough data"),
        # Below the minimum on the prompted arm.
        (_stats(replenishment_due=(29, 15, 40, 10)), "replenishment_due", None, "not enough data"),
        # No holdout at all.
        (_stats(greet_vip=(300, 30, 0, 0)), "greet_vip", None, "not enough data"),
        # "all" when only one kind has a holdout: never the pooled kinds against that one
        # kind's holdout (that was an uplift of 0.5 - 0.25 from mixing the kinds).
        (
            _stats(greet_vip=(300, 270, 0, 0), replenishment_due=(300, 30, 40, 10)),
            "all",
            None,
            "greet_vip has no holdout of its own",
        ),
        # "all" when every kind has its own holdout with enough data: pooled.
        (
            _stats(greet_vip=(300, 60, 40, 8), replenishment_due=(300, 150, 40, 10)),
            "all",
            pytest.approx(210 / 600 - 18 / 80),
            "",
        ),
        # "all" when a kind's holdout is there but too small.
        (
            _stats(greet_vip=(300, 60, 10, 2), replenishment_due=(300, 150, 40, 10)),
            "all",
            None,
            "not enough data",
        ),
    ],
)
def test_uplift_needs_enough_data_and_its_own_holdout(
    stats: dict[str, int], kind: str, uplift: object, note: str
) -> None:
    row = {r.kind: r for r in outcome_rows(stats, min_sample=30)}[kind]
    if uplift is None:
        assert row.uplift is None
        assert note in row.note
    else:
        assert row.uplift is not None and row.uplift[0] == uplift
        assert row.uplift[1] < row.uplift[0] < row.uplift[2]
        assert row.note == ""


def test_the_minimum_sample_is_per_arm_and_defaults_to_thirty() -> None:
    stats = _stats(replenishment_due=(30, 15, 30, 5))
    assert outcome_rows(stats)[0].uplift is not None
    assert outcome_rows(stats, min_sample=31)[0].uplift is None
