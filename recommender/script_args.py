"""The state scripts' keys and arguments (recommender/lua/), one function per script.

Pure: the engine decides the prompt id and stages the prompt (:mod:`recommender.handoff`)
first, and passes the staged prompt's arguments (topic, payload, unsent TTL) in. The
order of each list is the script's KEYS and ARGV; every key set shares one hash slot
(tests/integration/test_scale.py).
"""

from __future__ import annotations

from broker_config.contract import Feedback
from floorwalker.config import RulesConfig
from recommender.arbitration import Choice
from recommender.catalog import Policy
from recommender.crm import DAY
from recommender.decide import ScriptCall, args
from recommender.eligibility import Moment
from recommender.keys import HISTORY_TTL_S, Keys
from recommender.pending import Pending

#: A member who has not bought for this long and comes back counts as won back.
LAPSE_S = 60 * DAY

#: The staged prompt's arguments: topic, payload ('' for no prompt), unsent TTL.
Staged = list[str | int | float]


def feedback(keys: Keys, fb: Feedback, sender: str, manager: bool, now: float) -> ScriptCall:
    """``sender``: the associate the feedback topic names (the broker's ACL lets a handheld
    publish only on its own); ``manager``: whether they may answer anyone's prompt."""
    return ScriptCall(
        "feedback",
        [keys.prompt(fb.prompt_id)],
        args(fb.outcome, now, sender, "1" if manager else "0", fb.event_id),
    )


def footfall(
    keys: Keys, r: RulesConfig, p: Pending, m: Moment, choice: Choice | None, now: float, staged: Staged
) -> ScriptCall:
    cooldown = choice.action.cooldown_s if choice else 0.0
    return ScriptCall(
        "footfall",
        [
            keys.zone_seen(m.zone),
            keys.store_cooldown(m.zone, choice.action.id if choice else "none"),
            keys.zone_unsent(m.zone),
        ],
        args(
            p.cause.event_id,
            p.cause.ts,
            now,
            r.dedupe_window,
            r.dedupe_ttl_s,
            r.max_event_age_s,
            cooldown if choice else 1,
            p.prompt_id or "-",
            *staged,
        ),
    )


def guest_checkout(
    keys: Keys, r: RulesConfig, p: Pending, m: Moment, lane: str, now: float, window_s: float, staged: Staged
) -> ScriptCall:
    return ScriptCall(
        "checkout",
        [keys.lane_seen(lane), keys.lane_unsent(lane)],
        args(
            p.cause.event_id,
            p.cause.ts,
            now,
            "",
            r.dedupe_window,
            r.dedupe_ttl_s,
            r.max_event_age_s,
            window_s,
            LAPSE_S,
            m.basket_cents,
            p.prompt_id,
            *staged,
        ),
    )


def member_checkout(
    keys: Keys, r: RulesConfig, p: Pending, m: Moment, member: str, now: float, window_s: float
) -> ScriptCall:
    return ScriptCall(
        "checkout",
        [
            keys.member_seen(member),
            keys.visit(member),
            keys.profile(member),
            keys.suggested(member),
            keys.erased(member),
        ],
        args(
            p.cause.event_id,
            p.cause.ts,
            now,
            member,
            r.dedupe_window,
            r.dedupe_ttl_s,
            r.max_event_age_s,
            window_s,
            LAPSE_S,
            m.basket_cents,
            *m.categories,
        ),
    )


def presence(
    keys: Keys,
    r: RulesConfig,
    policy: Policy,
    p: Pending,
    m: Moment,
    member: str,
    choice: Choice | None,
    now: float,
    window_s: float,
    staged: Staged,
    *,
    state: tuple[str, float, bool] | None = None,
) -> ScriptCall:
    """``state``: (the digest of the member's state the decision was made on, '' for one
    read in this batch; the contact history's lower bound; whether the caller has the
    profile): the script then checks the digest and returns the member's state, with the
    profile unless the caller has it (lua/presence.lua ARGV 24-26)."""
    checked: list[str | int | float] = [] if state is None else [state[0], state[1], "0" if state[2] else "1"]
    claim: list[str | int | float] = ["", "", "", 0, 0, 0, "", "", 0, HISTORY_TTL_S, window_s]
    if choice is not None:
        c = choice.candidate
        category = str(c.facts.get("category", "")) if c.subject else ""
        claim = [
            p.prompt_id,
            c.action.id,
            c.claim,
            c.action.caps.per_visit or 0,
            policy.max_prompts_per_visit,
            policy.min_gap_s,
            category,
            c.action.kind.value,
            int(choice.holdout),
            HISTORY_TTL_S,
            window_s,
        ]
    action = "enter" if m.trigger == "enter" else m.trigger
    return ScriptCall(
        "presence",
        [
            keys.member_seen(member),
            keys.visit(member),
            keys.profile(member),
            keys.contacts(member),
            keys.suggested(member),
            keys.unsent(member),
            keys.erased(member),
        ],
        args(
            p.cause.event_id,
            p.cause.ts,
            now,
            m.zone,
            action,
            r.dedupe_window,
            r.dedupe_ttl_s,
            r.visit_ttl_s,
            r.max_event_age_s,
            *claim,
            *staged,
            *checked,
        ),
    )
