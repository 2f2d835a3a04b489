"""The manager's dashboard data: one JSON snapshot the page polls."""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict

from broker_config.contract import EventId, Ident
from floorwalker.errors import ServiceUnavailable
from handheld.floor import (
    AssociateView,
    DashboardView,
    FloorSize,
    LaneView,
    funnel_from_stats,
    zone_views,
)
from handheld.manage import OpenPromptView, ResponseTimes, open_prompt_views, response_times
from handheld.session import HubDep, Manager

router = APIRouter()


@router.get(
    "/api/dashboard",
    tags=["dashboard"],
    responses={401: {"description": "Not signed in"}, 403: {"description": "Not a manager"}},
)
def dashboard(who: Manager, hub: HubDep) -> DashboardView:
    """Floor occupancy and queues, footfall by hour, the prompt funnel, associates, gateways."""
    del who
    now = time.time()
    config = hub.config
    stats = hub.floor.stats()
    zones = zone_views(config, hub.floor.zones())
    lanes = []
    for lane in config.lanes:
        queue, wait = hub.metrics.lane(lane.id)
        lanes.append(
            LaneView(
                id=lane.id,
                name=lane.name,
                zone=lane.zone,
                queue_area=lane.queue_area,
                queue=queue,
                wait_s=wait,
            )
        )
    queues = [q.queue for q in lanes if q.queue is not None] or [
        z.queue_length for z in zones if z.queue_length is not None
    ]
    associates = [
        AssociateView(
            id=a.id,
            name=a.display_name,
            role=a.role,
            status=hub.status_of(a.id),
            open_prompts=sum(p.is_open(now) for p in hub.prompts.recent(a.id)),
        )
        for a in config.associates
    ]
    return DashboardView(
        store=config.store,
        name=config.name,
        now=now,
        floor=FloorSize(width_m=config.floor.width_m, depth_m=config.floor.depth_m) if config.floor else None,
        zones=zones,
        lanes=lanes,
        queue_length=sum(queues) if queues else None,
        occupancy=sum(z.occupancy or 0 for z in zones),
        hourly=hub.floor.hourly(now),
        funnel=funnel_from_stats(stats),
        associates=associates,
        gateways=hub.gateways(),
        rejected=sum(v for k, v in stats.items() if k.startswith("rejected:")),
    )


class ManagerPrompts(BaseModel):
    now: float
    #: Open prompts (unanswered, or accepted and not done), oldest first.
    open: list[OpenPromptView]
    response_times: ResponseTimes


class ReassignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: Ident


class ReassignRequested(BaseModel):
    request_id: str
    prompt_id: str
    to: str


@router.get(
    "/api/dashboard/prompts",
    tags=["dashboard"],
    responses={401: {"description": "Not signed in"}, 403: {"description": "Not a manager"}},
)
def manager_prompts(who: Manager, hub: HubDep) -> ManagerPrompts:
    """Open prompts with their age and holder, and time to accept (delivery to the holder's
    tap) per associate and overall, from the prompts the API has kept (a day at most)."""
    del who
    now = time.time()
    ids = list(hub.associates)
    found = hub.prompts.open_prompts(ids, now)
    delivered = hub.prompts.delivered_at(p.prompt_id for p in found)
    names = {a.id: a.display_name for a in hub.config.associates}
    return ManagerPrompts(
        now=now,
        open=open_prompt_views(found, delivered, names, now),
        response_times=response_times(hub.prompts.accept_times(ids), ids),
    )


@router.post(
    "/api/prompts/{prompt_id}/reassign",
    status_code=status.HTTP_202_ACCEPTED,
    tags=["dashboard"],
    responses={
        401: {"description": "Not signed in"},
        403: {"description": "Not a manager"},
        404: {"description": "No such prompt, or no such associate"},
        409: {"description": "Answered already, theirs already, or they are not on the floor"},
        503: {"description": "Broker or Redis away"},
    },
)
def reassign(prompt_id: EventId, body: ReassignIn, who: Manager, hub: HubDep) -> ReassignRequested:
    """Move an open, unanswered prompt to another associate on the floor. The recommender
    (it routes) moves it as it does a re-route: it leaves the first handheld and appears on
    the other within a second or so; the dashboard shows the new holder then."""
    record = hub.prompts.record(prompt_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no prompt {prompt_id} in store {hub.config.store}")
    target = hub.associates.get(body.to)
    if target is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{body.to} is not an associate of {hub.config.store}")
    if record.outcome is not None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"prompt {prompt_id} is already {record.outcome}: it stays with its holder",
        )
    if record.associate == body.to:
        raise HTTPException(status.HTTP_409_CONFLICT, f"{target.display_name} already has prompt {prompt_id}")
    state = hub.status_of(body.to)
    if state in ("signed_out", "on_break"):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"{target.display_name} is {state.replace('_', ' ')}: pick someone on the floor",
        )
    try:
        request = hub.send_reassign(who.associate, prompt_id, body.to)
    except ServiceUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    return ReassignRequested(request_id=request.event_id, prompt_id=prompt_id, to=body.to)
