"""One MQTT connection with a clear lifecycle (MQTT v5, paho-mqtt).

``MqttLink.connect()`` either returns connected or raises one line that names the broker
URL and what to do. Subscriptions are renewed on every reconnect; paho reconnects with
back-off by itself. A last will (for gateways: a retained ``offline`` status) is set
with :meth:`MqttLink.set_will` before connecting.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from floorwalker.errors import ConfigError, ServiceUnavailable

log = logging.getLogger(__name__)

#: CONNACK reasons that mean the login itself was refused (MQTT v5 reason strings).
_LOGIN_REFUSED = frozenset({"Not authorized", "Bad user name or password"})

#: How long the broker keeps a persistent session (and queues QoS 1 messages for it).
SESSION_EXPIRY_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    mid: int
    qos: int


#: Called on paho's network thread; returns True to acknowledge at once. On False the
#: owner acknowledges later with :meth:`MqttLink.ack`, or never: an unacknowledged message
#: is redelivered by the broker when the (persistent) session reconnects.
MessageHandler = Callable[[Received], bool]


@dataclass(frozen=True)
class MqttAuth:
    """A device's broker login, and the store CA when the broker speaks TLS."""

    username: str
    password: str
    ca_file: Path | None = None
    #: The CA certificate itself (PEM), as a credentials file carries it; wins over ca_file.
    ca_pem: str | None = None

    @property
    def tls(self) -> bool:
        return self.ca_pem is not None or self.ca_file is not None


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


def shared_missing(why: str) -> str:
    return (
        f"shared subscriptions ($share/<group>/...) are needed for recommender replicas and {why}: "
        "use an MQTT v5 broker with shared subscriptions (Mosquitto >= 2.0, EMQX, HiveMQ, VerneMQ) "
        "or run one replica without --share-group"
    )


class MqttLink:
    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        *,
        subscriptions: Sequence[tuple[str, int]] = (),
        on_message: MessageHandler | None = None,
        on_disconnect: Callable[[], None] | None = None,
        persistent_session: bool = False,
        keepalive: int = 30,
        auth: MqttAuth | None = None,
    ) -> None:
        tls = auth is not None and auth.tls
        self._username = auth.username if auth is not None else None
        self.url = f"{'mqtts' if tls else 'mqtt'}://{host}:{port}"
        self._host, self._port, self._keepalive = host, port, keepalive
        self._subscriptions = list(subscriptions)
        self._handler = on_message
        self._disconnect_hook = on_disconnect
        self._persistent = persistent_session
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._subscribe_mid: int | None = None
        self._refused: str | None = None
        #: Publishes the broker answered with a failure (an ACL refusal: "Not authorized"),
        #: by reason; a gateway reports them in its status.
        self.refused_publishes: Counter[str] = Counter()
        #: What the broker lacks that our subscriptions need (shared subscriptions).
        self._missing: str | None = None
        self._shared = any(f.startswith("$share/") for f, _ in self._subscriptions)
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,  # acknowledge only what was handled
        )
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_inflight_messages_set(200)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        client.on_socket_open = self._on_socket_open
        if auth is not None:
            client.username_pw_set(auth.username, auth.password)
            # An expired CA is one clear line here, not a failed handshake later.
            if auth.ca_pem is not None:
                from floorwalker.tls import check_certificate_pem

                source = f"the store CA in {auth.username}'s credentials"
                check_certificate_pem(auth.ca_pem, source, dt.datetime.now(dt.UTC))
                client.tls_set_context(ssl.create_default_context(cadata=auth.ca_pem))
            elif auth.ca_file is not None:
                from floorwalker.tls import check_certificate

                check_certificate(auth.ca_file, dt.datetime.now(dt.UTC))
                client.tls_set(ca_certs=str(auth.ca_file))
        self.client = client

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def set_will(self, will: Will) -> None:
        """Set the last will; takes effect at the next connect."""
        self.client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)

    def connect(self, timeout: float = 10.0) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S if self._persistent else 0
        try:
            self.client.connect(
                self._host,
                self._port,
                keepalive=self._keepalive,
                clean_start=not self._persistent,
                properties=props,
            )
        except OSError as exc:
            raise ServiceUnavailable(
                f"cannot reach the MQTT broker at {self.url} ({exc.strerror or exc}): "
                "start it with `floorwalker services up` or point --mqtt-url at a running broker"
            ) from None
        self.client.loop_start()
        if not self._connected.wait(timeout) or self._refused:
            self.client.loop_stop()
            why = self._refused or f"no CONNACK within {timeout:.0f} s"
            if self._refused in _LOGIN_REFUSED:
                # Retrying will not help: the credentials are wrong or revoked.
                who = f"as {self._username!r}" if self._username else "without credentials"
                raise ConfigError(
                    f"MQTT broker at {self.url} refused our login {who} ({why}): "
                    "check --mqtt-credentials, or provision this device again with `floorwalker provision`"
                )
            raise ServiceUnavailable(f"MQTT broker at {self.url} refused the connection: {why}")
        # Return only once the broker confirmed our subscriptions: from here on nothing
        # published to them is missed.
        if self._subscriptions and not self._subscribed.wait(timeout):
            self.client.loop_stop()
            raise ServiceUnavailable(f"MQTT broker at {self.url} did not confirm our subscriptions")
        if self._missing:
            # No silent fallback: a broker without shared subscriptions would hand every
            # replica every event (or none); the operator must pick another broker.
            self.client.disconnect()
            self.client.loop_stop()
            raise ConfigError(f"MQTT broker at {self.url}: {self._missing}")

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=qos, retain=retain)

    def publish_waiting(self) -> bool:
        """True if the next packet already waiting on the socket is a PUBLISH.

        Called from a message handler: paho will read that packet and call the handler
        again straight away, so the handler may hold this message back and handle both
        together. (A plain TCP socket only; with TLS the answer is always False.)
        """
        sock = self.client.socket()
        if not isinstance(sock, socket.socket) or isinstance(sock, ssl.SSLSocket):
            return False
        try:
            head = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except OSError:
            return False
        return bool(head) and head[0] & 0xF0 == 0x30  # MQTT control packet type 3: PUBLISH

    def ack(self, message: Received) -> None:
        """Acknowledge a message whose handler returned False (thread-safe, like publish)."""
        self.client.ack(message.mid, message.qos)

    def close(self, timeout: float = 5.0, *, end_session: bool = False) -> None:
        """Disconnect cleanly (no last will) after queued publishes are sent.

        ``end_session``: tell the broker to drop our persistent session now (MQTT v5
        DISCONNECT with SessionExpiryInterval 0), e.g. so a shared subscription stops
        counting this client among its members."""
        if self._connected.is_set():
            props = None
            if end_session:
                props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
                props.SessionExpiryInterval = 0
            self.client.disconnect(properties=props)
        self.client.loop_stop()

    # -- paho callbacks (run on paho's network thread) ----------------------------------

    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            self._connected.set()
            return
        self._refused = None
        if self._shared and getattr(_props, "SharedSubscriptionAvailable", 1) == 0:
            self._missing = shared_missing("its CONNACK says SharedSubscriptionAvailable=0")
            self._subscribed.set()
            self._connected.set()
            return
        if self._subscriptions:
            _, self._subscribe_mid = client.subscribe(self._subscriptions)
        log.info("connected to %s", self.url)
        self._connected.set()

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        self._connected.clear()
        if self._disconnect_hook is not None:
            self._disconnect_hook()
        if reason.is_failure:
            log.warning("lost the MQTT broker at %s (%s); reconnecting", self.url, reason)

    @staticmethod
    def _on_socket_open(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
        # paho leaves Nagle's algorithm on: a small publish would then wait for the peer's
        # delayed ACK (~40 ms). Prompts are small and latency is the product.
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _on_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reason: ReasonCode, _props: Any
    ) -> None:
        if not reason.is_failure:
            return
        why = str(reason)
        self.refused_publishes[why] += 1
        n = self.refused_publishes[why]
        if n == 1 or n % 1000 == 0:  # say it, without a line per message
            log.warning(
                "MQTT broker at %s refused a publish (%s; %d so far): check this device's ACL",
                self.url,
                why,
                n,
            )

    def refused_summary(self) -> str:
        """One status phrase for refused publishes ("" when there were none)."""
        if not self.refused_publishes:
            return ""
        parts = ", ".join(f"{n} {why}" for why, n in sorted(self.refused_publishes.items()))
        return f"broker refused publishes: {parts}"

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reasons: list[ReasonCode], _props: Any
    ) -> None:
        if mid != self._subscribe_mid:
            return
        refused = [str(r) for r in reasons if r.is_failure]
        shared_refused = [
            f"{f} ({r})" for (f, _), r in zip(self._subscriptions, reasons, strict=False)
            if r.is_failure and f.startswith("$share/")
        ]  # fmt: skip
        if shared_refused:
            self._missing = shared_missing(f"it refused {', '.join(shared_refused)}")
            log.error("MQTT broker at %s: %s", self.url, self._missing)
        elif refused:
            log.error("MQTT broker at %s refused a subscription: %s", self.url, ", ".join(refused))
        self._subscribed.set()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        received = Received(msg.topic, bytes(msg.payload), msg.mid, msg.qos)
        if self._handler is None or self._handler(received):
            self.client.ack(msg.mid, msg.qos)
