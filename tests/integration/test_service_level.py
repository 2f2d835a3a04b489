"""The service-level figure end to end: a short simulated day at the demo store, replayed
on real Mosquitto and Redis through a recommender process (rules.require_handheld on, the
events' clock), with simulated associates answering on their handheld topics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.service import simulate_service
from floorwalker.config import Endpoints
from simulators.harness import StaffedRun
from simulators.service_level import ServiceLevel
from simulators.stores import DEMO_STORE

#: Nobody signs in for the first two minutes of a six-minute day.
HOURS, VISITORS, LATE_S = 0.1, 60, 120.0


def _day(services: Endpoints, speed: float | None) -> tuple[ServiceLevel, StaffedRun]:
    return simulate_service(
        DEMO_STORE, hours=HOURS, visitors=VISITORS, seed=4, speed=speed, sign_in_after_s=LATE_S,
        endpoints=services,
    )  # fmt: skip


def test_staffed_day_nothing_lost_every_unserved_prompt_has_a_reason(services: Endpoints) -> None:
    level, run = _day(services, None)
    assert level.servable > 0 and run.deliveries
    assert level.lost == 0
    assert level.unserved_without_reason == 0
    assert level.unserved == sum(level.unserved_by_reason.values())
    # Nobody on the floor at first: those prompts are unserved, and say why.
    assert level.unserved_by_reason.get("nobody_on_floor", 0) > 0
    assert level.accepted_60s > 0 and run.associates.answers


def test_evaluate_staffed_reports_the_service_level(tmp_path: Path) -> None:
    """`floorwalker evaluate --staffed`: the day replayed through its own services with
    simulated associates; the report gains the service-level section and its plot, and its
    table says the figures of summary.json's measure."""
    day, report_dir = tmp_path / "day", tmp_path / "report"
    sim = _floorwalker("simulate", "--hours", "0.1", "--visitors", "60", "--seed", "4", "--out", str(day))
    assert sim.returncode == 0, sim.stderr
    ev = _floorwalker("evaluate", str(day / "trace.jsonl"), "--truth", str(day / "truth.json"),
                      "--staffed", "--report", str(report_dir))  # fmt: skip
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert "simulated associates" in ev.stdout
    level = json.loads((report_dir / "summary.json").read_text())["service_level"]
    text = (report_dir / "report.md").read_text()
    assert "## Service level" in text and "(service_level.png)" in text
    assert (report_dir / "service_level.png").stat().st_size > 1000
    assert level["servable"] > 0 and level["lost"] == 0 and level["unserved_without_reason"] == 0
    assert level["unserved"] == sum(level["unserved_by_reason"].values())
    reasons = ", ".join(f"{k} {v}" for k, v in level["unserved_by_reason"].items()) or "none"
    for row in (
        f"| servable (decided, not held out) | {level['servable']} |",
        f"| accepted by an available associate within 60 s | {level['accepted_60s']} |",
        f"| escalated to the floor lead | {level['escalated']} |",
        f"| unserved ({reasons}) | {level['unserved']} |",
        f"| lost between decision and handheld | {level['lost']} |",
        f"within 2 s | {level['delivered_2s']} |",
    ):
        assert row in text
    p50, p90 = level["accept_p50_s"], level["accept_p90_s"]
    assert p50 is not None and f"p50 {p50:.1f} s, p90 {p90:.1f} s" in text


def _floorwalker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "floorwalker", *args], capture_output=True, text=True, timeout=300
    )


def _what_happened(run: StaffedRun) -> tuple[list[object], list[object], dict[str, int]]:
    """The run on the day's own clock: every delivery (when decided, when shown, to whom,
    which prompt by order of decision), every answer, and the recommender's counters."""
    origin = run.associates.origin
    order: dict[str, int] = {}
    deliveries = []
    for d in sorted(run.deliveries, key=lambda d: (d.decided, d.seen_at, d.associate)):
        order.setdefault(d.prompt_id, len(order))
        deliveries.append(
            (round(d.decided - origin, 3), round(d.seen_at - origin, 3), d.associate, order[d.prompt_id])
        )
    answers = [
        (round(a.ts - origin, 3), a.associate, a.outcome, order.get(a.prompt_id))
        for a in run.associates.answers
    ]
    # Not compared: latencies, and `outcome:changed` (a kept member state refused by the
    # script and decided again), which counts how events and answers fell into batches.
    counters = {k: v for k, v in run.stats.items() if not k.startswith("latency") and k != "outcome:changed"}
    return deliveries, answers, counters


def test_a_staffed_day_gives_the_same_prompts_and_answers_at_two_speeds(services: Endpoints) -> None:
    """Replay speed changes nothing: the same deliveries (times on the events' clock,
    associates, re-routes), the same answers and the same counters (prompts per kind,
    escalations, unserved reasons)."""
    _, fast = _day(services, None)
    _, paced = _day(services, 60.0)
    assert fast.deliveries and fast.associates.answers
    (fast_d, fast_a, fast_c), (paced_d, paced_a, paced_c) = _what_happened(fast), _what_happened(paced)
    assert fast_d == paced_d
    assert fast_a == paced_a
    differ = {
        k: (fast_c.get(k), paced_c.get(k))
        for k in fast_c.keys() | paced_c.keys()
        if fast_c.get(k) != paced_c.get(k)
    }
    assert not differ, f"counters (max speed, 60x) differ: {differ}"
