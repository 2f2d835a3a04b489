"""Play a scenario onto the real broker in (scaled) real time, as the store's gateways and
POS adapters would: one :class:`EdgePublisher` per device, event time = wall clock.

Members' presence is played one of two ways. ``model``: each gateway publishes the
scenario's enter/leave events itself, as if a perfect fuser spoke for it. ``ble``: each
recognizable member walks to a spot in every zone of their route, their phone's rotating
ids go through the RF model, and each gateway publishes the ``BleReport`` s its own
sighting table makes of what it hears (:func:`simulators.ble_sensor.gateway_reports`);
the store's fuser process (``floorwalker fuser``) turns them into presence, as in a store.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from broker_config.contract import Topics
from edge_agent.publisher import EdgePublisher
from floorwalker.config import StoreConfig
from recommender.crm import CrmFixture
from simulators.ble_sensor import gateway_reports
from simulators.floorplan import build_floorplan
from simulators.footfall_tally import FootfallTally
from simulators.scenario import Checkout, Footfall, Presence, Shopper, Step
from simulators.shoppers import Keyframe
from simulators.shoppers import Shopper as WalkingShopper

log = logging.getLogger(__name__)

#: Seconds a member takes to walk from their spot in one zone to their spot in the next.
WALK_S = 3.0
#: How members' presence reaches the broker (see the module's docstring).
PresenceMode = Literal["ble", "model"]
#: Above this speed the fuser, which works in wall-clock seconds, misses short zone visits.
MAX_BLE_SPEED = 3.0


@dataclass(frozen=True, slots=True)
class GatewayBle:
    """A ``BleReport`` a gateway publishes ``at`` seconds into the round; its sightings'
    ``last_seen`` are wall-clock times planned for ``planned_ts``, moved with the report
    when it goes out a little later."""

    at: float
    gateway: str
    window_s: float
    sightings: list[dict[str, Any]]
    planned_ts: float


def walkers(
    config: StoreConfig, steps: Sequence[Step], to_wall: Callable[[float], float], seed: int
) -> list[WalkingShopper]:
    """The scenario's recognizable members as walking shoppers: a spot in each zone of
    their route, held from entering until :data:`WALK_S` before leaving, then a walk to
    the next spot; keyframes in wall-clock time (the phones' ids rotate by it)."""
    plan = build_floorplan(config)
    rng = random.Random(seed)
    entered: dict[str, tuple[float, str]] = {}
    visits: dict[str, list[tuple[float, float, str]]] = {}
    for step in steps:
        if isinstance(step, Presence):
            if step.action == "enter":
                entered[step.member] = (step.at, step.zone)
            elif step.member in entered:
                at, zone = entered.pop(step.member)
                visits.setdefault(step.member, []).append((to_wall(at), to_wall(step.at), zone))
    out = []
    for member, route in visits.items():
        frames: list[Keyframe] = []
        for enter, leave, zone in route:
            x, y = plan.random_point(zone, rng)
            frames += [Keyframe(enter, x, y, zone), Keyframe(max(enter, leave - WALK_S), x, y, zone)]
        last = frames[-1]
        frames.append(Keyframe(route[-1][1], last.x, last.y, last.zone))
        out.append(WalkingShopper(member, member, True, True, frames[0].t, frames))
    return out


def ble_steps(
    config: StoreConfig, steps: Sequence[Step], origin: float, speed: float, seed: int
) -> list[GatewayBle]:
    """What the gateways hear of the scenario's members, for a round starting at wall-clock
    ``origin`` played at ``speed``."""
    people = walkers(config, steps, lambda at: origin + at / speed, seed)
    return [
        GatewayBle((now - origin) * speed, r.gateway, r.window_s, r.sightings, now)
        for now, reports in gateway_reports(config, people, seed)
        for r in reports
    ]


def shoppers_from(fixture: CrmFixture, non_members: int) -> list[Shopper]:
    members = [Shopper(m.member, m.consent.recognition) for m in fixture.members]
    return members + [Shopper(None, False) for _ in range(non_members)]


class LiveStore:
    """The simulated store's devices, connected to one broker."""

    def __init__(
        self,
        config: StoreConfig,
        mqtt_host: str,
        mqtt_port: int,
        *,
        topic_prefix: str = "",
        camera_gateways: frozenset[str] = frozenset(),
        presence: PresenceMode = "model",
    ) -> None:
        """``camera_gateways`` run as real edge agents with their cameras (``make demo``): for
        those the simulator plays only the presence they hear, under a client id of its own,
        and leaves their status and their zones' footfall to the real process."""
        topics = Topics(topic_prefix)
        self.config = config
        self.presence = presence
        self.devices = {
            g.id: EdgePublisher(
                config.store,
                g.id,
                mqtt_host,
                mqtt_port,
                topics=topics,
                status=g.id not in camera_gateways,
                client_id=f"{g.id}-sim" if g.id in camera_gateways else None,
            )
            for g in config.gateways
        } | {
            lane.pos: EdgePublisher(config.store, lane.pos, mqtt_host, mqtt_port, topics=topics, status=False)
            for lane in config.lanes
        }
        self.sent: Counter[str] = Counter()
        #: Zones whose footfall a real camera counts: the simulated tally stays out of them.
        self.counted_by_camera = {z for g in config.gateways if g.id in camera_gateways for z in g.zones}
        #: Camera-style counts per zone, so the dashboard's floor map has something to show.
        self.footfall = FootfallTally(time.time())

    def start(self) -> None:
        now = time.time()
        for device in self.devices.values():
            device.start(now)

    def stop(self) -> None:
        now = time.time()
        for device in self.devices.values():
            device.stop(now)

    def emit(self, step: Step | GatewayBle, ts: float) -> str:
        if isinstance(step, GatewayBle):
            self.sent["ble"] += 1
            late = ts - step.planned_ts
            sightings = [{**x, "last_seen": x["last_seen"] + late} for x in step.sightings]
            return self.devices[step.gateway].ble_report(ts, step.window_s, sightings)
        if isinstance(step, Footfall):
            self.sent["footfall"] += 1
            return self.devices[step.gateway].footfall(
                step.zone,
                ts,
                window_s=step.window_s,
                entered=0,
                exited=0,
                # The queue stands in the zone: at least that many people are there.
                occupancy=max(step.queue, self.footfall.occupancy(step.zone)),
                queue_length=step.queue,
            )
        device = self.devices[step.gateway if isinstance(step, Presence) else step.pos]
        if isinstance(step, Presence):
            event_id = ""  # with BLE the fuser speaks for the member's presence
            if self.presence == "model":
                self.sent[f"presence:{step.action}"] += 1
                event_id = device.presence(step.zone, step.member, step.action, ts)
            r = self.footfall.step(step.zone, step.action, ts)
            if r.zone not in self.counted_by_camera:
                device.footfall(
                    r.zone, ts, window_s=r.window_s, entered=r.entered, exited=r.exited, occupancy=r.occupancy
                )
                self.sent["footfall"] += 1
            return event_id
        assert isinstance(step, Checkout)
        self.sent["checkout"] += 1
        return device.checkout(step.lane, ts, member=step.member, items=step.items)

    def play(
        self,
        steps: list[Step],
        stop: threading.Event,
        *,
        speed: float = 1.0,
        seed: int = 1,
        on_step: Callable[[Step | GatewayBle], None] | None = None,
    ) -> None:
        """Emit ``steps`` at their offsets divided by ``speed`` (with ``ble`` presence, the
        gateways' reports among them; ``seed`` drives the radio); return early if ``stop``
        is set."""
        played: list[Step | GatewayBle] = list(steps)
        if self.presence == "ble":
            played += ble_steps(self.config, steps, time.time(), speed, seed)
            played.sort(key=lambda s: s.at)
        origin = time.monotonic()
        for step in played:
            if stop.wait(max(0.0, origin + step.at / speed - time.monotonic())):
                return
            self.emit(step, time.time())
            if on_step is not None:
                on_step(step)
