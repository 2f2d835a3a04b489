"""The recommender's core: one received message in, the messages to publish out.

:meth:`Recommender.handle` validates a message against the contract and the store's
configuration, runs the decision script, and returns prompts to publish; a message that
breaks the contract is recorded (capped Redis stream + counter) and returned as a
dead-letter message instead. The MQTT shell around it (:mod:`recommender.service`) only
moves bytes; time is passed in.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from broker_config.contract import (
    AssociateStatus,
    CheckoutEvent,
    ContractError,
    EnvelopeSource,
    ErasureNotice,
    EventAck,
    Feedback,
    FootfallEvent,
    Message,
    PresenceEvent,
    Prompt,
    PromptKind,
    RejectReason,
    TopicKind,
    Topics,
    dead_letter,
    decode,
    encode,
    new_event_id,
)
from floorwalker.config import StoreConfig
from recommender import clv as clv_model
from recommender.arbitration import Arbitration
from recommender.catalog import DEFAULT_CATALOG, CatalogWatcher
from recommender.cluster import RedisClient
from recommender.crm import DAY, CrmModel, clv_inputs, model_from_json
from recommender.decide import Command, Decider, Outcome, Reply, ScriptCall, args
from recommender.decision import Core
from recommender.eligibility import Moment, Settings
from recommender.keys import DEADLETTER_MAXLEN, HISTORY_TTL_S, UNSENT_TTL_S, Keys
from recommender.prompts import Cause, build_prompt
from recommender.propensity import DEFAULT_MODEL, Propensity
from recommender.routing import HOLD_S, OpenPrompt, Router

log = logging.getLogger(__name__)

#: What one replica of a share group consumes: each event is work for exactly one of them.
SHARED = (TopicKind.PRESENCE, TopicKind.CHECKOUT, TopicKind.FOOTFALL)
#: What every replica consumes: what each one's routing and in-process state must know
#: (associates' status, answers to prompts, erasures). In every store, so a wrong store id
#: is noticed.
BROADCAST = (TopicKind.FEEDBACK, TopicKind.ASSOCIATE_STATUS, TopicKind.ERASURE)
CONSUMES = SHARED + BROADCAST
#: Dwell checks remembered at most (member -> zone and since when).
MAX_DWELLERS = 10_000
#: Events whose producers keep them in an outbox until acknowledged (edge_agent/outbox.py).
ACKED = (TopicKind.PRESENCE, TopicKind.CHECKOUT, TopicKind.FOOTFALL)
#: Event ids per acknowledgement message (the contract's limit).
ACK_CHUNK = 256
#: Deletes an associate's hold if a given prompt still holds it.
_RELEASE_HOLD = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
#: Another replica's unsent prompt copy older than this has nobody left to publish it
#: (a live replica publishes its own in milliseconds and forgets the copy within a second).
ORPHAN_AFTER_S = 10.0
#: Prompts remembered at most whose batch failed before its claim was confirmed.
MAX_UNCONFIRMED = 10_000
#: A member who has not bought for this long and comes back counts as won back.
LAPSE_S = 60 * DAY


@dataclass(slots=True)
class _Pending:
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
    tier: str = ""
    points: int | None = None
    usual: str | None = None
    failed: bool = False
    #: A prompt built and routed before its claim (see :meth:`Recommender._stage`):
    #: the open prompt, its topic and the key its unsent copy is kept under.
    staged: tuple[OpenPrompt, str, str] | None = None
    #: The free associate it was routed to, held in Redis for the other replicas (with
    #: ``replicated``), and whether another replica held them first.
    hold: str | None = None
    hold_lost: bool = False


@dataclass(frozen=True, slots=True)
class Outbound:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    #: (unsent key, prompt id): once the broker confirmed it, :meth:`Recommender.mark_sent`.
    unsent: tuple[str, str] | None = None


class Recommender:
    def __init__(
        self,
        config: StoreConfig,
        client: RedisClient,
        topics: Topics,
        keys: Keys,
        producer: str = "recommender",
        *,
        model: CrmModel | None = None,
        replicated: bool = False,
    ) -> None:
        """``replicated``: other replicas of a share group route prompts for this store
        too, so a free associate this one picks is held in Redis for a moment
        (:data:`~recommender.routing.HOLD_S`) until the others have heard of the prompt."""
        self.config = config
        self._replicated = replicated
        self.topics = topics
        self.keys = keys
        self._redis = client
        self._decider = Decider(client, keys)
        self.catalog = CatalogWatcher.open(config.catalog or DEFAULT_CATALOG)
        self.propensity = Propensity.load(config.propensity_model or DEFAULT_MODEL)
        if model is None:
            model = model_from_json(client.get(keys.crm_model))  # type: ignore[arg-type]
        r = config.rules
        self.core = Core(
            self.catalog.current,
            self.propensity,
            model,
            Settings(r.replenish_from, r.replenish_until, r.member_discount_pct),
            frozenset(r.vip_tiers),
        )
        self.router = Router(config, self.catalog.current.policy.reroute_after_s)
        self._staged_id: str | None = None
        self._source = EnvelopeSource(producer, new_id=self._take_id)
        self._zones = {z.id: z for z in config.zones}
        self._categories = {z.id: tuple(z.categories) for z in config.zones}
        self._gateway_zones = {g.id: set(g.zones) for g in config.gateways}
        # The store-level BLE fuser speaks for every zone (presence/fuser.py).
        self._gateway_zones[config.ble_presence.fuser] = set(self._categories)
        self._lanes = {lane.id: lane for lane in config.lanes}
        self._associates = {a.id for a in config.associates}
        self._queue: dict[str, int] = {}
        #: member -> (zone, since, seen at): who might earn a long-dwell check on :meth:`tick`,
        #: in the order they were seen (so the tick stops at the first one not yet due).
        self._dwellers: dict[str, tuple[str, float, float]] = {}
        #: Redis writes that may wait until the batch's prompts are published.
        self._after: list[tuple[str, str, dict[str, str]]] = []
        #: How many of ``_after`` went out with the Redis call in progress: forgotten only
        #: once that call returned (on a connection error they go again with the next).
        self._after_sent = 0
        #: In-process counters, written to the stats hash (:meth:`take_stats`, :meth:`write_stats`).
        self.counters: Counter[str] = Counter()
        #: producer -> event ids of the batch being handled (kept only if it completes).
        self._batch_acks: dict[str, list[str]] = {}
        #: producer -> event ids of completed batches, not yet taken by :meth:`take_acks`.
        self._acks: dict[str, list[str]] = {}
        #: How many ids wait in ``_acks``.
        self.acks_pending = 0
        #: Prompts staged in a batch whose Redis call failed: claimed or not, never published
        #: (:meth:`_again`). Oldest first, at most MAX_UNCONFIRMED.
        self._unconfirmed: dict[str, None] = {}

    def close(self) -> None:
        """Close the decision connection (the caller closes its own client)."""
        self._decider.close()

    def subscriptions(self, replicas: bool = False) -> list[tuple[str, bool]]:
        """(topic filter, shared by the replicas of a group). With ``replicas`` the prompt
        topic too: a peer's prompt makes its associate busy here as well."""
        kinds = [(k, True) for k in SHARED] + [(k, False) for k in BROADCAST]
        if replicas:
            kinds.append((TopicKind.PROMPT, False))
        return [(self.topics.subscription(kind), shared) for kind, shared in kinds]

    def reload_catalog(self) -> bool:
        """Hot reload (the service polls once a second); a broken file keeps the old one."""
        if not self.catalog_changed():
            return False
        self.apply_catalog()
        return True

    def catalog_changed(self) -> bool:
        """Re-read the catalog file if it changed; True if a valid new one was read.

        Touches nothing a decision reads, so the service calls it outside the engine lock:
        reading and validating the YAML takes ~15 ms, a stall if decisions waited for it."""
        return self.catalog.poll()

    def apply_catalog(self) -> None:
        """Put the catalog :meth:`catalog_changed` read in force."""
        self.core.catalog = self.catalog.current
        self.router.reroute_after_s = self.catalog.current.policy.reroute_after_s

    # -- the hot path ------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes, now: float) -> list[Outbound]:
        return self.handle_batch([(topic, payload)], now)[0]

    def handle_batch(self, messages: Sequence[tuple[str, bytes]], now: float) -> list[list[Outbound]]:
        """Handle messages in order; two Redis round trips for all of them.

        Returns, per message, what to publish (prompts, or a dead letter). Redis
        connection errors propagate: the caller retries the batch (scripts deduplicate).
        """
        results: list[list[Outbound]] = [[] for _ in messages]
        pending: list[_Pending] = []
        self._batch_acks = {}  # a batch that failed half-way (Redis down) acknowledges nothing
        for i, (topic, payload) in enumerate(messages):
            try:
                p = self._prepare(i, topic, payload, now)
            except ContractError as exc:
                results[i] = [self.reject(topic, payload, exc, now)]
                continue
            if p is not None:
                pending.append(p)
        # A member seen twice in a batch: the second event must read what the first wrote.
        while pending:
            seen: set[str] = set()
            cut = len(pending)
            for j, p in enumerate(pending):
                if p.member is not None and p.moment is not None and p.moment.trigger != "checkout":
                    if p.member in seen:
                        cut = j
                        break
                    seen.add(p.member)
            self._round(pending[:cut], messages, results, now)
            pending = pending[cut:]
        for producer, ids in self._batch_acks.items():
            self._acks.setdefault(producer, []).extend(ids)
            self.acks_pending += len(ids)
        self._batch_acks = {}
        return results

    def tick(self, now: float) -> list[Outbound]:
        """Once a second: long-dwell checks and re-routing of prompts not accepted in time."""
        out: list[Outbound] = []
        for prompt, associate in self.router.due(now):
            self.counters["rerouted"] += 1
            if self._replicated and self._decider.raw([self._hold(associate, prompt.prompt_id)]) == [None]:
                prompt = self._rehome(prompt, None, now)  # a peer just gave them one
                associate = prompt.associate
            self._redis.hset(self.keys.prompt(prompt.prompt_id), "associate", associate)
            out.append(Outbound(self.topics.prompt(self.config.store, associate), prompt.payload))
        dwell_actions = [
            a for a in self.core.catalog.by_kind(PromptKind.LONG_DWELL_HELP) if a.eligible.min_dwell_s
        ]
        if not dwell_actions:
            return out
        threshold = min(a.eligible.min_dwell_s or 0 for a in dwell_actions)
        due = []
        for m, (z, s, seen) in self._dwellers.items():
            if now - seen < threshold:
                break  # everyone after was seen later still: not due either
            if now - s >= threshold:
                due.append((m, z, s))
        pending: list[_Pending] = []
        for member, zone, since in due:
            del self._dwellers[member]
            event_id = hashlib.sha256(f"dwell|{member}|{zone}|{since}".encode()).hexdigest()[:32]
            cause = Cause(event_id, now, member, zone=zone)
            moment = self._moment("dwell", now, zone, dwell_s=now - since)
            pending.append(_Pending(len(pending), cause, moment, member))
        if pending:
            results: list[list[Outbound]] = [[] for _ in pending]
            self._round(pending, [("", b"")] * len(pending), results, now)
            out.extend(o for r in results for o in r)
        return out

    def _moment(self, trigger: str, ts: float, zone: str, **more: float | int) -> Moment:
        """The moment of an event in ``zone``, with the store's latest checkout queue."""
        z = self._zones.get(zone)
        more.setdefault("queue", max(self._queue.values()) if self._queue else None)  # type: ignore[arg-type]
        return Moment(
            trigger,  # type: ignore[arg-type]
            ts,
            zone,
            z.name if z else zone,
            self._categories.get(zone, ()),
            **more,  # type: ignore[arg-type]
        )

    def _round(
        self,
        pending: list[_Pending],
        messages: Sequence[tuple[str, bytes]],
        results: list[list[Outbound]],
        now: float,
    ) -> None:
        policy = self.core.catalog.policy
        readers = [
            p
            for p in pending
            if p.member is not None and p.moment is not None and p.moment.trigger in ("enter", "dwell")
        ]
        states = self._decider.read([p.member for p in readers if p.member], now - 7 * DAY)
        for p, state in zip(readers, states, strict=True):
            assert p.member is not None and p.moment is not None
            if isinstance(state, redis.ResponseError):
                error = ContractError(RejectReason.PROCESSING_ERROR, f"state read failed: {state}")
                results[p.index] = [self.reject(messages[p.index][0], messages[p.index][1], error, now)]
                p.failed = True
                continue
            p.arbitration = self.core.decide_member(
                p.member, state.profile, state.visit, state.contacts, p.moment
            )
            prof = state.profile
            p.tier = prof.get("tier", "")
            p.points = int(prof["points"]) if prof.get("points") else None
            p.usual = prof.get("assoc") or None
        pending = [p for p in pending if not p.failed]
        for p in pending:
            if p.call is None:
                p.call = self._script_call(p, now, policy.conversion_window_days * DAY)
        # Deferred writes (prompt records, dismissals, CLVs) ride along, ahead of the scripts:
        # a feedback in this batch finds the record of a prompt sent in the last one.
        holders = [p for p in pending if p.hold is not None]
        holds = [self._hold(p.hold, p.prompt_id) for p in holders if p.hold is not None]
        calls = [p.call for p in pending if p.call is not None]
        try:
            replies, held = self._decider.run_then(calls, self._write_after, holds)
        except redis.RedisError:
            # The scripts may or may not have run. Their staged prompts leave the router
            # (never published); one whose claim did run comes back with the retry (_again).
            for p in pending:
                if p.staged is not None:
                    self.router.withdraw(p.staged[0])
                    self._unconfirmed[p.prompt_id] = None
            while len(self._unconfirmed) > MAX_UNCONFIRMED:
                del self._unconfirmed[next(iter(self._unconfirmed))]
            raise
        self._wrote_after()
        for p, ok in zip(holders, held, strict=True):
            p.hold_lost = ok is None  # SET NX refused: a peer holds them (an error does not block)
        it = iter(replies)
        for p in pending:
            if p.call is None:
                continue
            reply = next(it)
            if isinstance(reply, redis.ResponseError):
                self._unstage(p)
                error = ContractError(RejectReason.PROCESSING_ERROR, f"state script failed: {reply}")
                results[p.index] = [self.reject(messages[p.index][0], messages[p.index][1], error, now)]
                continue
            results[p.index] = self._act(p, reply, now)

    def _script_call(self, p: _Pending, now: float, window_s: float) -> ScriptCall:
        k, r = self.keys, self.config.rules
        if p.feedback is not None:
            return ScriptCall("feedback", [k.prompt(p.feedback.prompt_id)], args(p.feedback.outcome, now))
        m, choice = p.moment, p.arbitration.choice if p.arbitration else None
        assert m is not None
        if m.trigger == "footfall":
            cooldown = choice.action.cooldown_s if choice else 0.0
            p.prompt_id = new_event_id() if choice else ""
            prompt_args = self._stage(p, now, k.zone_unsent(m.zone))
            return ScriptCall(
                "footfall",
                [
                    k.zone_seen(m.zone),
                    k.store_cooldown(m.zone, choice.action.id if choice else "none"),
                    k.zone_unsent(m.zone),
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
                    *prompt_args,
                ),
            )
        if m.trigger == "checkout":
            total = m.basket_cents
            if p.member is None:
                assert p.lane is not None
                p.prompt_id = new_event_id() if choice else ""
                guest_args = self._stage(p, now, k.lane_unsent(p.lane))
                return ScriptCall(
                    "checkout",
                    [k.lane_seen(p.lane), k.lane_unsent(p.lane)],
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
                        total,
                        p.prompt_id,
                        *guest_args,
                    ),
                )
            mem = p.member
            return ScriptCall(
                "checkout",
                [k.member_seen(mem), k.visit(mem), k.profile(mem), k.suggested(mem), k.erased(mem)],
                args(
                    p.cause.event_id,
                    p.cause.ts,
                    now,
                    mem,
                    r.dedupe_window,
                    r.dedupe_ttl_s,
                    r.max_event_age_s,
                    window_s,
                    LAPSE_S,
                    total,
                    *m.categories,
                ),
            )
        mem2 = p.member
        assert mem2 is not None
        policy = self.core.catalog.policy
        claim: list[str | int | float] = ["", "", "", 0, 0, 0, "", "", 0, HISTORY_TTL_S, window_s]
        staged: list[str | int | float] = ["", "", UNSENT_TTL_S]
        if choice is not None:
            p.prompt_id = new_event_id()
            staged = self._stage(p, now, k.unsent(mem2))
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
                k.member_seen(mem2),
                k.visit(mem2),
                k.profile(mem2),
                k.contacts(mem2),
                k.suggested(mem2),
                k.unsent(mem2),
                k.erased(mem2),
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
            ),
        )

    def _stage(self, p: _Pending, now: float, unsent_key: str) -> list[str | int | float]:
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
            associate = self.router.for_lane(p.lane, now, cap)
        else:
            associate = self.router.choose(m.zone, now, usual=p.usual, manager=manager, cap_per_hour=cap)
            if associate is not None and self._replicated and self.router.free(associate, now):
                p.hold = associate
        if associate is None:
            return nothing
        cause = Cause(p.cause.event_id, p.cause.ts, None, zone=m.zone) if manager else p.cause
        self._staged_id = p.prompt_id
        prompt = build_prompt(choice, cause, self._source, now, tier=p.tier or None, points=p.points)
        data = encode(prompt)
        topic = self.topics.prompt(self.config.store, associate)
        opened = OpenPrompt(
            p.prompt_id, associate, m.zone, p.usual, manager, now, prompt.expires_at, cap, data
        )
        p.staged = (self.router.sent(opened), topic, unsent_key)
        return [topic, data.decode(), UNSENT_TTL_S]

    def _unstage(self, p: _Pending) -> None:
        """A staged prompt whose claim failed: off the router, and its hold released."""
        if p.staged is None:
            return
        self.router.withdraw(p.staged[0])
        p.staged = None
        if p.hold is not None and not p.hold_lost:
            self._after.append(("release", p.hold, {"id": p.prompt_id}))

    def _hold(self, associate: str, prompt_id: str) -> Command:
        return ("SET", self.keys.associate_hold(associate), prompt_id, "NX", "PX", int(HOLD_S * 1000))

    def _rehome(self, opened: OpenPrompt, unsent_key: str | None, now: float) -> OpenPrompt:
        """Another replica gave ``opened``'s associate a prompt in the same instant (its
        hold came first) and ours is not published yet: offer it to the next best free
        associate instead, not to one it was offered to before. Nobody else free: it stays,
        as when everyone is busy. Returns the prompt as routed in the end."""
        before = opened.tried[:-1]  # associates it was offered to earlier (re-routes)
        for _ in range(len(self._associates)):
            self.counters["routing:collisions"] += 1
            self.router.hold(opened.associate, now + HOLD_S)  # until the peer's prompt reaches us
            nxt = self.router.choose(
                opened.zone,
                now,
                usual=opened.usual,
                manager=opened.manager,
                exclude=before,
                cap_per_hour=opened.cap_per_hour,
            )
            if nxt is None or nxt == opened.associate:
                return opened
            free = self.router.free(nxt, now)
            commands: list[Command] = []
            if unsent_key is not None:  # the unsent copy names the associate: a restart publishes it there
                topic = self.topics.prompt(self.config.store, nxt)
                commands.append(("HSET", unsent_key, opened.prompt_id, f"{topic}\n{opened.payload.decode()}"))
            if free:
                commands.append(self._hold(nxt, opened.prompt_id))
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
            self.router.withdraw(opened)
            opened = self.router.sent(opened._replace(associate=nxt, sent_at=now, tried=before))
            if not free or replies[-1] is not None:
                return opened
        return opened

    def _prepare(self, index: int, topic: str, payload: bytes, now: float) -> _Pending | None:
        message = decode(self.topics, topic, payload)
        if isinstance(message.payload, Prompt):
            self._observe(message.payload, message.address.subject, now)
            return None
        if message.address.kind in ACKED:
            # Acknowledged once the whole batch returns: its scripts ran (or it went to the
            # dead-letter stream, which is final too).
            self._batch_acks.setdefault(message.payload.producer, []).append(message.payload.event_id)
        self._check_source(message)
        self.counters["events"] += 1
        body, subject = message.payload, message.address.subject
        assert subject is not None  # every consumed topic names a zone, lane or associate
        if isinstance(body, PresenceEvent):
            if body.action == "enter":
                self._dwellers.pop(body.member, None)
                self._dwellers[body.member] = (subject, body.ts, now)
                while len(self._dwellers) > MAX_DWELLERS:
                    self._dwellers.pop(next(iter(self._dwellers)))
            elif self._dwellers.get(body.member, ("",))[0] == subject:
                del self._dwellers[body.member]
            cause = Cause(body.event_id, body.ts, body.member, zone=subject)
            return _Pending(index, cause, self._moment(body.action, body.ts, subject), body.member)
        if isinstance(body, CheckoutEvent):
            lane = self._lanes[subject]
            cause = Cause(body.event_id, body.ts, body.member, lane=subject)
            # At a till the "zone" is the lane (named in the wording), the categories the basket's.
            categories = tuple(sorted({i.category for i in body.items}))
            queue = max(self._queue.values()) if self._queue else None
            moment = Moment(
                "checkout",
                body.ts,
                lane.zone or subject,
                subject,
                categories,
                queue=queue,
                basket_cents=body.total_cents,
            )
            p = _Pending(index, cause, moment, body.member, lane=subject)
            if body.member is None:
                p.arbitration = self.core.decide_guest(moment)
            else:
                self._dwellers.pop(body.member, None)
            return p
        if isinstance(body, FootfallEvent):
            if body.queue_length is None:
                return None
            self._queue[subject] = body.queue_length
            moment = self._moment("footfall", body.ts, subject, queue=body.queue_length)
            arbitration = self.core.decide_store(moment)
            if arbitration.choice is None:
                return None  # nothing to claim: no Redis work for an ordinary count
            return _Pending(
                index, Cause(body.event_id, body.ts, None, zone=subject), moment, arbitration=arbitration
            )
        if isinstance(body, Feedback):  # counted once its prompt's record confirms it
            return _Pending(index, Cause(body.event_id, body.ts, None), feedback=body)
        if isinstance(body, ErasureNotice):
            self.forget_member(body.member)
            return None
        if isinstance(body, AssociateStatus):
            self.router.set_status(subject, body.state, body.zone)
            return None
        raise TypeError(f"recommender does not consume {type(body).__name__}")  # CONSUMES prevents this

    def _observe(self, prompt: Prompt, associate: str | None, now: float) -> None:
        """A prompt on an associate's handheld, seen by every replica of a share group."""
        if associate is None or prompt.producer == self._source.producer or prompt.expires_at <= now:
            return  # our own (the router has it), or no longer holding anyone
        self.router.observe(prompt.event_id, associate, prompt.ts, prompt.expires_at)

    def _act(self, p: _Pending, reply: Reply, now: float) -> list[Outbound]:
        if p.feedback is not None:
            return self._feedback(p.feedback, reply, now)
        guest = p.moment is not None and p.moment.trigger == "checkout" and p.member is None
        if not (reply.claimed or (guest and reply.outcome is Outcome.OK)):
            self._unstage(p)
        self.counters[f"outcome:{reply.outcome.value}"] += 1
        if reply.outcome is Outcome.DUPLICATE and len(reply.rest) == 3 and reply.rest[1] in self._unconfirmed:
            return self._again(reply.rest, now)
        if reply.outcome is not Outcome.OK:
            return []
        m = p.moment
        assert m is not None
        if m.trigger == "checkout" and p.member is not None:
            self._checked_out(p.member, reply, now)
            return []
        arbitration = p.arbitration
        for why in arbitration.blocked if arbitration else ():
            self.counters[f"blocked:{why.value}"] += 1
        choice = arbitration.choice if arbitration else None
        if choice is None:
            return []
        if not guest and not reply.claimed:
            self.counters["outcome:capped"] += 1
            return []
        kind = choice.action.kind.value
        if choice.holdout:
            self.counters["holdout"] += 1
            self.counters[f"holdout:{kind}"] += 1
            return []
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
                p.staged = (moved, self.topics.prompt(self.config.store, moved.associate), p.staged[2])
            opened, topic, unsent_key = p.staged
            self.counters[f"prompt:{kind}"] += 1
            self.counters["prompts"] += 1
            self._after.append(("prompt", prompt_id, {**record, "associate": opened.associate}))
            return [Outbound(topic, opened.payload, unsent=(unsent_key, prompt_id))]
        cap = choice.action.caps.per_associate_per_hour
        manager = choice.action.kind is PromptKind.OPEN_TILL
        if guest and p.lane is not None:
            associate = self.router.for_lane(p.lane, now, cap)
        else:
            associate = self.router.choose(m.zone, now, usual=p.usual, manager=manager, cap_per_hour=cap)
        if associate is None:
            self.counters["outcome:no_associate"] += 1
            return []
        cause = p.cause
        if manager:
            cause = Cause(p.cause.event_id, p.cause.ts, None, zone=m.zone)
        self._staged_id = prompt_id  # the id the claim recorded becomes the prompt's event id
        prompt = build_prompt(choice, cause, self._source, now, tier=p.tier or None, points=p.points)
        data = encode(prompt)
        self.router.sent(
            OpenPrompt(prompt_id, associate, m.zone, p.usual, manager, now, prompt.expires_at, cap, data)
        )
        self.counters[f"prompt:{kind}"] += 1
        self.counters["prompts"] += 1
        self._after.append(("prompt", prompt_id, {**record, "associate": associate}))
        return [Outbound(self.topics.prompt(self.config.store, associate), data)]

    def _again(self, unsent: tuple[str, ...], now: float) -> list[Outbound]:
        """The prompt an event claimed in a batch of ours whose reply was lost (the script
        ran, the call failed, the event came again as a duplicate): publish its unsent copy
        now, where it was routed, and count and record it as that batch would have."""
        key, prompt_id, blob = unsent
        del self._unconfirmed[prompt_id]
        topic, _, text = blob.partition("\n")
        payload = text.encode()
        prompt = Prompt.model_validate_json(payload)
        associate = self.topics.parse(topic).subject or ""
        rule = prompt.reason.rule if prompt.reason else ""
        action = next((a for a in self.core.catalog.actions if a.id == rule), None)
        cap = action.caps.per_associate_per_hour if action else None
        manager = prompt.kind is PromptKind.OPEN_TILL
        self.router.sent(
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
        self._after.append(("prompt", prompt_id, record))
        self.counters["republished"] += 1
        self.counters[f"prompt:{prompt.kind.value}"] += 1
        self.counters["prompts"] += 1
        return [Outbound(topic, payload, unsent=(key, prompt_id))]

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
        for key in self._redis.scan_iter(match=self.keys.unsent_pattern(), count=500):
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
        if not self._replicated or prompt.producer == self._source.producer:
            return True
        return now is not None and now - prompt.ts >= ORPHAN_AFTER_S  # else a live peer's

    def mark_sent(self, sent: Sequence[tuple[str, str]]) -> None:
        """The broker has these prompts (PUBACK): forget their unsent copies."""
        if sent:
            self._decider.raw([("HDEL", key, prompt_id) for key, prompt_id in sent])

    def defer_sent(self, sent: Sequence[tuple[str, str]]) -> None:
        """Like :meth:`mark_sent`, with the next batch's writes (or :meth:`after_publish`)."""
        self._after.extend(("sent", key, {"id": prompt_id}) for key, prompt_id in sent)

    def forget_member(self, member: str) -> None:
        """An erased member: no dwell check, no re-routed prompt about them."""
        self._dwellers.pop(member, None)
        needle = member.encode()
        self.router.forget_if(lambda p: needle in p.payload)

    def take_acks(self, now: float) -> list[Outbound]:
        """Acknowledgements of the batches handled since the last call, per producer.
        Only completed batches are in them, so an outbox deletes an event only once Redis
        has it. The caller decides how often to send them (each costs a publish)."""
        acks, self._acks = self._acks, {}
        self.acks_pending = 0
        out: list[Outbound] = []
        for producer, ids in acks.items():
            for i in range(0, len(ids), ACK_CHUNK):
                ack = self._source.make(EventAck, now, event_ids=ids[i : i + ACK_CHUNK])
                out.append(Outbound(self.topics.ack(self.config.store, producer), encode(ack)))
        return out

    def _take_id(self) -> str:
        staged, self._staged_id = self._staged_id, None
        return staged or new_event_id()

    def _checked_out(self, member: str, reply: Reply, now: float) -> None:
        """Conversions of earlier suggestions; the member's CLV after the new purchase."""
        orders, first, last, spend, *conversions = reply.rest
        for conv in conversions:
            kind, _pid, _ts, holdout, _cat = conv.split("|")
            if holdout == "1":
                self.counters[f"holdout_converted:{kind}"] += 1
                self.counters["holdout_converted"] += 1
            else:
                self.counters[f"converted:{kind}"] += 1
                self.counters["converted"] += 1
        if first and last:
            x = clv_inputs(int(orders), float(first), float(last), int(spend), now)
            value = clv_model.clv(self.core.model.clv, *x)
            self._after.append(("profile", member, {"clv": f"{value:.2f}"}))

    def _feedback(self, fb: Feedback, reply: Reply, now: float) -> list[Outbound]:
        # Every replica of a share group gets each feedback: the one whose script ran first
        # counts it (the others see a duplicate), each one's router hears it.
        self.router.answered(fb.prompt_id, fb.outcome)
        if reply.outcome is not Outcome.OK:
            self.counters[f"feedback_{reply.outcome.value}"] += 1
            return []
        kind, action, member, _holdout, associate = reply.rest
        if self._replicated and fb.outcome != "accepted" and associate:
            # Dismissed or done: the associate is free again, for every replica at once.
            self._after.append(("release", associate, {"id": fb.prompt_id}))
        self.counters[f"feedback:{fb.outcome}"] += 1
        self.counters[f"feedback:{fb.outcome}:{kind}"] += 1
        if fb.reason is not None:
            self.counters[f"dismissed:{fb.reason.value}"] += 1
        if fb.outcome == "dismissed" and member:
            self._after.append(
                ("dismissed", member, {"member": f"x|{action}|{fb.prompt_id}", "ts": f"{fb.ts}"})
            )
        return []

    def after_publish(self) -> None:
        """Flush the deferred writes now (the service does it once a second, when no
        batch with a read took them along)."""
        if not self._after:
            return
        replies = self._decider.raw(self._write_after())
        self._wrote_after()
        for reply in replies:
            if isinstance(reply, redis.ResponseError):
                log.error("a deferred write failed: %s", reply)

    def _wrote_after(self) -> None:
        del self._after[: self._after_sent]
        self._after_sent = 0

    def _write_after(self) -> list[Command]:
        """Writes that need not delay a prompt: prompt records, dismissals, new CLVs,
        forgetting the unsent copies of prompts the broker confirmed, and releasing the
        holds of prompts not claimed or answered. They stay queued
        until the call carrying them returns (:meth:`_wrote_after`); each is idempotent,
        so sending one again after a broken connection is harmless."""
        self._after_sent = len(self._after)
        commands: list[Command] = []
        for what, key, data in self._after:
            if what == "prompt":
                commands.append(("HSET", self.keys.prompt(key), *(x for kv in data.items() for x in kv)))
                commands.append(("EXPIRE", self.keys.prompt(key), HISTORY_TTL_S))
            elif what == "sent":
                commands.append(("HDEL", key, data["id"]))
            elif what == "release":  # only the hold this prompt took (a peer's may follow)
                commands.append(("EVAL", _RELEASE_HOLD, 1, self.keys.associate_hold(key), data["id"]))
            elif what == "dismissed":
                commands.append(("ZADD", self.keys.contacts(key), data["ts"], data["member"]))
                commands.append(("EXPIRE", self.keys.contacts(key), HISTORY_TTL_S))
            else:
                commands.append(("HSET", self.keys.profile(key), *(x for kv in data.items() for x in kv)))
        return commands

    def _check_source(self, message: Message) -> None:
        addr, body = message.address, message.payload
        if addr.store != self.config.store:
            raise ContractError(
                RejectReason.UNKNOWN_STORE, f"store {addr.store!r} is not {self.config.store!r}"
            )
        if addr.kind is TopicKind.PRESENCE:
            covered = self._gateway_zones.get(body.producer)
            if covered is None:
                raise ContractError(RejectReason.UNKNOWN_PRODUCER, f"unknown gateway {body.producer!r}")
            if addr.subject not in self._categories:
                raise ContractError(RejectReason.UNKNOWN_ZONE, f"unknown zone {addr.subject!r}")
            if addr.subject not in covered:
                raise ContractError(
                    RejectReason.UNKNOWN_PRODUCER,
                    f"gateway {body.producer!r} does not cover zone {addr.subject!r}",
                )
        elif addr.kind in (TopicKind.FEEDBACK, TopicKind.ASSOCIATE_STATUS):
            if addr.subject not in self._associates:
                raise ContractError(RejectReason.UNKNOWN_PRODUCER, f"unknown associate {addr.subject!r}")
        elif addr.kind is TopicKind.FOOTFALL:
            covered = self._gateway_zones.get(body.producer)
            if covered is None:
                raise ContractError(RejectReason.UNKNOWN_PRODUCER, f"unknown gateway {body.producer!r}")
            if addr.subject not in self._categories:
                raise ContractError(RejectReason.UNKNOWN_ZONE, f"unknown zone {addr.subject!r}")
        elif addr.kind is TopicKind.CHECKOUT:
            lane = self._lanes.get(addr.subject or "")
            if lane is None:
                raise ContractError(RejectReason.UNKNOWN_LANE, f"unknown lane {addr.subject!r}")
            pos = lane.pos
            if body.producer != pos:
                raise ContractError(
                    RejectReason.UNKNOWN_PRODUCER,
                    f"lane {addr.subject!r} is served by {pos!r}, not {body.producer!r}",
                )

    # -- rejects and stats -------------------------------------------------------------

    def reject(self, topic: str, payload: bytes, error: ContractError, now: float) -> Outbound:
        """Record a rejected message (stream + counter) and return its dead-letter message.

        Rejects are counted in Redis at once (not batched like other counters): they are
        rare and an operator looks for them.
        """
        log.warning("rejected message on %s: %s", topic[:200], error)
        record = dead_letter(self._source, now, topic, payload, error)
        data = encode(record)
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.xadd(self.keys.deadletter, {"record": data}, maxlen=DEADLETTER_MAXLEN, approximate=True)
            pipe.hincrby(self.keys.stats, f"rejected:{error.reason.value}", 1)
            pipe.execute()
        except redis.RedisError as exc:
            # The dead-letter topic still carries the record; say so rather than crash.
            log.error(
                "could not record a rejected message in Redis (%s); it is on the dead-letter topic", exc
            )
        return Outbound(self.topics.deadletter(self.config.store), data)

    def take_stats(self) -> Counter[str]:
        """The counters since the last call; the caller writes them with :meth:`write_stats`
        (the service does so outside the engine lock: the write is a Redis round trip)."""
        counts, self.counters = self.counters, Counter()
        return counts

    def write_stats(self, counts: Counter[str]) -> None:
        """Add ``counts`` to the stats hash (one round trip, on the shared client)."""
        if not counts:
            return
        pipe = self._redis.pipeline(transaction=False)
        for key, value in counts.items():
            pipe.hincrby(self.keys.stats, key, value)
        pipe.execute()
