"""Arrivals: the real hourly curve, and an NHPP that follows it."""

from __future__ import annotations

import random

import pytest

from floorwalker.errors import ConfigError
from simulators.arrivals import HourlyCurve, akl_curve, arrival_times, hourly_expectation, poisson


def test_akl_curve_is_a_real_daytime_curve() -> None:
    curve = akl_curve("261 Queen Street", (2024,))
    assert len(curve.weights) == 24 and "CC-BY-4.0" in curve.source
    # City-centre pedestrians: the busiest hour is in the day, the quietest at night.
    busiest = max(range(24), key=lambda h: curve.weights[h])
    quietest = min(range(24), key=lambda h: curve.weights[h])
    assert 10 <= busiest <= 17 and (quietest <= 6 or quietest >= 23)
    assert curve.weights[busiest] > 5 * curve.weights[quietest]


def test_unknown_sensor_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"simulation\.curve\.sensor"):
        akl_curve("Nowhere Street", (2024,))


def test_arrivals_follow_the_curve() -> None:
    """Chi-square of hourly counts against the configured expectation (fixed seed)."""
    curve = akl_curve("261 Queen Street", (2024,))
    expected = hourly_expectation(curve, 8, 13, 20_000)
    assert sum(expected) == pytest.approx(20_000)
    times = arrival_times(expected, random.Random(11))
    counts = [0] * 13
    for t in times:
        counts[int(t // 3600)] += 1
    chi2 = sum((c - e) ** 2 / e for c, e in zip(counts, expected, strict=True))
    assert chi2 < 32.9  # 12 degrees of freedom, p = 0.001
    assert abs(len(times) - 20_000) < 4 * 20_000**0.5
    assert times == sorted(times)


def test_a_flat_curve_gives_flat_arrivals_and_a_zero_one_is_refused() -> None:
    flat = HourlyCurve(tuple([1.0] * 24), "flat")
    assert hourly_expectation(flat, 0, 4, 100) == [25.0] * 4
    night = HourlyCurve(tuple([0.0] * 6 + [1.0] * 18), "day only")
    with pytest.raises(ConfigError, match="zero over the simulated hours"):
        hourly_expectation(night, 0, 6, 100)


@pytest.mark.parametrize("mean", [0.5, 3.0, 40.0, 500.0])
def test_poisson_mean_and_variance(mean: float) -> None:
    rng = random.Random(5)
    xs = [poisson(rng, mean) for _ in range(4000)]
    m = sum(xs) / len(xs)
    var = sum((x - m) ** 2 for x in xs) / len(xs)
    assert m == pytest.approx(mean, rel=0.08, abs=0.05)
    assert var == pytest.approx(mean, rel=0.15, abs=0.1)


def test_a_part_hour_keeps_its_arrivals_inside_it() -> None:
    times = arrival_times([400.0, 100.0], random.Random(8), last_hour_fraction=0.25)
    late = [t for t in times if t >= 3600]
    assert late and max(late) < 3600 * 1.25
    assert abs(len(late) - 100) < 4 * 100**0.5
