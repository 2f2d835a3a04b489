"""Anonymous footfall from the simulated walks, as a gateway's camera would report it.

The scripted shoppers' zone changes are counted per zone (entered, exited, people there
now); each report covers the time since the zone's previous one. Pure: time passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class ZoneReport:
    zone: str
    window_s: float
    entered: int
    exited: int
    occupancy: int


@dataclass
class _Zone:
    since: float
    entered: int = 0
    exited: int = 0
    occupancy: int = 0


class FootfallTally:
    def __init__(self, start: float) -> None:
        self._start = start
        self._zones: dict[str, _Zone] = {}

    def step(self, zone: str, action: Literal["enter", "leave"], ts: float) -> ZoneReport:
        """Count one shopper entering or leaving ``zone`` and report the zone's window."""
        z = self._zones.setdefault(zone, _Zone(since=self._start))
        if action == "enter":
            z.entered += 1
            z.occupancy += 1
        else:
            z.exited += 1
            z.occupancy = max(0, z.occupancy - 1)
        report = ZoneReport(zone, max(ts - z.since, 0.001), z.entered, z.exited, z.occupancy)
        z.since, z.entered, z.exited = ts, 0, 0
        return report

    def occupancy(self, zone: str) -> int:
        """People in ``zone`` now, by the walks counted so far."""
        z = self._zones.get(zone)
        return z.occupancy if z is not None else 0
