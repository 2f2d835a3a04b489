"""The per-event Redis step: one Lua script call that deduplicates, updates the customer's
visit and decides which prompt (if any) the event earns.

Doing all three in one script makes them atomic: two deliveries of the same event, or two
recommender replicas racing on one customer, cannot both claim the same prompt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import redis
from redis.exceptions import NoScriptError

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


def _args(*values: str | int | float) -> list[str]:
    # repr keeps every digit of a float timestamp; Lua reads them back with tonumber.
    return [v if isinstance(v, str) else repr(v) for v in values]


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One EVALSHA to run: which script, on which keys, with which arguments."""

    sha: str
    keys: list[str]
    args: list[str]


class Decider:
    """Runs the decision scripts, many events per round trip.

    :meth:`run` sends a batch of calls as one non-transactional pipeline: Redis still runs
    each script atomically and in order (so one customer's events keep their order), but
    the client pays one round trip per batch instead of one per event.
    """

    def __init__(self, client: redis.Redis, keys: Keys, rules: RulesConfig) -> None:
        self._client = client
        self._keys = keys
        self._rules = rules
        self._vip = " ".join(rules.vip_tiers)
        self._presence = hashlib.sha1(PRESENCE_LUA.encode()).hexdigest()
        self._checkout = hashlib.sha1(CHECKOUT_LUA.encode()).hexdigest()
        self.load()

    def load(self) -> None:
        """(Re)load the scripts into Redis's script cache."""
        for source in (PRESENCE_LUA, CHECKOUT_LUA):
            self._client.script_load(source)

    def presence_call(self, event: PresenceEvent, zone: str, categories: list[str], now: float) -> ScriptCall:
        k, r = self._keys, self._rules
        return ScriptCall(
            self._presence,
            [k.member_seen(event.member), k.visit(event.member), k.profile(event.member)],
            _args(
                event.event_id, event.ts, now, zone, event.action,
                r.dedupe_window, r.dedupe_ttl_s, r.visit_ttl_s, r.max_event_age_s,
                self._vip, r.replenish_from, r.replenish_until, *categories,
            ),
        )  # fmt: skip

    def checkout_call(self, event: CheckoutEvent, lane: str, now: float) -> ScriptCall:
        k, r = self._keys, self._rules
        if event.member is None:
            keys = [k.lane_seen(lane)]
        else:
            keys = [k.member_seen(event.member), k.visit(event.member), k.profile(event.member)]
        categories = sorted({line.category for line in event.items})
        return ScriptCall(
            self._checkout,
            keys,
            _args(
                event.event_id, event.ts, now, event.member or "",
                r.dedupe_window, r.dedupe_ttl_s, r.max_event_age_s, *categories,
            ),
        )  # fmt: skip

    def run(self, calls: Sequence[ScriptCall]) -> list[Decision | redis.ResponseError]:
        """Run ``calls`` in order, one round trip; a script error is returned, not raised.

        Connection errors are raised: nothing in the batch is acknowledged, and a retry is
        safe because the scripts deduplicate on event id.
        """
        replies = self._execute(calls)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:  # Redis restarted or its script cache was flushed: load and rerun those
            self.load()
            for i, reply in zip(missing, self._execute([calls[i] for i in missing]), strict=True):
                replies[i] = reply
        return [reply if isinstance(reply, redis.ResponseError) else parse_reply(reply) for reply in replies]

    def presence(self, event: PresenceEvent, zone: str, categories: list[str], now: float) -> Decision:
        return self._one(self.presence_call(event, zone, categories, now))

    def checkout(self, event: CheckoutEvent, lane: str, now: float) -> Decision:
        return self._one(self.checkout_call(event, lane, now))

    def _one(self, call: ScriptCall) -> Decision:
        result = self.run([call])[0]
        if isinstance(result, redis.ResponseError):
            raise result
        return result

    def _execute(self, calls: Sequence[ScriptCall]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for call in calls:
            pipe.evalsha(call.sha, len(call.keys), *call.keys, *call.args)
        return pipe.execute(raise_on_error=False)
