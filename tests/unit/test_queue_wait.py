"""A lane's wait: its queue x the mean time between its last 6 checkouts (one rule for the
dashboard, the API's metrics and the Home Assistant bridge)."""

from __future__ import annotations

from collections import deque

import pytest

from floorwalker.queue_wait import SERVICE_SAMPLES, lane_queues, lane_wait_s


@pytest.mark.parametrize(
    ("queue", "times", "wait"),
    [
        (None, [0.0, 60.0], None),  # queue never reported
        (0, None, 0.0),  # nobody queues: no wait, checkouts or not
        (3, None, None),  # no checkouts yet
        (3, [100.0], None),  # one checkout: no gap yet
        (3, [0.0, 60.0], 180.0),
        (2, [0.0, 30.0, 90.0], 90.0),  # mean gap 45 s
        (1, [0.0, 1000.0, 1010.0, 1020.0, 1030.0, 1040.0, 1050.0], 10.0),  # only the last 6 count
        (4, [0.0, 0.1, 0.2], 0.4),  # rounded to 0.1 s
    ],
)
def test_lane_wait(queue: int | None, times: list[float] | None, wait: float | None) -> None:
    assert lane_wait_s(queue, times) == wait
    if times is not None:  # a bounded deque, as the readers keep, gives the same
        assert lane_wait_s(queue, deque(times, maxlen=SERVICE_SAMPLES)) == wait


@pytest.mark.parametrize(
    ("reported", "queue_length", "zone_lanes", "queues"),
    [
        ({"lane-1": 2, "lane-2": 0}, 7, ["lane-1", "lane-2"], {"lane-1": 2, "lane-2": 0}),
        (None, 4, ["lane-1"], {"lane-1": 4}),  # a one-lane zone's queue is its lane's
        (None, 4, ["lane-1", "lane-2"], {}),  # two lanes: whose? unknown
        (None, None, ["lane-1"], {}),
        ({}, 5, ["lane-1"], {"lane-1": 5}),
    ],
)
def test_lane_queues_from_a_footfall_event(
    reported: dict[str, int] | None, queue_length: int | None, zone_lanes: list[str], queues: dict[str, int]
) -> None:
    assert lane_queues(reported, queue_length, zone_lanes) == queues
