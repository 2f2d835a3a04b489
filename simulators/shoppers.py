"""Shoppers: who comes in (a member from the CRM fixture or not), where they walk (a Markov
chain over neighbouring zones with log-normal dwell), what they put in the basket (the
member's category habits), how they queue and pay, and where they are at every moment.

Pure and deterministic: the caller passes a seeded ``random.Random``. A shopper's walk is
a list of :class:`Keyframe` s (straight lines between them at walking speed); zone visits
and :class:`PositionSample` streams are derived from it.
"""

from __future__ import annotations

import math
import random
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from floorwalker import geometry
from floorwalker.config import StoreConfig
from presence.positions import PositionSample
from recommender.crm import CrmFixture, Member
from simulators.arrivals import poisson
from simulators.checkout import LaneVisit, Tills
from simulators.floorplan import Floorplan, Point

#: Dwell in a zone without shelves (entrance, checkout passage), seconds.
TRANSIT_DWELL_S = 4.0
#: Mean dwell in a shelf zone unless the layout says otherwise, seconds.
SHELF_DWELL_S = 90.0
MAX_STEPS = 60


@dataclass(frozen=True, slots=True)
class Keyframe:
    """From ``t`` the shopper is at (x, y), then walks straight to the next keyframe; they are
    in ``zone`` until the next keyframe."""

    t: float
    x: float
    y: float
    zone: str


@dataclass(frozen=True, slots=True)
class ZoneVisit:
    zone: str
    enter: float
    leave: float


@dataclass(frozen=True, slots=True)
class Item:
    sku: str
    category: str
    qty: int
    amount_cents: int


@dataclass(slots=True)
class Shopper:
    id: str
    #: CRM member id, or None for a non-member.
    member: str | None
    #: A member whose app advertises with consent to recognition.
    recognizable: bool
    #: Shows the member card at the till.
    card: bool
    arrival: float
    frames: list[Keyframe] = field(default_factory=list)
    basket: list[Item] = field(default_factory=list)
    lane: LaneVisit | None = None

    @property
    def left(self) -> float:
        return self.frames[-1].t

    def visits(self) -> list[ZoneVisit]:
        out: list[ZoneVisit] = []
        start = self.frames[0]
        for f in self.frames[1:]:
            if f.zone != start.zone:
                out.append(ZoneVisit(start.zone, start.t, f.t))
                start = f
        out.append(ZoneVisit(start.zone, start.t, self.frames[-1].t))
        return [v for v in out if v.leave > v.enter]

    def zone_at(self, t: float) -> str | None:
        if not self.frames or t < self.frames[0].t or t >= self.frames[-1].t:
            return None
        for a, b in zip(self.frames, self.frames[1:], strict=False):
            if a.t <= t < b.t:
                return a.zone
        return None

    def positions(self, period_s: float) -> Iterator[PositionSample]:
        """Where the shopper is every ``period_s`` seconds from arrival until leaving."""
        member = self.member if self.recognizable else None
        frames = self.frames
        i = 0
        t = frames[0].t
        while t < frames[-1].t:
            while frames[i + 1].t <= t:
                i += 1
            a, b = frames[i], frames[i + 1]
            u = (t - a.t) / (b.t - a.t) if b.t > a.t else 0.0
            yield PositionSample(t, self.id, member, a.x + u * (b.x - a.x), a.y + u * (b.y - a.y), a.zone)
            t += period_s


class Walker:
    """Builds shoppers' walks over one floorplan."""

    def __init__(self, plan: Floorplan, crm: CrmFixture | None) -> None:
        self.plan = plan
        self.config: StoreConfig = plan.config
        sim = self.config.simulation
        self.speed = sim.walk_speed_mps
        self.categories = {z.id: list(z.categories) for z in self.config.zones}
        self.attraction: dict[str, float] = {}
        self.dwell: dict[str, float] = {}
        for z in self.config.zones:
            own = sim.zones.get(z.id)
            default_pull, default_dwell = (1.0, SHELF_DWELL_S) if z.categories else (0.2, TRANSIT_DWELL_S)
            pull = own.attraction if own is not None else None
            dwell = own.dwell_s if own is not None else None
            self.attraction[z.id] = default_pull if pull is None else pull
            self.dwell[z.id] = default_dwell if dwell is None else dwell
        self.members: list[Member] = list(crm.members) if crm else []
        self.habits: dict[str, Counter[str]] = {
            m.member: Counter(p.category for p in m.purchases) for m in self.members
        }
        self.usual_sku: dict[tuple[str, str], str] = {}
        for m in self.members:
            for p in sorted(m.purchases, key=lambda p: -(p.days_ago or 0.0)):
                self.usual_sku[(m.member, p.category)] = p.sku
        self.lane_queue_area = {lane.id: lane.queue_area for lane in self.config.lanes}

    # -- who -------------------------------------------------------------------------------

    def draw_people(self, n: int, rng: random.Random) -> list[tuple[str | None, bool, bool]]:
        """``(member, recognizable, card)`` per visitor; each CRM member comes at most once."""
        pool = list(self.members)
        rng.shuffle(pool)
        # A small CRM would run dry in the first hour: spread its members over the day.
        share = min(self.config.simulation.member_share, len(pool) / n) if n else 0.0
        out: list[tuple[str | None, bool, bool]] = []
        for _ in range(n):
            if pool and rng.random() < share:
                m = pool.pop()
                out.append((m.member, m.consent.recognition, rng.random() < 0.95))
            else:
                out.append((None, False, False))
        return out

    # -- where -----------------------------------------------------------------------------

    def _pull(self, shopper: Shopper, zone: str, visited: Counter[str]) -> float:
        w = self.attraction[zone]
        if shopper.member is not None:
            habit = self.habits.get(shopper.member, Counter())
            w *= 1.0 + sum(habit[c] for c in self.categories[zone]) / 2.0
        # Shoppers move on rather than back: a zone already walked through pulls much less.
        return w / (1.0 + 4.0 * visited[zone])

    def _dwell(self, zone: str, rng: random.Random) -> float:
        mean = self.dwell[zone]
        # Log-normal with sigma 0.5 whose mean is ``mean``.
        return mean * math.exp(rng.gauss(-0.125, 0.5))

    def _route(self, start: str, goal: str) -> list[str]:
        """Shortest zone path from ``start`` to ``goal`` (excluding ``start``)."""
        prev: dict[str, str] = {}
        todo = deque([start])
        seen = {start}
        while todo:
            z = todo.popleft()
            if z == goal:
                break
            for n in self.plan.neighbours[z]:
                if n not in seen:
                    seen.add(n)
                    prev[n] = z
                    todo.append(n)
        path = [goal]
        while path[-1] != start:
            path.append(prev[path[-1]])
        return path[::-1][1:]

    def _move(self, frames: list[Keyframe], zone_to: str, stop: bool, rng: random.Random) -> None:
        """Walk from the last keyframe through the door into ``zone_to``, then (if ``stop``)
        shop there: a few spots with dwell split between them."""
        last = frames[-1]
        door = self.plan.door(last.zone, zone_to)
        t = last.t + math.dist((last.x, last.y), door) / self.speed
        frames.append(Keyframe(t, door[0], door[1], zone_to))
        if not stop:
            p = self.plan.random_point(zone_to, rng)
            t += max(TRANSIT_DWELL_S * rng.uniform(0.5, 1.5), math.dist(door, p) / self.speed)
            frames.append(Keyframe(t, p[0], p[1], zone_to))
            return
        dwell = self._dwell(zone_to, rng)
        spots = rng.randint(1, 3)
        here: Point = door
        for _ in range(spots):
            p = self.plan.random_point(zone_to, rng)
            t += math.dist(here, p) / self.speed
            frames.append(Keyframe(t, p[0], p[1], zone_to))
            t += dwell / spots
            frames.append(Keyframe(t, p[0], p[1], zone_to))
            here = p

    def shop(self, shopper: Shopper, rng: random.Random) -> None:
        """Entrance, a Markov walk through shopping zones, the basket; up to the tills."""
        config = self.config
        entrance = config.entrances[rng.randrange(len(config.entrances))]
        x, y = entrance.position
        shopper.frames = [Keyframe(shopper.arrival, x, y, entrance.zone)]
        p = self.plan.random_point(entrance.zone, rng)
        t = shopper.arrival + math.dist((x, y), p) / self.speed + TRANSIT_DWELL_S * rng.uniform(0.5, 1.5)
        shopper.frames.append(Keyframe(t, p[0], p[1], entrance.zone))
        visited: Counter[str] = Counter()
        wanted = 1 + min(10, poisson(rng, 3.0))
        zone = entrance.zone
        for _ in range(MAX_STEPS):
            if sum(1 for z in visited if self.categories[z]) >= wanted:
                break
            options = self.plan.neighbours[zone]
            # A zone pulls by itself and, half as much, by the unvisited zones beyond it:
            # shoppers head deeper into the store rather than circling the front.
            weights = [
                self._pull(shopper, n, visited)
                + 0.5 * sum(self._pull(shopper, m, visited) for m in self.plan.neighbours[n] if m != zone)
                for n in options
            ]
            if not options or sum(weights) <= 0:
                break
            nxt = rng.choices(options, weights)[0]
            # A shelf zone is shopped the first time; walking back through it is a pass.
            stop = bool(self.categories[nxt]) and not visited[nxt]
            self._move(shopper.frames, nxt, stop, rng)
            if stop:
                self._pick(shopper, nxt, rng)
            visited[nxt] += 1
            zone = nxt

    def _pick(self, shopper: Shopper, zone: str, rng: random.Random) -> None:
        habit = self.habits.get(shopper.member or "", Counter())
        for c in self.categories[zone]:
            chance = 0.6 if habit[c] else (0.15 if shopper.member else 0.3)
            if rng.random() < chance:
                sku = self.usual_sku.get((shopper.member or "", c)) or f"{c}-{rng.randint(100, 999)}"
                qty = rng.randint(1, 3)
                shopper.basket.append(Item(sku, c, qty, qty * rng.randint(150, 2500)))

    def go_to(self, shopper: Shopper, goal: str, rng: random.Random) -> None:
        """Walk the shortest way to ``goal`` (no shopping on the way)."""
        here = shopper.frames[-1].zone
        if here == goal:
            return
        for z in self._route(here, goal):
            self._move(shopper.frames, z, False, rng)

    def pay(self, shopper: Shopper, tills: Tills, rng: random.Random) -> None:
        """Queue at the shortest lane, pay, then leave through the nearest entrance zone."""
        if not shopper.basket:
            zone = shopper.frames[-1].zone
            cats = [c for f in shopper.frames for c in self.categories[f.zone]] or self.categories[zone]
            if cats:
                c = rng.choice(cats)
                shopper.basket.append(Item(f"{c}-{rng.randint(100, 999)}", c, 1, rng.randint(150, 2500)))
        last = shopper.frames[-1]
        spots: dict[str, Point] = {}
        for lane, area in self.lane_queue_area.items():
            mid = geometry.centroid(area) if area else (last.x, last.y)
            spots[lane] = (mid[0] + rng.uniform(-0.5, 0.5), mid[1] + rng.uniform(-0.5, 0.5)) if area else mid
        walk = {lane: math.dist((last.x, last.y), p) / self.speed for lane, p in spots.items()}
        visit = tills.serve(last.t, sum(i.qty for i in shopper.basket), rng, walk)
        shopper.lane = visit
        spot = spots[visit.lane]
        # Walk to the lane's queue, wait there, pay.
        shopper.frames.append(Keyframe(visit.queued, spot[0], spot[1], last.zone))
        shopper.frames.append(Keyframe(visit.paid, spot[0], spot[1], last.zone))
        self.leave(shopper, rng)

    def leave(self, shopper: Shopper, rng: random.Random) -> None:
        """Out through the nearest entrance zone (if one is reachable) and its door."""
        here = shopper.frames[-1].zone
        targets = self.plan.entrance_zones
        goal = min(targets, key=lambda z: (len(self._route(here, z)) if z != here else 0, z))
        self.go_to(shopper, goal, rng)
        door = min(
            (e for e in self.config.entrances if e.zone == goal),
            key=lambda e: math.dist((shopper.frames[-1].x, shopper.frames[-1].y), e.position),
        )
        last = shopper.frames[-1]
        t = last.t + math.dist((last.x, last.y), door.position) / self.speed
        shopper.frames.append(Keyframe(max(t, last.t + 0.5), door.position[0], door.position[1], goal))
