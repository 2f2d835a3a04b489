"""Plane geometry shared by the store layout (metres) and camera zones (pixels).

Polygons are lists of ``(x, y)`` vertices, implicitly closed (the last vertex joins the
first). Pure functions; no numpy here so config validation stays cheap to import.
"""

from __future__ import annotations

from collections.abc import Sequence

Point = tuple[float, float]
Polygon = Sequence[Point]

_EPS = 1e-9


def area(poly: Polygon) -> float:
    """Signed area (shoelace): positive when the vertices run counter-clockwise."""
    n = len(poly)
    return 0.5 * sum(poly[i][0] * poly[(i + 1) % n][1] - poly[(i + 1) % n][0] * poly[i][1] for i in range(n))


def _orient(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def segments_cross(a: Point, b: Point, c: Point, d: Point) -> bool:
    """True when segments ab and cd cross at a point inside both (touching ends do not count)."""
    o1, o2 = _orient(a, b, c), _orient(a, b, d)
    o3, o4 = _orient(c, d, a), _orient(c, d, b)
    return ((o1 > _EPS and o2 < -_EPS) or (o1 < -_EPS and o2 > _EPS)) and (
        (o3 > _EPS and o4 < -_EPS) or (o3 < -_EPS and o4 > _EPS)
    )


def polygon_problem(poly: Polygon) -> str | None:
    """Why ``poly`` is not a valid simple polygon, or ``None`` when it is."""
    n = len(poly)
    if n < 3:
        return f"a polygon needs at least 3 points, got {n}"
    if len(set(poly)) != n:
        return "a polygon must not repeat a point (it is closed implicitly)"
    edges = [(poly[i], poly[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # neighbours through the closing edge
            if segments_cross(*edges[i], *edges[j]):
                return f"the polygon's edges {i + 1} and {j + 1} cross each other"
    if abs(area(poly)) < _EPS:
        return "the polygon has no area (its points are in a line)"
    return None


def contains(poly: Polygon, p: Point) -> bool:
    """Point in polygon (even-odd ray casting); points exactly on an edge may go either way."""
    x, y = p
    inside = False
    n = len(poly)
    j = n - 1
    for i in range(n):
        xi, yi = poly[i]
        xj, yj = poly[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def centroid(poly: Polygon) -> Point:
    """Area centroid of a simple polygon."""
    a = area(poly)
    n = len(poly)
    cx = cy = 0.0
    for i in range(n):
        x0, y0 = poly[i]
        x1, y1 = poly[(i + 1) % n]
        cross = x0 * y1 - x1 * y0
        cx += (x0 + x1) * cross
        cy += (y0 + y1) * cross
    return (cx / (6 * a), cy / (6 * a))


def overlap(a: Polygon, b: Polygon) -> bool:
    """True when two simple polygons share interior area (shared edges do not count)."""
    na, nb = len(a), len(b)
    for i in range(na):
        for j in range(nb):
            if segments_cross(a[i], a[(i + 1) % na], b[j], b[(j + 1) % nb]):
                return True
    # No proper crossings: one may lie inside the other (test an interior point of each).
    return contains(b, _interior_point(a)) or contains(a, _interior_point(b))


def _interior_point(poly: Polygon) -> Point:
    c = centroid(poly)
    if contains(poly, c):
        return c
    # A concave polygon whose centroid falls outside: some corner triangle's centroid is inside.
    n = len(poly)
    for i in range(n):
        (x0, y0), (x1, y1), (x2, y2) = poly[i - 1], poly[i], poly[(i + 1) % n]
        t = ((x0 + x1 + x2) / 3, (y0 + y1 + y2) / 3)
        if contains(poly, t):
            return t
    return c


def shared_edge(a: Polygon, b: Polygon, min_length: float = 0.5) -> tuple[Point, Point] | None:
    """The longest stretch of boundary two polygons share (a wall with a way through), if any.

    Two edges share a stretch when they lie on one line and overlap by at least
    ``min_length``; a touching corner does not count. The simulators walk shoppers between
    zones through the middle of this stretch.
    """
    best: tuple[Point, Point] | None = None
    best_len = min_length
    na, nb = len(a), len(b)
    for i in range(na):
        p0, p1 = a[i], a[(i + 1) % na]
        dx, dy = p1[0] - p0[0], p1[1] - p0[1]
        length2 = dx * dx + dy * dy
        if length2 < _EPS:
            continue
        length = length2**0.5
        for j in range(nb):
            q0, q1 = b[j], b[(j + 1) % nb]
            # Both ends of the other edge on this edge's line (distance below 1 mm).
            if abs(_orient(p0, p1, q0)) / length > 1e-3 or abs(_orient(p0, p1, q1)) / length > 1e-3:
                continue
            t0 = ((q0[0] - p0[0]) * dx + (q0[1] - p0[1]) * dy) / length2
            t1 = ((q1[0] - p0[0]) * dx + (q1[1] - p0[1]) * dy) / length2
            lo, hi = max(0.0, min(t0, t1)), min(1.0, max(t0, t1))
            if (hi - lo) * length >= best_len:
                best_len = (hi - lo) * length
                best = ((p0[0] + lo * dx, p0[1] + lo * dy), (p0[0] + hi * dx, p0[1] + hi * dy))
    return best


def bounds(poly: Polygon) -> tuple[float, float, float, float]:
    """``(min_x, min_y, max_x, max_y)`` of a polygon."""
    xs = [p[0] for p in poly]
    ys = [p[1] for p in poly]
    return min(xs), min(ys), max(xs), max(ys)
