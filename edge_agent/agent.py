"""The gateway process: connect, announce ``online`` (retained, last will ``offline``),
heartbeat, run the gateway's cameras, and say ``offline`` on a clean stop.

Each camera runs on its own thread (:class:`edge_agent.camera.worker.CameraWorker`); its
health goes into the status (``sensors``, and a one-line summary in ``detail``), sent with
every heartbeat and, throttled, whenever a camera's state changes. A camera that fails
is reported there; the gateway and its other cameras keep running.

With a BLE scanner configured (``scanner:`` on the gateway, or a replay trace given on the
command line) it also scans: adverts go through :class:`SightingTable` and, every
``report_interval_s``, what is due goes out as one :class:`BleReport`. Scanner trouble
(a dead adapter, a bad trace line) and drop counts are in the status ``detail``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from broker_config.contract import SensorHealth, Topics
from edge_agent.ble.scanner import Scanner, make_scanner
from edge_agent.ble.sightings import Advert, SightingTable
from edge_agent.gateway_config import CameraConfig
from edge_agent.publisher import EdgePublisher
from floorwalker import systemd_notify
from floorwalker.config import BleScannerConfig, StoreConfig
from floorwalker.errors import ConfigError
from floorwalker.mqtt import MqttAuth
from floorwalker.systemd_notify import Watchdog

log = logging.getLogger(__name__)

#: A camera changing state republishes the status, but not more often than this.
STATUS_MIN_INTERVAL_S = 1.0


def summarize(sensors: Sequence[SensorHealth]) -> str:
    """The status ``detail`` line: each camera's state in a few words."""
    parts = [f"camera {s.id}: {s.state}" + (f" ({s.detail})" if s.detail else "") for s in sensors]
    return "; ".join(parts)[:300]


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
    cameras: Sequence[CameraConfig] = (),
    scanner: BleScannerConfig | None = None,
    outbox_path: Path | None = None,
    auth: MqttAuth | None = None,
) -> None:
    """Serve as gateway ``gateway`` of ``config.store`` until ``stop`` is set.

    ``auth`` is the gateway's own broker login (``floorwalker provision gateway``).

    With ``outbox_path`` every event is kept there (SQLite) until the recommender has it.

    ``scanner`` overrides the gateway's configured BLE scanner (e.g. a replay trace).
    """
    from edge_agent.camera.worker import CameraWorker

    gw = next((g for g in config.gateways if g.id == gateway), None)
    if gw is None:
        known = ", ".join(g.id for g in config.gateways)
        raise ConfigError(f"gateway {gateway!r} is not in store {config.store!r} (known: {known})")
    from edge_agent.outbox import Outbox

    outbox = Outbox(outbox_path) if outbox_path is not None else None
    publisher = EdgePublisher(
        config.store, gateway, mqtt_host, mqtt_port, topics=Topics(topic_prefix), outbox=outbox, auth=auth
    )
    lane_zones = {lane.id: lane.zone for lane in config.lanes if lane.zone is not None}
    changed = threading.Event()
    workers = [CameraWorker(cam, publisher, lane_zones, on_change=changed.set) for cam in cameras]
    scanner_config = scanner or gw.scanner
    ble = _BleSide(config, gateway, scanner_config, stop) if scanner_config is not None else None
    publisher.start(time.time())
    log.info("gateway %s online at %s", gateway, publisher.link.url)
    # Under systemd (Type=notify, WatchdogSec=): ready now, then a pet per loop turn.
    watchdog = Watchdog()
    systemd_notify.notify("READY=1")
    for w in workers:
        w.start()
    try:
        if ble is not None:
            ble.start()
        # Wake for BLE reports when scanning; otherwise only for camera changes and heartbeats.
        tick = config.ble_presence.report_interval_s if ble is not None else 0.25
        next_beat = time.monotonic() + heartbeat_s
        while not stop.is_set():
            watchdog.pet()
            camera_changed = changed.wait(tick)
            if ble is not None:
                ble.publish_due(publisher)
            if camera_changed:
                changed.clear()
                stop.wait(STATUS_MIN_INTERVAL_S)  # let a burst of changes settle into one status
            elif time.monotonic() < next_beat:
                continue
            if stop.is_set():
                break
            next_beat = time.monotonic() + heartbeat_s
            sensors = [w.health() for w in workers]
            parts = (summarize(sensors), ble.detail() if ble else "", publisher.link.refused_summary())
            detail = "; ".join(d for d in parts if d)
            publisher.heartbeat(time.time(), detail[:300], sensors)
    finally:
        systemd_notify.notify("STOPPING=1")
        for w in workers:
            w.stop()
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
                [s.fields() for s in due[start : start + MAX_SIGHTINGS]],
            )

    def detail(self) -> str:
        with self._lock:
            summary = self.table.summary()
        status = self.scanner.status
        return (f"{status}; " if status else "ble ok: ") + summary
