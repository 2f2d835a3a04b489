"""Scoring, table-driven: the context weight from the zone's relevance, the time spent in
the zone (capped) and a long checkout queue; the score's parts; the member's VIP flag."""

from __future__ import annotations

import pytest

from broker_config.contract import PromptKind
from recommender.catalog import Action, Lifecycle
from recommender.eligibility import Candidate, Moment
from recommender.propensity import Propensity
from recommender.scoring import LONG_QUEUE, Score, context_weight, score

TEXT = {"headline": "h", "suggestion": "s", "why": "w"}
ASK = Action(id="ask", kind=PromptKind.LONG_DWELL_HELP, value=4, text=TEXT, eligible={"min_dwell_s": 60})
TILL = Action(id="till", kind=PromptKind.OPEN_TILL, value=20, text=TEXT, eligible={"min_queue": 4})


def _moment(dwell_s: float = 0.0, queue: int | None = None) -> Moment:
    return Moment("enter", 1_800_000_000.0, "pantry", "Pantry", ("tea",), dwell_s=dwell_s, queue=queue)


@pytest.mark.parametrize(
    ("relevance", "dwell_s", "queue", "action", "weight"),
    [
        # relevance: half the weight comes from being in the right zone
        (1.0, 0, None, ASK, 1.0),
        (0.0, 0, None, ASK, 0.5),
        (0.5, 0, None, ASK, 0.75),
        # time in the zone: +1/600 per second, at most +0.5 (from 5 minutes on)
        (1.0, 150, None, ASK, 1.25),
        (0.5, 150, None, ASK, 0.9375),
        (1.0, 300, None, ASK, 1.5),
        (1.0, 1200, None, ASK, 1.5),
        # a long queue halves member prompts, from LONG_QUEUE on; never the open-till prompt
        (1.0, 0, LONG_QUEUE - 1, ASK, 1.0),
        (1.0, 0, LONG_QUEUE, ASK, 0.5),
        (0.5, 150, LONG_QUEUE + 3, ASK, 0.46875),
        (1.0, 0, LONG_QUEUE + 3, TILL, 1.0),
    ],
)
def test_context_weight(
    relevance: float, dwell_s: float, queue: int | None, action: Action, weight: float
) -> None:
    candidate = Candidate(action, "", {}, relevance)
    assert context_weight(candidate, _moment(dwell_s, queue)) == pytest.approx(weight, rel=1e-12)


def test_the_score_is_propensity_times_value_times_context() -> None:
    s = Score(propensity=0.123456, value=4.0, context=0.987654)
    assert s.total == pytest.approx(0.123456 * 4.0 * 0.987654, rel=1e-12)
    assert s.as_dict() == {"propensity": 0.1235, "value": 4.0, "context": 0.9877, "score": 0.4877}


def test_a_member_is_not_a_vip_unless_said() -> None:
    prior = Propensity.from_prior()
    candidate, moment = Candidate(ASK, "", {}, 1.0), _moment(150)
    plain = score(candidate, moment, prior)
    vip = score(candidate, moment, prior, vip=True)
    assert plain.propensity == prior(PromptKind.LONG_DWELL_HELP, Lifecycle.ACTIVE, False, 3, 3, 3)
    assert vip.propensity == prior(PromptKind.LONG_DWELL_HELP, Lifecycle.ACTIVE, True, 3, 3, 3)
    assert vip.propensity != plain.propensity
    assert (plain.value, plain.context) == (4, 1.25)
