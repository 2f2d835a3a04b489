"""The per-event Redis step: one Lua script call that deduplicates, updates the customer's
visit and decides which prompt (if any) the event earns.

Doing all three in one script makes them atomic: two deliveries of the same event, or two
recommender replicas racing on one customer, cannot both claim the same prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import redis

from broker_config.contract import CheckoutEvent, PresenceEvent, PromptKind
from floorwalker.config import RulesConfig
from recommender.keys import Keys


class Outcome(StrEnum):
    OK = "ok"
    DUPLICATE = "duplicate"
    UNKNOWN_MEMBER = "unknown_member"
    NO_CONSENT = "no_consent"
    OUT_OF_ORDER = "out_of_order"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    kind: PromptKind | None = None
    category: str = ""
    tier: str = ""
    points: int | None = None
    last_purchase_ts: float | None = None
    interval_s: float | None = None
    label: str = ""


def _load(name: str) -> str:
    lua = Path(__file__).resolve().parent / "lua"
    return (lua / "dedupe.lua").read_text() + "\n" + (lua / name).read_text()


PRESENCE_LUA = _load("presence.lua")
CHECKOUT_LUA = _load("checkout.lua")


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def parse_reply(reply: list[bytes | str]) -> Decision:
    """Turn the script's reply (see the header of ``presence.lua``) into a :class:`Decision`."""
    fields = [_text(v) for v in reply]
    outcome = Outcome(fields[0])
    if len(fields) < 2:
        return Decision(outcome)
    pad = [*fields, "", "", "", "", "", ""]
    return Decision(
        outcome,
        kind=PromptKind(fields[1]),
        category=pad[2],
        tier=pad[3],
        points=int(pad[4]) if pad[4] else None,
        last_purchase_ts=float(pad[5]) if pad[5] else None,
        interval_s=float(pad[6]) if pad[6] else None,
        label=pad[7],
    )


class Decider:
    """Runs the decision scripts (EVALSHA, reloading them if Redis lost its script cache)."""

    def __init__(self, client: redis.Redis, keys: Keys, rules: RulesConfig) -> None:
        self._keys = keys
        self._rules = rules
        self._presence = client.register_script(PRESENCE_LUA)
        self._checkout = client.register_script(CHECKOUT_LUA)
        self._vip = " ".join(rules.vip_tiers)

    def presence(self, event: PresenceEvent, zone: str, categories: list[str], now: float) -> Decision:
        k, r = self._keys, self._rules
        reply = self._presence(
            keys=[k.member_seen(event.member), k.visit(event.member), k.profile(event.member)],
            args=[
                event.event_id, repr(event.ts), repr(now), zone, event.action,
                r.dedupe_window, r.dedupe_ttl_s, r.visit_ttl_s, r.max_event_age_s,
                self._vip, r.replenish_from, r.replenish_until, *categories,
            ],
        )  # fmt: skip
        return parse_reply(reply)

    def checkout(self, event: CheckoutEvent, lane: str, now: float) -> Decision:
        k, r = self._keys, self._rules
        if event.member is None:
            keys = [k.lane_seen(lane)]
        else:
            keys = [k.member_seen(event.member), k.visit(event.member), k.profile(event.member)]
        categories = sorted({line.category for line in event.items})
        reply = self._checkout(
            keys=keys,
            args=[
                event.event_id, repr(event.ts), repr(now), event.member or "",
                r.dedupe_window, r.dedupe_ttl_s, r.max_event_age_s, *categories,
            ],
        )  # fmt: skip
        return parse_reply(reply)
