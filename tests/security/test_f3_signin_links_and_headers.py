"""Finding 3: sign-in links were reusable bearer tokens, the cookie lacked ``Secure`` over
TLS, pages had no CSP, framing or sniffing protection, and ``/metrics``, ``/docs`` and
``/openapi.json`` were public."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from floorwalker.config import Endpoints, StoreConfig
from handheld import create_app
from handheld.auth import COOKIE
from handheld.routes import static_text
from tests.security.webapp import sign_in, signin_link

pytestmark = pytest.mark.integration

SCRAPE_TOKEN = "scrape-" + "s" * 40


@pytest.fixture
def app_args(services: Endpoints, prefix: str, store_config: StoreConfig) -> dict[str, object]:
    return {"config": store_config, "endpoints": services, "topic_prefix": prefix, "key_prefix": prefix}


@pytest.fixture
def api(services: Endpoints, prefix: str, store_config: StoreConfig) -> Iterator[TestClient]:
    app = create_app(store_config, services, topic_prefix=prefix, key_prefix=prefix)
    with TestClient(app) as client:
        yield client


def test_a_signin_link_works_once_for_a_separate_session(
    api: TestClient, redis_client: redis.Redis, prefix: str, store_config: StoreConfig
) -> None:
    link = signin_link(redis_client, prefix, store_config, "a-ben")
    link_token = link.split("token=")[1]
    cookie = sign_in(api, link)
    assert cookie != link_token and link_token not in cookie
    assert api.get("/api/me").json()["associate"] == "a-ben"

    with TestClient(api.app) as other_browser:
        again = other_browser.get(link, follow_redirects=False)
        assert again.status_code == 401 and "already used" in again.text, again.text
        assert other_browser.cookies.get(COOKIE) is None
        # Nor does the link's token work as a bearer token anywhere.
        bearer = other_browser.get("/api/me", headers={"Authorization": f"Bearer {link_token}"})
        assert bearer.status_code == 401, bearer.text
    assert api.get("/api/me").status_code == 200  # the first browser's session is untouched


def test_sessions_expire_with_their_link(
    api: TestClient, redis_client: redis.Redis, prefix: str, store_config: StoreConfig
) -> None:
    cookie = sign_in(api, signin_link(redis_client, prefix, store_config, "a-ben", ttl_s=1.0))
    kept = {"Cookie": f"{COOKIE}={cookie}"}  # as a browser that ignored the cookie's max-age would
    api.cookies.clear()
    assert api.get("/api/me", headers=kept).status_code == 200
    # The session ends when its link's validity does: poll for the refusal (a positive marker).
    for _ in range(400):
        resp = api.get("/api/me", headers=kept)
        if resp.status_code == 401:
            break
        time.sleep(0.01)
    assert resp.status_code == 401 and "ended" in resp.json()["detail"], resp.text


def test_a_manager_lists_sessions_and_ends_one(
    api: TestClient, redis_client: redis.Redis, prefix: str, store_config: StoreConfig
) -> None:
    with TestClient(api.app) as ben:
        sign_in(ben, signin_link(redis_client, prefix, store_config, "a-ben"))
        sign_in(api, signin_link(redis_client, prefix, store_config, "a-amy"))  # the manager
        assert ben.get("/api/sessions").status_code == 403
        listed = api.get("/api/sessions")
        assert listed.status_code == 200, listed.text
        sessions = {s["associate"]: s for s in listed.json()}
        assert set(sessions) == {"a-ben", "a-amy"}
        assert all(s["expires_at"] > s["created_at"] for s in sessions.values())
        cookie = ben.cookies.get(COOKIE)
        assert cookie and all(cookie not in str(s) for s in sessions.values())  # ids, never secrets
        ended = api.delete(f"/api/sessions/{sessions['a-ben']['id']}")
        assert ended.status_code == 204, ended.text
        assert ben.get("/api/me").status_code == 401
        assert api.delete(f"/api/sessions/{sessions['a-ben']['id']}").status_code == 404
        assert [s["associate"] for s in api.get("/api/sessions").json()] == ["a-amy"]


def test_the_session_cookie_is_secure_over_tls(
    app_args: dict[str, object], redis_client: redis.Redis, prefix: str, store_config: StoreConfig
) -> None:
    with TestClient(create_app(**app_args), base_url="https://store-12.local") as tls:  # type: ignore[arg-type]
        resp = tls.get(signin_link(redis_client, prefix, store_config, "a-ben"), follow_redirects=False)
        assert resp.status_code == 303
        flags = [f.strip().lower() for f in resp.headers["set-cookie"].split(";")]
        assert {"secure", "httponly", "samesite=strict"} <= set(flags), flags


def _hashes(page: str) -> set[str]:
    blocks = re.findall(r"<(script|style)>(.*?)</\1>", static_text(page), flags=re.S)
    return {
        "'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() + "'" for _, b in blocks
    }


def test_every_response_carries_the_security_headers(
    api: TestClient, redis_client: redis.Redis, prefix: str, store_config: StoreConfig
) -> None:
    sign_in(api, signin_link(redis_client, prefix, store_config, "a-amy"))
    for path in ("/", "/signin", "/handheld", "/dashboard", "/api/me", "/healthz", "/sw.js", "/nope"):
        h = api.get(path).headers
        csp = h.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, (path, csp)
        assert "'unsafe-inline'" not in csp, csp
        assert h.get("x-frame-options") == "DENY", path
        assert h.get("x-content-type-options") == "nosniff", path
        assert h.get("referrer-policy") == "no-referrer", path
    # The pages' own inline scripts and styles are allowed by hash, nothing else inline.
    csp = api.get("/handheld").headers["content-security-policy"]
    for page in ("handheld.html", "dashboard.html", "signin.html"):
        assert _hashes(page) and all(h in csp for h in _hashes(page)), page


def test_metrics_need_the_scrape_token(app_args: dict[str, object]) -> None:
    with TestClient(create_app(**app_args, metrics_token=SCRAPE_TOKEN)) as client:  # type: ignore[arg-type]
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = client.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})
        assert ok.status_code == 200 and "floorwalker_prompts" in ok.text


def test_api_docs_are_for_managers_only(
    api: TestClient, redis_client: redis.Redis, prefix: str, store_config: StoreConfig
) -> None:
    for path in ("/docs", "/openapi.json"):
        assert api.get(path).status_code == 401, path
    assert api.get("/redoc").status_code == 404
    sign_in(api, signin_link(redis_client, prefix, store_config, "a-ben"))
    for path in ("/docs", "/openapi.json"):
        assert api.get(path).status_code == 403, path
    sign_in(api, signin_link(redis_client, prefix, store_config, "a-amy"))
    assert "/api/stream" in api.get("/openapi.json").json()["paths"]
    docs = api.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
