"""The manager's view: nearest-rank percentiles of time to accept, per associate and overall."""

from __future__ import annotations

from handheld.manage import percentile, response_times


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 11)]
    assert percentile(values, 50) == 5.0
    assert percentile(values, 90) == 9.0
    assert percentile([7.0], 90) == 7.0
    assert percentile([], 50) is None


def test_response_times_list_every_associate_and_the_store() -> None:
    times = response_times([("a-ben", 4.0), ("a-ben", 10.0), ("a-cara", 2.0)], ["a-amy", "a-ben", "a-cara"])
    assert times.overall.count == 3 and times.overall.p50_s == 4.0 and times.overall.p90_s == 10.0
    assert times.by_associate["a-ben"].p50_s == 4.0
    assert times.by_associate["a-amy"].count == 0 and times.by_associate["a-amy"].p50_s is None
