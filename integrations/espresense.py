"""ESPresense receivers as Floorwalker gateways: their MQTT sightings in, our BLE reports out.

A store that already has ESP32 nodes running ESPresense keeps them. Each node (an
ESPresense *room*) publishes, per device it hears, JSON on
``<base_topic>/devices/<id>/<room>`` (fields written by ESPresense's
``BleFingerprint::fill``: ``id``, ``idType``, ``rssi@1m``, ``rssi``, ``raw``, ``distance``,
``mac``, ...), and its availability on ``<base_topic>/rooms/<room>/status``. This bridge maps
each room to one of our gateway ids (:class:`EspresenseConfig`), and publishes for that
gateway exactly what one of our own gateways publishes: a retained ``online`` status with an
``offline`` last will, and rate-limited :class:`~broker_config.contract.BleReport` batches of
rotating ids, built by the same :class:`~edge_agent.ble.sightings.SightingTable`.

**How a member's rotating id reaches ESPresense.** ESPresense does not report the bytes of
manufacturer data (our own member frame becomes ``md:ffff:<len>``, the same for every
phone). It reports an iBeacon faithfully, as ``iBeacon:<uuid>-<major>-<minor>``. So the
member app, where it runs beside ESPresense receivers, advertises an iBeacon whose proximity
UUID is the fixed 8-byte prefix :data:`MEMBER_UUID_PREFIX` followed by the 8-byte ephemeral
id of the current window, major ``0``, and minor the motion hint (``0`` none, ``1`` still,
``2`` walking); see :func:`member_ibeacon_id`. (An iPhone app can advertise an iBeacon; it
cannot advertise arbitrary manufacturer data.) Only ids of exactly that shape are used;
everything else (MAC addresses, ``name:``, ``md:``, ``apple:``, ``msft:``, other iBeacons) is
refused and counted by reason, and no id, MAC or name is ever logged or republished.

Distances are our own, from the gateway's calibration (``gateways[].ble``) and the RSSI
ESPresense heard, not ESPresense's ``distance``, so the fuser's model holds for every gateway.
ESPresense messages carry no time: a sighting is dated when the bridge receives it.
Pure core (:class:`ReceiverCore`, time passed in), thin MQTT shell (:class:`EspresenseBridge`).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from broker_config.contract import Topics
from edge_agent.ble.frames import encode_member_advert
from edge_agent.ble.sightings import Advert, Sighting, SightingTable
from edge_agent.publisher import EdgePublisher
from floorwalker.config import StoreConfig, load_model
from floorwalker.errors import ConfigError
from floorwalker.mqtt import MqttAuth, MqttLink, Received

log = logging.getLogger(__name__)

#: The first 8 bytes of the member app's iBeacon proximity UUID: ``FW``, version 1, zeros.
MEMBER_UUID_PREFIX: Final = b"FW\x01\x00\x00\x00\x00\x00"
#: The iBeacon minor: the motion hint (the iBeacon major is 0, reserved).
MINOR_NO_HINT: Final = 0
MINOR_STILL: Final = 1
MINOR_WALKING: Final = 2
#: Sightings per report (the contract allows 200), as the edge agent.
MAX_SIGHTINGS: Final = 200
#: How often the bridge's counters are logged.
STATS_EVERY_S: Final = 60.0
PRODUCER: Final = "espresense"

_IBEACON = re.compile(
    r"^iBeacon:([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})-(\d{1,5})-(\d{1,5})$"
)

RoomName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
GatewayId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class EspresenseConfig(BaseModel):
    """Which ESPresense room stands for which of our gateways (a YAML file of its own)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ESPresense's "MQTT base topic" setting (``espresense`` unless changed on the nodes).
    base_topic: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_/-]{1,100}$")] = "espresense"
    #: ESPresense room name -> gateway id of the store config; one room per gateway.
    rooms: dict[RoomName, GatewayId] = Field(min_length=1)
    #: Seconds between a gateway's status heartbeats.
    heartbeat_s: float = Field(default=30.0, gt=0, le=3600)


def load_espresense_config(path: Path, store: StoreConfig) -> EspresenseConfig:
    """Read the room map; a :class:`ConfigError` names the file, the key and the problem."""
    config = load_model(path, EspresenseConfig, "ESPresense config")
    known = {g.id for g in store.gateways}
    taken: dict[str, str] = {}
    for room, gateway in config.rooms.items():
        if gateway not in known:
            raise ConfigError(
                f"{path}: rooms.{room}: gateway {gateway!r} is not in store {store.store!r} "
                f"(known: {', '.join(sorted(known))})"
            )
        if gateway in taken:
            raise ConfigError(
                f"{path}: rooms.{room}: gateway {gateway!r} already stands for room {taken[gateway]!r}"
            )
        taken[gateway] = room
    return config


class Refusal(StrEnum):
    """Why a message did not become a sighting (the counter it goes to)."""

    NOT_JSON = "not_json"
    NO_RSSI = "no_rssi"
    UNKNOWN_ROOM = "unknown_room"
    NOT_MEMBER = "not_member"
    BAD_MEMBER_ID = "bad_member_id"
    BAD_TOPIC = "bad_topic"


class Refused(Exception):
    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason.value)
        self.reason = reason


def member_ibeacon_id(eid: bytes, moving: bool | None = None) -> str:
    """The id ESPresense reports for the member app's iBeacon carrying ``eid``."""
    if len(eid) != 8:
        raise ValueError("an ephemeral id is 8 bytes")
    h = (MEMBER_UUID_PREFIX + eid).hex()
    minor = MINOR_NO_HINT if moving is None else (MINOR_WALKING if moving else MINOR_STILL)
    return f"iBeacon:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}-0-{minor}"


def decode_member_id(device_id: str) -> tuple[bytes, bool | None]:
    """``(ephemeral id, motion hint)`` from an ESPresense device id; :class:`Refused` when it
    is not the member app's iBeacon (``not_member``) or is one of a shape we do not know."""
    m = _IBEACON.match(device_id)
    if m is None:
        raise Refused(Refusal.NOT_MEMBER)
    raw = bytes.fromhex("".join(m.group(1, 2, 3, 4, 5)))
    if raw[:8] != MEMBER_UUID_PREFIX:
        raise Refused(Refusal.NOT_MEMBER if raw[:2] != MEMBER_UUID_PREFIX[:2] else Refusal.BAD_MEMBER_ID)
    major, minor = int(m.group(6)), int(m.group(7))
    if major != 0 or minor not in (MINOR_NO_HINT, MINOR_STILL, MINOR_WALKING):
        raise Refused(Refusal.BAD_MEMBER_ID)
    return raw[8:], None if minor == MINOR_NO_HINT else minor == MINOR_WALKING


class ReceiverCore:
    """ESPresense messages in (with ``now``), each gateway's due sightings out. Pure."""

    def __init__(self, store: StoreConfig, config: EspresenseConfig) -> None:
        self.config = config
        p = store.ble_presence
        calibration = {g.id: g.ble for g in store.gateways}
        self.rooms = dict(config.rooms)
        self.tables = {
            gw: SightingTable(calibration[gw], change_db=p.report_change_db, heartbeat_s=p.report_heartbeat_s)
            for gw in self.rooms.values()
        }
        #: ESPresense's own word on each room (``online``/``offline``), once it said one.
        self.room_state: dict[str, str] = {}
        #: messages, member, refused:{reason} (overall); per gateway in the tables' counters.
        self.counters: Counter[str] = Counter()
        self._devices = f"{config.base_topic}/devices/"
        self._rooms = f"{config.base_topic}/rooms/"

    def subscriptions(self) -> list[str]:
        return [f"{self._devices}+/+", f"{self._rooms}+/status"]

    def handle(self, topic: str, payload: bytes, now: float) -> bool:
        """Take one message; True when it became a sighting."""
        self.counters["messages"] += 1
        try:
            if topic.startswith(self._rooms):
                self._status(topic, payload)
                return False
            if not topic.startswith(self._devices):
                raise Refused(Refusal.BAD_TOPIC)
            self._device(topic, payload, now)
        except Refused as exc:
            self.counters[f"refused:{exc.reason.value}"] += 1
            return False
        self.counters["member"] += 1
        return True

    def _status(self, topic: str, payload: bytes) -> None:
        room = topic[len(self._rooms) :].removesuffix("/status")
        if room not in self.rooms:
            raise Refused(Refusal.UNKNOWN_ROOM)
        state = payload.decode(errors="replace").strip().lower()
        self.room_state[room] = state if state in ("online", "offline") else "unknown"

    def _device(self, topic: str, payload: bytes, now: float) -> None:
        rest = topic[len(self._devices) :]
        _, _, room = rest.rpartition("/")
        gateway = self.rooms.get(room)
        if gateway is None:
            raise Refused(Refusal.UNKNOWN_ROOM)
        try:
            body = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise Refused(Refusal.NOT_JSON) from None
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise Refused(Refusal.NOT_JSON)
        eid, moving = decode_member_id(body["id"])
        rssi = body.get("rssi")
        if isinstance(rssi, bool) or not isinstance(rssi, int | float):
            raise Refused(Refusal.NO_RSSI)
        ref = body.get("rssi@1m")
        tx = (
            int(ref)
            if isinstance(ref, int | float) and not isinstance(ref, bool) and -127 <= ref <= 20
            else -59
        )
        # The same path as an advert our own scanner hears (the table counts an impossible RSSI).
        self.tables[gateway].add(Advert(now, float(rssi), encode_member_advert(eid, tx, moving)))

    def report(self, now: float) -> dict[str, tuple[float, list[Sighting]]]:
        """What each gateway has due at ``now`` (see :meth:`SightingTable.report`)."""
        return {gw: table.report(now) for gw, table in self.tables.items()}

    def detail(self, gateway: str) -> str:
        """The gateway status ``detail``: the ESPresense room and what its table saw."""
        room = next(r for r, g in self.rooms.items() if g == gateway)
        state = self.room_state.get(room, "not heard")
        return f"espresense room {room}: {state}; {self.tables[gateway].summary()}"[:300]

    def summary(self) -> str:
        c = self.counters
        refused = ", ".join(
            f"{k.split(':', 1)[1]} {v}" for k, v in sorted(c.items()) if k.startswith("refused:")
        )
        line = f"{c['messages']} messages, {c['member']} member sightings"
        return f"{line}; refused {refused}" if refused else line


class EspresenseBridge:
    """The shell: read ESPresense's broker, publish as each mapped gateway on ours."""

    def __init__(
        self,
        store: StoreConfig,
        config: EspresenseConfig,
        host: str,
        port: int,
        *,
        source: tuple[str, int] | None = None,
        topic_prefix: str = "",
        auth: dict[str, MqttAuth] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.core = ReceiverCore(store, config)
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        topics = Topics(topic_prefix)
        auth = auth or {}
        self.publishers = {
            gw: EdgePublisher(store.store, gw, host, port, topics=topics, auth=auth.get(gw))
            for gw in self.core.tables
        }
        src_host, src_port = source or (host, port)
        self.source = MqttLink(
            src_host,
            src_port,
            f"{topic_prefix.replace('/', '-')}{PRODUCER}-{store.store}",
            subscriptions=[(s, 0) for s in self.core.subscriptions()],
            on_message=self._on_message,
        )
        self.interval_s = store.ble_presence.report_interval_s
        self.reports = 0

    def _on_message(self, message: Received) -> bool:
        with self._lock:
            self.core.handle(message.topic, message.payload, self._clock())
        return True

    def publish_due(self) -> None:
        now = self._clock()
        with self._lock:
            due = self.core.report(now)
        for gw, (window, sightings) in due.items():
            for start in range(0, len(sightings), MAX_SIGHTINGS):
                chunk = sightings[start : start + MAX_SIGHTINGS]
                self.publishers[gw].ble_report(now, window, [s.fields() for s in chunk])
                self.reports += 1

    def heartbeat(self) -> None:
        now = self._clock()
        for gw, publisher in self.publishers.items():
            with self._lock:
                detail = self.core.detail(gw)
            publisher.heartbeat(now, detail)

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop``: report every ``report_interval_s``, heartbeat the statuses."""
        # Listening first (connect returns once the subscriptions are confirmed), so a
        # gateway's ``online`` means the bridge hears its room.
        self.source.connect()
        now = self._clock()
        for publisher in self.publishers.values():
            publisher.start(now)
        log.info(
            "ESPresense bridge: rooms %s on %s -> gateways on %s",
            ", ".join(self.core.rooms),
            self.source.url,
            next(iter(self.publishers.values())).link.url,
        )
        next_beat = time.monotonic() + self.config.heartbeat_s
        next_stats = time.monotonic() + STATS_EVERY_S
        try:
            while not stop.wait(self.interval_s):
                self.publish_due()
                if time.monotonic() >= next_beat:
                    next_beat += self.config.heartbeat_s
                    self.heartbeat()
                if time.monotonic() >= next_stats:
                    next_stats += STATS_EVERY_S
                    with self._lock:
                        log.info("espresense: %s", self.core.summary())
        finally:
            self.source.close()
            for publisher in self.publishers.values():
                publisher.stop(self._clock())
