"""A producer's MQTT side: the gateway (or POS adapter) publishing contract events.

A gateway publishes a retained ``online`` status when it connects, sets a last will of a
retained ``offline`` status (so the broker says it for a gateway that dies), heartbeats
its status, and says ``offline`` itself on a clean stop. Every event goes through the
contract (:class:`EnvelopeSource` gives ids and sequence numbers, :func:`encode` enforces
the size limit); simulators use this same class, so they publish exactly what real
devices publish.

With an :class:`~edge_agent.outbox.Outbox` (the edge agent always has one; simulators and
benchmarks may go without), presence, footfall and checkout events are written to disk
first and sent by a drain loop in row order; the recommender's acknowledgements delete
them, and its retained erasure notices remove a member's waiting events.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Final, Literal

import paho.mqtt.client as mqtt

from broker_config.contract import (
    SPECS,
    BleReport,
    CheckoutEvent,
    ContractError,
    Envelope,
    EnvelopeSource,
    ErasureNotice,
    EventAck,
    FootfallEvent,
    GatewayStatus,
    PresenceEvent,
    SensorHealth,
    TopicKind,
    Topics,
    decode,
    encode,
)
from edge_agent.outbox import Kind, Outbox
from floorwalker import __version__
from floorwalker.mqtt import MqttAuth, MqttLink, Received, Will

log = logging.getLogger(__name__)

#: Events sent but not yet acknowledged, at most (the drain waits for acks beyond it).
WINDOW: Final = 500
#: Without an ack for this long, everything unacknowledged is sent again, in order.
RESEND_AFTER_S: Final = 10.0
#: How often the drain loop looks at the outbox when nothing woke it.
DRAIN_POLL_S: Final = 0.5


class EdgePublisher:
    """One producer's connection. ``status=True`` for gateways (retained status + last will)."""

    def __init__(
        self,
        store: str,
        producer: str,
        mqtt_host: str,
        mqtt_port: int,
        *,
        topics: Topics,
        status: bool = True,
        start_seq: int = 0,
        outbox: Outbox | None = None,
        auth: MqttAuth | None = None,
        client_id: str | None = None,
    ) -> None:
        self.store = store
        self.producer = producer
        self.topics = topics
        self._source = EnvelopeSource(producer, start_seq=start_seq)
        #: Cameras publish from their own threads: one event id/seq and publish at a time,
        #: so seq numbers are unique and leave in order.
        self._lock = threading.RLock()
        self._status_topic = topics.status(store, producer) if status else None
        self._started_at = 0.0
        self.outbox = outbox
        subscriptions: list[tuple[str, int]] = []
        if outbox is not None:
            subscriptions = [
                (topics.ack(store, producer), 1),
                (topics.subscription(TopicKind.ERASURE, store), 1),
            ]
        self.link = MqttLink(
            mqtt_host,
            mqtt_port,
            client_id=f"{topics.prefix.replace('/', '-')}{client_id or producer}",
            subscriptions=subscriptions,
            on_message=self._control if outbox is not None else None,
            auth=auth,
        )
        # Drain state (under the lock): the last row handed to the link since the cursor
        # was last reset, and the rows in flight (event id -> row id).
        self._cursor = 0
        self._inflight: dict[str, int] = {}
        self._last_progress = 0.0
        self._was_connected = False
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._drainer: threading.Thread | None = None

    def start(self, now: float) -> None:
        self._started_at = now
        if self._status_topic is not None:
            # The broker publishes this if we vanish without a DISCONNECT.
            offline = self._status("offline", now, "connection lost")
            self.link.set_will(Will(self._status_topic, encode(offline), qos=1, retain=True))
        self.link.connect()
        self.heartbeat(now)
        if self.outbox is not None:
            self._was_connected = self.link.connected  # rows left from a last run: cursor is 0
            self._drainer = threading.Thread(
                target=self._drain_loop, name=f"outbox-{self.producer}", daemon=True
            )
            self._drainer.start()

    def heartbeat(self, now: float, detail: str = "", sensors: Sequence[SensorHealth] = ()) -> None:
        if self.outbox is not None:
            # The disk policy runs at each heartbeat; what it removed shows in this status.
            removed = {k: v for k, v in self.outbox.enforce(now).items() if v}
            if removed:
                log.warning("outbox over its policy, removed %s (counted in the status)", removed)
        self._publish_status("online", now, detail, sensors)

    def stop(self, now: float, timeout: float = 5.0) -> None:
        """Say ``offline`` (retained), wait for it to leave, then disconnect cleanly.

        Unacknowledged events stay in the outbox for the next start."""
        self._stopping.set()
        self._wake.set()
        if self._drainer is not None:
            self._drainer.join(timeout)
        info = self._publish_status("offline", now, "stopped")
        if info is not None and self.link.connected:
            info.wait_for_publish(timeout)
        self.link.close()

    def presence(self, zone: str, member: str, action: Literal["enter", "leave"], ts: float) -> str:
        with self._lock:
            event = self._source.make(PresenceEvent, ts, member=member, action=action)
            self._emit("presence", self.topics.presence(self.store, zone), event, member)
        return event.event_id

    def footfall(
        self,
        zone: str,
        ts: float,
        *,
        window_s: float,
        entered: int,
        exited: int,
        occupancy: int,
        queue_length: int | None = None,
        dwell_avg_s: float | None = None,
        lane_queues: dict[str, int] | None = None,
    ) -> str:
        with self._lock:
            event = self._source.make(
                FootfallEvent,
                ts,
                window_s=window_s,
                entered=entered,
                exited=exited,
                occupancy=occupancy,
                queue_length=queue_length,
                dwell_avg_s=dwell_avg_s,
                lane_queues=lane_queues,
            )
            self._emit("footfall", self.topics.footfall(self.store, zone), event, None)
        return event.event_id

    def checkout(self, lane: str, ts: float, *, member: str | None, items: list[dict[str, object]]) -> str:
        total = sum(int(str(item["amount_cents"])) for item in items)
        with self._lock:
            event = self._source.make(CheckoutEvent, ts, member=member, items=items, total_cents=total)
            self._emit("checkout", self.topics.checkout(self.store, lane), event, member)
        return event.event_id

    def ble_report(self, ts: float, window_s: float, sightings: list[dict[str, object]]) -> str:
        """A batch of BLE sightings (ephemeral ids only) on this gateway's ``ble`` topic."""
        qos = SPECS[TopicKind.BLE].qos
        with self._lock:
            event = self._source.make(BleReport, ts, window_s=window_s, sightings=sightings)
            self.link.publish(self.topics.ble(self.store, self.producer), encode(event), qos=qos)
        return event.event_id

    # -- store and forward ---------------------------------------------------------------

    def _emit(self, kind: Kind, topic: str, event: Envelope, member: str | None) -> None:
        """Called under the lock: on disk first (with an outbox), then sent in row order."""
        data = encode(event)
        if self.outbox is None:
            self.link.publish(topic, data)
            return
        self.outbox.add(event.event_id, kind, topic, data, event.ts, member)
        self._send_more()

    def _send_more(self) -> None:
        """Under the lock: hand the link the next rows after the cursor, within the window."""
        assert self.outbox is not None
        if not self.link.connected:
            return
        room = WINDOW - len(self._inflight)
        if room <= 0:
            return
        for row in self.outbox.after(self._cursor, room):
            self.link.publish(row.topic, row.payload)
            self._inflight[row.event_id] = row.id
            self._cursor = row.id

    def _drain_loop(self) -> None:
        assert self.outbox is not None
        while not self._stopping.is_set():
            self._wake.wait(DRAIN_POLL_S)
            self._wake.clear()
            now = time.monotonic()
            with self._lock:
                connected = self.link.connected
                stalled = self._inflight and now - self._last_progress > RESEND_AFTER_S
                if connected and (not self._was_connected or stalled):
                    # Back from an outage, or acks stopped coming: everything not yet
                    # acknowledged goes again, oldest first.
                    self._cursor = 0
                    self._inflight.clear()
                    self._last_progress = now
                self._was_connected = connected
                if not self._inflight:
                    self._last_progress = now
                self._send_more()

    def _control(self, message: Received) -> bool:
        """paho's thread: an ack or an erasure notice for this producer's outbox."""
        assert self.outbox is not None
        try:
            body = decode(self.topics, message.topic, message.payload).payload
        except ContractError as exc:
            log.warning("ignored a control message on %s: %s", message.topic[:200], exc)
            return True
        if isinstance(body, EventAck):
            self.outbox.ack(body.event_ids)
            with self._lock:
                for event_id in body.event_ids:
                    self._inflight.pop(event_id, None)
                self._last_progress = time.monotonic()
            self._wake.set()
        elif isinstance(body, ErasureNotice):
            removed = self.outbox.erase(body.member)
            if removed:
                log.info("erased %d waiting event(s) of an erased member", removed)
        return True

    def _publish_status(
        self,
        state: Literal["online", "offline"],
        now: float,
        detail: str,
        sensors: Sequence[SensorHealth] = (),
    ) -> mqtt.MQTTMessageInfo | None:
        if self._status_topic is None:
            return None
        with self._lock:
            status = self._status(state, now, detail, sensors)
            return self.link.publish(self._status_topic, encode(status), qos=1, retain=True)

    def _status(
        self,
        state: Literal["online", "offline"],
        now: float,
        detail: str,
        sensors: Sequence[SensorHealth] = (),
    ) -> GatewayStatus:
        return self._source.make(
            GatewayStatus,
            now,
            state=state,
            software=__version__,
            uptime_s=max(0.0, now - self._started_at),
            detail=detail[:300],
            sensors=list(sensors),
            outbox=self.outbox.health(now) if self.outbox is not None else None,
        )
