"""The app (``floorwalker api``): routes, request limits, error answers, and the server."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import importlib.resources
import logging
import math
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import redis
import uvicorn
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from floorwalker import __version__
from floorwalker.config import Endpoints, StoreConfig
from floorwalker.errors import ServiceStartError, ServiceUnavailable
from floorwalker.mqtt import MqttAuth
from handheld import dashboard, ops, routes, sessions
from handheld.headers import SecurityHeaders, csp_hash
from handheld.hub import StoreHub
from handheld.routes import static_text
from handheld.session import Manager

log = logging.getLogger(__name__)

#: Largest request body accepted; every real request is far smaller.
MAX_BODY_BYTES: Final = 16 * 1024
#: Seconds uvicorn waits for open streams on shutdown (SSE streams never end by themselves).
GRACEFUL_SHUTDOWN_S: Final = 3
#: Where /docs loads Swagger UI's files from, and the files (from fastapi-offline) it serves.
DOCS_ASSETS_PATH: Final = "/docs/assets"
DOCS_ASSETS: Final = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}
_STATIC_TYPES: Final = {
    "manifest.webmanifest": "application/manifest+json",
    "sw.js": "text/javascript",
    "icon.svg": "image/svg+xml",
}


class BodyLimit:
    """Refuses a request body over ``limit`` bytes with 413, whether or not it declares its length."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        resp = JSONResponse(
            {"detail": f"request body too large: the limit is {self.limit} bytes"}, status_code=413
        )
        await resp(scope, receive, send)


class _TooLarge(Exception):
    pass


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    hub: StoreHub = app.state.hub
    if not hub.started:  # run_api starts it before uvicorn, to fail with one clear line
        await asyncio.to_thread(hub.start, asyncio.get_running_loop())
    watchers = [asyncio.create_task(hub.watch_sessions()), asyncio.create_task(hub.keep_presence())]
    try:
        yield
    finally:
        for watcher in watchers:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await asyncio.to_thread(hub.close)


def _finite(value: object) -> object:
    """``value`` with every NaN or infinity replaced by its name (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _docs_page(title: str) -> HTMLResponse:
    """Swagger UI for managers, its JS and CSS served by this app (no CDN: it works offline),
    with a policy that allows this origin's files and the page's one inline script."""
    page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=title,
        swagger_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS_PATH}/favicon.png",
        # No badge fetched from validator.swagger.io.
        swagger_ui_parameters={"validatorUrl": None},
    )
    body = bytes(page.body).decode()
    scripts = " ".join(csp_hash(b) for b in re.findall(r"<script>(.*?)</script>", body, flags=re.S))
    page.headers["content-security-policy"] = (
        f"default-src 'self'; script-src 'self' {scripts}; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )
    return page


@functools.cache
def _docs_asset(name: str) -> bytes:
    """One of Swagger UI's files as the ``fastapi-offline`` package ships them."""
    return (importlib.resources.files("fastapi_offline") / "static" / name).read_bytes()


def create_app(
    config: StoreConfig,
    endpoints: Endpoints,
    *,
    topic_prefix: str = "",
    key_prefix: str = "",
    auth: MqttAuth | None = None,
    metrics_token: str | None = None,
) -> FastAPI:
    """The handheld and dashboard app; it connects to MQTT and Redis when its lifespan starts.

    With ``metrics_token`` ``/metrics`` answers only ``Authorization: Bearer <metrics_token>``
    (Prometheus's ``authorization`` setting); without it ``/metrics`` is open (local dev).
    """
    hub = StoreHub(config, endpoints, topic_prefix=topic_prefix, key_prefix=key_prefix, auth=auth)
    app = FastAPI(
        title=f"Floorwalker store server — {config.name}",
        version=__version__,
        description=(
            "Associates' handhelds (live prompts over Server-Sent Events, answers, status) and the "
            "manager's dashboard. Sign in with a link from `floorwalker token issue`: a browser "
            "opens it (once) and gets a session cookie; a script exchanges the link's token, once, "
            "at `POST /api/sessions` and sends `Authorization: Bearer fws_...`."
        ),
        lifespan=_lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.hub = hub
    app.state.metrics_token = metrics_token
    app.include_router(routes.router)
    app.include_router(sessions.router)
    app.include_router(dashboard.router)
    app.include_router(ops.router)
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders, page_text=static_text)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(who: Manager) -> JSONResponse:
        del who
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def docs(who: Manager) -> HTMLResponse:
        del who
        return _docs_page(app.title)

    @app.get(DOCS_ASSETS_PATH + "/{name}", include_in_schema=False)
    def docs_asset(name: str, who: Manager) -> Response:
        del who
        if name not in DOCS_ASSETS:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        return Response(
            _docs_asset(name),
            media_type=DOCS_ASSETS[name],
            headers={"cache-control": "private, max-age=86400"},
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # NaN, Infinity and 1e999 parse as floats; echoed back as numbers they would not render.
        return JSONResponse({"detail": _finite(jsonable_encoder(exc.errors()))}, status_code=422)

    @app.get("/manifest.webmanifest", include_in_schema=False)
    @app.get("/sw.js", include_in_schema=False)
    @app.get("/icon.svg", include_in_schema=False)
    def pwa_file(request: Request) -> Response:
        name = request.url.path.lstrip("/")
        return Response(static_text(name), media_type=_STATIC_TYPES[name])

    @app.exception_handler(ServiceUnavailable)
    async def unavailable(_request: Request, exc: ServiceUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(redis.RedisError)
    async def redis_away(_request: Request, exc: redis.RedisError) -> JSONResponse:
        return JSONResponse({"detail": f"Redis at {hub.redis_url} did not answer ({exc}); try again"}, 503)

    return app


def bind_port(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or one line saying why not and what to do."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not left 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only
    # on connections whose socket says TCP, and accepted ones inherit it from this one. With
    # Nagle on, an SSE event written while the previous one is still unacknowledged waits for
    # the page's delayed ACK (~40 ms on Linux).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # still refuses a live listener
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServiceStartError(
                f"port {port} on {host} is already in use: stop what listens there "
                f"(`ss -ltnp 'sport = :{port}'`) or choose another port with --port"
            ) from None
        raise ServiceStartError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): choose another --host or --port"
        ) from None
    return sock


class ApiServer(uvicorn.Server):
    """Ends the open SSE streams first: uvicorn would otherwise wait, then cancel them."""

    def __init__(self, hub: StoreHub, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._hub = hub

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._hub.feed.end_streams()
        await super().shutdown(sockets)


def make_server(app: FastAPI, host: str, port: int) -> ApiServer:
    hub: StoreHub = app.state.hub
    return ApiServer(
        hub,
        uvicorn.Config(
            app, host=host, port=port, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, log_level="warning"
        ),
    )


def run_api(
    config: StoreConfig,
    endpoints: Endpoints,
    host: str = "127.0.0.1",
    port: int = 8080,
    topic_prefix: str = "",
    key_prefix: str = "",
    auth: MqttAuth | None = None,
    metrics_token: str | None = None,
) -> None:
    """Serve the app until interrupted.

    Raises :class:`ServiceStartError` if the port is taken and :class:`ServiceUnavailable`
    if MQTT or Redis cannot be reached; both before anything is served.
    """
    sock = bind_port(host, port)  # handed to uvicorn: no window for another process to take it
    app = create_app(
        config,
        endpoints,
        topic_prefix=topic_prefix,
        key_prefix=key_prefix,
        auth=auth,
        metrics_token=metrics_token,
    )
    hub: StoreHub = app.state.hub
    server = make_server(app, host, port)

    async def serve() -> None:
        await asyncio.to_thread(hub.start, asyncio.get_running_loop())
        await server.serve(sockets=[sock])

    try:
        # uvicorn re-raises the SIGINT it caught after a graceful shutdown; that is a normal end.
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve())
    finally:
        hub.close()
        sock.close()
