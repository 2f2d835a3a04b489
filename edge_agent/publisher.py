"""A producer's MQTT side: the gateway (or POS adapter) publishing contract events.

A gateway publishes a retained ``online`` status when it connects, sets a last will of a
retained ``offline`` status (so the broker says it for a gateway that dies), heartbeats
its status, and says ``offline`` itself on a clean stop. Every event goes through the
contract (:class:`EnvelopeSource` gives ids and sequence numbers, :func:`encode` enforces
the size limit); simulators use this same class, so they publish exactly what real
devices publish.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Literal

import paho.mqtt.client as mqtt

from broker_config.contract import (
    SPECS,
    BleReport,
    CheckoutEvent,
    EnvelopeSource,
    FootfallEvent,
    GatewayStatus,
    PresenceEvent,
    SensorHealth,
    TopicKind,
    Topics,
    encode,
)
from floorwalker import __version__
from floorwalker.mqtt import MqttLink, Will


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
        client_id = client_id or producer
        self.link = MqttLink(mqtt_host, mqtt_port, client_id=f"{topics.prefix.replace('/', '-')}{client_id}")

    def start(self, now: float) -> None:
        self._started_at = now
        if self._status_topic is not None:
            # The broker publishes this if we vanish without a DISCONNECT.
            offline = self._status("offline", now, "connection lost")
            self.link.set_will(Will(self._status_topic, encode(offline), qos=1, retain=True))
        self.link.connect()
        self.heartbeat(now)

    def heartbeat(self, now: float, detail: str = "", sensors: Sequence[SensorHealth] = ()) -> None:
        self._publish_status("online", now, detail, sensors)

    def stop(self, now: float, timeout: float = 5.0) -> None:
        """Say ``offline`` (retained), wait for it to leave, then disconnect cleanly."""
        info = self._publish_status("offline", now, "stopped")
        if info is not None and self.link.connected:
            info.wait_for_publish(timeout)
        self.link.close()

    def presence(self, zone: str, member: str, action: Literal["enter", "leave"], ts: float) -> str:
        with self._lock:
            event = self._source.make(PresenceEvent, ts, member=member, action=action)
            self.link.publish(self.topics.presence(self.store, zone), encode(event))
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
            self.link.publish(self.topics.footfall(self.store, zone), encode(event))
        return event.event_id

    def checkout(self, lane: str, ts: float, *, member: str | None, items: list[dict[str, object]]) -> str:
        total = sum(int(str(item["amount_cents"])) for item in items)
        with self._lock:
            event = self._source.make(CheckoutEvent, ts, member=member, items=items, total_cents=total)
            self.link.publish(self.topics.checkout(self.store, lane), encode(event))
        return event.event_id

    def ble_report(self, ts: float, window_s: float, sightings: list[dict[str, object]]) -> str:
        """A batch of BLE sightings (ephemeral ids only) on this gateway's ``ble`` topic."""
        qos = SPECS[TopicKind.BLE].qos
        with self._lock:
            event = self._source.make(BleReport, ts, window_s=window_s, sightings=sightings)
            self.link.publish(self.topics.ble(self.store, self.producer), encode(event), qos=qos)
        return event.event_id

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
        )
