"""The whole BLE presence path in one process, without a broker: for evaluation and the
benchmark.

Each gateway's :class:`SightingTable` takes its advertisements; at every report tick
what each gateway would publish is resolved (:class:`EidResolver`) and observed by
:class:`ZoneFusion`, exactly as the gateway and fuser processes do over MQTT (see
:mod:`edge_agent.agent` and :mod:`presence.fuser`). Time is the trace's own; a stretch
with nobody to track (everyone has left and no advert comes) is skipped, not ticked through.

Fixed-id beacons (iBeacon, Eddystone-UID: tags, not the member app) can be evaluated too:
``beacons`` maps each beacon's id (:func:`beacon_id`) to the member it stands for; its
adverts then go through the same path as a member app's, under a stand-in rotating id.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping

from edge_agent.ble.frames import (
    EddystoneEid,
    EddystoneUid,
    FrameError,
    IBeacon,
    MemberAdvert,
    encode_member_advert,
    parse,
)
from edge_agent.ble.sightings import Advert, SightingTable
from floorwalker.config import StoreConfig
from presence.eid_resolver import EidResolver
from presence.fuser import zone_model_for
from presence.survey import SurveyMap
from presence.zone_fusion import FusionParams, ZoneChange, ZoneFusion


def beacon_id(frame: object) -> str | None:
    """A fixed-id beacon's id: ``ibeacon:<uuid>:<major>:<minor>`` or ``eddystone:<ns>:<instance>``."""
    if isinstance(frame, IBeacon):
        return f"ibeacon:{frame.uuid}:{frame.major}:{frame.minor}"
    if isinstance(frame, EddystoneUid):
        return f"eddystone:{frame.namespace.hex()}:{frame.instance.hex()}"
    return None


def frame_kinds(records: Iterable[tuple[str, Advert]]) -> Counter[str]:
    """How many adverts of each kind a trace holds (member, eddystone_eid, beacon ids, other)."""
    kinds: Counter[str] = Counter()
    for _gw, advert in records:
        try:
            frame = parse(advert.data) if isinstance(advert.data, bytes) else None
        except FrameError:
            kinds["unreadable"] += 1
            continue
        if isinstance(frame, MemberAdvert):
            kinds["member"] += 1
        elif isinstance(frame, EddystoneEid):
            kinds["eddystone_eid"] += 1
        else:
            kinds[beacon_id(frame) or "other"] += 1
    return kinds


class PresencePipeline:
    def __init__(
        self,
        config: StoreConfig,
        resolver: EidResolver,
        params: FusionParams | None = None,
        *,
        survey: SurveyMap | None = None,
        beacons: Mapping[str, str] | None = None,
    ) -> None:
        p = config.ble_presence
        self.report_interval_s = p.report_interval_s
        self.tables = {
            g.id: SightingTable(g.ble, change_db=p.report_change_db, heartbeat_s=p.report_heartbeat_s)
            for g in config.gateways
        }
        self.resolver = resolver
        self.params = params or FusionParams.from_config(p)
        self.fusion = ZoneFusion(zone_model_for(config, self.params, survey), self.params)
        for g in config.gateways:
            self.fusion.gateway_state(g.id, True)
        self.reports = 0
        self.sightings = 0
        #: Every resolved sighting the fuser observed: (member, gateway, rssi, ts).
        self.observed: list[tuple[str, str, float, float]] = []
        #: adverts of a gateway the store does not have
        self.unknown_gateway: Counter[str] = Counter()
        self._beacons = {
            bid: (hashlib.sha256(bid.encode()).digest()[:8], member)
            for bid, member in (beacons or {}).items()
        }
        self._stand_in = {eid.hex(): member for eid, member in self._beacons.values()}

    def add(self, gateway: str, advert: Advert) -> None:
        table = self.tables.get(gateway)
        if table is None:
            self.unknown_gateway[gateway] += 1
            return
        if self._beacons and isinstance(advert.data, bytes):
            try:
                bid = beacon_id(parse(advert.data))
            except FrameError:
                bid = None
            if bid is not None and bid in self._beacons:
                eid = self._beacons[bid][0]
                advert = Advert(advert.ts, advert.rssi, encode_member_advert(eid, -59))
        table.add(advert)

    def _resolve(self, eid: str, ts: float) -> str | None:
        return self._stand_in.get(eid) or self.resolver.resolve(eid, ts)

    def step(self, now: float) -> list[ZoneChange]:
        """One report tick: every gateway reports what is due; the fuser decides."""
        for gw, table in self.tables.items():
            _window, due = table.report(now)
            if not due:
                continue
            self.reports += 1
            for s in due:
                self.sightings += 1
                member = self._resolve(s.eid, s.last_seen)
                if member is not None:
                    self.observed.append((member, gw, s.rssi_dbm, s.last_seen))
                    self.fusion.observe(member, gw, s.rssi_dbm, s.last_seen, s.moving)
        return self.fusion.tick(now)

    def _idle(self) -> bool:
        return not self.fusion.members() and all(len(t) == 0 for t in self.tables.values())

    def run(self, records: Iterable[tuple[str, Advert]], *, tail_s: float = 0.0) -> Iterator[ZoneChange]:
        """Feed time-ordered ``(gateway, advert)`` records; yield zone changes as they happen."""
        next_tick: float | None = None
        last = 0.0
        interval = self.report_interval_s
        for gateway, advert in records:
            if next_tick is None:
                next_tick = advert.ts + interval
            while advert.ts >= next_tick:
                yield from self.step(next_tick)
                next_tick += interval
                if self._idle() and advert.ts >= next_tick:
                    # Nobody left to track: jump to the next advert's tick.
                    next_tick += interval * ((advert.ts - next_tick) // interval)
            self.add(gateway, advert)
            last = advert.ts
        if next_tick is not None:
            while next_tick <= last + tail_s:
                yield from self.step(next_tick)
                next_tick += interval
