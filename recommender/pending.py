"""One valid event on its way through a batch of the engine (:mod:`recommender.engine`):
what is known of it before its state script runs, and the prompt staged with it."""

from __future__ import annotations

from dataclasses import dataclass

from broker_config.contract import Feedback
from recommender.arbitration import Arbitration
from recommender.decide import MemberState, ScriptCall
from recommender.eligibility import Moment
from recommender.prompts import Cause
from recommender.routing import OpenPrompt


@dataclass(slots=True)
class Pending:
    """A valid event waiting for its state script (and, for members, its read)."""

    index: int
    cause: Cause
    moment: Moment | None = None
    member: str | None = None
    lane: str | None = None
    call: ScriptCall | None = None
    arbitration: Arbitration | None = None
    prompt_id: str = ""
    feedback: Feedback | None = None
    #: Who sent the feedback: the associate its topic names.
    sender: str = ""
    tier: str = ""
    points: int | None = None
    usual: str | None = None
    failed: bool = False
    #: A prompt built and routed before its claim (see :meth:`Handoff.stage
    #: <recommender.handoff.Handoff.stage>`): the open prompt, its topic and the key its
    #: unsent copy is kept under.
    staged: tuple[OpenPrompt, str, str] | None = None
    #: The free associate it was routed to, held in Redis for the other replicas (with
    #: ``replicated``), and whether another replica held them first.
    hold: str | None = None
    hold_lost: bool = False
    #: Routed to the floor lead because nobody suitable was on the floor.
    escalated: bool = False
    #: The member's state the decision is made on (kept in memory, read, or found by the
    #: script that refused the first decision), and its digest when the presence script
    #: must check it ('' when it was read in this batch).
    state: MemberState | None = None
    digest: str = ""
