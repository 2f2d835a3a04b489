"""The service-level measure (simulators/service_level.py) and the associate simulator's
shift plan and answers (simulators/associates.py): pure, table-driven."""

from __future__ import annotations

import itertools

import pytest

from broker_config.contract import AssociateStatus, EnvelopeSource, Feedback, Prompt, PromptKind
from floorwalker.config import load_store_config
from simulators.associates import AssociateSimulator, Behaviour, Shift, plan_shifts
from simulators.service_level import Delivery, Reply, measure, quantile
from simulators.stores import DEMO_STORE

T0 = 1_700_000_000.0


def always(_a: str, _t: float) -> bool:
    return True


def never(_a: str, _t: float) -> bool:
    return False


# (name, deliveries, replies, stats, available, expected figures)
CASES = [
    (
        "accepted within a minute",
        [Delivery("p1", "a", T0, T0, 0.1)],
        [Reply("p1", "a", "accepted", T0 + 20)],
        {"prompts": 1},
        always,
        {"servable": 1, "accepted_60s": 1, "lost": 0, "delivered_2s": 1, "accept_s": [20.0]},
    ),
    (
        "accepted too late, delivered too slowly",
        [Delivery("p1", "a", T0, T0, 2.5)],
        [Reply("p1", "a", "accepted", T0 + 90)],
        {"prompts": 1},
        always,
        {"accepted_60s": 0, "delivered_2s": 0, "accept_s": [90.0]},
    ),
    (
        "accepted by an associate not available",
        [Delivery("p1", "a", T0, T0, 0.1)],
        [Reply("p1", "a", "accepted", T0 + 5)],
        {"prompts": 1},
        never,
        {"accepted_60s": 0, "delivered_2s": 0},
    ),
    (
        "a re-route: only the holder's accept counts",
        [Delivery("p1", "a", T0, T0, 0.1), Delivery("p1", "b", T0, T0 + 45)],
        [Reply("p1", "a", "accepted", T0 + 50), Reply("p1", "b", "accepted", T0 + 55)],
        {"prompts": 1, "rerouted": 1},
        always,
        {"accepted_60s": 1, "accept_s": [55.0], "rerouted": 1},
    ),
    (
        "unserved with reasons, escalated, one lost",
        [Delivery("p1", "lead", T0, T0, 0.1)],
        [],
        {
            "prompts": 2,
            "routing:escalated": 1,
            "outcome:no_associate": 3,
            "unserved:nobody_on_floor": 2,
            "unserved:nobody_on_floor:greet_vip": 2,
            "unserved:all_tried": 1,
        },
        always,
        {
            "servable": 5,
            "escalated": 1,
            "unserved": 3,
            "unserved_by_reason": {"all_tried": 1, "nobody_on_floor": 2},
            "unserved_without_reason": 0,
            "lost": 1,
            "not_accepted": 1,
        },
    ),
    (
        "unserved without a reason is counted",
        [],
        [],
        {"outcome:no_associate": 2, "unserved:all_capped": 1},
        always,
        {"servable": 2, "unserved": 1, "unserved_without_reason": 1},
    ),
    (
        "dismissed is not accepted",
        [Delivery("p1", "a", T0, T0, 0.1)],
        [Reply("p1", "a", "dismissed", T0 + 5)],
        {"prompts": 1, "feedback_refused:not_holder": 2},
        always,
        {"accepted_60s": 0, "not_accepted": 1, "refused": 2},
    ),
]


@pytest.mark.parametrize(
    ("deliveries", "replies", "stats", "available", "expected"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_measure(deliveries, replies, stats, available, expected) -> None:  # type: ignore[no-untyped-def]
    level = measure(deliveries, replies, stats, available)
    for name, value in expected.items():
        assert getattr(level, name) == value, name


def test_shares_and_quantiles() -> None:
    level = measure(
        [Delivery(f"p{i}", "a", T0, T0, 0.1) for i in range(4)],
        [Reply(f"p{i}", "a", "accepted", T0 + 10 * (i + 1)) for i in range(4)],
        {"prompts": 4},
        always,
    )
    assert level.share(level.accepted_60s) == 1.0
    assert level.accept_p50_s == pytest.approx(25.0)
    assert quantile([], 0.5) is None
    figures = level.to_json()
    assert figures["lost_share"] == 0.0 and "accept_s" not in figures


def test_shift_plan_covers_every_associate_with_staggered_breaks() -> None:
    config = load_store_config(DEMO_STORE)
    shifts = plan_shifts(config, hours=4, seed=3)
    assert sorted(s.associate for s in shifts) == sorted(a.id for a in config.associates)
    for s in shifts:
        assert 0 <= s.sign_in < s.sign_out <= 4 * 3600
        assert len(s.breaks) == 1 and s.sign_in < s.breaks[0][0] < s.breaks[0][1] < s.sign_out
    starts = sorted(s.breaks[0][0] for s in shifts)
    assert all(b - a >= 60 for a, b in itertools.pairwise(starts))
    assert plan_shifts(config, hours=4, seed=3) == shifts


def _prompt(cause: str) -> Prompt:
    return EnvelopeSource("recommender").make(
        Prompt,
        T0 + 100,
        kind=PromptKind.GREET_VIP,
        customer={},
        headline="h",
        suggestion="s",
        why="w",
        cause_event_id=cause,
        cause_ts=T0 + 100,
        expires_at=T0 + 400,
    )


def test_associates_send_statuses_and_answers_by_the_contract() -> None:
    config = load_store_config(DEMO_STORE)
    aid = config.associates[0].id
    shift = Shift(aid, 0, 600, ((200, 300),))
    sim = AssociateSimulator(config, [shift], T0, behaviour=Behaviour(ignore_p=0, dismiss_p=0), seed=1)
    sim.on_prompt(aid, _prompt("a" * 32), T0 + 100)
    out = []
    while sim.next_ts() is not None:
        out.append(sim.pop())
    states = [(ts - T0, p.state) for ts, _topic, p in out if isinstance(p, AssociateStatus)]
    assert states[0] == (0, "available") and states[-1] == (600, "signed_out")
    assert (200, "on_break") in states and (300, "available") in states
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(states)]
    assert max(gaps) <= config.rules.associate_heartbeat_s
    answers = [(p.outcome, ts - T0) for ts, _topic, p in out if isinstance(p, Feedback)]
    assert [o for o, _ in answers] == ["accepted", "done"]
    assert 100 + Behaviour().min_answer_s <= answers[0][1] <= 100 + Behaviour().max_answer_s
    assert all(p.producer == f"handheld-{aid}" for _ts, _t, p in out)
    assert [a.outcome for a in sim.answers] == ["accepted", "done"]


def test_no_answer_on_a_break_and_same_answers_whatever_the_order() -> None:
    config = load_store_config(DEMO_STORE)
    aid = config.associates[0].id
    shift = Shift(aid, 0, 600, ((90, 400),))
    sim = AssociateSimulator(config, [shift], T0, seed=1)
    sim.on_prompt(aid, _prompt("b" * 32), T0 + 100)  # on a break: nothing
    assert all(isinstance(p, AssociateStatus) for p in _drain(sim))

    def answers(order: list[str]) -> list[tuple[str, float]]:
        s = AssociateSimulator(config, [Shift(aid, 0, 3600)], T0, seed=2)
        for cause in order:
            s.on_prompt(aid, _prompt(cause), T0 + 100)
        _drain(s)
        return sorted((a.outcome, a.ts) for a in s.answers)

    causes = [c * 32 for c in "0123456789"]
    assert answers(causes) == answers(causes[::-1])


def _drain(sim: AssociateSimulator) -> list[object]:
    out: list[object] = []
    while sim.next_ts() is not None:
        out.append(sim.pop()[2])
    return out
