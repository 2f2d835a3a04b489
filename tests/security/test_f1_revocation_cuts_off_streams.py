"""Finding 1 (the web app's part): revocation and sign-out cut off what is already open.

An SSE stream opened before ``floorwalker token revoke`` used to keep receiving prompts
(names, member ids, points), and ``POST /signout`` left the cookie valid for its 12 h.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from floorwalker.config import Endpoints, StoreConfig
from floorwalker.mqtt import MqttLink
from handheld import create_app
from handheld.auth import COOKIE, end_session, issue_token, open_session, revoke_tokens
from recommender.keys import Keys
from tests.integration.test_api import Recommender
from tests.security.webapp import ENDED, StreamReader, sign_in, signin_link

pytestmark = pytest.mark.integration


@pytest.fixture
def api(services: Endpoints, prefix: str, store_config: StoreConfig) -> Iterator[TestClient]:
    app = create_app(store_config, services, topic_prefix=prefix, key_prefix=prefix)
    with TestClient(app) as client:
        yield client


@pytest.fixture
def recommender(services: Endpoints, prefix: str, store_config: StoreConfig) -> Iterator[Recommender]:
    link = MqttLink(services.mqtt_host, services.mqtt_port, client_id=f"{prefix.rstrip('/')}-f1-pub")
    link.connect()
    yield Recommender(link, prefix, store_config.store)
    link.close()


def test_token_revoke_cuts_an_open_stream_and_no_prompt_gets_through(
    api: TestClient,
    recommender: Recommender,
    redis_client: redis.Redis,
    prefix: str,
    store_config: StoreConfig,
) -> None:
    sign_in(api, signin_link(redis_client, prefix, store_config, "a-ben"))
    with api.stream("GET", "/api/stream") as resp:
        assert resp.status_code == 200
        reader = StreamReader(resp)
        reader.until(lambda e: e.get("event") == "ready")
        before = recommender.prompt("a-ben", headline="Before the revocation")
        got = reader.until(lambda e: e.get("event") == "prompt")
        assert json.loads(got[-1]["data"])["prompt_id"] == before.event_id

        # What `floorwalker token revoke --associate a-ben` does.
        assert revoke_tokens(redis_client, Keys(store_config.store, prefix), "a-ben").sessions == 1
        recommender.prompt("a-ben", headline="After the revocation: must not be shown")
        after = reader.until(lambda e: e is ENDED)
        assert after == [ENDED], f"the revoked stream went on sending: {after}"
    assert api.get("/api/me").status_code == 401


def test_signout_ends_the_session_everywhere_at_once(
    api: TestClient,
    services: Endpoints,
    store_config: StoreConfig,
    redis_client: redis.Redis,
    prefix: str,
) -> None:
    cookie = sign_in(api, signin_link(redis_client, prefix, store_config, "a-cara"))
    assert api.get("/api/me").json()["associate"] == "a-cara"
    with api.stream("GET", "/api/stream") as resp:
        reader = StreamReader(resp)
        reader.until(lambda e: e.get("event") == "ready")
        out = api.post("/signout", follow_redirects=False)
        assert out.status_code == 303
        reader.until(lambda e: e is ENDED)
    # The old cookie, kept by someone (another tab, a copied header): refused everywhere.
    stale = {"Cookie": f"{COOKIE}={cookie}"}
    api.cookies.clear()
    for path in ("/api/me", "/api/prompts", "/api/stream"):
        resp = api.get(path, headers=stale)
        assert resp.status_code == 401, (path, resp.status_code, resp.text)
    assert api.post("/api/status", json={"state": "busy"}, headers=stale).status_code == 401


def test_one_ended_session_is_cut_off_while_the_other_pages_go_on(
    api: TestClient,
    recommender: Recommender,
    redis_client: redis.Redis,
    prefix: str,
    store_config: StoreConfig,
) -> None:
    """Two phones of one associate, two sessions. A burst reaches both in order, once each;
    then one session is ended straight in Redis (as another server or the CLI would, so
    nothing tells this API) and the next prompt goes to the other phone only, while the
    ended one's stream stops before it."""
    keys = Keys(store_config.store, prefix)
    sessions = []
    for _ in range(2):
        issued = issue_token(redis_client, keys, store_config, "a-ben")
        sessions.append(open_session(redis_client, keys, store_config, issued.token, time.time()))
    [(kept_secret, _), (ended_secret, ended)] = sessions
    with (
        api.stream("GET", "/api/stream", headers={"Authorization": f"Bearer {kept_secret}"}) as kept_resp,
        api.stream("GET", "/api/stream", headers={"Authorization": f"Bearer {ended_secret}"}) as ended_resp,
    ):
        pages = [StreamReader(kept_resp), StreamReader(ended_resp)]
        for page in pages:
            page.until(lambda e: e.get("event") == "ready")
        burst = [recommender.prompt("a-ben", headline=f"Burst {n}").event_id for n in range(20)]
        for page in pages:
            got = page.until(lambda e: e.get("data", "").startswith(f'{{"prompt_id":"{burst[-1]}"'))
            assert [json.loads(e["data"])["prompt_id"] for e in got if e.get("event") == "prompt"] == burst

        assert end_session(redis_client, keys, ended.session)
        after = recommender.prompt("a-ben", headline="After one session ended")
        got = pages[0].until(lambda e: e.get("event") == "prompt")
        assert [json.loads(e["data"])["prompt_id"] for e in got] == [after.event_id]
        assert pages[1].until(lambda e: e is ENDED) == [ENDED]
