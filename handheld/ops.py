"""Operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from handheld.session import HubDep, token_of

router = APIRouter(tags=["operations"])


class Ready(BaseModel):
    ready: bool
    mqtt: bool
    redis: bool


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up and serving (checks nothing else)."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Ready, responses={503: {"model": Ready, "description": "Not ready"}})
def readyz(hub: HubDep) -> JSONResponse:
    """Ready when both the MQTT broker and Redis answer; 503 otherwise."""
    mqtt, red = hub.link.connected, hub.redis_ok()
    body = Ready(ready=mqtt and red, mqtt=mqtt, redis=red)
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={401: {"description": "A scrape token is configured and this is not it"}},
)
def metrics(request: Request, hub: HubDep) -> Response:
    """Prometheus text format: prompts by kind and outcome, latency, dead letters, gateways.

    With a scrape token configured (``floorwalker api --secrets`` or ``--metrics-token-file``)
    it needs ``Authorization: Bearer <token>``."""
    expected: str | None = request.app.state.metrics_token
    if expected is not None:
        given = token_of(request) if request.headers.get("authorization") else None
        if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "metrics need the scrape token: `Authorization: Bearer <the token in metrics-token>`",
                headers={"WWW-Authenticate": "Bearer"},
            )
    return Response(hub.metrics.render(), media_type=CONTENT_TYPE_LATEST)
