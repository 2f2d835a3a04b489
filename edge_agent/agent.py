"""The gateway process: connect, announce ``online`` (retained, last will ``offline``),
heartbeat, run the gateway's cameras, and say ``offline`` on a clean stop.

Each camera runs on its own thread (:class:`edge_agent.camera_worker.CameraWorker`); its
health goes into the status (``sensors``, and a one-line summary in ``detail``), sent with
every heartbeat and, throttled, whenever a camera's state changes. A camera that fails
is reported there; the gateway and its other cameras keep running.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from broker_config.contract import SensorHealth, Topics
from edge_agent.gateway_config import CameraConfig
from edge_agent.publisher import EdgePublisher
from floorwalker.config import StoreConfig
from floorwalker.errors import ConfigError

log = logging.getLogger(__name__)

#: A camera changing state republishes the status, but not more often than this.
STATUS_MIN_INTERVAL_S = 1.0


def summarize(sensors: Sequence[SensorHealth]) -> str:
    """The status ``detail`` line: each camera's state in a few words."""
    parts = [f"camera {s.id}: {s.state}" + (f" ({s.detail})" if s.detail else "") for s in sensors]
    return "; ".join(parts)[:300]


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
) -> None:
    """Serve as gateway ``gateway`` of ``config.store`` until ``stop`` is set."""
    from edge_agent.camera_worker import CameraWorker

    known = [g.id for g in config.gateways]
    if gateway not in known:
        raise ConfigError(f"gateway {gateway!r} is not in store {config.store!r} (known: {', '.join(known)})")
    publisher = EdgePublisher(config.store, gateway, mqtt_host, mqtt_port, topics=Topics(topic_prefix))
    lane_zones = {lane.id: lane.zone for lane in config.lanes if lane.zone is not None}
    changed = threading.Event()
    workers = [CameraWorker(cam, publisher, lane_zones, on_change=changed.set) for cam in cameras]
    publisher.start(time.time())
    log.info("gateway %s online at %s", gateway, publisher.link.url)
    for w in workers:
        w.start()
    try:
        next_beat = time.monotonic() + heartbeat_s
        while not stop.is_set():
            if changed.wait(0.25):
                changed.clear()
                stop.wait(STATUS_MIN_INTERVAL_S)  # let a burst of changes settle into one status
            elif time.monotonic() < next_beat:
                continue
            if stop.is_set():
                break
            next_beat = time.monotonic() + heartbeat_s
            sensors = [w.health() for w in workers]
            publisher.heartbeat(time.time(), summarize(sensors), sensors)
    finally:
        for w in workers:
            w.stop()
        publisher.stop(time.time())
        log.info("gateway %s offline", gateway)
