"""Camera-style footfall from simulated walks: windows, counts and occupancy per zone."""

from __future__ import annotations

from simulators.footfall_tally import FootfallTally, ZoneReport


def test_each_report_covers_the_zone_since_its_previous_one() -> None:
    t = FootfallTally(start=100.0)
    assert t.step("pantry", "enter", 110.0) == ZoneReport("pantry", 10.0, 1, 0, 1)
    assert t.step("pantry", "enter", 115.0) == ZoneReport("pantry", 5.0, 1, 0, 2)
    assert t.step("dairy", "enter", 116.0) == ZoneReport("dairy", 16.0, 1, 0, 1)
    assert t.step("pantry", "leave", 120.0) == ZoneReport("pantry", 5.0, 0, 1, 1)


def test_occupancy_never_goes_below_zero() -> None:
    t = FootfallTally(start=0.0)
    assert t.step("entrance", "leave", 1.0).occupancy == 0
    assert t.step("entrance", "enter", 1.0).window_s > 0  # FootfallEvent needs window_s > 0
