"""The manager's dashboard data: one JSON snapshot the page polls."""

from __future__ import annotations

import time

from fastapi import APIRouter

from handheld.floor import (
    AssociateView,
    DashboardView,
    FloorSize,
    LaneView,
    funnel_from_stats,
    zone_views,
)
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
    queues = [z.queue_length for z in zones if z.queue_length is not None]
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
        lanes=[LaneView(id=lane.id, zone=lane.zone, queue_area=lane.queue_area) for lane in config.lanes],
        queue_length=sum(queues) if queues else None,
        occupancy=sum(z.occupancy or 0 for z in zones),
        hourly=hub.floor.hourly(now),
        funnel=funnel_from_stats(stats),
        associates=associates,
        gateways=hub.gateways(),
        rejected=sum(v for k, v in stats.items() if k.startswith("rejected:")),
    )
