"""Play a scenario onto the real broker in (scaled) real time, as the store's gateways and
POS adapters would: one :class:`EdgePublisher` per device, event time = wall clock."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from broker_config.contract import Topics
from edge_agent.publisher import EdgePublisher
from floorwalker.config import StoreConfig
from recommender.crm import CrmFixture
from simulators.footfall_tally import FootfallTally
from simulators.scenario import Checkout, Footfall, Presence, Shopper, Step

log = logging.getLogger(__name__)


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
    ) -> None:
        """``camera_gateways`` run as real edge agents with their cameras (``make demo``): for
        those the simulator plays only the presence they hear, under a client id of its own,
        and leaves their status and their zones' footfall to the real process."""
        topics = Topics(topic_prefix)
        self.config = config
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

    def emit(self, step: Step, ts: float) -> str:
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
        on_step: Callable[[Step], None] | None = None,
    ) -> None:
        """Emit ``steps`` at their offsets divided by ``speed``; return early if ``stop`` is set."""
        origin = time.monotonic()
        for step in steps:
            if stop.wait(max(0.0, origin + step.at / speed - time.monotonic())):
                return
            self.emit(step, time.time())
            if on_step is not None:
                on_step(step)
