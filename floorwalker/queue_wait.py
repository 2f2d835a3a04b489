"""A checkout lane's queue and the wait in it, one rule for every reader (the dashboard,
the API's metrics, the Home Assistant bridge). Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

#: Checkouts per lane the wait estimate averages the time between.
SERVICE_SAMPLES: Final = 6


def lane_wait_s(queue: int | None, checkout_times: Sequence[float] | None) -> float | None:
    """Queue x the mean time between the lane's last :data:`SERVICE_SAMPLES` checkouts,
    seconds (rounded to 0.1): 0 for an empty queue, None while the queue is unknown or
    fewer than two checkouts were seen."""
    if queue is None:
        return None
    if queue == 0:
        return 0.0
    times = list(checkout_times or ())[-SERVICE_SAMPLES:]
    if len(times) < 2:
        return None
    gap = (times[-1] - times[0]) / (len(times) - 1)
    return round(queue * gap, 1)


def lane_queues(
    lane_queue: Mapping[str, int] | None, queue_length: int | None, zone_lanes: Sequence[str]
) -> dict[str, int]:
    """The lane queues one footfall event reports: its ``lane_queues``, or else its
    ``queue_length`` when its zone holds exactly one lane (``zone_lanes``)."""
    queues = dict(lane_queue or {})
    if not queues and queue_length is not None and len(zone_lanes) == 1:
        queues[zone_lanes[0]] = queue_length
    return queues
