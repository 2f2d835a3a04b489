"""What happens to a decided prompt until it is answered.

The engine (:mod:`recommender.engine`) decides; the handoff routes the prompt and builds
it before its claim, so that the state script writes claim and prompt together (exactly
one prompt per decision, docs/reliability.md), holds a free associate in Redis for the
other replicas of a share group and offers the prompt to the next one when a peer held
theirs first (docs/scale.md), re-routes prompts not accepted in time, republishes a
prompt whose claim ran but whose reply was lost, and finds the unsent copies to publish
at start (ours, an orphaned peer's, or a dead peer's).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

import redis

from broker_config.contract import EnvelopeSource, Prompt, PromptKind, Topics, encode, new_event_id
from recommender.arbitration import Choice
from recommender.catalog import Catalog
from recommender.cluster import RedisClient
from recommender.decide import Command, Decider
from recommender.deferred import DeferredWrites
from recommender.keys import UNSENT_TTL_S, Keys
from recommender.outbound import Outbound
from recommender.pending import Pending
from recommender.prompts import Cause, build_prompt
from recommender.routing import HOLD_S, OpenPrompt, Router

log = logging.getLogger(__name__)

#: Another replica's unsent prompt copy older than this has nobody left to publish it
#: (a live replica publishes its own in milliseconds and forgets the copy within a second).
ORPHAN_AFTER_S = 10.0
#: Prompts remembered at most whose batch failed before its claim was confirmed.
MAX_UNCONFIRMED = 10_000


class Handoff:
    def __init__(
        self,
        store: str,
        topics: Topics,
        keys: Keys,
        client: RedisClient,
        decider: Decider,
        router: Router,
        deferred: DeferredWrites,
        counters: Counter[str],
        producer: str,
        *,
        associates: int,
        replicated: bool,
    ) -> None:
        """``counters``: the engine's (it hands a new one over when it takes them);
        ``associates``: how many the store has (the most a collision can move a prompt)."""
        self._store = store
        self._topics = topics
        self._keys = keys
        self._redis = client
        self._decider = decider
        self._router = router
        self._after = deferred
        self.counters = counters
        self._associates = associates
        self._replicated = replicated
        self._staged_id: str | None = None
        #: The engine's one envelope source (prompts, acknowledgements, dead letters): a
        #: prompt's event id is the id its claim recorded (:meth:`_take_id`).
        self.source = EnvelopeSource(producer, new_id=self._take_id)
        #: Prompts staged in a batch whose Redis call failed: claimed or not, never published
        #: (:meth:`again`). Oldest first, at most MAX_UNCONFIRMED.
        self.unconfirmed: dict[str, None] = {}

    def _take_id(self) -> str:
        staged, self._staged_id = self._staged_id, None
        return staged or new_event_id()

    def stage(self, p: Pending, now: float, unsent_key: str) -> list[str | int | float]:
        """Route and build the prompt before its claim, so that the state script writes
        claim and prompt together (exactly one prompt per decision, even if we crash
        before publishing). Routed tentatively: withdrawn if the claim fails. Returns the
        script's last arguments: topic, payload ('' for no prompt), unsent TTL."""
        m, choice = p.moment, p.arbitration.choice if p.arbitration else None
        nothing: list[str | int | float] = ["", "", UNSENT_TTL_S]
        if m is None or choice is None or choice.holdout:
            return nothing
        cap = choice.action.caps.per_associate_per_hour
        manager = choice.action.kind is PromptKind.OPEN_TILL
        if m.trigger == "checkout" and p.lane is not None:
            route = self._router.lane_route(p.lane, now, cap)
        else:
            route = self._router.route(m.zone, now, usual=p.usual, manager=manager, cap_per_hour=cap)
        associate = route.associate
        if (
            associate is not None
            and m.trigger != "checkout"
            and self._replicated
            and self._router.free(associate, now)
        ):
            p.hold = associate
        if associate is None:
            return nothing
        p.escalated = route.how == "escalated"
        cause = Cause(p.cause.event_id, p.cause.ts, None, zone=m.zone) if manager else p.cause
        self._staged_id = p.prompt_id
        prompt = build_prompt(choice, cause, self.source, now, tier=p.tier or None, points=p.points)
        data = encode(prompt)
        topic = self._topics.prompt(self._store, associate)
        opened = OpenPrompt(
            p.prompt_id, associate, m.zone, p.usual, manager, now, prompt.expires_at, cap, data
        )
        p.staged = (self._router.sent(opened), topic, unsent_key)
        return [topic, data.decode(), UNSENT_TTL_S]

    def unstage(self, p: Pending) -> None:
        """A staged prompt whose claim failed: off the router, and its hold released."""
        if p.staged is None:
            return
        self._router.withdraw(p.staged[0])
        p.staged = None
        if p.hold is not None and not p.hold_lost:
            self._after.queue.append(("release", p.hold, {"id": p.prompt_id}))

    def lost(self, pending: Sequence[Pending]) -> None:
        """The Redis call of a batch failed: its scripts may or may not have run. Their
        staged prompts leave the router (never published); one whose claim did run comes
        back with the retry (:meth:`again`)."""
        for p in pending:
            if p.staged is not None:
                self._router.withdraw(p.staged[0])
                self.unconfirmed[p.prompt_id] = None
        while len(self.unconfirmed) > MAX_UNCONFIRMED:
            del self.unconfirmed[next(iter(self.unconfirmed))]

    def hold(self, associate: str, prompt_id: str) -> Command:
        return ("SET", self._keys.associate_hold(associate), prompt_id, "NX", "PX", int(HOLD_S * 1000))

    def _rehome(self, opened: OpenPrompt, unsent_key: str | None, now: float) -> OpenPrompt:
        """Another replica gave ``opened``'s associate a prompt in the same instant (its
        hold came first) and ours is not published yet: offer it to the next best free
        associate instead, not to one it was offered to before. Nobody else free: it stays,
        as when everyone is busy. Returns the prompt as routed in the end."""
        before = opened.tried[:-1]  # associates it was offered to earlier (re-routes)
        for _ in range(self._associates):
            self.counters["routing:collisions"] += 1
            self._router.hold(opened.associate, now + HOLD_S)  # until the peer's prompt reaches us
            nxt = self._router.choose(
                opened.zone,
                now,
                usual=opened.usual,
                manager=opened.manager,
                exclude=before,
                cap_per_hour=opened.cap_per_hour,
            )
            if nxt is None or nxt == opened.associate:
                return opened
            free = self._router.free(nxt, now)
            commands: list[Command] = []
            if unsent_key is not None:  # the unsent copy names the associate: a restart publishes it there
                topic = self._topics.prompt(self._store, nxt)
                commands.append(("HSET", unsent_key, opened.prompt_id, f"{topic}\n{opened.payload.decode()}"))
            if free:
                commands.append(self.hold(nxt, opened.prompt_id))
            try:
                replies = self._decider.raw(commands) if commands else []
            except redis.RedisError as exc:
                log.warning(
                    "could not move prompt %s off %s (%s); sent there",
                    opened.prompt_id,
                    opened.associate,
                    exc,
                )
                return opened
            self._router.withdraw(opened)
            opened = self._router.sent(opened._replace(associate=nxt, sent_at=now, tried=before))
            if not free or replies[-1] is not None:
                return opened
        return opened

    def send(self, p: Pending, choice: Choice, guest: bool, now: float) -> list[Outbound]:
        """A prompt its claim confirmed: the one staged with the claim (moved to the next
        free associate if a peer held ours first), or, staged with none (nobody was free
        then), routed and built now. Counted; its record goes with the deferred writes."""
        m = p.moment
        assert m is not None
        kind = choice.action.kind.value
        prompt_id = p.prompt_id or new_event_id()
        record = {
            "kind": kind,
            "action": choice.action.id,
            "member": p.member or "",
            "associate": "",
            "ts": f"{now:.3f}",
            "holdout": "0",
        }
        if p.staged is not None:
            if p.hold_lost:
                moved = self._rehome(p.staged[0], p.staged[2], now)
                p.staged = (moved, self._topics.prompt(self._store, moved.associate), p.staged[2])
            opened, topic, unsent_key = p.staged
            if p.escalated:
                self.counters["routing:escalated"] += 1
            self.counters[f"prompt:{kind}"] += 1
            self.counters["prompts"] += 1
            self._after.queue.append(("prompt", prompt_id, {**record, "associate": opened.associate}))
            return [Outbound(topic, opened.payload, unsent=(unsent_key, prompt_id))]
        cap = choice.action.caps.per_associate_per_hour
        manager = choice.action.kind is PromptKind.OPEN_TILL
        if guest and p.lane is not None:
            route = self._router.lane_route(p.lane, now, cap)
        else:
            route = self._router.route(m.zone, now, usual=p.usual, manager=manager, cap_per_hour=cap)
        associate = route.associate
        if associate is None:
            # Claimed, and nobody on the floor may take it: counted by reason, never parked.
            self.counters["outcome:no_associate"] += 1
            self.counters[f"unserved:{route.how}"] += 1
            self.counters[f"unserved:{route.how}:{kind}"] += 1
            log.info("prompt %s (%s) unserved: %s", prompt_id, kind, route.how)
            return []
        if route.how == "escalated":
            self.counters["routing:escalated"] += 1
        cause = p.cause
        if manager:
            cause = Cause(p.cause.event_id, p.cause.ts, None, zone=m.zone)
        self._staged_id = prompt_id  # the id the claim recorded becomes the prompt's event id
        prompt = build_prompt(choice, cause, self.source, now, tier=p.tier or None, points=p.points)
        data = encode(prompt)
        self._router.sent(
            OpenPrompt(prompt_id, associate, m.zone, p.usual, manager, now, prompt.expires_at, cap, data)
        )
        self.counters[f"prompt:{kind}"] += 1
        self.counters["prompts"] += 1
        self._after.queue.append(("prompt", prompt_id, {**record, "associate": associate}))
        return [Outbound(self._topics.prompt(self._store, associate), data)]

    def again(self, unsent: tuple[str, ...], catalog: Catalog, now: float) -> list[Outbound]:
        """The prompt an event claimed in a batch of ours whose reply was lost (the script
        ran, the call failed, the event came again as a duplicate): publish its unsent copy
        now, where it was routed, and count and record it as that batch would have."""
        key, prompt_id, blob = unsent
        del self.unconfirmed[prompt_id]
        topic, _, text = blob.partition("\n")
        payload = text.encode()
        prompt = Prompt.model_validate_json(payload)
        associate = self._topics.parse(topic).subject or ""
        rule = prompt.reason.rule if prompt.reason else ""
        action = next((a for a in catalog.actions if a.id == rule), None)
        cap = action.caps.per_associate_per_hour if action else None
        manager = prompt.kind is PromptKind.OPEN_TILL
        self._router.sent(
            OpenPrompt(prompt_id, associate, prompt.zone, None, manager, now, prompt.expires_at, cap, payload)
        )
        record = {
            "kind": prompt.kind.value,
            "action": rule,
            "member": prompt.customer.member or "",
            "associate": associate,
            "ts": f"{prompt.ts:.3f}",
            "holdout": "0",
        }
        self._after.queue.append(("prompt", prompt_id, record))
        self.counters["republished"] += 1
        self.counters[f"prompt:{prompt.kind.value}"] += 1
        self.counters["prompts"] += 1
        return [Outbound(topic, payload, unsent=(key, prompt_id))]

    def reroute(self, now: float) -> list[Outbound]:
        """Prompts not accepted in time, offered to the next associate (same id)."""
        out: list[Outbound] = []
        for prompt, associate in self._router.due(now):
            self.counters["rerouted"] += 1
            if self._replicated and self._decider.raw([self.hold(associate, prompt.prompt_id)]) == [None]:
                prompt = self._rehome(prompt, None, now)  # a peer just gave them one
                associate = prompt.associate
            self._redis.hset(self._keys.prompt(prompt.prompt_id), "associate", associate)
            out.append(Outbound(self._topics.prompt(self._store, associate), prompt.payload))
        return out

    def reassign(self, prompt_id: str, associate: str, now: float) -> list[Outbound]:
        """A manager's :class:`~broker_config.contract.ReassignRequest`: the prompt goes to
        ``associate`` as a re-route does (same id; the handheld API withdraws it from the
        first page). Nothing for a prompt we do not hold open (answered, expired, another
        replica's: that one moves it)."""
        moved = self._router.reassign(prompt_id, associate, now)
        if moved is None:
            return []
        self.counters["reassigned"] += 1
        self._redis.hset(self._keys.prompt(prompt_id), "associate", associate)
        return [Outbound(self._topics.prompt(self._store, associate), moved.payload)]

    def observe(self, prompt: Prompt, associate: str | None, now: float) -> None:
        """A prompt on an associate's handheld, seen by every replica of a share group."""
        if associate is None or prompt.producer == self.source.producer or prompt.expires_at <= now:
            return  # our own (the router has it), or no longer holding anyone
        self._router.observe(prompt.event_id, associate, prompt.ts, prompt.expires_at)

    def unsent_prompts(self, now: float | None = None, *, of: str | None = None) -> list[Outbound]:
        """Prompts claimed but never confirmed by the broker (a crash before the publish,
        or the broker's): published again at start. As a replica, those this producer made
        (our previous run), and another replica's only once older than
        :data:`ORPHAN_AFTER_S` (a live one publishes its own within milliseconds); ``of``:
        just that producer's (a dead replica's, whose session we adopted). The handheld API
        drops a prompt id it already has. With ``now``, a prompt already expired is dropped
        (counted) instead."""
        out: list[Outbound] = []
        expired: list[tuple[str, str]] = []
        for key in self._redis.scan_iter(match=self._keys.unsent_pattern(), count=500):
            entries: dict[bytes, bytes] = self._redis.hgetall(key)  # type: ignore[assignment]
            name = key.decode() if isinstance(key, bytes) else str(key)
            for prompt_id, blob in entries.items():
                topic, _, payload = blob.partition(b"\n")
                prompt = Prompt.model_validate_json(payload)
                if not self._orphaned(prompt, now, of):
                    continue
                if now is not None and prompt.expires_at <= now:
                    expired.append((name, prompt_id.decode()))
                    continue
                out.append(Outbound(topic.decode(), payload, unsent=(name, prompt_id.decode())))
        if expired:
            self.counters["unsent_expired"] += len(expired)
            self.mark_sent(expired)
        return out

    def _orphaned(self, prompt: Prompt, now: float | None, of: str | None) -> bool:
        """Whether :meth:`unsent_prompts` should publish this unsent copy (see there)."""
        if of is not None:
            return prompt.producer == of
        if not self._replicated or prompt.producer == self.source.producer:
            return True
        return now is not None and now - prompt.ts >= ORPHAN_AFTER_S  # else a live peer's

    def mark_sent(self, sent: Sequence[tuple[str, str]]) -> None:
        """The broker has these prompts (PUBACK): forget their unsent copies."""
        if sent:
            self._decider.raw([("HDEL", key, prompt_id) for key, prompt_id in sent])

    def defer_sent(self, sent: Sequence[tuple[str, str]]) -> None:
        """Like :meth:`mark_sent`, with the next batch's writes (or the deferred writes' flush)."""
        self._after.queue.extend(("sent", key, {"id": prompt_id}) for key, prompt_id in sent)
