"""The service-level figure end to end: a short simulated day at the demo store, replayed
on real Mosquitto and Redis through a recommender process (rules.require_handheld on, the
events' clock), with simulated associates answering on their handheld topics."""

from __future__ import annotations

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
