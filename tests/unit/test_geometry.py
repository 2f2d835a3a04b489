"""Polygon checks used by the store layout and camera zones."""

from __future__ import annotations

import pytest

from floorwalker import geometry

SQUARE = [(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0)]
# An L shape whose centroid lies outside it.
ELL = [(0.0, 0.0), (6.0, 0.0), (6.0, 1.0), (1.0, 1.0), (1.0, 6.0), (0.0, 6.0)]


@pytest.mark.parametrize(
    ("poly", "problem"),
    [
        (SQUARE, None),
        (ELL, None),
        ([(0.0, 0.0), (1.0, 1.0)], "at least 3 points"),
        ([(0.0, 0.0), (1.0, 1.0), (2.0, 2.0)], "no area"),
        ([(0.0, 0.0), (4.0, 4.0), (4.0, 0.0), (0.0, 4.0)], "cross"),  # a bow tie
        ([(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 0.0)], "repeat"),
    ],
)
def test_polygon_problem(poly: list[tuple[float, float]], problem: str | None) -> None:
    found = geometry.polygon_problem(poly)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


@pytest.mark.parametrize(
    ("point", "inside"),
    [((2.0, 2.0), True), ((5.0, 2.0), False), ((-0.1, 0.5), False), ((3.9, 3.9), True)],
)
def test_contains(point: tuple[float, float], inside: bool) -> None:
    assert geometry.contains(SQUARE, point) is inside


def test_contains_concave() -> None:
    assert geometry.contains(ELL, (0.5, 5.0))
    assert not geometry.contains(ELL, (3.0, 3.0))


@pytest.mark.parametrize(
    ("other", "overlaps"),
    [
        ([(4.0, 0.0), (8.0, 0.0), (8.0, 4.0), (4.0, 4.0)], False),  # shares an edge
        ([(3.0, 3.0), (6.0, 3.0), (6.0, 6.0), (3.0, 6.0)], True),  # corners overlap
        ([(1.0, 1.0), (2.0, 1.0), (2.0, 2.0), (1.0, 2.0)], True),  # inside
        ([(5.0, 5.0), (6.0, 5.0), (6.0, 6.0)], False),  # apart
    ],
)
def test_overlap(other: list[tuple[float, float]], overlaps: bool) -> None:
    assert geometry.overlap(SQUARE, other) is overlaps
    assert geometry.overlap(other, SQUARE) is overlaps


def test_overlap_with_concave_neighbour() -> None:
    # A square tucked into the L's notch touches it along two edges but shares no area.
    notch = [(1.0, 1.0), (6.0, 1.0), (6.0, 6.0), (1.0, 6.0)]
    assert not geometry.overlap(ELL, notch)


def test_area_sign_and_centroid() -> None:
    assert geometry.area(SQUARE) == 16.0
    assert geometry.area(list(reversed(SQUARE))) == -16.0
    assert geometry.centroid(SQUARE) == pytest.approx((2.0, 2.0))


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        # Right neighbour sharing the whole wall x=4.
        ([(4.0, 0.0), (8.0, 0.0), (8.0, 4.0), (4.0, 4.0)], ((4.0, 0.0), (4.0, 4.0))),
        # Above, sharing only part of the wall y=4 (x from 2 to 4).
        ([(2.0, 4.0), (9.0, 4.0), (9.0, 8.0), (2.0, 8.0)], ((2.0, 4.0), (4.0, 4.0))),
        # Touching at one corner only: no way through.
        ([(4.0, 4.0), (8.0, 4.0), (8.0, 8.0), (4.0, 8.0)], None),
        # Apart.
        ([(5.0, 0.0), (8.0, 0.0), (8.0, 4.0), (5.0, 4.0)], None),
    ],
)
def test_shared_edge(other: list[tuple[float, float]], expected: object) -> None:
    found = geometry.shared_edge(SQUARE, other)
    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert sorted(found) == sorted(expected)  # type: ignore[call-overload]
