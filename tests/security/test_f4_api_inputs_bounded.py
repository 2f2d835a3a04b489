"""Finding 4 (the API's part): ``NaN``/``Infinity`` in JSON bodies were a 500, and a
``Last-Event-ID`` past 64 bits an empty 200 with a traceback in the log."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from floorwalker.config import Endpoints, StoreConfig
from handheld import create_app
from tests.security.webapp import sign_in, signin_link

pytestmark = pytest.mark.integration


@pytest.fixture
def api(
    services: Endpoints, prefix: str, store_config: StoreConfig, redis_client: redis.Redis
) -> Iterator[TestClient]:
    app = create_app(store_config, services, topic_prefix=prefix, key_prefix=prefix)
    with TestClient(app, raise_server_exceptions=False) as client:
        sign_in(client, signin_link(redis_client, prefix, store_config, "a-ben"))
        yield client


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/api/feedback", b'{"prompt_id": NaN, "outcome": "accepted"}'),
        ("/api/feedback", b'{"prompt_id": "0123456789abcdef0123456789abcdef", "outcome": Infinity}'),
        ("/api/feedback", b'{"prompt_id": -Infinity}'),
        ("/api/status", b'{"state": NaN}'),
        ("/api/status", b'{"state": "busy", "zone": Infinity}'),
        ("/api/status", b"[NaN, 1e999]"),
        ("/api/status", b'{"state": "busy", "zone": 1e999}'),
    ],
)
def test_non_finite_numbers_in_json_bodies_are_a_422(api: TestClient, route: str, body: bytes) -> None:
    resp = api.post(route, content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 422, (resp.status_code, resp.text)
    assert resp.json()["detail"]


@pytest.mark.parametrize(
    "value",
    ["18446744073709551616-0", "1-18446744073709551616", "99999999999999999999-0", "abc", "1-", "-1-0"],
)
def test_a_last_event_id_that_is_not_a_stream_id_is_a_clear_400(
    api: TestClient, value: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    for kw in ({"headers": {"Last-Event-ID": value}}, {"params": {"last_event_id": value}}):
        with api.stream("GET", "/api/stream", **kw) as resp:
            assert resp.status_code == 400, (value, kw, resp.status_code)  # before reading: a 200 never ends
            body = resp.read().decode()
        assert "Last-Event-ID" in body and "like 1712345678901-0" in body, body
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
