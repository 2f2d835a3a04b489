"""The handheld bench's summary: latencies per page, lost and repeated deliveries."""

from __future__ import annotations

import pytest

from bench.handheld import summarize


def test_summary_counts_lost_and_repeated_per_page() -> None:
    sent = {"a": 10.0, "b": 11.0}
    page1 = {"a": [10.002], "b": [11.004, 11.5]}  # b repeated
    page2 = {"a": [10.001]}  # b lost
    r = summarize(100.0, sent, [page1, page2], floor_p50=0.5)
    assert (r.pages, r.deliveries_expected, r.deliveries, r.lost, r.repeated) == (2, 4, 3, 1, 1)
    assert r.max_ms == pytest.approx(4.0)
    assert r.p50_ms == pytest.approx(2.0)
    assert r.p50_over_floor == pytest.approx(4.0)


def test_summary_without_deliveries_has_no_latency() -> None:
    r = summarize(10.0, {"a": 1.0}, [{}], floor_p50=None)
    assert (r.lost, r.p50_ms, r.p50_over_floor) == (1, None, None)
