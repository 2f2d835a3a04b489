"""The recommender's core: one received message in, the messages to publish out.

:meth:`Recommender.handle` validates a message against the contract and the store's
configuration, runs the decision script, and returns prompts to publish; a message that
breaks the contract is recorded (capped Redis stream + counter) and returned as a
dead-letter message instead. The MQTT shell around it (:mod:`recommender.service`) only
moves bytes; time is passed in.

This module is the batch loop: decode, read the members, decide, run the state scripts,
act on their replies. What happens to a decided prompt until it is answered is
:mod:`recommender.handoff`; the scripts' argument lists are :mod:`recommender.script_args`;
writes that wait for the next round trip :mod:`recommender.deferred`; acknowledgements to
the gateways :mod:`recommender.acks`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Sequence

import redis

from broker_config.contract import (
    AssociateStatus,
    CheckoutEvent,
    ContractError,
    ErasureNotice,
    Feedback,
    FootfallEvent,
    Message,
    PresenceEvent,
    Prompt,
    PromptKind,
    ReassignRequest,
    RejectReason,
    TopicKind,
    Topics,
    check_not_future,
    dead_letter,
    decode,
    encode,
    new_event_id,
)
from floorwalker.config import StoreConfig
from recommender import clv as clv_model
from recommender import script_args
from recommender.acks import ACKED, Acks
from recommender.catalog import DEFAULT_CATALOG, CatalogWatcher
from recommender.cluster import RedisClient
from recommender.crm import DAY, CrmModel, clv_inputs, model_from_json
from recommender.decide import Decider, Outcome, Reply, ScriptCall, member_state
from recommender.decision import Core
from recommender.deferred import DeferredWrites
from recommender.eligibility import Moment, Settings
from recommender.handoff import Handoff
from recommender.keys import DEADLETTER_MAXLEN, UNSENT_TTL_S, Keys
from recommender.member_cache import PRELOAD_TTL_S, MemberCache
from recommender.outbound import Outbound
from recommender.pending import Pending
from recommender.prompts import Cause
from recommender.propensity import DEFAULT_MODEL, Propensity
from recommender.routing import Router

log = logging.getLogger(__name__)

#: What one replica of a share group consumes: each event is work for exactly one of them.
SHARED = (TopicKind.PRESENCE, TopicKind.CHECKOUT, TopicKind.FOOTFALL)
#: What every replica consumes: what each one's routing and in-process state must know
#: (associates' status, answers to prompts, erasures, a manager's reassignments: the
#: replica that sent the prompt moves it). In every store, so a wrong store id is noticed.
BROADCAST = (TopicKind.FEEDBACK, TopicKind.ASSOCIATE_STATUS, TopicKind.ERASURE, TopicKind.REASSIGN)
CONSUMES = SHARED + BROADCAST
#: Dwell checks remembered at most (member -> zone and since when).
MAX_DWELLERS = 10_000
#: How far back the decision reads a member's contact history (the weekly caps).
CONTACTS_S = 7 * DAY
#: Outcomes after which a member's state is not kept in memory: they are gone, unknown,
#: or did not consent to recognition (data minimisation).
_NOT_KEPT = (Outcome.ERASED, Outcome.UNKNOWN_MEMBER, Outcome.NO_CONSENT)


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
        members: MemberCache | None = None,
    ) -> None:
        """``replicated``: other replicas of a share group route prompts for this store
        too, so a free associate this one picks is held in Redis for a moment
        (:data:`~recommender.routing.HOLD_S`) until the others have heard of the prompt.
        ``members``: the members' states kept in memory (a default-sized one if None)."""
        self.config = config
        self._replicated = replicated
        self.topics = topics
        self.keys = keys
        self._redis = client
        self._decider = Decider(client, keys)
        #: Members' states as their last script left them: their next event needs no read.
        self.members = members if members is not None else MemberCache()
        #: Members whose profile or contact history a queued deferred write changes: not
        #: kept until the round trip that carries it.
        self._waiting: set[str] = set()
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
        self._zones = {z.id: z for z in config.zones}
        self._categories = {z.id: tuple(z.categories) for z in config.zones}
        self._gateway_zones = {g.id: set(g.zones) for g in config.gateways}
        # The store-level BLE fuser speaks for every zone (presence/fuser.py).
        self._gateway_zones[config.ble_presence.fuser] = set(self._categories)
        self._lanes = {lane.id: lane for lane in config.lanes}
        self._associates = {a.id for a in config.associates}
        #: Who may answer any associate's prompt (the feedback script checks the holder).
        self._managers = frozenset(a.id for a in config.associates if a.role == "manager")
        #: In-process counters, written to the stats hash (:meth:`take_stats`, :meth:`write_stats`).
        self.counters: Counter[str] = Counter()
        #: Redis writes that may wait until the batch's prompts are published.
        self._after = DeferredWrites(keys, self._decider)
        self._handoff = Handoff(
            config.store,
            topics,
            keys,
            client,
            self._decider,
            self.router,
            self._after,
            self.counters,
            producer,
            associates=len(self._associates),
            replicated=replicated,
        )
        self._source = self._handoff.source
        self._acks = Acks(topics, config.store, self._source)
        self._queue: dict[str, int] = {}
        #: member -> (zone, since, seen at): who might earn a long-dwell check on :meth:`tick`,
        #: in the order they were seen (so the tick stops at the first one not yet due).
        self._dwellers: dict[str, tuple[str, float, float]] = {}

    @property
    def acks_pending(self) -> int:
        """How many event ids wait for :meth:`take_acks`."""
        return self._acks.pending

    def close(self) -> None:
        """Close the decision connection (the caller closes its own client)."""
        self._decider.close()

    def preload(self, chunk: int = 1000) -> int:
        """Keep the profiles of the consenting members in Redis (as many as the cache
        holds), each with no visit and no contact history: their first event is decided
        on that guess, which the presence script checks like any kept state. Returns how
        many were kept. The service calls it once at start, before it takes events."""
        pattern = self.keys.profile("*")
        head, tail = pattern.split("*")
        keys: list[str] = []
        kept = 0
        mono = time.monotonic()
        scan = self._redis.scan_iter(match=pattern, count=chunk)
        while not self.members.full:
            key = next(scan, None)
            if key is not None:
                keys.append(key.decode() if isinstance(key, bytes) else key)
                if len(keys) < chunk:
                    continue
            if not keys:
                break
            replies = self._decider.raw([("HGETALL", k) for k in keys])
            for k, flat in zip(keys, replies, strict=True):
                if isinstance(flat, redis.ResponseError) or not flat:
                    continue
                profile = [v.decode() if isinstance(v, bytes) else v for v in flat]
                if dict(zip(profile[::2], profile[1::2], strict=True)).get("consent") != "1":
                    continue  # not recognised: nothing about them is kept
                member = k[len(head) : -len(tail)]
                self.members.put(member, (profile, [], []), float("-inf"), mono, PRELOAD_TTL_S, digested=True)
                kept += 1
            keys = []
            if key is None:
                break
        return kept

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
        pending: list[Pending] = []
        self._acks.begin()  # a batch that failed half-way (Redis down) acknowledges nothing
        for i, (topic, payload) in enumerate(messages):
            try:
                p = self._prepare(i, topic, payload, now)
            except ContractError as exc:
                results[i] = [self.reject(topic, payload, exc, now)]
                continue
            if isinstance(p, list):  # a manager's reassignment: the prompt to publish
                results[i] = p
            elif p is not None:
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
        self._acks.commit()
        return results

    def tick(self, now: float) -> list[Outbound]:
        """Once a second: long-dwell checks and re-routing of prompts not accepted in time."""
        out = self._handoff.reroute(now)
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
        pending: list[Pending] = []
        for member, zone, since in due:
            del self._dwellers[member]
            event_id = hashlib.sha256(f"dwell|{member}|{zone}|{since}".encode()).hexdigest()[:32]
            cause = Cause(event_id, now, member, zone=zone)
            moment = self._moment("dwell", now, zone, dwell_s=now - since)
            pending.append(Pending(len(pending), cause, moment, member))
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
        pending: list[Pending],
        messages: Sequence[tuple[str, bytes]],
        results: list[list[Outbound]],
        now: float,
    ) -> None:
        policy = self.core.catalog.policy
        since = now - CONTACTS_S
        readers = [
            p
            for p in pending
            if p.member is not None and p.moment is not None and p.moment.trigger in ("enter", "dwell")
        ]
        # Kept in memory: decided on as it is, checked by the script (its digest). Not kept:
        # read first (a round trip), decided on unchecked, as read in this very batch.
        mono = time.monotonic()
        cold: list[Pending] = []
        # A member who also checks out in this round is read first, as before the kept
        # states: the decision is then made on the state before the round's scripts (the
        # checkout's script may run first and would make the kept state's check fail).
        paying = {p.member for p in pending if p.moment is not None and p.moment.trigger == "checkout"}
        for p in readers:
            if p.state is not None:
                continue  # decided again, on the state the script found
            assert p.member is not None
            kept = None if p.member in paying else self.members.get(p.member, since, mono)
            if kept is None:
                cold.append(p)
            else:
                p.state, p.digest = member_state(kept[0]), kept[1]
        states = self._decider.read([p.member for p in cold if p.member], since)
        for p, read in zip(cold, states, strict=True):
            if isinstance(read, redis.ResponseError):
                error = ContractError(RejectReason.PROCESSING_ERROR, f"state read failed: {read}")
                results[p.index] = [self.reject(messages[p.index][0], messages[p.index][1], error, now)]
                p.failed = True
                continue
            p.state = read
        for p in readers:
            if p.failed:
                continue
            state = p.state
            assert p.member is not None and p.moment is not None and state is not None
            visit = state.visit
            last = visit.get("last_ts")
            if last and p.moment.ts - float(last) > self.config.rules.visit_ttl_s:
                visit = {}  # over by the events' clock (as the presence script finds too)
            p.arbitration = self.core.decide_member(p.member, state.profile, visit, state.contacts, p.moment)
            prof = state.profile
            p.tier = prof.get("tier", "")
            p.points = int(prof["points"]) if prof.get("points") else None
            p.usual = prof.get("assoc") or None
        pending = [p for p in pending if not p.failed]
        for p in pending:
            if p.call is None:
                p.call = self._script_call(p, now, policy.conversion_window_days * DAY, since)
        # Deferred writes (prompt records, dismissals, CLVs) ride along, ahead of the scripts:
        # a feedback in this batch finds the record of a prompt sent in the last one.
        holders = [p for p in pending if p.hold is not None]
        holds = [self._handoff.hold(p.hold, p.prompt_id) for p in holders if p.hold is not None]
        calls = [p.call for p in pending if p.call is not None]
        try:
            replies, held = self._decider.run_then(calls, self._after.commands, holds)
        except redis.RedisError:
            self._handoff.lost(pending)  # the scripts may or may not have run
            raise
        self._after.written()
        self._waiting.clear()  # those writes went with this round trip
        for p, ok in zip(holders, held, strict=True):
            p.hold_lost = ok is None  # SET NX refused: a peer holds them (an error does not block)
        it = iter(replies)
        again: list[Pending] = []
        mono = time.monotonic()
        for p in pending:
            if p.call is None:
                continue
            reply = next(it)
            if not isinstance(reply, redis.ResponseError) and p.member is not None:
                self._keep(p, reply, since, mono)
                if reply.outcome is Outcome.CHANGED and reply.state is not None:
                    # Its state moved since it was kept: nothing was done; decide again on
                    # the state the script found (unchecked, like a state read in this batch).
                    self._handoff.unstage(p)
                    self.counters["outcome:changed"] += 1
                    part = reply.state
                    found = member_state((part[0], part[1], part[2]))
                    again.append(Pending(p.index, p.cause, p.moment, p.member, lane=p.lane, state=found))
                    continue
            if isinstance(reply, redis.ResponseError):
                self._handoff.unstage(p)
                error = ContractError(RejectReason.PROCESSING_ERROR, f"state script failed: {reply}")
                results[p.index] = [self.reject(messages[p.index][0], messages[p.index][1], error, now)]
                continue
            if reply.outcome is Outcome.REFUSED and p.feedback is not None:
                results[p.index] = [self._refused(p.feedback, reply, messages[p.index], now)]
                continue
            results[p.index] = self._act(p, reply, now)
        if again:
            self._round(again, messages, results, now)

    def _keep(self, p: Pending, reply: Reply, since: float, mono: float) -> None:
        """Keep the state a member's script left behind (or drop what no longer holds)."""
        member, state = p.member, reply.state
        assert member is not None
        if state is not None and len(state) == 2:
            # Visit and contacts: the profile is the one the script checked (its digest).
            profile = p.state.raw[0] if p.state is not None and p.state.raw is not None else None
            state = None if profile is None else (list(profile), *state)
        if reply.outcome in _NOT_KEPT or state is None or member in self._waiting:
            # Gone, or not to be kept; a checkout (its script returns no state); or a write
            # to their state waits for the next round trip (a new CLV, a dismissal's
            # cool-down): their next event reads what that round trip's scripts see.
            self.members.drop(member)
        else:
            self.members.put(member, (state[0], state[1], state[2]), since, mono)

    def _script_call(self, p: Pending, now: float, window_s: float, since: float) -> ScriptCall:
        k, r = self.keys, self.config.rules
        if p.feedback is not None:
            return script_args.feedback(k, p.feedback, p.sender, p.sender in self._managers, now)
        m, choice = p.moment, p.arbitration.choice if p.arbitration else None
        assert m is not None
        if m.trigger == "footfall":
            p.prompt_id = new_event_id() if choice else ""
            prompt_args = self._handoff.stage(p, now, k.zone_unsent(m.zone))
            return script_args.footfall(k, r, p, m, choice, now, prompt_args)
        if m.trigger == "checkout":
            if p.member is None:
                assert p.lane is not None
                p.prompt_id = new_event_id() if choice else ""
                guest_args = self._handoff.stage(p, now, k.lane_unsent(p.lane))
                return script_args.guest_checkout(k, r, p, m, p.lane, now, window_s, guest_args)
            return script_args.member_checkout(k, r, p, m, p.member, now, window_s)
        mem2 = p.member
        assert mem2 is not None
        staged: list[str | int | float] = ["", "", UNSENT_TTL_S]
        if choice is not None:
            p.prompt_id = new_event_id()
            staged = self._handoff.stage(p, now, k.unsent(mem2))
        policy = self.core.catalog.policy
        return script_args.presence(
            k,
            r,
            policy,
            p,
            m,
            mem2,
            choice,
            now,
            window_s,
            staged,
            state=(p.digest, since, bool(p.digest)),
        )

    def _prepare(self, index: int, topic: str, payload: bytes, now: float) -> Pending | list[Outbound] | None:
        message = decode(self.topics, topic, payload)
        if isinstance(message.payload, Prompt):
            self._handoff.observe(message.payload, message.address.subject, now)
            return None
        if message.address.kind in ACKED:
            # Acknowledged once the whole batch returns: its scripts ran (or it went to the
            # dead-letter stream, which is final too).
            self._acks.add(message.payload.producer, message.payload.event_id)
        self._check_source(message)
        check_not_future(message.payload, now, self.config.rules.max_future_skew_s)
        self.counters["events"] += 1
        body, subject = message.payload, message.address.subject
        assert subject is not None  # every consumed topic names a zone, lane or associate
        if isinstance(body, PresenceEvent):
            held = self._dwellers.get(body.member)
            if held is not None and body.ts < held[1] and held[0] != subject:
                pass  # late (another gateway's outbox): the newer stay keeps its dwell check
            elif body.action == "enter":
                self._dwellers.pop(body.member, None)
                self._dwellers[body.member] = (subject, body.ts, now)
                while len(self._dwellers) > MAX_DWELLERS:
                    self._dwellers.pop(next(iter(self._dwellers)))
            elif held is not None and held[0] == subject and body.ts >= held[1]:
                del self._dwellers[body.member]
            cause = Cause(body.event_id, body.ts, body.member, zone=subject)
            return Pending(index, cause, self._moment(body.action, body.ts, subject), body.member)
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
                lane.name,
                categories,
                queue=queue,
                basket_cents=body.total_cents,
            )
            p = Pending(index, cause, moment, body.member, lane=subject)
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
            return Pending(
                index, Cause(body.event_id, body.ts, None, zone=subject), moment, arbitration=arbitration
            )
        if isinstance(body, Feedback):  # counted once its prompt's record confirms it
            return Pending(index, Cause(body.event_id, body.ts, None), feedback=body, sender=subject)
        if isinstance(body, ErasureNotice):
            self.forget_member(body.member)
            return None
        if isinstance(body, AssociateStatus):
            self.router.set_status(subject, body.state, body.zone, now)
            return None
        if isinstance(body, ReassignRequest):
            return self._handoff.reassign(body.prompt_id, body.to_associate, now)
        raise TypeError(f"recommender does not consume {type(body).__name__}")  # CONSUMES prevents this

    def _act(self, p: Pending, reply: Reply, now: float) -> list[Outbound]:
        if p.feedback is not None:
            return self._feedback(p.feedback, reply, now)
        guest = p.moment is not None and p.moment.trigger == "checkout" and p.member is None
        if not (reply.claimed or (guest and reply.outcome is Outcome.OK)):
            self._handoff.unstage(p)
        self.counters[f"outcome:{reply.outcome.value}"] += 1
        if reply.outcome is Outcome.OUT_OF_ORDER and reply.rest:
            # A late event, by what happened to it (docs/reliability.md#late-events).
            self.counters[f"late:{reply.rest[0]}"] += 1
        handoff = self._handoff
        if (
            reply.outcome is Outcome.DUPLICATE
            and len(reply.rest) == 3
            and reply.rest[1] in handoff.unconfirmed
        ):
            return handoff.again(reply.rest, self.core.catalog, now)
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
        return handoff.send(p, choice, guest, now)

    def unsent_prompts(self, now: float | None = None, *, of: str | None = None) -> list[Outbound]:
        """Unsent prompt copies to publish at start (:meth:`Handoff.unsent_prompts
        <recommender.handoff.Handoff.unsent_prompts>`)."""
        return self._handoff.unsent_prompts(now, of=of)

    def mark_sent(self, sent: Sequence[tuple[str, str]]) -> None:
        """The broker has these prompts (PUBACK): forget their unsent copies."""
        self._handoff.mark_sent(sent)

    def defer_sent(self, sent: Sequence[tuple[str, str]]) -> None:
        """Like :meth:`mark_sent`, with the next batch's writes (or :meth:`after_publish`)."""
        self._handoff.defer_sent(sent)

    def forget_member(self, member: str) -> None:
        """An erased member: no dwell check, no re-routed prompt about them."""
        self._dwellers.pop(member, None)
        self.members.drop(member)
        needle = member.encode()
        self.router.forget_if(lambda p: needle in p.payload)

    def take_acks(self, now: float) -> list[Outbound]:
        """Acknowledgements of the batches handled since the last call, per producer.
        Only completed batches are in them, so an outbox deletes an event only once Redis
        has it. The caller decides how often to send them (each costs a publish)."""
        return self._acks.take(now)

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
            self._after.queue.append(("profile", member, {"clv": f"{value:.2f}"}))
            self.members.drop(member)  # its next event reads it (as before this write)
            self._waiting.add(member)

    def _feedback(self, fb: Feedback, reply: Reply, now: float) -> list[Outbound]:
        # Every replica of a share group gets each feedback: the one whose script ran first
        # counts it (the others see a duplicate, with the first one's verdict), each one's
        # router hears it unless the script refused it.
        if reply.outcome is Outcome.OK or (reply.outcome is Outcome.DUPLICATE and reply.rest[:1] == ("ok",)):
            self.router.answered(fb.prompt_id, fb.outcome)
        if reply.outcome is not Outcome.OK:
            self.counters[f"feedback_{reply.outcome.value}"] += 1
            return []
        kind, action, member, _holdout, associate = reply.rest
        if self._replicated and fb.outcome != "accepted" and associate:
            # Dismissed or done: the associate is free again, for every replica at once.
            self._after.queue.append(("release", associate, {"id": fb.prompt_id}))
        self.counters[f"feedback:{fb.outcome}"] += 1
        self.counters[f"feedback:{fb.outcome}:{kind}"] += 1
        if fb.reason is not None:
            self.counters[f"dismissed:{fb.reason.value}"] += 1
        if fb.outcome == "dismissed" and member:
            self._after.queue.append(
                ("dismissed", member, {"member": f"x|{action}|{fb.prompt_id}", "ts": f"{fb.ts}"})
            )
            self.members.drop(member)  # its next event reads it (as before this write)
            self._waiting.add(member)
        return []

    def _refused(self, fb: Feedback, reply: Reply, message: tuple[str, bytes], now: float) -> Outbound:
        """Feedback the script turned down: from someone who does not hold the prompt, or
        contradicting its recorded outcome. Counted by reason and dead-lettered (the record
        names the topic and a hash of the payload, never the member)."""
        why = reply.rest[0] if reply.rest else "not_holder"
        self.counters[f"feedback_refused:{why}"] += 1
        if why == "answered":
            error = ContractError(
                RejectReason.ALREADY_ANSWERED, f"prompt {fb.prompt_id} already has another outcome"
            )
        else:
            error = ContractError(RejectReason.NOT_HOLDER, f"prompt {fb.prompt_id} is not the sender's")
        return self.reject(message[0], message[1], error, now)

    def after_publish(self) -> None:
        """Flush the deferred writes now (the service does it once a second, when no
        batch with a read took them along)."""
        self._after.flush()

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
        elif addr.kind is TopicKind.REASSIGN:
            if addr.subject not in self._managers:
                raise ContractError(RejectReason.UNKNOWN_PRODUCER, f"{addr.subject!r} is not a manager")
            to = body.to_associate if isinstance(body, ReassignRequest) else None
            if to not in self._associates:
                raise ContractError(RejectReason.INVALID_FIELD, f"unknown associate {to!r}")
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
        self._handoff.counters = self.counters
        return counts

    def write_stats(self, counts: Counter[str]) -> None:
        """Add ``counts`` to the stats hash (one round trip, on the shared client)."""
        if not counts:
            return
        pipe = self._redis.pipeline(transaction=False)
        for key, value in counts.items():
            pipe.hincrby(self.keys.stats, key, value)
        pipe.execute()
