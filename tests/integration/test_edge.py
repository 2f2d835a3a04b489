"""A gateway's health on the broker: retained online status, last will, clean offline."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable

import pytest

from broker_config.contract import GatewayStatus, Topics
from floorwalker.config import Endpoints
from tests.conftest import DEMO_STORE, Collector

pytestmark = pytest.mark.integration


def start_gateway(services: Endpoints, prefix: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "floorwalker", "edge", "--gateway", "gw-entrance",
            "--store-config", str(DEMO_STORE), "--mqtt-url", services.mqtt_url,
            "--topic-prefix", prefix, "--heartbeat", "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip


def statuses(collector: Collector) -> list[GatewayStatus]:
    return [GatewayStatus.model_validate_json(p) for p in collector.on("/status")]


@pytest.mark.parametrize(
    ("how", "detail"),
    [(signal.SIGTERM, "stopped"), (signal.SIGKILL, "connection lost")],
    ids=["clean stop says offline", "dead gateway's last will says offline"],
)
def test_gateway_status_is_retained_and_ends_offline(
    services: Endpoints,
    prefix: str,
    collect: Callable[[list[str]], Collector],
    how: signal.Signals,
    detail: str,
) -> None:
    topic = Topics(prefix).status("demo-store", "gw-entrance")
    watcher = collect([topic])
    gateway = start_gateway(services, prefix)
    try:
        watcher.wait_for(lambda msgs: len(msgs) >= 1)
        # Retained: a subscriber that arrives later still learns the gateway is online.
        late = collect([topic])
        late.wait_for(lambda msgs: len(msgs) >= 1)
        assert [s.state for s in statuses(late)] == ["online"]
        gateway.send_signal(how)
        gateway.wait(10)
    finally:
        gateway.kill()
        gateway.wait()
    watcher.wait_for(lambda msgs: len(msgs) >= 2)
    final = statuses(watcher)[-1]
    assert (final.state, final.detail, final.producer) == ("offline", detail, "gw-entrance")
    later = collect([topic])
    later.wait_for(lambda msgs: len(msgs) >= 1)
    assert statuses(later)[-1].state == "offline"
