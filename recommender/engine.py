"""The recommender's core: one received message in, the messages to publish out.

:meth:`Recommender.handle` validates a message against the contract and the store's
configuration, runs the decision script, and returns prompts to publish; a message that
breaks the contract is recorded (capped Redis stream + counter) and returned as a
dead-letter message instead. The MQTT shell around it (:mod:`recommender.service`) only
moves bytes; time is passed in.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from broker_config.contract import (
    CheckoutEvent,
    ContractError,
    DeadLetter,
    EnvelopeSource,
    Message,
    PresenceEvent,
    RejectReason,
    TopicKind,
    Topics,
    decode,
    encode,
    excerpt,
)
from floorwalker.config import StoreConfig
from recommender.decide import Decider, Decision, Outcome, ScriptCall
from recommender.keys import DEADLETTER_MAXLEN, Keys
from recommender.prompts import Cause, build_prompt
from recommender.routing import Router

log = logging.getLogger(__name__)

#: Topics the recommender consumes (in every store, so a wrong store id is noticed).
CONSUMES = (TopicKind.PRESENCE, TopicKind.CHECKOUT)


@dataclass(frozen=True, slots=True)
class _Pending:
    """A valid event waiting for its decision."""

    call: ScriptCall
    cause: Cause
    associate: str


@dataclass(frozen=True, slots=True)
class Outbound:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


class Recommender:
    def __init__(
        self,
        config: StoreConfig,
        client: redis.Redis,
        topics: Topics,
        keys: Keys,
        producer: str = "recommender",
    ) -> None:
        self.config = config
        self.topics = topics
        self.keys = keys
        self._redis = client
        self._decider = Decider(client, keys, config.rules)
        self._router = Router(config)
        self._source = EnvelopeSource(producer)
        self._categories = {z.id: list(z.categories) for z in config.zones}
        self._gateway_zones = {g.id: set(g.zones) for g in config.gateways}
        # The store-level BLE fuser speaks for every zone (recommender/fuser.py).
        self._gateway_zones[config.ble_presence.fuser] = set(self._categories)
        self._lanes = {lane.id: lane.pos for lane in config.lanes}
        #: In-process counters, flushed to the stats hash by :meth:`flush_stats`.
        self.counters: Counter[str] = Counter()

    def subscriptions(self) -> list[tuple[str, int]]:
        return [(self.topics.subscription(kind), 1) for kind in CONSUMES]

    # -- the hot path ------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes, now: float) -> list[Outbound]:
        return self.handle_batch([(topic, payload)], now)[0]

    def handle_batch(self, messages: Sequence[tuple[str, bytes]], now: float) -> list[list[Outbound]]:
        """Handle messages in order; one Redis round trip for all of them.

        Returns, per message, what to publish (prompts, or a dead letter). Redis
        connection errors propagate: the caller retries the batch (scripts deduplicate).
        """
        results: list[list[Outbound]] = [[] for _ in messages]
        pending: list[tuple[int, _Pending]] = []
        for i, (topic, payload) in enumerate(messages):
            try:
                pending.append((i, self._prepare(topic, payload, now)))
            except ContractError as exc:
                results[i] = [self.reject(topic, payload, exc, now)]
        if not pending:
            return results
        decisions = self._decider.run([p.call for _, p in pending])
        for (i, p), decision in zip(pending, decisions, strict=True):
            if isinstance(decision, redis.ResponseError):
                error = ContractError(RejectReason.PROCESSING_ERROR, f"state script failed: {decision}")
                results[i] = [self.reject(messages[i][0], messages[i][1], error, now)]
            else:
                results[i] = self._act(decision, p.cause, p.associate, now)
        return results

    def _prepare(self, topic: str, payload: bytes, now: float) -> _Pending:
        message = decode(self.topics, topic, payload)
        self._check_source(message)
        self.counters["events"] += 1
        body, subject = message.payload, message.address.subject
        assert subject is not None  # presence and checkout topics always name a zone or lane
        if isinstance(body, PresenceEvent):
            call = self._decider.presence_call(body, subject, self._categories[subject], now)
            return _Pending(
                call, Cause(body.event_id, body.ts, body.member, zone=subject), self._router.for_zone(subject)
            )
        if isinstance(body, CheckoutEvent):
            call = self._decider.checkout_call(body, subject, now)
            return _Pending(
                call, Cause(body.event_id, body.ts, body.member, lane=subject), self._router.for_lane(subject)
            )
        raise TypeError(f"recommender does not consume {type(body).__name__}")  # CONSUMES prevents this

    def _act(self, decision: Decision, cause: Cause, associate: str, now: float) -> list[Outbound]:
        self.counters[f"outcome:{decision.outcome.value}"] += 1
        if decision.outcome is not Outcome.OK or decision.kind is None:
            return []
        prompt = build_prompt(decision, cause, self.config, self._source, now)
        self.counters[f"prompt:{decision.kind.value}"] += 1
        self.counters["prompts"] += 1
        return [Outbound(self.topics.prompt(self.config.store, associate), encode(prompt))]

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
        elif addr.kind is TopicKind.CHECKOUT:
            pos = self._lanes.get(addr.subject or "")
            if pos is None:
                raise ContractError(RejectReason.UNKNOWN_LANE, f"unknown lane {addr.subject!r}")
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
        record = self._source.make(
            DeadLetter,
            now,
            reason=error.reason,
            detail=error.detail[:300],
            topic=topic[:300],
            payload_size=len(payload),
            payload_excerpt=excerpt(payload),
        )
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

    def flush_stats(self) -> None:
        """Add the in-process counters to the stats hash and reset them."""
        if not self.counters:
            return
        pipe = self._redis.pipeline(transaction=False)
        for key, value in self.counters.items():
            pipe.hincrby(self.keys.stats, key, value)
        self.counters.clear()
        pipe.execute()
