"""Shared fixtures: our own Mosquitto and Redis, once per test session, and a unique
topic/key prefix per test so tests never see each other's traffic."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from floorwalker.config import StoreConfig, load_store_config
from floorwalker.services import Endpoints, Services

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
    return load_store_config(DEMO_STORE)
