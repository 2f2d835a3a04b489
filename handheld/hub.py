"""The API's connections: one MQTT session and one Redis client for the store.

The API subscribes to the store's prompts, footfall, gateway status, associate status,
dead letters and erasure notices. Prompts get the member's display name from Redis here (names never travel
on MQTT), are stored in the associate's Redis stream and handed to the event loop for the
open pages. Associates' answers and status go back out on the contract's topics.

Threads: paho delivers on its network thread, where the blocking Redis calls happen; the
stored prompt is handed to the loop with ``call_soon_threadsafe``. A prompt is held back
while the next packet already waiting on the socket is another PUBLISH, so that prompts
that queued up while the API was busy are stored in one round trip and handed over in one
wake-up (one at a time otherwise); each is acknowledged once stored. Gateway and associate
status are small dicts replaced whole under a lock.

Sessions: the script that stores a prompt also reads the sessions of the associate's open
pages, so a page whose session was signed out, revoked, ended by a manager or expired is
ended instead of shown the prompt, without a round trip per page. Sign-out and a manager
ending a session here end its streams at once; :meth:`StoreHub.watch_sessions` runs on the
loop and ends, within a second, every other open stream whose session is no longer valid
(``floorwalker token revoke`` while no prompt comes, expiry).

Erasure: on a member's :class:`~broker_config.contract.ErasureNotice` the API deletes its
stored prompts about them and tells every open page to drop their cards; a prompt about
an erased member (the tombstone is in Redis) is never stored or shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time

import redis

from broker_config.contract import (
    AssociateStatus,
    ContractError,
    DeadLetter,
    DismissReason,
    EnvelopeSource,
    ErasureNotice,
    Feedback,
    FootfallEvent,
    GatewayStatus,
    Prompt,
    ReassignRequest,
    TopicKind,
    Topics,
    decode,
    encode,
)
from floorwalker.config import AssociateConfig, Endpoints, StoreConfig
from floorwalker.errors import FloorwalkerError, ServiceUnavailable
from floorwalker.mqtt import MqttAuth, MqttLink, Received
from floorwalker.redis_accounts import redact
from handheld.auth import live_sessions
from handheld.floor import FloorStore, GatewayView, gateway_view
from handheld.metrics import ApiMetrics
from handheld.prompts import LiveFeed, Outcome, PromptStore, Stored
from recommender.keys import Keys
from recommender.service import connect_redis

log = logging.getLogger(__name__)

SUBSCRIBED = (
    TopicKind.PROMPT,
    TopicKind.FOOTFALL,
    TopicKind.STATUS,
    TopicKind.ASSOCIATE_STATUS,
    TopicKind.DEADLETTER,
    TopicKind.ERASURE,
    # Floor metrics only (handheld/metrics.py): lanes' checkout times, gateways' BLE counts,
    # the fuser's resolved-id counts.
    TopicKind.CHECKOUT,
    TopicKind.BLE,
    TopicKind.FUSER_STATUS,
)
#: How often open streams' sessions are checked: a revoked session's stream ends within a second.
SESSION_CHECK_S = 0.5
#: How often who is on the floor is looked at (heartbeats due, pages closed past the grace).
PRESENCE_CHECK_S = 1.0
#: An associate whose last handheld page closed longer ago than this (and not shorter than
#: one heartbeat) is published ``signed_out``: a reload or a network blip reconnects in a
#: second (the page retries every second), a closed page or a dead phone does not.
STREAM_GRACE_S = 10.0
#: Most prompts stored in one round trip (they queued up on the socket while the API was busy).
MAX_BATCH = 64
#: States a connected handheld keeps alive with heartbeats (routing counts them on the floor).
ON_FLOOR = frozenset({"available", "busy"})


def handheld_producer(associate: str) -> str:
    """Producer id for an associate's handheld; hashed when the id would be too long."""
    producer = f"handheld-{associate}"
    if len(producer) <= 48:  # the contract's Ident limit
        return producer
    return f"handheld-{hashlib.sha256(associate.encode()).hexdigest()[:16]}"


class StoreHub:
    def __init__(
        self,
        config: StoreConfig,
        endpoints: Endpoints,
        *,
        topic_prefix: str = "",
        key_prefix: str = "",
        auth: MqttAuth | None = None,
    ) -> None:
        self.config = config
        self.topics = Topics(topic_prefix)
        self.keys = Keys(config.store, key_prefix)
        self.associates: dict[str, AssociateConfig] = {a.id: a for a in config.associates}
        self.feed = LiveFeed()
        self.metrics = ApiMetrics(config)
        self.metrics.recommender.source = lambda: self.floor.stats()
        self.redis_url = redact(endpoints.redis_url)  # for log lines and errors: never the password
        self._redis_login_url = endpoints.redis_url
        self._redis: redis.Redis | None = None
        self._prompts: PromptStore | None = None
        self._floor: FloorStore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._gateways: dict[str, GatewayStatus] = {}
        self._statuses: dict[str, AssociateStatus] = {}
        #: Presence (event loop only): when we last published each associate's status, and
        #: since when an associate who had a page open here has none.
        self._beat: dict[str, float] = {}
        self._closed_at: dict[str, float] = {}
        self.grace_s = min(STREAM_GRACE_S, config.rules.associate_heartbeat_s)
        #: Prompts received and not yet stored (paho's thread only): held back while the next
        #: packet waiting on the socket is another PUBLISH, so that prompts that queued up
        #: are stored in one round trip.
        self._held: list[tuple[str, Prompt, Received]] = []
        self._sources = {
            a: EnvelopeSource(handheld_producer(a), start_seq=time.time_ns() // 1000) for a in self.associates
        }
        # A persistent session: prompts published while the API restarts are delivered after.
        self.link = MqttLink(
            endpoints.mqtt_host,
            endpoints.mqtt_port,
            client_id=f"{topic_prefix.replace('/', '-')}handheld-api-{config.store}",
            subscriptions=[(self.topics.subscription(k, config.store), 1) for k in SUBSCRIBED],
            on_message=self._on_message,
            on_disconnect=self._held.clear,  # held prompts come again with the session
            persistent_session=True,
            auth=auth,
        )

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._loop is not None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect Redis, then MQTT; raises :class:`ServiceUnavailable` with one line
        (:class:`~floorwalker.errors.ConfigError` when the broker refuses our login)."""
        if self._loop is not None:
            return
        self._redis = connect_redis(self._redis_login_url)
        self._prompts = PromptStore(self._redis, self.keys)
        self._floor = FloorStore(self._redis, self.keys, self.config)
        self._loop = loop  # before connecting: messages may arrive at once
        try:
            self.link.connect()
        except FloorwalkerError:
            self._loop = None
            self._redis.close()
            self._redis = None
            raise

    def close(self) -> None:
        if self._loop is None:
            return
        self.link.close()
        if self._redis is not None:
            self._redis.close()
        self._loop = None

    # -- accessors (request threads) -----------------------------------------------------

    @property
    def redis(self) -> redis.Redis:
        if self._redis is None:
            raise ServiceUnavailable("the API is not connected to Redis yet; try again")
        return self._redis

    @property
    def prompts(self) -> PromptStore:
        if self._prompts is None:
            raise ServiceUnavailable("the API is not connected to Redis yet; try again")
        return self._prompts

    @property
    def floor(self) -> FloorStore:
        if self._floor is None:
            raise ServiceUnavailable("the API is not connected to Redis yet; try again")
        return self._floor

    def session_alive(self, session: str) -> bool:
        """Whether a session is still valid; False when Redis cannot say (blocking: call off the loop)."""
        try:
            return bool(live_sessions(self.redis, self.keys, [session], time.time()))
        except (redis.RedisError, ServiceUnavailable) as exc:
            log.warning("cannot check a session in Redis at %s (%s); ending its stream", self.redis_url, exc)
            return False

    def end_streams_of(self, session: str) -> None:
        """End a session's open streams now (sign-out); from a request thread or the loop."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.feed.end_sessions, {session})

    async def watch_sessions(self, every: float = SESSION_CHECK_S) -> None:
        """Forever: end the open streams whose session is no longer valid."""
        while True:
            await asyncio.sleep(every)
            open_now = self.feed.sessions()
            if not open_now or self._redis is None:
                continue
            try:
                alive = await asyncio.to_thread(live_sessions, self._redis, self.keys, open_now, time.time())
            except redis.RedisError as exc:
                log.warning("cannot check open sessions in Redis at %s (%s)", self.redis_url, exc)
                continue
            ended = set(open_now) - alive
            if ended:
                n = self.feed.end_sessions(ended)
                log.info("ended %d open stream(s) of %d ended session(s)", n, len(ended))

    # -- who is on the floor (the event loop) ---------------------------------------------

    def stream_opened(self, associate: str) -> None:
        """A page of ``associate`` opened its stream: they are on the floor now. Published
        ``available`` at once unless they already are (available, busy or on a break)."""
        self._closed_at.pop(associate, None)
        if self.status_of(associate) == "signed_out":
            self._send_presence(associate, "available", None)

    def stream_closed(self, associate: str, now: float) -> None:
        """A page's stream ended; with none of theirs left open the grace period starts."""
        if not self.feed.has(associate):
            self._closed_at[associate] = now

    def presence_tick(self, now: float) -> None:
        """Heartbeats for associates with a page open and on the floor; ``signed_out`` for
        those whose last page closed longer than the grace period ago."""
        heartbeat = self.config.rules.associate_heartbeat_s
        for associate in self.associates:
            with self._lock:
                s = self._statuses.get(associate)
            state, zone = (s.state, s.zone) if s is not None else ("signed_out", None)
            if self.feed.has(associate):
                if state in ON_FLOOR and now - self._beat.get(associate, 0.0) >= heartbeat:
                    self._send_presence(associate, state, zone)
                continue
            closed = self._closed_at.get(associate)
            if closed is not None and now - closed >= self.grace_s:
                del self._closed_at[associate]
                if state != "signed_out":
                    log.info(
                        "%s has had no handheld page open for %.0f s: signed out", associate, now - closed
                    )
                    self._send_presence(associate, "signed_out", None)

    def _send_presence(self, associate: str, state: str, zone: str | None) -> None:
        try:
            self.send_status(associate, state, zone)
        except ServiceUnavailable as exc:
            log.warning("could not publish %s's status %s (%s); trying again", associate, state, exc)

    async def keep_presence(self, every: float = PRESENCE_CHECK_S) -> None:
        """Forever: :meth:`presence_tick` every ``every`` seconds."""
        while True:
            await asyncio.sleep(every)
            if self._loop is not None:
                self.presence_tick(time.time())

    def redis_ok(self) -> bool:
        try:
            return self._redis is not None and bool(self._redis.ping())
        except redis.RedisError:
            return False

    def gateways(self) -> list[GatewayView]:
        with self._lock:
            known = dict(self._gateways)
        ids = [g.id for g in self.config.gateways]
        ids += sorted(set(known) - set(ids))  # a gateway not (yet) in the config still shows
        positions = {g.id: g.position for g in self.config.gateways}
        now = time.time()
        return [gateway_view(g, known.get(g), positions.get(g), now) for g in ids]

    def status_of(self, associate: str) -> str:
        with self._lock:
            s = self._statuses.get(associate)
        return s.state if s is not None else "signed_out"

    # -- out to the broker ---------------------------------------------------------------

    def _publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        if not self.link.connected:
            raise ServiceUnavailable(f"not connected to the MQTT broker at {self.link.url}; try again")
        info = self.link.publish(topic, payload, qos=1, retain=retain)
        if info.rc != 0:
            raise ServiceUnavailable(f"could not publish to {self.link.url} (rc {info.rc}); try again")

    def send_feedback(
        self, associate: str, prompt_id: str, outcome: Outcome, reason: DismissReason | None
    ) -> Feedback:
        """Publish the associate's answer (QoS 1); raises ServiceUnavailable if the broker is away."""
        fb = self._sources[associate].make(
            Feedback, time.time(), prompt_id=prompt_id, outcome=outcome, reason=reason
        )
        self._publish(self.topics.feedback(self.config.store, associate), encode(fb))
        return fb

    def send_reassign(self, manager: str, prompt_id: str, to: str) -> ReassignRequest:
        """Ask the recommender (it routes) to move a prompt to ``to``; raises
        ServiceUnavailable if the broker is away."""
        request = self._sources[manager].make(
            ReassignRequest, time.time(), prompt_id=prompt_id, to_associate=to
        )
        self._publish(self.topics.reassign(self.config.store, manager), encode(request))
        return request

    def send_status(self, associate: str, state: str, zone: str | None) -> AssociateStatus:
        """Publish the associate's availability, retained (routing reads it)."""
        status = self._sources[associate].make(AssociateStatus, time.time(), state=state, zone=zone)
        self._publish(self.topics.associate_status(self.config.store, associate), encode(status), retain=True)
        with self._lock:
            self._statuses[associate] = status
        self._beat[associate] = status.ts
        return status

    # -- paho's network thread -------------------------------------------------------

    def _on_message(self, received: Received) -> bool:
        try:
            msg = decode(self.topics, received.topic, received.payload)
        except ContractError as exc:
            log.warning("ignoring an invalid message on %s: %s", received.topic, exc)
            self._store_held()
            return True
        if msg.address.store != self.config.store:
            self._store_held()
            return True
        payload, subject = msg.payload, msg.address.subject
        if subject is not None:
            self.metrics.floor(subject, payload)
        if isinstance(payload, Prompt) and subject is not None:
            if subject not in self.associates or self._prompts is None:
                log.warning(
                    "ignoring a prompt for %r: not an associate of store %s", subject, self.config.store
                )
                self._store_held()
                return True
            self._held.append((subject, payload, received))
            if len(self._held) < MAX_BATCH and self.link.publish_waiting():
                return False  # paho hands over the next one at once; acknowledged with it
            self._store_held()
            return False  # acknowledged once stored, or not at all
        self._store_held()  # prompts held back go first, in order
        try:
            if isinstance(payload, FootfallEvent) and subject is not None:
                if self._floor is not None:
                    self._floor.record(subject, payload)
            elif isinstance(payload, GatewayStatus) and subject is not None:
                with self._lock:
                    self._gateways[subject] = payload
                self.metrics.gateway(gateway_view(subject, payload))
            elif isinstance(payload, AssociateStatus) and subject is not None:
                with self._lock:
                    self._statuses[subject] = payload
            elif isinstance(payload, DeadLetter):
                self.metrics.deadletters.labels(payload.reason.value).inc()
            elif isinstance(payload, ErasureNotice):
                self._on_erasure(payload.member)
        except redis.RedisError as exc:
            # Not acknowledged: the persistent session redelivers it after a reconnect.
            log.warning(
                "could not store %s from %s in Redis at %s (%s)",
                msg.address.kind,
                received.topic,
                self.redis_url,
                exc,
            )
            return False
        return True

    def _store_held(self) -> bool:
        """Store the prompts held back (usually one; more when they queued up on the socket)
        in one round trip, hand them to the open pages in one wake-up of the loop, then
        acknowledge them in order. False if Redis failed: none is acknowledged, and the
        persistent session redelivers them after a reconnect."""
        held = self._held.copy()
        self._held.clear()  # the same list: a disconnect clears it (its hook holds this one)
        if not held or self._prompts is None:
            return True
        now = time.time()
        try:
            # The pages open now: the same scripts tell which of their sessions are still valid.
            results = self._prompts.store_prompts(
                [(a, prompt, now, self.feed.open_sessions(a)) for a, prompt, _ in held]
            )
        except redis.RedisError as exc:
            log.warning("could not store %d prompt(s) in Redis at %s (%s)", len(held), self.redis_url, exc)
            return False
        live: list[Stored] = []
        for (associate, prompt, _), stored in zip(held, results, strict=True):
            if stored == "erased":
                log.info("dropping a prompt %s about an erased member", prompt.event_id)
                continue
            if stored == "redelivered":
                continue  # already stored and shown
            self.metrics.prompt(prompt, time.time())
            moved_from = stored.view.moved_from
            self.metrics.deliveries.labels("rerouted" if moved_from else "first").inc()
            if moved_from is not None:
                self.metrics.withdrawals.labels("rerouted").inc()
                log.info("prompt %s moved from %s to %s", prompt.event_id, moved_from, associate)
            live.append(stored)
        loop = self._loop
        if live and loop is not None:
            # RuntimeError: the loop closed under us; the pages get them from Redis later.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._to_pages, live)
        for _, _, received in held:
            self.link.ack(received)
        return True

    def _to_pages(self, stored: list[Stored]) -> None:
        """The event loop: newly stored prompts to their associates' open pages, in order."""
        for s in stored:
            if s.view.moved_from is not None:
                self.feed.moved(s.view.moved_from, s.view.prompt_id)
            self.feed.publish(s.view, s.checked, s.live)

    def _on_erasure(self, member: str) -> None:
        if self._prompts is not None:
            removed = self._prompts.withdraw(member, self.associates)
            if removed:
                log.info("erasure: deleted %d stored prompt(s) about an erased member", removed)
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.feed.withdraw, member)
