"""Polygon occupancy, dwell and queue length, with time passed in."""

from __future__ import annotations

from edge_agent.camera.zones import PolygonZone

SQUARE = [(100.0, 100.0), (300.0, 100.0), (300.0, 300.0), (100.0, 300.0)]
IN, OUT = (200.0, 200.0), (400.0, 200.0)


def test_occupancy_counts_the_tracks_inside() -> None:
    zone = PolygonZone("z", SQUARE, settle_s=0)
    snap = zone.update({1: IN, 2: IN, 3: OUT}, 0.0)
    assert snap.occupancy == 2


def test_dwell_is_measured_from_entry_to_exit() -> None:
    zone = PolygonZone("z", SQUARE, settle_s=0.0)
    zone.update({1: OUT}, 0.0)
    zone.update({1: IN}, 1.0)
    for t in (2.0, 3.0, 4.0):
        snap = zone.update({1: IN}, t)
    assert snap.occupancy == 1 and snap.longest_current_s == 3.0
    snap = zone.update({1: OUT}, 6.5)
    assert snap.finished_dwells == (5.5,) and snap.occupancy == 0


def test_a_flicker_on_the_edge_shorter_than_settle_s_changes_nothing() -> None:
    zone = PolygonZone("z", SQUARE, settle_s=0.5)
    zone.update({1: IN}, 0.0)
    zone.update({1: OUT}, 0.1)  # one bad box outside
    snap = zone.update({1: IN}, 0.2)
    assert snap.occupancy == 1 and snap.finished_dwells == ()
    zone.update({1: OUT}, 1.0)
    snap = zone.update({1: OUT}, 1.6)
    assert snap.occupancy == 0 and snap.finished_dwells == (1.0,)


def test_a_track_that_vanishes_inside_ends_its_visit_after_forget_s() -> None:
    zone = PolygonZone("z", SQUARE, settle_s=0.0, forget_s=2.0)
    zone.update({1: IN}, 0.0)
    zone.update({1: IN}, 4.0)
    snap = zone.update({}, 5.0)
    assert snap.occupancy == 0 and snap.finished_dwells == ()
    snap = zone.update({}, 6.5)
    assert snap.finished_dwells == (4.0,)
    assert zone.tracked == 0


def test_queue_length_is_the_people_in_the_queue_polygon() -> None:
    lane = PolygonZone("lane-1", [(0.0, 0.0), (50.0, 0.0), (50.0, 400.0), (0.0, 400.0)], settle_s=0.0)
    queue = {i: (25.0, 40.0 + 60 * i) for i in range(1, 6)}
    assert lane.update(queue, 0.0).occupancy == 5
    queue.pop(1)  # the first one is served and walks off
    queue[1] = (200.0, 40.0)
    assert lane.update(queue, 1.0).occupancy == 4
