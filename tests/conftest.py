"""Shared fixtures: our own Mosquitto and Redis, once per test session, and a unique
topic/key prefix per test so tests never see each other's traffic."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from floorwalker.config import Endpoints, StoreConfig, load_store_config
from floorwalker.mqtt import Received
from floorwalker.services import Services

REPO = Path(__file__).resolve().parent.parent
DEMO_STORE = REPO / "simulators" / "data" / "demo_store.yaml"


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    """A real Mosquitto and Redis started from broker_config/ on free loopback ports."""
    svc = Services(tmp_path_factory.mktemp("services"))
    endpoints = svc.up()
    yield endpoints
    svc.down()


@pytest.fixture
def prefix() -> str:
    """Unique per test: used as both the MQTT topic prefix and the Redis key prefix."""
    return f"t{uuid.uuid4().hex[:10]}/"


@pytest.fixture
def redis_client(services: Endpoints, prefix: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(services.redis_url)
    yield client
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="session")
def store_config() -> StoreConfig:
    """The demo store for tests of the decision path, which run no handhelds: with
    ``rules.require_handheld`` off every associate counts as on the floor. Tests of who is
    on the floor load it with its default (on): tests/integration/test_floor_presence.py."""
    config = load_store_config(DEMO_STORE)
    return config.model_copy(update={"rules": config.rules.model_copy(update={"require_handheld": False})})


class Collector:
    """Subscribes to topic filters on the real broker and keeps what arrives, in order."""

    def __init__(self, endpoints: Endpoints, filters: list[str]) -> None:
        import threading

        from floorwalker.mqtt import MqttLink

        self.messages: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()
        self.link = MqttLink(
            endpoints.mqtt_host,
            endpoints.mqtt_port,
            client_id=f"collector-{uuid.uuid4().hex[:8]}",
            subscriptions=[(f, 1) for f in filters],
            on_message=self._add,
        )
        self.link.connect()
        # Subscriptions are sent on connect; a round trip through the broker proves they are in.
        probe = f"probe/{uuid.uuid4().hex}"
        self.link.client.subscribe(probe, 1)
        self.link.publish(probe, b"ready", qos=1)
        self.wait_for(lambda msgs: any(t == probe for t, _ in msgs))
        self.link.client.unsubscribe(probe)
        with self._cond:
            self.messages = [m for m in self.messages if m[0] != probe]

    def _add(self, msg: Received) -> bool:
        with self._cond:
            self.messages.append((msg.topic, msg.payload))
            self._cond.notify_all()
        return True

    def wait_for(self, predicate: Callable[[list[tuple[str, bytes]]], bool], timeout: float = 10.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self.messages), timeout):
                raise AssertionError(f"timed out after {timeout} s; got {[t for t, _ in self.messages]}")

    def on(self, topic_part: str) -> list[bytes]:
        with self._cond:
            return [p for t, p in self.messages if topic_part in t]

    def close(self) -> None:
        self.link.close()


@pytest.fixture
def collect(services: Endpoints) -> Iterator[Callable[[list[str]], Collector]]:
    made: list[Collector] = []

    def make(filters: list[str]) -> Collector:
        c = Collector(services, filters)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()
