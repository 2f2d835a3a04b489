"""Tills: FIFO per lane, the shortest queue is joined, nobody is served twice at once."""

from __future__ import annotations

import itertools
import random

import pytest

from simulators.checkout import Tills


def test_shortest_queue_and_fifo() -> None:
    rng = random.Random(1)
    tills = Tills(["lane-1", "lane-2"])
    a = tills.serve(0.0, 5, rng)
    b = tills.serve(1.0, 5, rng)
    c = tills.serve(2.0, 5, rng)
    assert (a.lane, b.lane) == ("lane-1", "lane-2")  # b avoids the busy lane
    assert a.served == 0.0 and b.served == 1.0
    assert c.served == min(a.paid, b.paid) and c.lane == ("lane-1" if a.paid <= b.paid else "lane-2")


def test_a_lane_serves_one_at_a_time_in_arrival_order() -> None:
    rng = random.Random(2)
    tills = Tills(["lane-1", "lane-2", "lane-3"])
    t = 0.0
    for _ in range(300):
        t += rng.expovariate(1 / 15)
        tills.serve(t, rng.randint(1, 20), rng)
    for lane in tills.lanes:
        visits = [v for v in tills.visits if v.lane == lane]
        assert visits
        for prev, nxt in itertools.pairwise(visits):
            assert nxt.served >= prev.paid - 1e-9  # served after the one ahead paid
            assert nxt.queued >= prev.queued
        assert all(v.queued <= v.served < v.paid for v in visits)


def test_no_lanes_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one lane"):
        Tills([])


def test_the_walk_to_the_lane_comes_first() -> None:
    rng = random.Random(3)
    tills = Tills(["lane-1", "lane-2"])
    v = tills.serve(100.0, 2, rng, {"lane-1": 12.0, "lane-2": 30.0})
    assert v.lane == "lane-1" and v.queued == v.served == 112.0
