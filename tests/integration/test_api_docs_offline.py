"""``/docs`` works offline: Swagger UI's JS and CSS come from the app itself (the
``fastapi-offline`` package's copies), never a CDN, still for managers only, under a
policy that allows only this origin's files and the page's own inline script."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Route

from floorwalker.config import Endpoints, StoreConfig
from floorwalker.services import free_port
from handheld import create_app
from handheld.headers import csp_hash
from tests.integration.test_browser import RunningApi, browser  # noqa: F401  (a fixture)
from tests.security.webapp import sign_in, signin_link

pytestmark = pytest.mark.integration


@pytest.fixture
def api(services: Endpoints, prefix: str, store_config: StoreConfig) -> Iterator[TestClient]:
    app = create_app(store_config, services, topic_prefix=prefix, key_prefix=prefix)
    with TestClient(app) as client:
        yield client


def _asset_urls(html: str) -> list[str]:
    """Every URL the page loads: script src, stylesheet/icon href, and the JS config's url."""
    return re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)


def test_docs_load_swagger_ui_from_this_origin_only(
    api: TestClient, redis_client: redis.Redis, prefix: str, store_config: StoreConfig
) -> None:
    sign_in(api, signin_link(redis_client, prefix, store_config, "a-amy"))  # a manager
    page = api.get("/docs")
    assert page.status_code == 200, page.text
    html = page.text
    assert "SwaggerUIBundle(" in html
    assert "cdn" not in html.lower() and not re.search(r"https?://", html), html

    urls = _asset_urls(html)
    js = [u for u in urls if u.endswith(".js")]
    css = [u for u in urls if u.endswith(".css")]
    assert js and css and "/openapi.json" in urls, urls
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and url.startswith("/"), url
    for url in js:
        resp = api.get(url)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/javascript")
        assert len(resp.content) > 100_000 and b"SwaggerUIBundle" in resp.content, url
    for url in css:
        resp = api.get(url)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/css")
        assert b".swagger-ui" in resp.content, url
    assert api.get("/openapi.json").status_code == 200

    # The page's policy: scripts from this origin and its one inline block, nothing else.
    csp = dict(d.strip().split(" ", 1) for d in page.headers["content-security-policy"].split(";"))
    inline = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    assert csp["script-src"].split() == ["'self'", *(csp_hash(b) for b in inline)]
    assert csp["style-src"] == "'self'" and csp["default-src"] == "'self'"
    assert "http" not in page.headers["content-security-policy"]


def test_docs_assets_are_for_managers_only_and_only_the_known_files(
    api: TestClient, redis_client: redis.Redis, prefix: str, store_config: StoreConfig
) -> None:
    asset = "/docs/assets/swagger-ui-bundle.js"
    assert api.get(asset).status_code == 401
    sign_in(api, signin_link(redis_client, prefix, store_config, "a-ben"))  # an associate
    assert api.get(asset).status_code == 403
    sign_in(api, signin_link(redis_client, prefix, store_config, "a-amy"))
    assert api.get(asset).status_code == 200
    for name in ("redoc.standalone.js", "..%2Fconsts.py", "__init__.py", "nope.js"):
        assert api.get(f"/docs/assets/{name}").status_code == 404, name


def test_docs_render_in_a_browser_with_no_network_beyond_the_app(
    browser: Browser,  # noqa: F811  (test_browser's fixture)
    services: Endpoints,
    prefix: str,
    store_config: StoreConfig,
    redis_client: redis.Redis,
) -> None:
    """Chromium, every request off this origin refused: Swagger UI still draws the API's
    operations, and the page's policy blocks nothing it needs."""
    running = RunningApi(store_config, services, prefix, free_port())
    running.start()
    context = browser.new_context()
    try:
        page = context.new_page()
        elsewhere: list[str] = []

        def refuse(route: Route) -> None:
            elsewhere.append(route.request.url)
            route.abort()

        page.route(lambda url: not url.startswith(running.base), refuse)
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(running.base + signin_link(redis_client, prefix, store_config, "a-amy"))
        page.goto(running.base + "/docs")
        page.wait_for_selector(".swagger-ui .opblock", timeout=10_000)
        assert page.locator(".swagger-ui .opblock").count() >= 5
        assert "/api/stream" in page.content()
        assert not elsewhere, elsewhere
        assert not problems, problems
    finally:
        context.close()
        running.stop()
