"""The store layout as the simulators walk it: which zones connect, where the way between
two zones is, and random spots inside a zone. Pure; built once from a :class:`StoreConfig`."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from floorwalker import geometry
from floorwalker.config import StoreConfig
from floorwalker.errors import ConfigError

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Floorplan:
    config: StoreConfig
    polygons: dict[str, list[Point]]
    #: Neighbouring zones of each zone, sorted (determinism).
    neighbours: dict[str, tuple[str, ...]]
    #: Where a shopper crosses from one zone into another (middle of the shared wall).
    doors: dict[tuple[str, str], Point]
    entrance_zones: tuple[str, ...]
    checkout_zone: str | None
    shopping_zones: tuple[str, ...]

    def random_point(self, zone: str, rng: random.Random) -> Point:
        """A uniformly random spot inside the zone (rejection sampling in its bounding box)."""
        poly = self.polygons[zone]
        x0, y0, x1, y1 = geometry.bounds(poly)
        for _ in range(64):
            p = (rng.uniform(x0, x1), rng.uniform(y0, y1))
            if geometry.contains(poly, p):
                return p
        return geometry.centroid(poly)

    def door(self, a: str, b: str) -> Point:
        return self.doors[(a, b)]


def build_floorplan(config: StoreConfig, source: str = "store config") -> Floorplan:
    """Derive the walkable graph; a :class:`ConfigError` names the file and key when the
    layout cannot be walked (no floor, no entrance, a zone nobody can reach)."""
    if config.floor is None:
        raise ConfigError(f"{source}: floor: the simulators need a floor plan with a polygon per zone")
    polygons = {z.id: list(z.polygon or []) for z in config.zones}
    if not config.entrances:
        raise ConfigError(f"{source}: entrances: the simulators need at least one entrance")
    links: dict[tuple[str, str], Point] = {}
    ids = [z.id for z in config.zones]
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            edge = geometry.shared_edge(polygons[a], polygons[b])
            if edge is not None:
                mid = ((edge[0][0] + edge[1][0]) / 2, (edge[0][1] + edge[1][1]) / 2)
                links[(a, b)] = links[(b, a)] = mid
    for a, b in config.simulation.doors:
        if (a, b) not in links:
            # A door between zones without a shared wall: cross halfway between their centres.
            ca, cb = geometry.centroid(polygons[a]), geometry.centroid(polygons[b])
            links[(a, b)] = links[(b, a)] = ((ca[0] + cb[0]) / 2, (ca[1] + cb[1]) / 2)
    neighbours = {z: tuple(sorted(b for (a, b) in links if a == z)) for z in ids}
    entrance_zones = tuple(dict.fromkeys(e.zone for e in config.entrances))
    seen = set(entrance_zones)
    todo = deque(entrance_zones)
    while todo:
        for n in neighbours[todo.popleft()]:
            if n not in seen:
                seen.add(n)
                todo.append(n)
    for z in ids:
        if z not in seen:
            raise ConfigError(
                f"{source}: zones: zone {z!r} cannot be reached from any entrance "
                "(it shares no wall with a reachable zone; add it to simulation.doors)"
            )
    checkout = next((lane.zone for lane in config.lanes if lane.zone is not None), None)
    shopping = tuple(z.id for z in config.zones if z.categories)
    if not shopping:
        raise ConfigError(f"{source}: zones: no zone shelves any categories, so there is nothing to shop")
    return Floorplan(config, polygons, neighbours, links, entrance_zones, checkout, shopping)
