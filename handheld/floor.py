"""What the manager's dashboard shows: zone occupancy, queues, footfall by hour, the prompt
funnel, associates' load and gateway health.

Pure functions build the view from plain data (time passed in); the few Redis reads and
writes sit in :class:`FloorStore`. Occupancy and hourly entries live in Redis, so a
restarted API shows the day so far.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Final, Literal

import redis
from pydantic import BaseModel

from broker_config.contract import FootfallEvent, GatewayStatus
from floorwalker.config import FloorPoint, StoreConfig
from recommender.keys import FOOTFALL_TTL_S, Keys
from recommender.outcomes import decode_stats

#: Days averaged into the "typical day" curve.
TYPICAL_DAYS: Final = 7
HOURS: Final = 24


def day_and_hour(ts: float) -> tuple[str, int]:
    """The store-local day (``YYYY-MM-DD``) and hour of ``ts`` (the server's time zone)."""
    t = time.localtime(ts)
    return time.strftime("%Y-%m-%d", t), t.tm_hour


def entry_zones(config: StoreConfig) -> frozenset[str]:
    """Zones whose ``entered`` counts are store entries: behind an entrance (all, if none)."""
    zones = {e.zone for e in config.entrances}
    return frozenset(zones or {z.id for z in config.zones})


def typical_day(days: Sequence[Sequence[int]]) -> list[float]:
    """Mean entries per hour over the given days (zeros if there are none)."""
    if not days:
        return [0.0] * HOURS
    return [round(sum(d[h] for d in days) / len(days), 1) for h in range(HOURS)]


def hours_of(raw: Mapping[bytes, bytes]) -> list[int]:
    counts = [0] * HOURS
    for k, v in raw.items():
        h = int(k)
        if 0 <= h < HOURS:
            counts[h] = int(v)
    return counts


# --------------------------------------------------------------------------------------
# The view
# --------------------------------------------------------------------------------------


class ZoneView(BaseModel):
    id: str
    name: str
    polygon: list[FloorPoint] | None
    occupancy: int | None = None
    queue_length: int | None = None
    updated: float | None = None


class LaneView(BaseModel):
    id: str
    name: str
    zone: str | None
    queue_area: list[FloorPoint] | None
    #: People queueing at the lane (its camera's latest count), None if never reported.
    queue: int | None = None
    #: Estimated wait, seconds: the queue x the mean time between the lane's recent
    #: checkouts (floorwalker.queue_wait), None until known.
    wait_s: float | None = None


class FloorSize(BaseModel):
    width_m: float
    depth_m: float


class Hourly(BaseModel):
    today: list[int]
    typical: list[float]
    #: How many earlier days went into ``typical``.
    typical_days: int


class Funnel(BaseModel):
    sent: int
    accepted: int
    dismissed: int
    done: int
    converted: int
    by_kind: dict[str, int]


class AssociateView(BaseModel):
    id: str
    name: str
    role: str
    status: str
    open_prompts: int


#: A gateway publishes its status this often (the edge agent's default ``heartbeat_s``);
#: an "online" status older than 3 of them is shown ``stale``: the gateway went quiet
#: without its last will reaching the broker (power cut, a hung agent).
GATEWAY_HEARTBEAT_S = 30.0


class GatewayView(BaseModel):
    id: str
    state: Literal["online", "stale", "offline", "unknown"]
    #: Where it hangs on the floor (from the store config), metres.
    position: FloorPoint | None = None
    last_seen: float | None = None
    detail: str = ""
    software: str = ""


class DashboardView(BaseModel):
    store: str
    name: str
    now: float
    floor: FloorSize | None
    zones: list[ZoneView]
    lanes: list[LaneView]
    #: People queueing at checkout: the lanes' queues summed where any lane's is known, else
    #: the zones' reported queues; None if never reported.
    queue_length: int | None
    occupancy: int
    hourly: Hourly
    funnel: Funnel
    associates: list[AssociateView]
    gateways: list[GatewayView]
    rejected: int


def funnel_from_stats(stats: Mapping[str, int]) -> Funnel:
    """The funnel from the recommender's stats hash; a missing counter is 0."""
    return Funnel(
        sent=stats.get("prompts", 0),
        accepted=stats.get("feedback:accepted", 0),
        dismissed=stats.get("feedback:dismissed", 0),
        done=stats.get("feedback:done", 0),
        converted=stats.get("converted", 0),
        by_kind={k.removeprefix("prompt:"): v for k, v in sorted(stats.items()) if k.startswith("prompt:")},
    )


def gateway_view(
    gateway: str,
    status: GatewayStatus | None,
    position: FloorPoint | None = None,
    now: float | None = None,
    heartbeat_s: float = GATEWAY_HEARTBEAT_S,
) -> GatewayView:
    """How the dashboard shows a gateway; with ``now``, an "online" status older than 3
    heartbeats is ``stale``."""
    if status is None:
        return GatewayView(id=gateway, state="unknown", position=position)
    stale = status.state == "online" and now is not None and now - status.ts > 3 * heartbeat_s
    return GatewayView(
        id=gateway,
        state="stale" if stale else status.state,
        position=position,
        last_seen=status.ts,
        detail=status.detail,
        software=status.software,
    )


def zone_views(config: StoreConfig, live: Mapping[str, Mapping[str, float | int | None]]) -> list[ZoneView]:
    views = []
    for z in config.zones:
        got = live.get(z.id, {})
        occ, queue, ts = got.get("occupancy"), got.get("queue_length"), got.get("ts")
        views.append(
            ZoneView(
                id=z.id,
                name=z.name,
                polygon=z.polygon,
                occupancy=None if occ is None else int(occ),
                queue_length=None if queue is None else int(queue),
                updated=ts,
            )
        )
    return views


# --------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------


class FloorStore:
    """Latest occupancy per zone and entries by hour. Blocking: call off the event loop."""

    def __init__(self, client: redis.Redis, keys: Keys, config: StoreConfig) -> None:
        self._redis = client
        self._keys = keys
        self._entry_zones = entry_zones(config)

    def record(self, zone: str, event: FootfallEvent) -> None:
        pipe = self._redis.pipeline(transaction=False)
        latest = {"occupancy": event.occupancy, "queue_length": event.queue_length, "ts": event.ts}
        pipe.hset(self._keys.floor, zone, json.dumps(latest))
        if zone in self._entry_zones and event.entered:
            day, hour = day_and_hour(event.ts)
            pipe.hincrby(self._keys.footfall(day), str(hour), event.entered)
            pipe.expire(self._keys.footfall(day), FOOTFALL_TTL_S)
        pipe.execute()

    def zones(self) -> dict[str, dict[str, float | int | None]]:
        raw: dict[bytes, bytes] = self._redis.hgetall(self._keys.floor)  # type: ignore[assignment]
        out: dict[str, dict[str, float | int | None]] = {}
        for k, v in raw.items():
            try:
                out[k.decode()] = json.loads(v)
            except ValueError:
                continue
        return out

    def hourly(self, now: float) -> Hourly:
        days = [day_and_hour(now - d * 86_400)[0] for d in range(TYPICAL_DAYS + 1)]
        pipe = self._redis.pipeline(transaction=False)
        for day in days:
            pipe.hgetall(self._keys.footfall(day))
        raws: list[dict[bytes, bytes]] = pipe.execute()
        earlier = [hours_of(r) for r in raws[1:] if r]
        return Hourly(today=hours_of(raws[0]), typical=typical_day(earlier), typical_days=len(earlier))

    def stats(self) -> dict[str, int]:
        raw: dict[bytes, bytes] = self._redis.hgetall(self._keys.stats)  # type: ignore[assignment]
        return decode_stats(raw)
