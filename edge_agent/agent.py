"""The gateway process: connect, announce ``online`` (retained, last will ``offline``),
heartbeat, and say ``offline`` on a clean stop.

With a BLE scanner configured (``scanner:`` on the gateway, or a replay trace given on the
command line) it also scans: adverts go through :class:`SightingTable` and, every
``report_interval_s``, what is due goes out as one :class:`BleReport`. Scanner trouble
(a dead adapter, a bad trace line) and drop counts are in the status ``detail``.
"""

from __future__ import annotations

import logging
import threading
import time

from broker_config.contract import Topics
from edge_agent.ble_sightings import Advert, SightingTable
from edge_agent.publisher import EdgePublisher
from edge_agent.scanner import Scanner, make_scanner
from floorwalker.config import BleScannerConfig, StoreConfig
from floorwalker.errors import ConfigError

log = logging.getLogger(__name__)

#: Sightings per BleReport (the contract allows 200).
MAX_SIGHTINGS = 200


def run_gateway(
    config: StoreConfig,
    gateway: str,
    mqtt_host: str,
    mqtt_port: int,
    stop: threading.Event,
    *,
    topic_prefix: str = "",
    heartbeat_s: float = 30.0,
    scanner: BleScannerConfig | None = None,
) -> None:
    """Serve as gateway ``gateway`` of ``config.store`` until ``stop`` is set.

    ``scanner`` overrides the gateway's configured BLE scanner (e.g. a replay trace).
    """
    gw = next((g for g in config.gateways if g.id == gateway), None)
    if gw is None:
        known = ", ".join(g.id for g in config.gateways)
        raise ConfigError(f"gateway {gateway!r} is not in store {config.store!r} (known: {known})")
    publisher = EdgePublisher(config.store, gateway, mqtt_host, mqtt_port, topics=Topics(topic_prefix))
    scanner_config = scanner or gw.scanner
    ble = _BleSide(config, gateway, scanner_config, stop) if scanner_config is not None else None
    publisher.start(time.time())
    log.info("gateway %s online at %s", gateway, publisher.link.url)
    try:
        if ble is None:
            while not stop.wait(heartbeat_s):
                publisher.heartbeat(time.time())
        else:
            ble.start()
            next_status = time.monotonic() + heartbeat_s
            while not stop.wait(config.ble_presence.report_interval_s):
                ble.publish_due(publisher)
                if time.monotonic() >= next_status:
                    next_status += heartbeat_s
                    publisher.heartbeat(time.time(), ble.detail())
    finally:
        publisher.stop(time.time())
        log.info("gateway %s offline", gateway)


class _BleSide:
    """The scanner thread and the sighting table it feeds (guarded by one lock)."""

    def __init__(
        self, config: StoreConfig, gateway: str, scanner: BleScannerConfig, stop: threading.Event
    ) -> None:
        gw = next(g for g in config.gateways if g.id == gateway)
        p = config.ble_presence
        self.table = SightingTable(gw.ble, change_db=p.report_change_db, heartbeat_s=p.report_heartbeat_s)
        self.scanner: Scanner = make_scanner(scanner, gateway)
        self._lock = threading.Lock()
        self._stop = stop
        self._thread = threading.Thread(target=self._run, name=f"ble-{gateway}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        self.scanner.run(self._add, self._stop)

    def _add(self, advert: Advert) -> None:
        with self._lock:
            self.table.add(advert)

    def publish_due(self, publisher: EdgePublisher) -> None:
        now = self.scanner.now()
        with self._lock:
            window, due = self.table.report(now)
        # One report holds at most MAX_SIGHTINGS ids (the contract's bound); a crowd takes several.
        for start in range(0, len(due), MAX_SIGHTINGS):
            publisher.ble_report(
                now,
                window,
                [
                    {
                        "eid": s.eid,
                        "rssi_dbm": s.rssi_dbm,
                        "distance_m": s.distance_m,
                        "adverts": s.adverts,
                        "last_seen": s.last_seen,
                    }
                    for s in due[start : start + MAX_SIGHTINGS]
                ],
            )

    def detail(self) -> str:
        with self._lock:
            summary = self.table.summary()
        status = self.scanner.status
        return (f"{status}; " if status else "ble ok: ") + summary
