"""The whole BLE presence path in one process, without a broker: for evaluation and the
benchmark.

Each gateway's :class:`SightingTable` takes its advertisements; at every report tick
what each gateway would publish is resolved (:class:`EidResolver`) and observed by
:class:`ZoneFusion`, exactly as the gateway and fuser processes do over MQTT (see
:mod:`edge_agent.agent` and :mod:`presence.fuser`). Time is the trace's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from edge_agent.ble.sightings import Advert, SightingTable
from floorwalker.config import StoreConfig
from presence.eid_resolver import EidResolver
from presence.fuser import zone_model_for
from presence.zone_fusion import FusionParams, ZoneChange, ZoneFusion


class PresencePipeline:
    def __init__(
        self, config: StoreConfig, resolver: EidResolver, params: FusionParams | None = None
    ) -> None:
        p = config.ble_presence
        self.report_interval_s = p.report_interval_s
        self.tables = {
            g.id: SightingTable(g.ble, change_db=p.report_change_db, heartbeat_s=p.report_heartbeat_s)
            for g in config.gateways
        }
        self.resolver = resolver
        params = params or FusionParams.from_config(p)
        self.fusion = ZoneFusion(zone_model_for(config, params), params)
        for g in config.gateways:
            self.fusion.gateway_state(g.id, True)
        self.reports = 0
        self.sightings = 0

    def add(self, gateway: str, advert: Advert) -> None:
        table = self.tables.get(gateway)
        if table is not None:
            table.add(advert)

    def step(self, now: float) -> list[ZoneChange]:
        """One report tick: every gateway reports what is due; the fuser decides."""
        for gw, table in self.tables.items():
            _window, due = table.report(now)
            if not due:
                continue
            self.reports += 1
            for s in due:
                self.sightings += 1
                member = self.resolver.resolve(s.eid, s.last_seen)
                if member is not None:
                    self.fusion.observe(member, gw, s.rssi_dbm, s.last_seen, s.moving)
        return self.fusion.tick(now)

    def run(self, records: Iterable[tuple[str, Advert]], *, tail_s: float = 0.0) -> Iterator[ZoneChange]:
        """Feed time-ordered ``(gateway, advert)`` records; yield zone changes as they happen."""
        next_tick: float | None = None
        last = 0.0
        for gateway, advert in records:
            if next_tick is None:
                next_tick = advert.ts + self.report_interval_s
            while advert.ts >= next_tick:
                yield from self.step(next_tick)
                next_tick += self.report_interval_s
            self.add(gateway, advert)
            last = advert.ts
        if next_tick is not None:
            while next_tick <= last + tail_s:
                yield from self.step(next_tick)
                next_tick += self.report_interval_s
