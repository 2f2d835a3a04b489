"""Record a store's live MQTT traffic into the trace format, for replay and evaluation.

The recorder subscribes to everything under the store's topic root (or given filters) and
writes each message as it arrives: receive time, topic (without the topic prefix), QoS,
retain flag and the exact payload bytes. Writes happen on paho's network thread, one line
per message, flushed about once a second so a killed recorder loses little.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from broker_config.contract import TOPIC_ROOT
from floorwalker.mqtt import MqttAuth, MqttLink, Received
from simulators.evaluate import Output
from simulators.trace import Header, TraceLine, TraceWriter


class Recorder:
    def __init__(
        self,
        path: Path,
        store: str,
        mqtt_host: str,
        mqtt_port: int,
        *,
        topic_prefix: str = "",
        filters: Sequence[str] = (),
        auth: MqttAuth | None = None,
    ) -> None:
        self.prefix = topic_prefix
        self.filters = list(filters) or [f"{topic_prefix}{TOPIC_ROOT}/{store}/#"]
        self.writer = TraceWriter(path, Header(store, "record", time.time(), {"filters": self.filters}))
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()
        self.count = 0
        self.link = MqttLink(
            mqtt_host,
            mqtt_port,
            client_id=f"recorder-{uuid.uuid4().hex[:8]}",
            subscriptions=[(f, 1) for f in self.filters],
            on_message=self._on_message,
            auth=auth,
        )

    def start(self) -> None:
        self.link.connect()

    def _on_message(self, msg: Received) -> bool:
        topic = msg.topic.removeprefix(self.prefix)
        with self._lock:
            self.writer.write(TraceLine(time.time(), topic, msg.payload, msg.qos, False))
            self.count += 1
            if time.monotonic() - self._last_flush > 1.0:
                self.writer.flush()
                self._last_flush = time.monotonic()
        return True

    def stop(self) -> None:
        self.link.close()
        with self._lock:
            self.writer.close()


class Capture:
    """Keeps what the system publishes (prompts, dead letters) in memory with arrival times,
    for an evaluation run that replays and listens at once."""

    def __init__(
        self, mqtt_host: str, mqtt_port: int, filters: Sequence[str], *, auth: MqttAuth | None = None
    ) -> None:
        self.outputs: list[Output] = []
        self._lock = threading.Lock()
        self.last_arrival = time.monotonic()
        self.link = MqttLink(
            mqtt_host,
            mqtt_port,
            client_id=f"capture-{uuid.uuid4().hex[:8]}",
            subscriptions=[(f, 1) for f in filters],
            on_message=self._on_message,
            auth=auth,
        )

    def _on_message(self, msg: Received) -> bool:
        with self._lock:
            self.outputs.append(Output(time.time(), msg.topic, msg.payload))
            self.last_arrival = time.monotonic()
        return True

    def start(self) -> None:
        self.link.connect()

    def settle(self, quiet_s: float, timeout: float) -> None:
        """Wait until nothing arrived for ``quiet_s`` (or ``timeout`` passed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and time.monotonic() - self.last_arrival < quiet_s:
            time.sleep(0.05)

    def stop(self) -> None:
        self.link.close()
