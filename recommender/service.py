"""The recommender process: the MQTT and Redis shell around :class:`Recommender`.

Consumes with QoS 1 on a persistent session, so the broker keeps events while the
recommender restarts. A message is acknowledged only after it was handled and its prompt
handed to the client for publishing: while Redis is unreachable the service retries with
back-off and holds the messages rather than drop them.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import paho.mqtt.client as mqtt
import redis

from broker_config.contract import ContractError, Topics
from floorwalker.config import Endpoints, StoreConfig
from floorwalker.errors import ConfigError
from floorwalker.mqtt import MqttAuth, MqttLink, Received
from floorwalker.redis_accounts import redact
from recommender import cluster
from recommender.acks import ACK_CHUNK
from recommender.clock import ClockMode, EventClock, event_ts
from recommender.crm import CrmModel, load_into_redis, read_crm
from recommender.engine import Recommender
from recommender.keys import Keys, ReplicaKeys
from recommender.outbound import Outbound

log = logging.getLogger(__name__)

STATS_INTERVAL_S = 1.0
#: Acknowledgements to the gateways' outboxes go out at most this often, or as soon as
#: ACK_CHUNK ids wait (and at least once a second when idle): one message per batch would
#: add a publish and its PUBACK to every event at low rates. An outbox resends only after
#: 10 s without progress and keeps at most 500 events unacknowledged, so 100 ms costs it
#: nothing and costs the recommender at most 10 messages a second per producer.
ACK_INTERVAL_S = 0.1
#: Most messages decided in one Redis round trip.
MAX_BATCH = 64


#: Group and replica ids: "<group>-<replica>" must be a contract producer id (48 chars).
_REPLICA_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,22}")
#: A replica whose heartbeat is older than this is taken for dead; its session is adopted.
HEARTBEAT_TTL_S = 3.0
#: An adopted session is ended once no message came from it for this long.
ADOPT_IDLE_S = 1.0


def connect_redis(url: str) -> redis.Redis:
    """A Redis client that answered PING, or one line saying where Redis was expected.

    A ``redis+cluster://`` URL gives a :class:`~redis.cluster.RedisCluster`, which answers
    the same single-key commands and non-transactional pipelines the handheld API and
    tools use (typed here as :class:`redis.Redis` for them)."""
    return cast(redis.Redis, cluster.connect(url))


@dataclass(frozen=True, slots=True)
class Share:
    """Run as one replica of a group behind an MQTT v5 shared subscription.

    Each replica keeps a persistent session (client id ``<group>-<replica>``), so a
    restart loses nothing. Mosquitto keeps handing a dead member its share of events until
    the session ends, so survivors watch heartbeats in Redis: the first to take the lock
    connects with the dead replica's client id, handles what its session holds (in flight
    and queued), leaves the group and ends the session. From then on the survivors get
    everything.
    """

    group: str
    replica: str

    def __post_init__(self) -> None:
        # Both end up in the prompts' producer id and in the share name ($share/<group>/...).
        for flag, value in (("--share-group", self.group), ("--replica", self.replica)):
            if not _REPLICA_ID.fullmatch(value):
                raise ConfigError(f"{flag} {value!r}: use lower-case letters, digits, - and _ (at most 23)")

    def producer(self, replica: str) -> str:
        """The producer id on a replica's prompts."""
        return f"{self.group}-{replica}"

    def client_id(self, topic_prefix: str, replica: str) -> str:
        return f"{topic_prefix.replace('/', '-')}{self.producer(replica)}"


class RecommenderService:
    """Decides on paho's network thread, in batches that form by themselves.

    A message is held back while the next packet already waiting on the socket is
    another PUBLISH (paho hands it over at once); the batch is decided when nothing more
    is waiting, or at :data:`MAX_BATCH`. Under light load every batch is one message
    and nothing waits; under heavy load one Redis round trip serves many events. Each
    message is acknowledged after its prompts were handed to the client for publishing.
    Working on the network thread also means back-pressure: while Redis is slow, paho
    reads no more and the broker holds the rest. One thread keeps every customer's events
    in arrival order.
    """

    def __init__(
        self,
        config: StoreConfig | Sequence[StoreConfig],
        endpoints: Endpoints,
        *,
        topic_prefix: str = "",
        key_prefix: str = "",
        client_id: str = "recommender",
        load_crm: bool = True,
        share: Share | None = None,
        auth: MqttAuth | None = None,
        clock: ClockMode = "wall",
    ) -> None:
        """``clock``: ``wall`` live; ``event`` in a replay, where "now" is the latest event
        time seen and the ticks follow it (:mod:`recommender.clock`)."""
        configs = [config] if isinstance(config, StoreConfig) else list(config)
        self._event_clock = EventClock() if clock == "event" else None
        self.redis_url = redact(endpoints.redis_url)  # for log lines: never the password
        self.redis = cluster.connect(endpoints.redis_url)
        self.topics = Topics(topic_prefix)
        self.share = share
        self._endpoints = endpoints
        self._topic_prefix = topic_prefix
        #: Our broker login (a secured broker); an adopted session logs in with it too.
        self._auth = auth
        self._replica_keys = ReplicaKeys(share.group, key_prefix) if share else None
        #: The producer id on our prompts; the MQTT client id adds the topic prefix.
        producer = share.producer(share.replica) if share is not None else client_id
        client_id = f"{topic_prefix.replace('/', '-')}{producer}"
        #: One engine per store this process serves (a message goes to its store's engine).
        self.engines: dict[str, Recommender] = {}
        for c in configs:
            keys = Keys(c.store, key_prefix)
            model: CrmModel | None = None
            if load_crm and c.crm is not None:
                imported = read_crm(c.crm)
                for problem in imported.errors:
                    log.error("CRM row skipped: %s", problem)
                model = load_into_redis(self.redis, keys, imported.members, time.time())  # type: ignore[arg-type]
                log.info(
                    "loaded %d CRM members from %s (%d rows skipped; CLV params %s)",
                    len(imported.members),
                    c.crm,
                    len(imported.errors),
                    "fitted" if model.clv.fitted else "CDNOW prior",
                )
            self.engines[c.store] = Recommender(
                c, self.redis, self.topics, keys, producer=producer, model=model, replicated=share is not None
            )
            try:
                kept = self.engines[c.store].preload()
                log.info("kept the profiles of %d consenting members in memory", kept)
            except (redis.RedisError, UnicodeDecodeError) as exc:
                # Only a head start: every member is read when first seen instead.
                log.warning(
                    "could not keep the members' profiles in memory (%s); reading each when seen", exc
                )
        self.engine = self.engines[configs[0].store]
        self.keys = self.engine.keys
        self._batch: list[Received] = []
        #: Claimed prompts handed to paho, until the broker confirms them (then mark_sent).
        self._unsent: deque[tuple[mqtt.MQTTMessageInfo, tuple[str, str]]] = deque()
        #: Held while the engine runs (network thread) and while its counters are flushed.
        self._engine_lock = threading.Lock()
        self._acked_at = time.monotonic()
        self._stop = threading.Event()
        self._adopting: set[str] = set()
        #: Work is shared by the group's replicas; what routing must know goes to each.
        self._filters = sorted(
            {
                self._shared(f) if shared else f
                for e in self.engines.values()
                for f, shared in e.subscriptions(replicas=share is not None)
            }
        )
        subscriptions = [(f, 1) for f in self._filters]
        self.link = MqttLink(
            endpoints.mqtt_host,
            endpoints.mqtt_port,
            client_id=client_id,
            subscriptions=subscriptions,
            on_message=self._receive,
            on_disconnect=self._batch.clear,  # held messages come again with the session
            persistent_session=True,
            auth=auth,
        )

    def _shared(self, topic_filter: str) -> str:
        return f"$share/{self.share.group}/{topic_filter}" if self.share else topic_filter

    def start(self) -> None:
        if self.share is not None:
            self._heartbeat()
        self.link.connect()
        if self.share is not None and self._replica_keys is not None:
            self.redis.sadd(self._replica_keys.members, self.share.replica)
        # Prompts a previous run claimed but the broker never confirmed: send them now.
        with self._engine_lock:
            recovered = [o for e in self.engines.values() for o in e.unsent_prompts(self._now())]
        for out in recovered:
            self._publish(out)
        if recovered:
            log.info("published %d prompt(s) claimed before a restart", len(recovered))
        # What start-up built (config, catalog, model, CRM) lives as long as the process:
        # keep it out of the collector's full passes, which otherwise stall decisions for
        # tens of milliseconds (measured in `bench e2e`'s p99).
        gc.freeze()

    def _publish(self, out: Outbound) -> None:
        info = self.link.publish(out.topic, out.payload, qos=out.qos, retain=out.retain)
        if out.unsent is not None:
            self._unsent.append((info, out.unsent))

    def run(self) -> None:
        """Connect, then serve until :meth:`stop` is called (e.g. from a signal handler)."""
        self.start()
        log.info("recommender for store %s serving on %s", self.engine.config.store, self.link.url)
        self.serve()

    def serve(self) -> None:
        """Serve (already connected, on paho's thread) until :meth:`stop`; flush counters."""
        try:
            while not self._stop.wait(STATS_INTERVAL_S):
                if self.share is not None:
                    self._heartbeat()
                    self._watch_peers()
                self._tick()
                self._send_acks(time.monotonic())
                self._flush_stats()
        finally:
            self.close()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        if self.share is not None and self._replica_keys is not None and self.link.connected:
            # Leave the group first, let what is in flight arrive and be handled, then end
            # the session: a stopped replica must not keep being handed its share.
            self.link.client.unsubscribe(self._filters)
            time.sleep(ADOPT_IDLE_S)
            self.link.close(end_session=True)
            try:
                self.redis.srem(self._replica_keys.members, self.share.replica)
                self.redis.delete(self._replica_keys.heartbeat(self.share.replica))
            except redis.RedisError as exc:
                log.warning("could not leave the replica group in Redis (%s)", exc)
        else:
            # A batch still held back was not acknowledged: the broker redelivers it.
            self.link.close()
        self._flush_stats()
        for engine in self.engines.values():
            engine.close()
        self.redis.close()

    def _receive(self, message: Received) -> bool:
        """paho's network thread: collect, and decide once nothing more is waiting."""
        self._batch.append(message)
        if len(self._batch) < MAX_BATCH and self.link.publish_waiting():
            return False  # acknowledged with its batch
        batch, self._batch = self._batch, []
        self._work(batch)
        return False

    def _now(self) -> float:
        """The wall clock live; in a replay, the latest event time seen (wall clock before any)."""
        clock = self._event_clock
        return time.time() if clock is None or clock.now is None else clock.now

    def _decide_timed(self, batch: list[Received], ticked: list[Outbound]) -> list[list[Outbound]]:
        """Decide ``batch`` at the wall clock's now; in a replay, each message at its own
        event time, after the ticks the events' clock passed (their prompts go to
        ``ticked``), so that batching (which depends on the replay's speed) changes nothing."""
        clock = self._event_clock
        if clock is None:
            return self._decide(batch, time.time())
        results: list[list[Outbound]] = []
        for message in batch:
            for t in clock.see(event_ts(message.payload)):
                for engine in self.engines.values():
                    ticked.extend(engine.tick(t))
            results.extend(self._decide([message], self._now()))
        return results

    def _decide(self, batch: list[Received], now: float) -> list[list[Outbound]]:
        """Each message by its store's engine, in order within each store."""
        if len(self.engines) == 1:
            return self.engine.handle_batch([(m.topic, m.payload) for m in batch], now)
        by_store: dict[str, list[int]] = {}
        for i, m in enumerate(batch):
            try:
                store = self.topics.parse(m.topic).store
            except ContractError:
                store = ""
            by_store.setdefault(store if store in self.engines else "", []).append(i)
        results: list[list[Outbound]] = [[] for _ in batch]
        for store, indexes in by_store.items():
            # An unknown store or a broken topic: the first engine rejects it (dead letter).
            engine = self.engines.get(store, self.engine)
            done = engine.handle_batch([(batch[i].topic, batch[i].payload) for i in indexes], now)
            for i, out in zip(indexes, done, strict=True):
                results[i] = out
        return results

    def _work(self, batch: list[Received], link: MqttLink | None = None) -> None:
        """Decide ``batch``, publish its prompts, and acknowledge it on ``link`` (the link it
        came from: our own, or a dead replica's adopted session)."""
        link = link or self.link
        delay = 0.05
        while True:
            try:
                with self._engine_lock:
                    # Prompts the broker confirmed since: their unsent copies go with this
                    # batch's writes (no round trip of their own, no pile-up for the tick).
                    self.engine.defer_sent(self._confirmed())
                    ticked: list[Outbound] = []
                    results = self._decide_timed(batch, ticked)
                break
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if self._stop.is_set():
                    return  # unacknowledged: the broker redelivers them to the next run
                log.warning("Redis at %s unreachable (%s); holding %d message(s), retry in %.1f s",
                            self.redis_url, exc, len(batch), delay)  # fmt: skip
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        for out in ticked:
            self._publish(out)
        for message, outbound in zip(batch, results, strict=True):
            for out in outbound:
                self._publish(out)
            link.ack(message)
        now = time.monotonic()
        if now - self._acked_at >= ACK_INTERVAL_S or any(
            e.acks_pending >= ACK_CHUNK for e in self.engines.values()
        ):
            self._send_acks(now)

    def _send_acks(self, now: float) -> None:
        """Tell producers which events are in Redis: they may drop them from their outboxes."""
        self._acked_at = now
        with self._engine_lock:
            acks = [out for e in self.engines.values() for out in e.take_acks(self._now())]
        for out in acks:
            self.link.publish(out.topic, out.payload, qos=out.qos, retain=out.retain)

    # -- replicas (shared subscription) ------------------------------------------------

    def _heartbeat(self) -> None:
        assert self.share is not None and self._replica_keys is not None
        try:
            self.redis.set(
                self._replica_keys.heartbeat(self.share.replica), "1", px=int(HEARTBEAT_TTL_S * 1000)
            )
        except redis.RedisError as exc:
            log.warning("replica heartbeat not written to Redis at %s (%s)", self.redis_url, exc)

    def _watch_peers(self) -> None:
        """Adopt the session of a member whose heartbeat expired (one survivor, by lock)."""
        assert self.share is not None and self._replica_keys is not None
        rk = self._replica_keys
        try:
            members = {m.decode() for m in self.redis.smembers(rk.members)}  # type: ignore[union-attr]
            for peer in sorted(members - {self.share.replica} - self._adopting):
                if self.redis.exists(rk.heartbeat(peer)):
                    continue
                if not self.redis.set(rk.adopting(peer), self.share.replica, nx=True, px=30_000):
                    continue  # another survivor is on it
                self._adopting.add(peer)
                threading.Thread(target=self._adopt, args=(peer,), name=f"adopt-{peer}", daemon=True).start()
        except redis.RedisError as exc:
            log.warning("could not check peer replicas in Redis at %s (%s)", self.redis_url, exc)

    def _adopt(self, peer: str) -> None:
        """Connect as ``peer``, handle what its session holds, leave the group, end it.

        If ``peer`` comes back meanwhile, its connect takes the session over and ours is
        dropped: the adoption stops there (no fight over the client id) and the session
        stays with its owner."""
        assert self.share is not None and self._replica_keys is not None
        rk = self._replica_keys
        last = [time.monotonic()]
        handled = [0]
        lost = threading.Event()

        def on_message(message: Received) -> bool:
            last[0] = time.monotonic()
            handled[0] += 1
            self._work([message], adopted)
            return False

        def quiet_for(seconds: float, deadline: float) -> bool:
            """Wait until nothing arrived for ``seconds``; False if the session was taken back."""
            while time.monotonic() - last[0] < seconds and time.monotonic() < deadline:
                if lost.wait(0.05):
                    return False
            return not lost.is_set()

        adopted = MqttLink(
            self._endpoints.mqtt_host,
            self._endpoints.mqtt_port,
            client_id=self.share.client_id(self._topic_prefix, peer),
            on_message=on_message,
            on_disconnect=lost.set,
            persistent_session=True,  # resume the dead replica's session, not a new one
            auth=self._auth,
        )
        try:
            if self.redis.exists(rk.heartbeat(peer)):
                return  # it came back between the check and the lock
            adopted.connect()
            log.warning("replica %s stopped beating; %s adopts its session", peer, self.share.replica)
            # Leave the group at once: the broker stops handing this session new events but
            # still delivers what it holds (measured on Mosquitto 2.0: in flight and queued).
            adopted.client.unsubscribe(self._filters)
            last[0] = time.monotonic()
            if not quiet_for(ADOPT_IDLE_S, time.monotonic() + 60.0):
                raise RuntimeError(f"replica {peer} took its session back")
            adopted.close(end_session=True)
            # Prompts it claimed but never published: nobody else will (a restart of ours
            # leaves a live peer's alone for a while).
            with self._engine_lock:
                dead = self.share.producer(peer)
                orphans = [o for e in self.engines.values() for o in e.unsent_prompts(self._now(), of=dead)]
            for out in orphans:
                self._publish(out)
            self.redis.srem(rk.members, peer)
            log.warning(
                "adopted replica %s: %d message(s) handled, %d of its prompts published, its session ended",
                peer,
                handled[0],
                len(orphans),
            )
        except Exception as exc:  # a failed adoption is tried again on the next watch
            log.error("adoption of replica %s stopped (%s)", peer, exc)
            adopted.close()
        finally:
            self._adopting.discard(peer)
            with contextlib.suppress(redis.RedisError):
                self.redis.delete(rk.adopting(peer))

    def _confirmed(self) -> list[tuple[str, str]]:
        """Take the prompts the broker has confirmed (PUBACK), oldest first; engine lock held."""
        sent = []
        while self._unsent and self._unsent[0][0].is_published():
            sent.append(self._unsent.popleft()[1])
        return sent

    def _after_publish(self) -> None:
        try:
            with self._engine_lock:
                self.engine.defer_sent(self._confirmed())
                for engine in self.engines.values():
                    engine.after_publish()
        except redis.RedisError as exc:
            log.warning("could not write prompt records to Redis at %s (%s)", self.redis_url, exc)

    def _tick(self) -> None:
        """Once a second: catalog hot reload, long-dwell checks, re-routing."""
        try:
            changed = [engine for engine in self.engines.values() if engine.catalog_changed()]
            with self._engine_lock:
                outbound = []
                for engine in changed:
                    engine.apply_catalog()
                if self._event_clock is None:  # a replay's ticks follow its events (_decide_timed)
                    for engine in self.engines.values():
                        outbound.extend(engine.tick(time.time()))
            for out in outbound:
                self._publish(out)
            self._after_publish()
        except redis.RedisError as exc:
            log.warning("tick skipped: Redis at %s unreachable (%s)", self.redis_url, exc)

    def _flush_stats(self) -> None:
        """Write the engines' counters; only taking them holds the engine lock. A failed
        write puts them back, for the next flush."""
        with self._engine_lock:
            taken = [(engine, engine.take_stats()) for engine in self.engines.values()]
        for engine, counts in taken:
            try:
                engine.write_stats(counts)
            except redis.RedisError as exc:
                with self._engine_lock:
                    engine.counters.update(counts)
                log.warning("could not write stats to Redis at %s (%s); kept for later", self.redis_url, exc)
