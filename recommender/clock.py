"""Where the recommender takes "now" from: the wall clock live, the events' own clock in a
replay. Pure (the wall clock is read by the service, never here).

Everything that depends on time (per-associate hourly caps, holds, re-route timers, dwell
checks, visit expiry, the age of an event) takes the ``now`` it is given. Live, that is
the wall clock and the service ticks once a second. In a replay (``floorwalker recommender
--clock event``, which ``evaluate`` and the benchmarks start), ``now`` is the latest event
time seen, and the once-a-second ticks come from that clock too (:meth:`EventClock.see`
returns the whole seconds the events' clock passed): a day replayed at 1x, 10x or as fast
as the broker takes it gives the same decisions.
"""

from __future__ import annotations

import json
import math
from typing import Literal

#: ``wall``: live; ``event``: a replay's own clock (the latest event time seen).
ClockMode = Literal["wall", "event"]

#: The most ticks one event may bring (a gap longer than this in a trace ticks only at
#: its end): a trace with hours of silence must not cost hours of ticks.
MAX_TICKS = 3600


def event_ts(payload: bytes) -> float | None:
    """The ``ts`` of a contract payload, or None if it has none (the engine then rejects it)."""
    try:
        ts = json.loads(payload).get("ts")
    except (ValueError, AttributeError):
        return None
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        return None
    return float(ts)


class EventClock:
    """The latest event time seen, and the ticks it passed."""

    def __init__(self) -> None:
        self.now: float | None = None
        self._ticked: int | None = None

    def see(self, ts: float | None) -> list[float]:
        """An event dated ``ts`` arrives: move the clock forward (never back) and return the
        whole seconds passed since the last call, at which the caller ticks before handling
        the event."""
        if ts is None:
            return []
        if self.now is None or self._ticked is None:
            self.now = ts
            self._ticked = math.floor(ts)
            return []
        if ts <= self.now:
            return []
        self.now = ts
        last = math.floor(ts)
        first = max(self._ticked + 1, last - MAX_TICKS + 1)
        self._ticked = max(self._ticked, last)
        return [float(t) for t in range(first, last + 1)]
