"""Scoring against truth: counts, zone accuracy, prompts and their latency; the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker_config.contract import (
    CustomerCard,
    EnvelopeSource,
    PresenceEvent,
    Prompt,
    PromptKind,
    Topics,
    decode,
    encode,
)
from floorwalker.config import load_store_config
from recommender.crm import read_fixture
from simulators.day import simulate_day
from simulators.evaluate import Output, score, write_report
from simulators.trace import TraceReader, load_truth
from tests.conftest import DEMO_STORE


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    config = load_store_config(DEMO_STORE)
    assert config.crm is not None
    day = simulate_day(config, read_fixture(config.crm), hours=2, visitors=120, seed=9)
    return day.write(tmp_path_factory.mktemp("day"))


def _prompt_for(line_payload: bytes, topic: str, delay: float) -> Output:
    cause = decode(Topics(), topic, line_payload).payload
    prompt = EnvelopeSource("recommender").make(
        Prompt, cause.ts + delay, kind=PromptKind.JOIN_INVITE, customer=CustomerCard(), lane="lane-1",
        headline="Invite", suggestion="Invite", why="Paid without a card", cause_event_id=cause.event_id,
        cause_ts=cause.ts, expires_at=cause.ts + 300,
    )  # fmt: skip
    return Output(cause.ts + delay + 0.001, Topics().prompt("demo-store", "a-dan"), encode(prompt))


def test_score_matches_truth_within_the_sensor_error(files: tuple[Path, Path]) -> None:
    trace, truth_path = files
    truth = load_truth(truth_path)
    lines = list(TraceReader(trace))
    checkouts = [x for x in lines if x.topic.endswith("/checkout")]
    outputs = [_prompt_for(x.payload, x.topic, 0.004) for x in checkouts[:5]]
    outputs.append(Output(None, "fw/v1/demo-store/deadletter", b"not a contract message"))
    report = score(lines, truth, outputs)
    reported, true = report.footfall_total()
    assert true > 0 and abs(reported - true) <= 0.06 * true
    assert report.checkouts_reported == report.checkouts_true == len(checkouts)
    assert report.trace_kinds["checkout"] == len(checkouts) and sum(report.trace_kinds.values()) == len(lines)
    accuracy = report.member_zone_accuracy
    assert accuracy is not None and 0.5 < accuracy < 1.0  # delays and misses cost some, not most
    assert report.prompts == 5 and report.prompt_kinds == {"join_invite": 5}
    assert report.decision_ms == pytest.approx([4.0] * 5, abs=0.01)
    assert report.arrival_ms == pytest.approx([5.0] * 5, abs=0.01)
    assert sum(sum(v) for v in report.per_associate_hour.values()) == 5
    # The deadletter topic is counted only for valid dead-letter records.
    assert report.deadletters == 0


def test_without_presence_no_member_is_ever_right(files: tuple[Path, Path]) -> None:
    trace, truth_path = files
    lines = [x for x in TraceReader(trace) if not x.topic.endswith("/presence")]
    report = score(lines, load_truth(truth_path), [])
    assert report.member_zone_accuracy == 0.0


def test_report_is_written_with_plots(files: tuple[Path, Path], tmp_path: Path) -> None:
    trace, truth_path = files
    report = score(list(TraceReader(trace)), load_truth(truth_path), [])
    md = write_report(report, tmp_path / "r")
    text = md.read_text()
    for png in ("footfall_per_zone_hour", "occupancy", "zone_accuracy", "prompts", "prompts_per_associate"):
        assert (tmp_path / "r" / f"{png}.png").stat().st_size > 1000
        assert f"({png}.png)" in text
    assert "| entrance |" in text and "member zone accuracy" in text


def test_a_staffed_report_has_the_service_level_and_its_plot(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    from simulators.service_level import ServiceLevel

    trace, truth_path = files
    report = score(list(TraceReader(trace)), load_truth(truth_path), [])
    md = write_report(report, tmp_path / "plain").read_text()
    assert "## Service level" not in md and not (tmp_path / "plain" / "service_level.png").exists()

    report.service = ServiceLevel(
        servable=20, accepted_60s=12, escalated=3, unserved=4, unserved_by_reason={"nobody_on_floor": 4},
        not_accepted=2, delivered_2s=15, delivery_measured=16, accept_s=[5.0, 10.0, 20.0, 70.0],
    )  # fmt: skip
    text = write_report(report, tmp_path / "r").read_text()
    assert "## Service level" in text and "(service_level.png)" in text
    assert (tmp_path / "r" / "service_level.png").stat().st_size > 1000
    assert "| servable (decided, not held out) | 20 |" in text
    assert "| accepted by an available associate within 60 s | 12 | 60.0% |" in text
    assert "| escalated to the floor lead | 3 | 15.0% |" in text
    assert "| unserved (nobody_on_floor 4) | 4 | 20.0% |" in text
    assert "| lost between decision and handheld | 0 | 0.0% |" in text
    assert "within 2 s | 15 | 75.0% |" in text
    assert "Time to accept: p50 15.0 s, p90 55.0 s (4 accepted)" in text
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["service_level"] == report.service.to_json()


def test_presence_the_system_publishes_counts_on_the_trace_clock(files: tuple[Path, Path]) -> None:
    """A fuser's presence (new ids, replay-time ts) scores like the same presence in the trace."""
    trace, truth_path = files
    truth = load_truth(truth_path)
    lines = list(TraceReader(trace))
    first = lines[0].t
    wall0 = 2.0e9
    fuser = EnvelopeSource("fuser")
    outputs = []
    for x in lines:
        if x.topic.endswith("/presence"):
            body = decode(Topics(), x.topic, x.payload).payload
            assert isinstance(body, PresenceEvent)
            again = fuser.make(
                PresenceEvent, wall0 + (body.ts - first), member=body.member, action=body.action
            )
            outputs.append(Output(again.ts, "pfx/" + x.topic, encode(again)))
    without = [x for x in lines if not x.topic.endswith("/presence")]
    expected = score(lines, truth, []).member_zone_accuracy
    assert score(without, truth, outputs).member_zone_accuracy == 0.0  # no clock: not placed
    placed = score(without, truth, outputs, to_trace_time=lambda w: first + (w - wall0))
    assert placed.member_zone_accuracy == pytest.approx(expected)
    # Replayed presence captured back (same ids) is not counted twice.
    echoed = [Output(x.t, x.topic, x.payload) for x in lines if x.topic.endswith("/presence")]
    assert score(lines, truth, echoed, to_trace_time=lambda w: w).member_zone_accuracy == pytest.approx(
        expected
    )
