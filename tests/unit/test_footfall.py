"""Aggregation into per-zone footfall reports: on an interval, on change (throttled), never
per frame; and the reports fit the contract's FootfallEvent."""

from __future__ import annotations

from broker_config.contract import EnvelopeSource, FootfallEvent, GatewayStatus, SensorHealth, decode, encode
from broker_config.contract import Topics as ContractTopics
from edge_agent.camera.footfall import FootfallAggregator, FrameCounts
from edge_agent.camera.line_counter import Crossing
from edge_agent.gateway_config import PublishConfig

T0 = 1_800_000_000.0
PUBLISH = PublishConfig(interval_s=10, min_interval_s=1)


def counts(
    t: float, *crossings: str, occupancy: dict[str, int] | None = None, queues: dict[str, int] | None = None
):
    return FrameCounts(
        t,
        [],
        [("entrance", Crossing("door", 1, d, t)) for d in crossings],  # type: ignore[arg-type]
        occupancy or {},
        queues or {},
        {},
    )


def test_nothing_changes_so_one_report_per_interval() -> None:
    agg = FootfallAggregator(["entrance"], PUBLISH, T0, {})
    sent = []
    for i in range(250):  # 25 s of frames at 10 fps
        t = T0 + i * 0.1
        agg.add(counts(t))
        sent += agg.due(t)
    # The first report says "0 people" (a change from nothing sent), then one per 10 s.
    assert len(sent) == 3
    assert [round(r.window_s) for r in sent] == [1, 10, 10]
    assert all(r.entered == r.exited == r.occupancy == 0 for r in sent)


def test_a_burst_of_crossings_is_throttled_not_sent_per_frame() -> None:
    agg = FootfallAggregator(["entrance"], PUBLISH, T0, {})
    agg.due(T0 + 1)  # initial report
    sent = []
    for i in range(20):  # someone crosses every frame for 2 s
        t = T0 + 1 + (i + 1) * 0.1
        agg.add(counts(t, "in"))
        sent += agg.due(t)
    assert 1 <= len(sent) <= 3
    sent += agg.flush(T0 + 3.5)
    assert sum(r.entered for r in sent) == 20
    # Without a polygon, occupancy is who came in and has not left.
    assert sent[-1].occupancy == 20


def test_window_counts_reset_and_exits_lower_occupancy() -> None:
    agg = FootfallAggregator(["entrance"], PUBLISH, T0, {})
    agg.add(counts(T0 + 1, "in", "in", "in"))
    (first,) = agg.due(T0 + 1)
    agg.add(counts(T0 + 5, "out"))
    (second,) = agg.due(T0 + 5)
    assert (first.entered, first.exited, first.occupancy) == (3, 0, 3)
    assert (second.entered, second.exited, second.occupancy, second.window_s) == (0, 1, 2, 4)


def test_polygon_occupancy_and_lane_queues() -> None:
    agg = FootfallAggregator(["checkout"], PUBLISH, T0, {"lane-1": "checkout", "lane-2": "checkout"})
    agg.add(counts(T0 + 2, occupancy={"checkout": 6}, queues={"lane-1": 3, "lane-2": 1}))
    (r,) = agg.due(T0 + 2)
    assert (r.occupancy, r.queue_length, r.lane_queues) == (6, 4, {"lane-1": 3, "lane-2": 1})


def test_reports_and_sensor_health_fit_the_contract() -> None:
    src = EnvelopeSource("gw-entrance")
    topics = ContractTopics()
    event = src.make(
        FootfallEvent, T0, window_s=10, entered=3, exited=1, occupancy=2, queue_length=4,
        dwell_avg_s=42.5, lane_queues={"lane-1": 3, "lane-2": 1},
    )  # fmt: skip
    back = decode(topics, topics.footfall("demo-store", "checkout"), encode(event)).payload
    assert back == event
    sensor = SensorHealth(id="door", kind="camera", state="reconnecting", detail="cannot open", rate_hz=0)
    status = src.make(GatewayStatus, T0, state="online", sensors=[sensor])
    back = decode(topics, topics.status("demo-store", "gw-entrance"), encode(status)).payload
    assert isinstance(back, GatewayStatus) and back.sensors[0].state == "reconnecting"
