"""Counting people across a line drawn on the camera picture.

A :class:`CountLine` is a segment ``a``-``b`` in pixels and a point ``inside`` on the side a
person is on after entering. Each track's anchor point (feet or centre) is followed; the
track's *side* only changes once the anchor is more than ``band_px`` from the line, so a
person standing on the line or a box jittering across it counts once, not every frame.
A band sized for people near the camera swallows a short step over the line by someone
who looks small (far away, or a camera that sees people small). So when the counter is
told each track's height, the band is at most ``band_height`` times it: with the defaults
8 px for anyone 89 px or taller, 5.4 px for someone 60 px tall; it never grows beyond
``band_px``. (Where a track was first detected, and the slack at the segment's ends, still
use ``band_px``.) The price: a narrower band lets more box jitter through, and full-frame
boxes of small people jitter by a few of the model's input pixels, not in proportion.
A side change counts as a crossing (``in`` towards ``inside``, ``out`` away) only when the
way from the last firm position to the new one passes through the drawn segment: walking
round the end of a line is not crossing it. Someone who crosses and comes back counts
once each way. Time is passed in; per-track state is forgotten after ``forget_s`` unseen.

A track is often confirmed a few steps after the person was first detected, or first
detected on the line itself (people far away are found late). So the counter is also
told where each track was first detected (its *origin*): a track first reported on the
far side of the line from its origin counts when the way between them passes the
segment, and a track whose origin and first report both lie on the line counts once,
towards the side it leaves on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from floorwalker.geometry import Point

Direction = Literal["in", "out"]


@dataclass(frozen=True, slots=True)
class Crossing:
    line: str
    track: int
    direction: Direction
    t: float


@dataclass(frozen=True, slots=True)
class CountLine:
    id: str
    a: Point
    b: Point
    inside: Point

    def signed_distance(self, p: Point) -> float:
        """Distance of ``p`` from the (infinite) line, positive on the ``inside`` side."""
        dx, dy = self.b[0] - self.a[0], self.b[1] - self.a[1]
        length = float((dx * dx + dy * dy) ** 0.5)
        d = float(dx * (p[1] - self.a[1]) - dy * (p[0] - self.a[0])) / length
        return d if self._inside_sign > 0 else -d

    @property
    def _inside_sign(self) -> float:
        dx, dy = self.b[0] - self.a[0], self.b[1] - self.a[1]
        return dx * (self.inside[1] - self.a[1]) - dy * (self.inside[0] - self.a[0])

    def along(self, p: Point, slack_px: float) -> bool:
        """Whether ``p`` lies beside the segment (its foot on the line within ``slack_px`` of it)."""
        ax, ay = self.a
        bx, by = self.b
        dx, dy = bx - ax, by - ay
        length = (dx * dx + dy * dy) ** 0.5
        u = ((p[0] - ax) * dx + (p[1] - ay) * dy) / length
        return bool(-slack_px <= u <= length + slack_px)

    def passes(self, p: Point, q: Point, slack_px: float) -> bool:
        """Whether the way p -> q meets the segment (extended by ``slack_px`` at both ends)."""
        ax, ay = self.a
        bx, by = self.b
        dx, dy = bx - ax, by - ay
        length = (dx * dx + dy * dy) ** 0.5
        ux, uy = dx / length, dy / length
        a2 = (ax - ux * slack_px, ay - uy * slack_px)
        b2 = (bx + ux * slack_px, by + uy * slack_px)
        return _segments_meet(p, q, a2, b2)


def _orient(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _segments_meet(p: Point, q: Point, a: Point, b: Point) -> bool:
    o1, o2 = _orient(p, q, a), _orient(p, q, b)
    o3, o4 = _orient(a, b, p), _orient(a, b, q)
    return (o1 * o2 <= 0) and (o3 * o4 <= 0)


@dataclass(slots=True)
class _Side:
    side: int  # +1 inside, -1 outside, 0 on the line since it was first detected
    anchor: Point  # where the side was last firm
    last_t: float


#: Default ``band_height``: the band is at most this fraction of a person's height. Chosen on
#: the development lines of vtest.avi (0.08-0.10 counted alike; 0.07 let jitter through as
#: false counts; bench/README.md, "The band narrows for small people").
BAND_HEIGHT = 0.09


class LineCounter:
    """Turns track positions over time into ``in``/``out`` crossings of one line."""

    def __init__(
        self,
        line: CountLine,
        *,
        band_px: float = 8.0,
        band_height: float = BAND_HEIGHT,
        forget_s: float = 5.0,
    ) -> None:
        self.line = line
        self.band_px = band_px
        #: The band is at most this fraction of the track's height (0: always ``band_px``).
        self.band_height = band_height
        self.forget_s = forget_s
        self._sides: dict[int, _Side] = {}

    def band(self, height: float | None) -> float:
        """Half-width of the band around the line for a person ``height`` pixels tall."""
        if height is None or self.band_height <= 0:
            return self.band_px
        return min(self.band_px, self.band_height * max(height, 0.0))

    def update(
        self,
        anchors: dict[int, Point],
        t: float,
        origins: dict[int, Point] | None = None,
        heights: dict[int, float] | None = None,
    ) -> list[Crossing]:
        """``anchors``: each visible track's anchor point in this frame; ``origins``: where
        each track was first detected (used the first time a track is seen); ``heights``:
        each track's box height in this frame (none given: the band is ``band_px``)."""
        crossings: list[Crossing] = []
        for track, p in anchors.items():
            d = self.line.signed_distance(p)
            band = self.band(heights.get(track) if heights else None)
            state = self._sides.get(track)
            if state is None:
                state = self._first(track, p, t, origins.get(track) if origins else None)
                if state is None:
                    continue
            if abs(d) <= band:
                state.last_t = t
                continue  # on the line: wait until the person is clearly on one side
            side = 1 if d > 0 else -1
            if state.side == 0:
                counts = self.line.along(p, self.band_px)
            else:
                counts = side != state.side and self.line.passes(state.anchor, p, self.band_px)
            if counts:
                crossings.append(Crossing(self.line.id, track, "in" if side > 0 else "out", t))
            state.side, state.anchor, state.last_t = side, p, t
        for track in [k for k, s in self._sides.items() if t - s.last_t > self.forget_s]:
            del self._sides[track]
        return crossings

    def _first(self, track: int, p: Point, t: float, origin: Point | None) -> _Side | None:
        """State of a track seen for the first time (``None``: nothing to remember yet)."""
        if origin is not None:
            d0 = self.line.signed_distance(origin)
            if abs(d0) > self.band_px:
                self._sides[track] = _Side(1 if d0 > 0 else -1, origin, t)
                return self._sides[track]
            if self.line.along(origin, self.band_px):
                # First detected on the line: it counts once, towards the side it leaves on.
                self._sides[track] = _Side(0, origin, t)
                return self._sides[track]
        d = self.line.signed_distance(p)
        if abs(d) > self.band_px:
            self._sides[track] = _Side(1 if d > 0 else -1, p, t)
        return None

    @property
    def tracked(self) -> int:
        return len(self._sides)
