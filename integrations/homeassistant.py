"""Home Assistant MQTT discovery: the floor's figures as Home Assistant entities.

Home Assistant (like Frigate and ESPresense) finds MQTT entities through retained config
messages on ``<discovery_prefix>/<component>/<node_id>/<object_id>/config``. This bridge
announces, for one store:

* per zone, its occupancy; per checkout lane, its queue and the wait in it;
* per entrance, the entries and exits of the zone behind it (counters);
* the prompts sent, served (accepted or done) and unserved (expired without an accept);
* per gateway, a connectivity binary sensor read straight from the gateway's retained
  status topic, whose last will says ``offline``.

The figures travel in one retained :class:`FloorState` on ``fw/v1/{store}/floor/state``
that :class:`FloorTally` keeps from the footfall, checkout, prompt and feedback topics;
each entity picks its figure with a ``value_template``. Counts only: no member, no name,
no device ever reaches these topics. A zone's or lane's entities are available while any
gateway covering the zone is online; every floor entity also expires when the bridge stops
republishing (``expire_after``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from broker_config.contract import (
    CheckoutEvent,
    ContractError,
    EntranceFigures,
    EnvelopeSource,
    Feedback,
    FloorState,
    FootfallEvent,
    LaneFigures,
    Prompt,
    PromptFigures,
    TopicKind,
    Topics,
    ZoneFigures,
    decode,
    encode,
)
from floorwalker import __version__
from floorwalker.config import StoreConfig
from floorwalker.mqtt import MqttAuth, MqttLink, Received
from floorwalker.queue_wait import SERVICE_SAMPLES, lane_queues, lane_wait_s

log = logging.getLogger(__name__)

#: Prompts whose fate is still open that the tally remembers (oldest forgotten first).
OPEN_PROMPTS: Final = 10_000
#: The producer id the floor state is published under.
PRODUCER: Final = "homeassistant"

Discovery = list[tuple[str, dict[str, Any]]]


def node_id(store: str) -> str:
    """Home Assistant's ``node_id`` for a store (letters, digits, ``_`` and ``-`` only)."""
    return f"floorwalker_{store}".replace("-", "_")


def discovery(config: StoreConfig, topics: Topics) -> Discovery:
    """Every entity's retained discovery config: ``(topic, config)`` pairs."""
    ha = config.home_assistant
    node = node_id(config.store)
    state = topics.floor_state(config.store)
    device = {
        "identifiers": [node],
        "name": f"Floorwalker {config.name}",
        "manufacturer": "Floorwalker",
        "model": "Store floor",
        "sw_version": __version__,
    }
    origin = {"name": "Floorwalker", "sw_version": __version__}
    expire = int(3 * ha.heartbeat_s)
    zone_gateways = {z.id: [g.id for g in config.gateways if z.id in g.zones] for z in config.zones}

    def availability(zone: str | None) -> dict[str, Any]:
        gateways = zone_gateways.get(zone, []) if zone else []
        if not gateways:
            return {}
        return {
            "availability": [
                {
                    "topic": topics.status(config.store, g),
                    "value_template": "{{ value_json.state }}",
                    "payload_available": "online",
                    "payload_not_available": "offline",
                }
                for g in gateways
            ],
            "availability_mode": "any",
        }

    out: Discovery = []

    def sensor(object_id: str, name: str, path: str, extra: dict[str, Any], zone: str | None = None) -> None:
        body: dict[str, Any] = {
            "name": name,
            "unique_id": f"{node}_{object_id}",
            "state_topic": state,
            "value_template": f"{{{{ value_json.{path} }}}}",
            "expire_after": expire,
            "device": device,
            "origin": origin,
            **extra,
            **availability(zone),
        }
        out.append((f"{ha.discovery_prefix}/sensor/{node}/{object_id}/config", body))

    people = {"unit_of_measurement": "people", "state_class": "measurement", "icon": "mdi:account-group"}
    counter = {"unit_of_measurement": "people", "state_class": "total_increasing", "icon": "mdi:walk"}
    for z in config.zones:
        key = _ident(z.id)
        sensor(f"zone_{key}_occupancy", f"{z.name} occupancy", f"zones['{z.id}'].occupancy", people, z.id)
    for lane in config.lanes:
        key = _ident(lane.id)
        sensor(f"lane_{key}_queue", f"{lane.id} queue", f"lanes['{lane.id}'].queue", people, lane.zone)
        wait = {"unit_of_measurement": "s", "device_class": "duration", "state_class": "measurement"}
        sensor(f"lane_{key}_wait", f"{lane.id} wait", f"lanes['{lane.id}'].wait_s", wait, lane.zone)
    for e in config.entrances:
        key = _ident(e.id)
        sensor(f"entrance_{key}_in", f"{e.id} in", f"entrances['{e.id}'].entered", counter, e.zone)
        sensor(f"entrance_{key}_out", f"{e.id} out", f"entrances['{e.id}'].exited", counter, e.zone)
    prompts = {"state_class": "total_increasing", "icon": "mdi:message-badge"}
    for what in ("sent", "served", "unserved"):
        sensor(f"prompts_{what}", f"Prompts {what}", f"prompts.{what}", prompts)
    for g in config.gateways:
        key = _ident(g.id)
        out.append(
            (
                f"{ha.discovery_prefix}/binary_sensor/{node}/gateway_{key}/config",
                {
                    "name": f"{g.id} connectivity",
                    "unique_id": f"{node}_gateway_{key}",
                    "state_topic": topics.status(config.store, g.id),
                    "value_template": "{{ value_json.state }}",
                    "payload_on": "online",
                    "payload_off": "offline",
                    "device_class": "connectivity",
                    "entity_category": "diagnostic",
                    "device": device,
                    "origin": origin,
                },
            )
        )
    return out


def _ident(value: str) -> str:
    return value.replace("-", "_")


@dataclass
class FloorTally:
    """The floor's figures from the store's events (pure: time passed in)."""

    config: StoreConfig
    topics: Topics
    zones: dict[str, int] = field(default_factory=dict)
    lane_queues: dict[str, int] = field(default_factory=dict)
    checkouts: dict[str, deque[float]] = field(default_factory=dict)
    entered: dict[str, int] = field(default_factory=dict)
    exited: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    served: int = 0
    unserved: int = 0
    #: Prompts not yet served nor expired: event id -> expiry.
    open_prompts: dict[str, float] = field(default_factory=dict)
    rejected: int = 0

    def handle(self, topic: str, payload: bytes, now: float) -> bool:
        """Take one message; True when a figure changed. A message that breaks the contract
        is counted in ``rejected`` and logged (the recommender dead-letters it already)."""
        try:
            message = decode(self.topics, topic, payload)
        except ContractError as exc:
            self.rejected += 1
            log.warning("ignored a message on %s: %s", topic, exc.detail)
            return False
        event, subject = message.payload, message.address.subject
        if isinstance(event, FootfallEvent) and subject is not None:
            self.zones[subject] = event.occupancy
            self.entered[subject] = self.entered.get(subject, 0) + event.entered
            self.exited[subject] = self.exited.get(subject, 0) + event.exited
            lanes = [lane.id for lane in self.config.lanes if lane.zone == subject]
            self.lane_queues.update(lane_queues(event.lane_queues, event.queue_length, lanes))
            return True
        if isinstance(event, CheckoutEvent) and subject is not None:
            self.checkouts.setdefault(subject, deque(maxlen=SERVICE_SAMPLES)).append(event.ts)
            return True
        if isinstance(event, Prompt):
            self.sent += 1
            self.open_prompts[event.event_id] = event.expires_at
            while len(self.open_prompts) > OPEN_PROMPTS:
                self.open_prompts.pop(next(iter(self.open_prompts)))
            return True
        served = isinstance(event, Feedback) and event.outcome in ("accepted", "done")
        if served and self.open_prompts.pop(event.prompt_id, None) is not None:  # type: ignore[attr-defined]
            self.served += 1
            return True
        return False

    def expire(self, now: float) -> bool:
        """Prompts past their expiry without an accept become unserved; True if any did."""
        gone = [pid for pid, until in self.open_prompts.items() if until <= now]
        for pid in gone:
            del self.open_prompts[pid]
        self.unserved += len(gone)
        return bool(gone)

    def wait_s(self, lane: str) -> float | None:
        """Queue x the mean time between the lane's recent checkouts (None until two)."""
        return lane_wait_s(self.lane_queues.get(lane), self.checkouts.get(lane))

    def fields(self) -> dict[str, Any]:
        """The :class:`FloorState` fields for every zone, lane and entrance of the store."""
        return {
            "zones": {z.id: ZoneFigures(occupancy=self.zones.get(z.id)) for z in self.config.zones},
            "lanes": {
                lane.id: LaneFigures(queue=self.lane_queues.get(lane.id), wait_s=self.wait_s(lane.id))
                for lane in self.config.lanes
            },
            "entrances": {
                e.id: EntranceFigures(entered=self.entered.get(e.zone, 0), exited=self.exited.get(e.zone, 0))
                for e in self.config.entrances
            },
            "prompts": PromptFigures(sent=self.sent, served=self.served, unserved=self.unserved),
        }


class HomeAssistantBridge:
    """The shell: announce the entities, follow the store's topics, publish the floor state."""

    def __init__(
        self,
        config: StoreConfig,
        host: str,
        port: int,
        *,
        topic_prefix: str = "",
        auth: MqttAuth | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.topics = Topics(topic_prefix)
        self.tally = FloorTally(config, self.topics)
        self._clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._source = EnvelopeSource(PRODUCER)
        store = config.store
        subscriptions = [
            (self.topics.subscription(kind, store), 1)
            for kind in (TopicKind.FOOTFALL, TopicKind.CHECKOUT, TopicKind.PROMPT, TopicKind.FEEDBACK)
        ]
        self.link = MqttLink(
            host,
            port,
            f"{PRODUCER}-{store}",
            subscriptions=subscriptions,
            on_message=self._on_message,
            auth=auth,
        )
        self.published = 0

    def _on_message(self, message: Received) -> bool:
        with self._lock:
            if self.tally.handle(message.topic, message.payload, self._clock()):
                self._changed.set()
        return True

    def announce(self) -> int:
        """Publish every discovery config, retained; the number published."""
        configs = discovery(self.config, self.topics)
        for topic, body in configs:
            self.link.publish(topic, json.dumps(body, separators=(",", ":")).encode(), qos=1, retain=True)
        return len(configs)

    def publish_state(self) -> None:
        now = self._clock()
        with self._lock:
            self.tally.expire(now)
            state = self._source.make(FloorState, now, **self.tally.fields())
        self.link.publish(self.topics.floor_state(self.config.store), encode(state), qos=1, retain=True)
        self.published += 1

    def run(self, stop: threading.Event, *, min_interval_s: float = 1.0) -> None:
        """Announce, then publish the state on change (at most every ``min_interval_s``) and
        at the heartbeat, until ``stop``."""
        self.link.connect()
        try:
            n = self.announce()
            log.info("announced %d Home Assistant entities for store %s", n, self.config.store)
            heartbeat = self.config.home_assistant.heartbeat_s
            while not stop.is_set():
                self.publish_state()
                self._changed.clear()
                deadline = time.monotonic() + heartbeat
                while not stop.is_set() and time.monotonic() < deadline:
                    if self._changed.wait(min(1.0, max(0.0, deadline - time.monotonic()))):
                        stop.wait(min_interval_s)
                        break
                    with self._lock:
                        due = min(self.tally.open_prompts.values(), default=float("inf"))
                    if due <= self._clock():
                        break
        finally:
            self.link.close()
