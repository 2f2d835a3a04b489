"""BLE sensing of the simulated shoppers, with the project's own BLE code end to end.

Members' :class:`PositionSample` s go through the RF model (``simulators/ble_radio.py``:
path loss, shadowing, body loss, drops, rotating ephemeral ids) to what each gateway's
scanner hears; each gateway's :class:`SightingTable` (``edge_agent/ble/sightings.py``, the
gateway's own core) turns that into a :class:`BleReport` every ``report_interval_s``,
exactly as a gateway publishes; and the store-level fuser's core (``presence/fuser.py``)
turns the reports into the :class:`PresenceEvent` s the fuser process would publish. The
trace then holds both: what the gateways sent and what the fuser made of it.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from broker_config.contract import (
    BleReport,
    EnvelopeSource,
    GatewayStatus,
    PresenceEvent,
    Topics,
    decode,
    encode,
)
from edge_agent.agent import MAX_SIGHTINGS
from edge_agent.ble.sightings import Advert, SightingTable
from floorwalker.ble_keys import read_key_file
from floorwalker.config import StoreConfig
from floorwalker.errors import ConfigError
from presence.fuser import Fuser, resolver_for
from simulators.ble_radio import RadioModel
from simulators.sensors import Devices, Emission
from simulators.shoppers import Shopper

#: How often a shopper's position is sampled for the RF model, seconds.
POSITION_PERIOD_S = 1.0


class _TrueZones:
    """Where each recognizable member really is, for the truth beside each message."""

    def __init__(self, shoppers: Sequence[Shopper]) -> None:
        self._visits: dict[str, tuple[list[float], list[tuple[float, str]]]] = {}
        for s in shoppers:
            if s.member and s.recognizable:
                visits = s.visits()
                self._visits[s.member] = ([v.enter for v in visits], [(v.leave, v.zone) for v in visits])

    def at(self, member: str, t: float) -> str | None:
        entry = self._visits.get(member)
        if entry is None:
            return None
        starts, rest = entry
        i = bisect.bisect_right(starts, t) - 1
        return rest[i][1] if i >= 0 and t < rest[i][0] else None

    def present(self, t: float) -> dict[str, str]:
        out = {}
        for m in self._visits:
            z = self.at(m, t)
            if z is not None:
                out[m] = z
        return out


@dataclass(frozen=True, slots=True)
class GatewayReport:
    """One ``BleReport`` a gateway publishes: its time, gateway and contract fields."""

    ts: float
    gateway: str
    window_s: float
    sightings: list[dict[str, Any]]


def gateway_reports(
    config: StoreConfig, shoppers: Sequence[Shopper], seed: int
) -> Iterator[tuple[float, list[GatewayReport]]]:
    """What the gateways publish about the recognizable members' phones: at every report
    interval from the first phone heard until the last could have gone away, that
    instant and its reports (often none)."""
    p = config.ble_presence
    if p.secrets is None:
        raise ConfigError(
            "ble_presence.secrets: the BLE model needs the store's key file (or use --presence model)"
        )
    radio = RadioModel(config, bytes.fromhex(read_key_file(p.secrets).store_key), seed=seed)
    samples = [x for s in shoppers if s.member and s.recognizable for x in s.positions(POSITION_PERIOD_S)]
    if not samples:
        return
    tables = {
        g.id: SightingTable(g.ble, change_db=p.report_change_db, heartbeat_s=p.report_heartbeat_s)
        for g in config.gateways
        if g.position is not None
    }

    def report(now: float) -> list[GatewayReport]:
        out = []
        for gid, table in tables.items():
            window, due = table.report(now)
            # As the gateway does: at most MAX_SIGHTINGS ids per report; a crowd takes several.
            for first in range(0, len(due), MAX_SIGHTINGS):
                out.append(
                    GatewayReport(now, gid, window, [x.fields() for x in due[first : first + MAX_SIGHTINGS]])
                )
        return out

    interval = p.report_interval_s
    next_report = min(x.ts for x in samples) + interval
    for record in radio.hear(samples):
        while record["ts"] >= next_report:
            yield next_report, report(next_report)
            next_report += interval
        if record["gateway"] in tables:
            tables[record["gateway"]].add(Advert(record["ts"], record["rssi"], bytes.fromhex(record["adv"])))
    end = max(x.ts for x in samples) + p.away_timeout_s + 2 * interval
    while next_report <= end:
        yield next_report, report(next_report)
        next_report += interval


def ble(
    devices: Devices,
    shoppers: Sequence[Shopper],
    seed: int,
    on_progress: Callable[[float], None] | None = None,
) -> list[Emission]:
    """Gateways' BLE reports and the fuser's presence events for one simulated day
    (``on_progress`` is told the share of the day done, 0 to 1, as it goes)."""
    config = devices.config
    p = config.ble_presence
    fuser = Fuser(config, resolver_for(config), Topics())
    feed = {g.id: EnvelopeSource(g.id) for g in config.gateways if g.position is not None}
    truth = _TrueZones(shoppers)
    store = config.store
    topics = devices.topics
    out: list[Emission] = []
    started = False
    first = min((s.arrival for s in shoppers), default=0.0)
    span = max((s.left for s in shoppers), default=first) + p.away_timeout_s - first
    for now, reports in gateway_reports(config, shoppers, seed):
        if on_progress is not None:
            on_progress(min(1.0, max(0.0, (now - first) / span)) if span > 0 else 1.0)
        if not started:  # every gateway is online from the first phone heard
            started = True
            start = now - p.report_interval_s
            for gid, source in feed.items():
                status = encode(source.make(GatewayStatus, start, state="online"))
                fuser.handle(topics.status(store, gid), status, start)
        present = truth.present(now) if reports else {}
        for r in reports:
            near = {m: z for m, z in present.items() if z in devices.zones_of.get(r.gateway, ())}
            fields: dict[str, Any] = {"window_s": r.window_s, "sightings": r.sightings}
            topic = topics.ble(store, r.gateway)
            out.append(Emission(now, r.gateway, topic, BleReport, fields, {"members_in_zones": near}))
            fuser.handle(topic, encode(feed[r.gateway].make(BleReport, now, **fields)), now)
        for topic, payload in fuser.tick(now):
            event = decode(topics, topic, payload).payload
            assert isinstance(event, PresenceEvent)
            zone = topic.split("/")[-2]
            fields = {"member": event.member, "action": event.action, "confidence": event.confidence}
            fact = {"member": event.member, "zone": zone, "true_zone": truth.at(event.member, event.ts)}
            out.append(Emission(event.ts, p.fuser, topic, PresenceEvent, fields, fact))
    return out
