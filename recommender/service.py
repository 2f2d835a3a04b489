"""The recommender process: the MQTT and Redis shell around :class:`Recommender`.

Consumes with QoS 1 on a persistent session, so the broker keeps events while the
recommender restarts. A message is acknowledged only after it was handled and its prompt
handed to the client for publishing: while Redis is unreachable the service retries with
back-off and holds the messages rather than drop them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import paho.mqtt.client as mqtt
import redis

from broker_config.contract import Topics
from floorwalker.config import Endpoints, StoreConfig
from floorwalker.errors import ServiceUnavailable
from floorwalker.mqtt import MqttLink, Received
from recommender.crm import CrmModel, load_into_redis, read_crm
from recommender.engine import Outbound, Recommender
from recommender.keys import Keys

log = logging.getLogger(__name__)

STATS_INTERVAL_S = 1.0
#: Most messages decided in one Redis round trip.
MAX_BATCH = 64


def connect_redis(url: str) -> redis.Redis:
    """A Redis client that answered PING, or one line saying where Redis was expected."""
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3, health_check_interval=30)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ServiceUnavailable(
            f"cannot reach Redis at {url} ({exc}): start it with `floorwalker services up` "
            "or point --redis-url at a running Redis"
        ) from None
    return client


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
        config: StoreConfig,
        endpoints: Endpoints,
        *,
        topic_prefix: str = "",
        key_prefix: str = "",
        client_id: str = "recommender",
        load_crm: bool = True,
    ) -> None:
        self.redis_url = endpoints.redis_url
        self.redis = connect_redis(endpoints.redis_url)
        self.keys = Keys(config.store, key_prefix)
        model: CrmModel | None = None
        if load_crm and config.crm is not None:
            imported = read_crm(config.crm)
            for problem in imported.errors:
                log.error("CRM row skipped: %s", problem)
            model = load_into_redis(self.redis, self.keys, imported.members, time.time())
            log.info(
                "loaded %d CRM members from %s (%d rows skipped; CLV params %s)",
                len(imported.members),
                config.crm,
                len(imported.errors),
                "fitted" if model.clv.fitted else "CDNOW prior",
            )
        self.engine = Recommender(
            config, self.redis, Topics(topic_prefix), self.keys, producer=client_id, model=model
        )
        self._batch: list[Received] = []
        #: Claimed prompts handed to paho, until the broker confirms them (then mark_sent).
        self._unsent: deque[tuple[mqtt.MQTTMessageInfo, tuple[str, str]]] = deque()
        #: Held while the engine runs (network thread) and while its counters are flushed.
        self._engine_lock = threading.Lock()
        self._stop = threading.Event()
        self.link = MqttLink(
            endpoints.mqtt_host,
            endpoints.mqtt_port,
            client_id=f"{topic_prefix.replace('/', '-')}{client_id}",
            subscriptions=self.engine.subscriptions(),
            on_message=self._receive,
            on_disconnect=self._batch.clear,  # held messages come again with the session
            persistent_session=True,
        )

    def start(self) -> None:
        self.link.connect()
        # Prompts a previous run claimed but the broker never confirmed: send them now.
        with self._engine_lock:
            recovered = self.engine.unsent_prompts(time.time())
        for out in recovered:
            self._publish(out)
        if recovered:
            log.info("published %d prompt(s) claimed before a restart", len(recovered))

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
                self._tick()
                self._flush_stats()
        finally:
            self.close()

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        # A batch still held back was not acknowledged: the broker redelivers it.
        self.link.close()
        self._flush_stats()
        self.redis.close()

    def _receive(self, message: Received) -> bool:
        """paho's network thread: collect, and decide once nothing more is waiting."""
        self._batch.append(message)
        if len(self._batch) < MAX_BATCH and self.link.publish_waiting():
            return False  # acknowledged with its batch
        batch, self._batch = self._batch, []
        self._work(batch)
        return False

    def _work(self, batch: list[Received]) -> None:
        delay = 0.05
        while True:
            try:
                with self._engine_lock:
                    results = self.engine.handle_batch([(m.topic, m.payload) for m in batch], time.time())
                break
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if self._stop.is_set():
                    return  # unacknowledged: the broker redelivers them to the next run
                log.warning("Redis at %s unreachable (%s); holding %d message(s), retry in %.1f s",
                            self.redis_url, exc, len(batch), delay)  # fmt: skip
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        for message, outbound in zip(batch, results, strict=True):
            for out in outbound:
                self._publish(out)
            self.link.ack(message)
        # The batch's Redis updates committed: producers may drop these events from their outboxes.
        for out in self.engine.take_acks(time.time()):
            self.link.publish(out.topic, out.payload, qos=out.qos, retain=out.retain)

    def _after_publish(self) -> None:
        sent = []
        while self._unsent and self._unsent[0][0].is_published():
            sent.append(self._unsent.popleft()[1])
        try:
            with self._engine_lock:
                self.engine.mark_sent(sent)
                self.engine.after_publish()
        except redis.RedisError as exc:
            log.warning("could not write prompt records to Redis at %s (%s)", self.redis_url, exc)

    def _tick(self) -> None:
        """Once a second: catalog hot reload, long-dwell checks, re-routing."""
        try:
            with self._engine_lock:
                self.engine.reload_catalog()
                outbound = self.engine.tick(time.time())
            for out in outbound:
                self._publish(out)
            self._after_publish()
        except redis.RedisError as exc:
            log.warning("tick skipped: Redis at %s unreachable (%s)", self.redis_url, exc)

    def _flush_stats(self) -> None:
        try:
            with self._engine_lock:
                self.engine.flush_stats()
        except redis.RedisError as exc:
            log.warning("could not write stats to Redis at %s (%s)", self.redis_url, exc)
