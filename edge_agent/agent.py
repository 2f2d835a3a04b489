"""The gateway process: connect, announce ``online`` (retained, last will ``offline``),
heartbeat, and say ``offline`` on a clean stop.

Camera footfall and BLE presence plug into this process as sensing sources; until a
gateway has one configured it only reports its health.
"""

from __future__ import annotations

import logging
import threading
import time

from broker_config.contract import Topics
from edge_agent.publisher import EdgePublisher
from floorwalker.config import StoreConfig
from floorwalker.errors import ConfigError

log = logging.getLogger(__name__)


def run_gateway(
    config: StoreConfig,
    gateway: str,
    mqtt_host: str,
    mqtt_port: int,
    stop: threading.Event,
    *,
    topic_prefix: str = "",
    heartbeat_s: float = 30.0,
) -> None:
    """Serve as gateway ``gateway`` of ``config.store`` until ``stop`` is set."""
    known = [g.id for g in config.gateways]
    if gateway not in known:
        raise ConfigError(f"gateway {gateway!r} is not in store {config.store!r} (known: {', '.join(known)})")
    publisher = EdgePublisher(config.store, gateway, mqtt_host, mqtt_port, topics=Topics(topic_prefix))
    publisher.start(time.time())
    log.info("gateway %s online at %s", gateway, publisher.link.url)
    try:
        while not stop.wait(heartbeat_s):
            publisher.heartbeat(time.time())
    finally:
        publisher.stop(time.time())
        log.info("gateway %s offline", gateway)
