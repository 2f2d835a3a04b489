"""Operations endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from handheld.session import HubDep

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


@router.get("/metrics", response_class=Response)
def metrics(hub: HubDep) -> Response:
    """Prometheus text format: prompts by kind and outcome, latency, dead letters, gateways."""
    return Response(hub.metrics.render(), media_type=CONTENT_TYPE_LATEST)
