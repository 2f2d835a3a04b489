"""``floorwalker eval presence``: the BLE presence path against movement ground truth.

Files:

* TRACE: advertisements, JSONL in the replay format of :mod:`edge_agent.ble.scanner`
  (recorded by gateways, or made by :mod:`simulators.ble_radio`).
* TRUTH: where each shopper was, JSONL, one :class:`~presence.positions.PositionSample`
  per line: ``{"ts": ..., "shopper": "s1", "member": "m_702cc64d" | null, "x": 4.1,
  "y": 2.0, "zone": "entrance"}``. A member absent from the truth at a time is outside
  the store ("away").

Metrics, over every truth sample of a member: **zone accuracy** (the fused zone equals the
true zone; "unknown" and a missing zone count as wrong), the same **near zone boundaries**
(within ``BOUNDARY_M`` of another zone, inclusive; "n/a" when no sample is), **precision
and recall per zone** (overall and near borders), **neighbour confusion** (wrong answers
that name a zone bordering the true one, and the top confused pairs), **latency errors**
(wrong answers naming the zone the member was in less than ``LATENCY_S`` before: the
fuser had not caught up yet), and **zone-change delay**: for every stay of at least
``MIN_STAY_S`` in a zone, the time from entering it to the fused zone first saying so
(stays never recognized are counted as missed).

Every figure comes with the same figures for the simplest method,
:func:`strongest_receiver`: the zone of the gateway with the strongest fresh reading, on
the very reports the fuser gets.

:func:`demo_walks` makes simple walks through a store's zones for the evaluation and the
tests (a helper, not a simulator: the full store simulator provides real shopper paths).
"""

from __future__ import annotations

import bisect
import json
import math
import random
import statistics
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge_agent.ble.scanner import read_trace
from edge_agent.ble.sightings import Advert
from floorwalker import geometry
from floorwalker.config import StoreConfig
from floorwalker.errors import ConfigError
from presence.eid_resolver import EidResolver
from presence.pipeline import PresencePipeline, frame_kinds
from presence.positions import PositionSample
from presence.zone_fusion import ZoneChange

BOUNDARY_M = 1.5
MIN_STAY_S = 5.0
LATENCY_S = 3.0
AWAY = "away"


# -- walks -------------------------------------------------------------------------------


def _random_point(
    rng: random.Random, poly: list[tuple[float, float]], margin: float = 0.8
) -> tuple[float, float]:
    xs, ys = [p[0] for p in poly], [p[1] for p in poly]
    for _ in range(1000):
        pt = (
            rng.uniform(min(xs) + margin, max(xs) - margin),
            rng.uniform(min(ys) + margin, max(ys) - margin),
        )
        if geometry.contains(poly, pt):
            return pt
    return geometry.centroid(poly)


def demo_walks(
    config: StoreConfig,
    members: list[str],
    *,
    start: float,
    stops: int = 4,
    seed: int = 1,
    step_s: float = 0.5,
    stagger_s: float = 20.0,
) -> list[PositionSample]:
    """Each member walks in from the first entrance, visits ``stops`` random spots in random
    zones (walking 0.8-1.3 m/s, lingering 5-40 s at each), then goes to the checkout zone
    (if any) and back out. Samples every ``step_s``; the truth zone from the polygons."""
    if not config.entrances or any(z.polygon is None for z in config.zones):
        raise ConfigError("walks need a store with a floor plan (zone polygons) and an entrance")
    rng = random.Random(seed)
    door = config.entrances[0].position
    shop_zones = [z for z in config.zones if z.categories] or list(config.zones)
    checkout = config.zone("checkout")
    samples: list[PositionSample] = []
    for n, member in enumerate(members):
        t = start + n * stagger_s
        x, y = door[0], door[1] + 0.3
        plan = [rng.choice(shop_zones) for _ in range(stops)] + ([checkout] if checkout else [])
        targets = [(_random_point(rng, z.polygon or []), rng.uniform(20, 120)) for z in plan if z]
        targets.append(((door[0], door[1] + 0.3), 0.0))
        speed = rng.uniform(0.8, 1.3)

        def emit(px: float, py: float, ts: float, shopper: str = f"s{seed}-{n}", ref: str = member) -> None:
            zone = config.zone_at((px, py))
            samples.append(
                PositionSample(
                    round(ts, 3), shopper, ref, round(px, 3), round(py, 3), zone.id if zone else AWAY
                )
            )

        for (tx, ty), linger in targets:
            dist = math.hypot(tx - x, ty - y)
            steps = max(1, math.ceil(dist / (speed * step_s)))
            for k in range(1, steps + 1):
                t += step_s
                emit(x + (tx - x) * k / steps, y + (ty - y) * k / steps, t)
            x, y = tx, ty
            for _ in range(int(linger / step_s)):
                t += step_s
                emit(x + rng.gauss(0, 0.05), y + rng.gauss(0, 0.05), t)
    samples.sort(key=lambda s: s.ts)
    return samples


def write_truth(path: Path, samples: Iterable[PositionSample]) -> None:
    with path.open("w") as fh:
        for s in samples:
            fh.write(json.dumps(asdict(s)) + "\n")


def read_truth(path: Path) -> list[PositionSample]:
    out: list[PositionSample] = []
    try:
        with path.open() as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    out.append(PositionSample(**json.loads(line)))
                except (ValueError, TypeError) as exc:
                    raise ConfigError(f"{path}:{n}: not a position sample ({exc})") from None
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such truth file") from None
    return out


def write_trace(path: Path, records: Iterable[Mapping[str, object]]) -> int:
    n = 0
    with path.open("w") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
            n += 1
    return n


def trace_records(path: Path) -> Iterator[tuple[str, Advert]]:
    """A trace's advertisements; a bad line is a :class:`ConfigError` naming it."""
    if not path.exists():
        raise ConfigError(f"{path}: no such trace file")
    for n, gw, item in read_trace(path):
        if isinstance(item, str):
            raise ConfigError(f"{path}:{n}: not an advertisement record ({item})")
        yield gw, item


# -- metrics -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ZoneScore:
    """One zone: truth samples in it, answers naming it, and how many of those agree."""

    truth: int
    said: int
    correct: int

    @property
    def precision(self) -> float | None:
        return self.correct / self.said if self.said else None

    @property
    def recall(self) -> float | None:
        return self.correct / self.truth if self.truth else None


@dataclass(frozen=True)
class PresenceReport:
    samples: int
    accuracy: float
    boundary_samples: int
    #: None when no sample lies within BOUNDARY_M of another zone.
    boundary_accuracy: float | None
    neighbour_share_of_errors: float
    confusion: list[tuple[str, str, int]]
    stays: int
    missed_stays: int
    median_delay_s: float | None
    p90_delay_s: float | None
    changes: int
    latency_errors: int = 0
    per_zone: dict[str, ZoneScore] = field(default_factory=dict)
    per_zone_boundary: dict[str, ZoneScore] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        doc = asdict(self)
        for key in ("per_zone", "per_zone_boundary"):
            scores: dict[str, ZoneScore] = getattr(self, key)
            doc[key] = {
                z: {"truth": v.truth, "said": v.said, "precision": v.precision, "recall": v.recall}
                for z, v in scores.items()
            }
        return doc


def _zone_scores(pairs: list[tuple[str, str]]) -> dict[str, ZoneScore]:
    truth: Counter[str] = Counter(t for t, _ in pairs)
    said: Counter[str] = Counter(g for _, g in pairs)
    correct: Counter[str] = Counter(t for t, g in pairs if t == g)
    return {z: ZoneScore(truth[z], said[z], correct[z]) for z in sorted(set(truth) | set(said))}


class _Timeline:
    """A member's fused zone over time, from the zone changes."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.zones: list[str] = []

    def add(self, ts: float, zone: str) -> None:
        self.times.append(ts)
        self.zones.append(zone)

    def at(self, ts: float) -> str:
        i = bisect.bisect_right(self.times, ts) - 1
        return self.zones[i] if i >= 0 else AWAY

    def first(self, zone: str, start: float, end: float) -> float | None:
        i = max(bisect.bisect_right(self.times, start) - 1, 0)
        while i < len(self.times) and self.times[i] < end:
            if self.zones[i] == zone:
                return max(self.times[i], start)
            i += 1
        return None


def neighbours(config: StoreConfig) -> set[tuple[str, str]]:
    """Zone pairs whose polygons touch (share part of an edge or a corner)."""
    pairs: set[tuple[str, str]] = set()
    zones = [z for z in config.zones if z.polygon]
    for a in zones:
        for b in zones:
            if a.id != b.id and _distance_between(a.polygon or [], b.polygon or []) < 1e-6:
                pairs.add((a.id, b.id))
    return pairs


def _point_segment(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    L = dx * dx + dy * dy
    t = 0.0 if L == 0 else max(0.0, min(1.0, ((p[0] - ax) * dx + (p[1] - ay) * dy) / L))
    return math.hypot(p[0] - ax - t * dx, p[1] - ay - t * dy)


def distance_to_polygon(p: tuple[float, float], poly: list[tuple[float, float]]) -> float:
    n = len(poly)
    return min(_point_segment(p, poly[i], poly[(i + 1) % n]) for i in range(n))


def _distance_between(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    return min(min(distance_to_polygon(p, b) for p in a), min(distance_to_polygon(p, a) for p in b))


def evaluate(
    config: StoreConfig, changes: Iterable[ZoneChange], truth: list[PositionSample]
) -> PresenceReport:
    timelines: dict[str, _Timeline] = {}
    n_changes = 0
    for c in changes:
        n_changes += 1
        tl = timelines.setdefault(c.member, _Timeline())
        tl.add(c.ts, c.zone if c.action == "enter" else AWAY)
    near = neighbours(config)
    polys = {z.id: z.polygon for z in config.zones if z.polygon}
    confusion: Counter[tuple[str, str]] = Counter()
    total = correct = b_total = b_correct = latency = 0
    by_member: dict[str, list[PositionSample]] = {}
    pairs: list[tuple[str, str]] = []
    b_pairs: list[tuple[str, str]] = []
    for s in sorted(truth, key=lambda s: s.ts):
        if s.member is None:
            continue
        path = by_member.setdefault(s.member, [])
        path.append(s)
        guess = timelines.get(s.member, _Timeline()).at(s.ts)
        ok = guess == s.zone
        total += 1
        correct += ok
        pairs.append((s.zone, guess))
        if not ok:
            confusion[(s.zone, guess)] += 1
            if _was_in(path, guess, s.ts - LATENCY_S):
                latency += 1
        others = [p for zid, p in polys.items() if zid != s.zone]
        if s.zone in polys and any(distance_to_polygon((s.x, s.y), p) <= BOUNDARY_M for p in others):
            b_total += 1
            b_correct += ok
            b_pairs.append((s.zone, guess))
    errors = sum(confusion.values())
    neighbour_errors = sum(v for (a, b), v in confusion.items() if (a, b) in near)
    delays: list[float] = []
    stays = missed = 0
    for member, path in by_member.items():
        path.sort(key=lambda s: s.ts)
        tl = timelines.get(member, _Timeline())
        start = 0
        for i in range(1, len(path) + 1):
            if i == len(path) or path[i].zone != path[start].zone:
                zone, t0 = path[start].zone, path[start].ts
                t1 = path[i - 1].ts
                if zone != AWAY and t1 - t0 >= MIN_STAY_S:
                    stays += 1
                    seen = tl.first(zone, t0, t1)
                    if seen is None:
                        missed += 1
                    else:
                        delays.append(seen - t0)
                start = i
    delays.sort()
    return PresenceReport(
        samples=total,
        accuracy=correct / total if total else 0.0,
        boundary_samples=b_total,
        boundary_accuracy=b_correct / b_total if b_total else None,
        neighbour_share_of_errors=neighbour_errors / errors if errors else 0.0,
        confusion=[(a, b, v) for (a, b), v in confusion.most_common(8)],
        stays=stays,
        missed_stays=missed,
        median_delay_s=statistics.median(delays) if delays else None,
        p90_delay_s=delays[int(0.9 * (len(delays) - 1))] if delays else None,
        changes=n_changes,
        latency_errors=latency,
        per_zone=_zone_scores(pairs),
        per_zone_boundary=_zone_scores(b_pairs),
    )


def _was_in(path: list[PositionSample], zone: str, since: float) -> bool:
    """Whether the member's (time-ordered) path was in ``zone`` at some sample after ``since``."""
    for s in reversed(path):
        if s.ts < since:
            return False
        if s.zone == zone:
            return True
    return False


def strongest_receiver(
    config: StoreConfig, observed: Iterable[tuple[str, str, float, float]], stale_s: float = 4.0
) -> list[ZoneChange]:
    """The simplest method, as zone changes: each member is in the zone of the gateway with
    the strongest reading of the last ``stale_s`` (the zone its position lies in, else its
    first zone), from ``(member, gateway, rssi, ts)`` observations; it holds through silence."""
    zone_of: dict[str, str] = {}
    for g in config.gateways:
        inside = config.zone_at(g.position) if g.position is not None else None
        zone_of[g.id] = inside.id if inside is not None and inside.id in g.zones else g.zones[0]
    latest: dict[str, dict[str, tuple[float, float]]] = {}
    current: dict[str, str] = {}
    out: list[ZoneChange] = []
    for member, gateway, rssi, ts in sorted(observed, key=lambda o: o[3]):
        heard = latest.setdefault(member, {})
        heard[gateway] = (rssi, ts)
        fresh = [(r, g) for g, (r, t) in heard.items() if ts - t <= stale_s]
        zone = zone_of[max(fresh)[1]]
        if current.get(member) != zone:
            if member in current:
                out.append(ZoneChange(member, current[member], "leave", ts, 1.0))
            out.append(ZoneChange(member, zone, "enter", ts, 1.0))
            current[member] = zone
    return out


@dataclass(frozen=True)
class EvalResult:
    """The fuser's figures, the strongest-receiver baseline's on the same reports, and
    what the trace held."""

    report: PresenceReport
    baseline: PresenceReport
    adverts: int
    kinds: dict[str, int]
    beacons: dict[str, str]

    def as_dict(self) -> dict[str, object]:
        return {
            "fuser": self.report.as_dict(),
            "strongest_receiver": self.baseline.as_dict(),
            "adverts": self.adverts,
            "frames": self.kinds,
            "beacons": self.beacons,
        }


def beacon_members(kinds: Mapping[str, int], members: set[str]) -> dict[str, str]:
    """Which fixed-id beacon stands for which truth member: a member named like the beacon
    (its full id, or ``major:minor`` for an iBeacon), else the only beacon for the only member."""
    ids = [k for k in kinds if k.startswith(("ibeacon:", "eddystone:"))]
    out: dict[str, str] = {}
    for bid in ids:
        short = ":".join(bid.split(":")[-2:]) if bid.startswith("ibeacon:") else bid
        for m in members:
            if m in (bid, short):
                out[bid] = m
    left = members - set(out.values())
    unmatched = [b for b in ids if b not in out]
    if len(unmatched) == 1 and len(left) == 1 and not out:
        out[unmatched[0]] = next(iter(left))
    return out


def _describe(kinds: Mapping[str, int]) -> str:
    parts = [f"{v} {k}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])[:4]]
    return ", ".join(parts) + (f" and {len(kinds) - 4} more kinds" if len(kinds) > 4 else "")


def run_eval(config: StoreConfig, resolver: EidResolver, trace: Path, truth: Path) -> EvalResult:
    """Replay ``trace`` through the presence path and score it against ``truth``; an unknown
    gateway, a truth without members or a trace that scores nobody is a ConfigError."""
    samples = read_truth(truth)
    records = list(trace_records(trace))
    members = {s.member for s in samples if s.member is not None}
    if not members:
        raise ConfigError(f"{truth}: no sample names a member, so there is nothing to score")
    if not records:
        raise ConfigError(f"{trace}: no advertisements in the trace")
    known = {g.id for g in config.gateways}
    unknown = Counter(gw for gw, _ in records if gw not in known)
    if unknown:
        names = ", ".join(sorted(unknown)[:5])
        raise ConfigError(
            f"{trace}: {sum(unknown.values())} adverts come from gateways not in store {config.store!r} "
            f"({names}); the store's gateways are {', '.join(sorted(known))} (pass --store-config)"
        )
    kinds = frame_kinds(records)
    beacons = beacon_members(kinds, members)
    pipeline = PresencePipeline(config, resolver, beacons=beacons)
    changes = list(pipeline.run(records, tail_s=config.ble_presence.away_timeout_s + 2))
    if not {o[0] for o in pipeline.observed} & members:
        raise ConfigError(
            f"{trace}: none of its {len(records)} adverts resolved to a member of {truth} "
            f"({', '.join(sorted(members)[:3])}); the trace holds {_describe(kinds)}. Member-app and "
            "Eddystone-EID ids resolve with the store's secrets and CRM; an iBeacon or Eddystone-UID "
            "counts for the truth member named like it (its full id, or major:minor for an iBeacon), "
            "or for the only member when there is one beacon"
        )
    baseline = strongest_receiver(config, pipeline.observed, pipeline.params.stale_s)
    return EvalResult(
        evaluate(config, changes, samples),
        evaluate(config, baseline, samples),
        len(records),
        dict(kinds),
        beacons,
    )
