"""Who is inside a polygon of the camera picture: occupancy, dwell, queue length.

A :class:`PolygonZone` counts the tracks whose anchor point lies inside it. Membership
changes only after the new state has held for ``settle_s`` (a box flickering on the edge
does not enter and leave every frame). When a track leaves, or disappears for longer than
``forget_s``, its dwell time (entry to last time inside) is recorded. A checkout queue is
the same thing over the lane's queue polygon: the queue length is its occupancy. Time is
passed in; per-track state is bounded by the tracks present.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from floorwalker import geometry
from floorwalker.geometry import Point


@dataclass(slots=True)
class _Member:
    inside: bool
    since: float  # when the current state became firm
    entered_at: float | None
    last_seen: float
    pending_since: float | None = None  # when the anchor first disagreed with ``inside``


@dataclass(frozen=True, slots=True)
class ZoneSnapshot:
    occupancy: int
    #: Dwell times (seconds) of visits that ended in this update.
    finished_dwells: tuple[float, ...] = ()
    #: How long the longest current visitor has been inside.
    longest_current_s: float = 0.0


@dataclass
class PolygonZone:
    id: str
    polygon: list[Point]
    settle_s: float = 0.3
    forget_s: float = 3.0
    _members: dict[int, _Member] = field(default_factory=dict)

    def update(self, anchors: dict[int, Point], t: float) -> ZoneSnapshot:
        finished: list[float] = []
        for track, p in anchors.items():
            now_inside = geometry.contains(self.polygon, p)
            m = self._members.get(track)
            if m is None:
                # A track first seen inside counts from now (it may have come into view here).
                self._members[track] = _Member(now_inside, t, t if now_inside else None, t)
                continue
            m.last_seen = t
            if now_inside == m.inside:
                m.pending_since = None
                continue
            if m.pending_since is None:
                m.pending_since = t
            if t - m.pending_since >= self.settle_s:
                m.inside = now_inside
                m.since = m.pending_since
                if now_inside:
                    m.entered_at = m.pending_since
                else:
                    if m.entered_at is not None:
                        finished.append(max(0.0, m.pending_since - m.entered_at))
                    m.entered_at = None
                m.pending_since = None
        for track in [k for k, m in self._members.items() if t - m.last_seen > self.forget_s]:
            m = self._members.pop(track)
            if m.inside and m.entered_at is not None:
                finished.append(max(0.0, m.last_seen - m.entered_at))
        inside = [m for m in self._members.values() if m.inside and t - m.last_seen <= self.forget_s]
        occupancy = sum(1 for m in inside if m.last_seen == t)
        longest = max((t - m.entered_at for m in inside if m.entered_at is not None), default=0.0)
        return ZoneSnapshot(occupancy, tuple(finished), longest)

    @property
    def tracked(self) -> int:
        return len(self._members)
