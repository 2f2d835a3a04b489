"""RFM: recency, frequency and monetary scores from 1 to 5, and the segment they imply.

The cut points are the quintiles of the imported member base (:func:`cuts`); a member is
scored against them at decision time (recency moves with the clock) and after each
checkout, so scores stay comparable without re-importing everyone. Pure.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Cuts:
    """Quintile boundaries (four each; empty: everyone scores 3)."""

    recency_days: tuple[float, ...]
    frequency: tuple[float, ...]
    monetary: tuple[float, ...]


def _quintiles(values: Sequence[float]) -> tuple[float, ...]:
    if len(values) < 5:
        return ()
    return tuple(float(q) for q in np.quantile(np.asarray(values, dtype=float), [0.2, 0.4, 0.6, 0.8]))


def cuts(recency_days: Sequence[float], frequency: Sequence[float], monetary: Sequence[float]) -> Cuts:
    return Cuts(_quintiles(recency_days), _quintiles(frequency), _quintiles(monetary))


def score(value: float, bounds: tuple[float, ...], *, lower_is_better: bool = False) -> int:
    """1..5 by which quintile ``value`` falls in (5 best)."""
    if not bounds:
        return 3
    # Cut points strictly below the value: ties (many one-order customers) stay low.
    below = bisect.bisect_left(bounds, value)
    return 5 - below if lower_is_better else below + 1


def segment(r: int, f: int) -> str:
    """The classic RxF grid, coarsened to six segments."""
    if r >= 4 and f >= 4:
        return "champions"
    if r <= 2 and f >= 3:
        return "at_risk"  # used to buy often, not lately
    if f >= 4:
        return "loyal"
    if r >= 4 and f <= 2:
        return "promising"
    if r <= 2:
        return "hibernating"
    return "regular"
