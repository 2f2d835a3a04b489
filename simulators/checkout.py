"""Checkout lanes as single-server FIFO queues: a shopper joins the lane with the fewest
people waiting or paying, waits for the one ahead, and pays for a time that grows with the
basket. Pure; shoppers are served in order of their arrival at the tills."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LaneVisit:
    lane: str
    #: Joined the queue, started paying, paid (simulated seconds).
    queued: float
    served: float
    paid: float


def service_time(items: int, rng: random.Random) -> float:
    """Seconds at the till: a fixed part plus a few seconds per item, log-normally spread."""
    return (25.0 + 3.5 * items) * math.exp(rng.gauss(0.0, 0.3))


class Tills:
    """The store's lanes; :meth:`serve` must be called in order of arrival time."""

    def __init__(self, lanes: list[str]) -> None:
        if not lanes:
            raise ValueError("a store needs at least one lane to check out")
        self.lanes = lanes
        #: Per lane, the paid-at times of shoppers still waiting or paying (FIFO order).
        self._busy_until: dict[str, list[float]] = {lane: [] for lane in lanes}
        self.visits: list[LaneVisit] = []

    def serve(
        self, arrival: float, items: int, rng: random.Random, walk_s: dict[str, float] | None = None
    ) -> LaneVisit:
        """Pick the lane with the fewest people at ``arrival`` (at the tills); the shopper joins
        its queue after walking there (``walk_s`` per lane, seconds)."""

        def in_lane(lane: str) -> int:
            return sum(1 for t in self._busy_until[lane] if t > arrival)

        lane = min(self.lanes, key=lambda lane: (in_lane(lane), self.lanes.index(lane)))
        queued = arrival + (walk_s or {}).get(lane, 0.0)
        queue = [t for t in self._busy_until[lane] if t > queued]
        served = max([queued, *queue])
        visit = LaneVisit(lane, queued, served, served + service_time(items, rng))
        self._busy_until[lane] = [*queue, visit.paid]
        self.visits.append(visit)
        return visit
