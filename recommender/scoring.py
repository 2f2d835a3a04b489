"""Scoring: propensity x value x context weight. Pure.

The context weight says how right the moment is: the zone's relevance for the action
(a due category shelved right here counts fully), time already spent in the zone (a
shopper who lingers is open to a word), and the queue (a long checkout queue holds back
member prompts at the tills, where associates are needed for the queue).
"""

from __future__ import annotations

from dataclasses import dataclass

from broker_config.contract import PromptKind
from recommender.catalog import Lifecycle
from recommender.eligibility import Candidate, Moment
from recommender.propensity import Propensity

LONG_QUEUE = 4


@dataclass(slots=True)
class Score:
    propensity: float
    value: float
    context: float

    @property
    def total(self) -> float:
        return self.propensity * self.value * self.context

    def as_dict(self) -> dict[str, float]:
        return {
            "propensity": round(self.propensity, 4),
            "value": self.value,
            "context": round(self.context, 4),
            "score": round(self.total, 4),
        }


def context_weight(candidate: Candidate, moment: Moment) -> float:
    weight = 0.5 + 0.5 * candidate.relevance
    weight *= 1.0 + min(moment.dwell_s / 600.0, 0.5)
    if (
        moment.queue is not None
        and moment.queue >= LONG_QUEUE
        and candidate.action.kind is not PromptKind.OPEN_TILL
    ):
        weight *= 0.5
    return weight


def score(
    candidate: Candidate,
    moment: Moment,
    propensity: Propensity,
    vip: bool = False,
    rfm: tuple[int, int, int] = (3, 3, 3),
    stage: Lifecycle = Lifecycle.ACTIVE,
) -> Score:
    """``vip``, ``rfm`` and ``stage`` describe the member (a guest: the defaults)."""
    p = propensity(candidate.action.kind, stage, vip, *rfm)
    return Score(p, candidate.action.value, context_weight(candidate, moment))
