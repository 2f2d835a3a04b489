"""The API fuzzed from its own OpenAPI schema (schemathesis): every operation, with
requests generated from the schema and mutated past it, signed in as a manager. Each must
answer below 500, and every refusal carries a reason. ``make test`` runs a fixed sample;
``make fuzz`` (``FLOORWALKER_FUZZ_EXAMPLES``) a larger one."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.generation.case import Case

from floorwalker.config import Endpoints, StoreConfig
from handheld import create_app
from handheld.auth import issue_token, open_session
from recommender.keys import Keys
from tests.fuzz.conftest import EXAMPLES

pytestmark = pytest.mark.integration

#: Endless by design (Server-Sent Events): its bad input is covered by tests/security.
SKIP = {("GET", "/api/stream")}


@pytest.fixture
def signed_in_api(
    services: Endpoints, prefix: str, store_config: StoreConfig, redis_client: redis.Redis
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    app = create_app(store_config, services, topic_prefix=prefix, key_prefix=prefix)
    keys = Keys(store_config.store, prefix)
    link = issue_token(redis_client, keys, store_config, "a-amy")  # the demo store's manager
    session, _ = open_session(redis_client, keys, store_config, link.token, time.time())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, {"Authorization": f"Bearer {session}"}


def test_every_operation_of_the_schema_answers_below_500(
    signed_in_api: tuple[TestClient, dict[str, str]],
) -> None:
    client, auth = signed_in_api
    schema = schemathesis.openapi.from_dict(client.app.openapi())  # type: ignore[attr-defined]
    operations = [
        result.ok()
        for result in schema.get_all_operations()
        if isinstance(result, Ok) and (result.ok().method.upper(), result.ok().path) not in SKIP
    ]
    assert len(operations) >= 8, [f"{o.method} {o.path}" for o in operations]
    cases = st.one_of([op.as_strategy(generation_mode=mode) for op in operations for mode in GenerationMode])
    # 25 per operation in `make test` (seconds); `make fuzz` raises FLOORWALKER_FUZZ_EXAMPLES.
    examples = max(25 * len(operations), EXAMPLES // 10)

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=EXAMPLES <= 200,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(case=cases, signed_in=st.booleans())
    def check(case: Case[Any], signed_in: bool) -> None:
        kwargs = case.as_transport_kwargs(base_url="http://testserver")
        headers = {**(kwargs.get("headers") or {}), **(auth if signed_in else {})}
        resp = client.request(
            kwargs["method"],
            kwargs["url"],
            params=kwargs.get("params"),
            headers=headers,
            json=kwargs.get("json"),
            content=kwargs.get("data") if isinstance(kwargs.get("data"), bytes | str) else None,
        )
        assert resp.status_code < 500, (case.method, case.formatted_path, kwargs, resp.text)
        if resp.status_code >= 400:
            assert resp.json().get("detail"), (case.method, case.formatted_path, resp.text)

    check()
