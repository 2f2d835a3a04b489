"""Line counting on synthetic tracks and detections: crossings, standing on the line,
jitter, two together, occlusion gap, reversal, walking round the end."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.camera.detector import Detections
from edge_agent.camera.footfall import CameraCounter
from edge_agent.camera.line_counter import CountLine, Crossing, LineCounter
from edge_agent.gateway_config import CameraConfig

#: A vertical line at x = 300 from y = 100 to 500; "inside" is the left.
LINE = CountLine("door", (300, 100), (300, 500), inside=(100, 300))


def xs_run(xs: list[float], y: float = 300, track: int = 1) -> list[str]:
    counter = LineCounter(LINE, band_px=8)
    out: list[str] = []
    for i, x in enumerate(xs):
        out += [c.direction for c in counter.update({track: (x, y)}, i * 0.1)]
    return out


def ramp(a: float, b: float, n: int) -> list[float]:
    return [a + (b - a) * i / (n - 1) for i in range(n)]


@pytest.mark.parametrize(
    ("name", "xs", "expected"),
    [
        ("walks in from the right", ramp(500, 100, 30), ["in"]),
        ("walks out to the right", ramp(100, 500, 30), ["out"]),
        ("stands on the line", [300.0] * 50, []),
        ("stands beside the line", ramp(500, 320, 10) + [320.0] * 40, []),
        ("jitters across the line while standing", [300 + (5 if i % 2 else -5) for i in range(60)], []),
        ("crosses, then jitters on the line",
         ramp(500, 300, 20) + [300 + (6 if i % 2 else -6) for i in range(30)] + ramp(300, 100, 10), ["in"]),
        ("crosses and comes back", ramp(500, 100, 20) + ramp(100, 500, 20), ["in", "out"]),
        ("steps over and back within the band", ramp(500, 295, 15) + ramp(295, 500, 15), []),
        ("comes up to the line and turns back", ramp(500, 305, 15) + ramp(305, 500, 15), []),
    ],
)  # fmt: skip
def test_line_crossings(name: str, xs: list[float], expected: list[str]) -> None:
    assert xs_run(xs) == expected, name


def test_walking_round_the_end_of_the_line_is_not_a_crossing() -> None:
    counter = LineCounter(LINE, band_px=8)
    # Right side -> below the line's lower end -> left side.
    path = [(500.0, 300.0), (450.0, 560.0), (300.0, 600.0), (150.0, 560.0), (100.0, 300.0)]
    out = [c for i, p in enumerate(path) for c in counter.update({1: p}, i * 0.1)]
    assert out == []


def test_slanted_line_and_inside_on_the_other_side() -> None:
    line = CountLine("ramp", (0, 0), (400, 400), inside=(400, 0))  # inside: above-right
    counter = LineCounter(line, band_px=5)
    path = [(100.0 + 10 * i, 300.0 - 10 * i) for i in range(20)]  # from below-left to above-right
    out = [c.direction for i, p in enumerate(path) for c in counter.update({1: p}, i * 0.1)]
    assert out == ["in"]


def test_per_track_state_is_forgotten_after_the_track_is_gone() -> None:
    counter = LineCounter(LINE, band_px=8, forget_s=1.0)
    counter.update({1: (400, 300), 2: (200, 300)}, 0.0)
    counter.update({3: (400, 300)}, 5.0)
    assert counter.tracked == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=-7.9, max_value=7.9), min_size=1, max_size=80))
def test_any_jitter_inside_the_band_never_counts(offsets: list[float]) -> None:
    assert xs_run([300 + o for o in offsets]) == []


# -- the whole counter (tracker + line) on synthetic detections --------------------------------


def camera(band: float = 8) -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "id": "cam",
            "source": {"kind": "usb"},
            "lines": [
                {"id": "door", "points": [[300, 100], [300, 500]], "inside": [100, 300], "enters": "entrance",
                 "band_px": band}
            ],
        }
    )  # fmt: skip


def person(cx: float, feet: float) -> tuple[float, float, float, float]:
    return (cx - 20, feet - 100, cx + 20, feet)


def feed(frames: list[list[tuple[float, float, float, float]]], jitter: float = 0.0) -> list[str]:
    counter = CameraCounter(camera())
    rng = random.Random(7)
    out: list[str] = []
    for i, boxes in enumerate(frames):
        noisy = [tuple(v + rng.uniform(-jitter, jitter) for v in b) for b in boxes]
        counts = counter.update(Detections.of(noisy, [0.9] * len(noisy)), i * 0.1)  # type: ignore[arg-type]
        out += [f"{zone}:{c.direction}" for zone, c in counts.crossings]
    return out


def test_two_people_crossing_together_count_twice() -> None:
    frames = [[person(500 - 10 * i, 300), person(500 - 10 * i, 420)] for i in range(40)]
    assert feed(frames) == ["entrance:in", "entrance:in"]


def test_two_people_side_by_side_overlapping_boxes_count_twice() -> None:
    frames = [[person(500 - 10 * i, 300), person(530 - 10 * i, 310)] for i in range(45)]
    assert feed(frames) == ["entrance:in", "entrance:in"]


def test_jittery_boxes_count_each_walker_once() -> None:
    frames = [[person(100 + 12 * i, 300)] for i in range(35)]
    assert feed(frames, jitter=4.0) == ["entrance:out"]


def test_hidden_while_crossing_counts_once_when_seen_again() -> None:
    # Occluded from x = 340 to x = 260 (the whole band): the crossing is noticed afterwards.
    frames = [[person(500 - 10 * i, 300)] if not 16 <= i < 24 else [] for i in range(40)]
    assert feed(frames) == ["entrance:in"]


def test_standing_on_the_line_then_going_back_counts_nothing() -> None:
    frames = [[person(x, 300)] for x in ramp(500, 302, 20) + [302.0] * 30 + ramp(302, 500, 20)]
    assert feed(frames, jitter=3.0) == []


def test_reversal_counts_in_then_out() -> None:
    frames = [[person(x, 300)] for x in ramp(500, 150, 30) + ramp(150, 500, 30)]
    assert feed(frames) == ["entrance:in", "entrance:out"]


# -- tracks first reported near or on the line (their origin) ---------------------------------


@pytest.mark.parametrize(
    ("name", "origin", "xs", "expected"),
    [
        ("first reported past the line, detected before it", (340.0, 300.0), [280.0, 250, 200], ["in"]),
        ("first reported on the line, detected before it", (340.0, 300.0), [300.0, 280, 200], ["in"]),
        ("detected and reported on the same side", (340.0, 300.0), [330.0, 360, 400], []),
        ("born on the line, leaves inside", (301.0, 300.0), [300.0, 299, 250, 200], ["in"]),
        ("born on the line, leaves outside", (299.0, 300.0), [302.0, 330, 400], ["out"]),
        ("born on the line, stays there", (300.0, 300.0), [300.0] * 20, []),
        ("born on the line, leaves, comes back over", (300.0, 300.0), [250.0, 200, 300, 400], ["in", "out"]),
        ("origin past the end of the line", (340.0, 600.0), [280.0, 250], []),
    ],
)  # fmt: skip
def test_a_track_counts_from_where_it_was_first_detected(
    name: str, origin: tuple[float, float], xs: list[float], expected: list[str]
) -> None:
    counter = LineCounter(LINE, band_px=8)
    y = 600.0 if origin[1] == 600.0 else 300.0
    out: list[str] = []
    for i, x in enumerate(xs):
        out += [c.direction for c in counter.update({1: (x, y)}, i * 0.1, {1: origin})]
    assert out == expected, name


def test_someone_first_detected_on_the_line_at_a_low_frame_rate_is_counted() -> None:
    # 5 fps, 30 px a frame: first detected on the line, confirmed one step inside.
    frames = [[person(x, 300)] for x in (300, 270, 240, 210, 180)]
    counter = CameraCounter(camera())
    out: list[str] = []
    for i, boxes in enumerate(frames):
        counts = counter.update(Detections.of(boxes, [0.9] * len(boxes)), i * 0.2)
        out += [c.direction for _, c in counts.crossings]
    assert out == ["in"]


# -- the line's geometry, on a slanted line away from the origin ---------------------------
# a = (100, 100), b = (400, 500): 500 px long, along (0.6, 0.8); its normal (-0.8, 0.6)
# points to the inside, (100, 500).
SLANT = CountLine("slant", (100, 100), (400, 500), inside=(100, 500))


def _on(s: float, n: float = 0.0) -> tuple[float, float]:
    """The point ``s`` px along the line from ``a`` and ``n`` px to the inside of it."""
    return (100 + 0.6 * s - 0.8 * n, 100 + 0.8 * s + 0.6 * n)


@pytest.mark.parametrize(
    ("line", "p", "expected"),
    [
        (SLANT, (100, 500), 240.0),  # 300 * 400 / 500
        (SLANT, (500, 100), -320.0),
        (SLANT, _on(250, 7), 7.0),
        (CountLine("flip", (100, 100), (400, 500), inside=(500, 100)), (100, 500), -240.0),
        # the inside point barely off the line (cross product 0.5) still decides the sign
        (CountLine("tiny", (0, 0), (2, 0), inside=(1, 0.25)), (1, 3), 3.0),
    ],
)
def test_signed_distance(line: CountLine, p: tuple[float, float], expected: float) -> None:
    assert line.signed_distance(p) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("s", "slack", "beside"),
    [(0, 0, True), (250, 0, True), (500, 0, True), (-5, 5, True), (-5, 4.9, False), (505, 5, True),
     (505, 4.9, False), (-20, 5, False), (520, 5, False)],
)  # fmt: skip
def test_along_the_segment_within_the_slack(s: float, slack: float, beside: bool) -> None:
    assert SLANT.along(_on(s, 30), slack) is beside
    assert SLANT.along(_on(s, -30), slack) is beside


@pytest.mark.parametrize(
    ("s", "slack", "meets"),
    [(250, 5, True), (-3, 5, True), (503, 5, True), (-4.97, 5, True), (504.97, 5, True), (-10, 5, False),
     (510, 5, False), (-3, 0, False)],
)  # fmt: skip
def test_a_way_across_meets_the_segment_extended_by_the_slack(s: float, slack: float, meets: bool) -> None:
    assert SLANT.passes(_on(s, 40), _on(s, -40), slack) is meets
    assert SLANT.passes(_on(s, -40), _on(s, 40), slack) is meets


def test_touching_counts_as_meeting_and_nearly_touching_does_not() -> None:
    # Exactly through the end b, or ending exactly on the line: meets (zero orientation).
    assert SLANT.passes((400, 400), (400, 600), 0)
    assert SLANT.passes((100, 500), (250, 300), 0)
    # Stopping a billionth of a pixel short of the line, or passing that far beyond b: not.
    assert not SLANT.passes(_on(250, 40), _on(250, 1e-9), 0)
    assert not SLANT.passes((400 + 1e-9, 400), (400 + 1e-9, 600), 0)


# -- the counter's rules at their edges ---------------------------------------------------
# An upright line x = 300 (y 100..500) is LINE above: inside is x < 300; d = 300 - x.


def _run(
    counter: LineCounter,
    frames: list[dict[int, tuple[float, float]]],
    dt: float = 0.1,
    heights: dict[int, float] | None = None,
) -> list[Crossing]:
    out: list[Crossing] = []
    for i, anchors in enumerate(frames):
        out += counter.update(anchors, i * dt, heights=heights)
    return out


def test_crossings_name_the_line_track_and_time() -> None:
    got = _run(LineCounter(LINE), [{7: (320.0, 300.0)}, {7: (280.0, 300.0)}])
    assert got == [Crossing("door", 7, "in", 0.1)]


def test_default_band_is_8_px_and_state_is_kept_5_s() -> None:
    counter = LineCounter(LINE)
    assert _run(counter, [{1: (308.5, 300.0)}, {1: (291.5, 300.0)}]) == [Crossing("door", 1, "in", 0.1)]
    counter = LineCounter(LINE)
    # 8 px from the line is on it: no side yet, then no crossing
    assert _run(counter, [{1: (308.0, 300.0)}, {1: (291.5, 300.0)}]) == []
    counter = LineCounter(LINE)
    counter.update({1: (320.0, 300.0)}, 0.0)
    counter.update({}, 5.0)
    assert counter.tracked == 1  # exactly 5 s unseen: still remembered
    counter.update({}, 5.01)
    assert counter.tracked == 0


def test_a_track_on_the_line_does_not_hold_up_the_others_in_the_frame() -> None:
    counter = LineCounter(LINE, band_px=8)
    frames = [{1: (300.0, 200.0), 2: (320.0, 300.0)}, {1: (300.0, 200.0), 2: (280.0, 300.0)}]
    assert [(c.track, c.direction) for c in _run(counter, frames)] == [(2, "in")]
    counter = LineCounter(LINE, band_px=8)
    frames = [{3: (300.0, 250.0), 2: (320.0, 300.0)}, {3: (305.0, 250.0), 2: (280.0, 300.0)}]
    assert [(c.track, c.direction) for c in _run(counter, frames)] == [(2, "in")]


def test_exactly_on_the_band_edge_is_still_on_the_line() -> None:
    counter = LineCounter(LINE, band_px=8)
    got = _run(counter, [{1: (280.0, 300.0)}, {1: (308.0, 300.0)}, {1: (330.0, 300.0)}])
    assert got == [Crossing("door", 1, "out", 0.2)]  # only once clearly outside


@pytest.mark.parametrize(
    ("first_x", "then_x", "expected"),
    [
        (320.0, 280.0, ["in"]),  # first seen outside, no origin: a side, then a crossing
        (280.0, 320.0, ["out"]),
        (320.0, 330.0, []),
        (280.0, 270.0, []),
    ],
)
def test_a_track_first_seen_off_the_line_counts_its_first_crossing(
    first_x: float, then_x: float, expected: list[str]
) -> None:
    counter = LineCounter(LINE, band_px=8)
    frames = [{1: (first_x, 300.0)}, {1: (then_x, 300.0)}, {1: (then_x, 300.0)}]
    assert [c.direction for c in _run(counter, frames)] == expected


@pytest.mark.parametrize(
    ("origin_x", "first_x", "expected"),
    [
        (320.0, 325.0, []),  # detected and first reported outside: nothing
        (280.0, 275.0, []),  # ... inside: nothing
        (320.0, 280.0, ["in"]),
        (280.0, 320.0, ["out"]),
        (308.0, 320.0, ["out"]),  # detected exactly at the band's edge: on the line
        (303.0, 320.0, ["out"]),  # on the line (3 px outside): counts towards where it leaves
        (297.0, 280.0, ["in"]),
    ],
)
def test_where_a_track_was_first_detected_at_the_edges(
    origin_x: float, first_x: float, expected: list[str]
) -> None:
    counter = LineCounter(LINE, band_px=8)
    got = counter.update({1: (first_x, 300.0)}, 0.0, origins={1: (origin_x, 300.0)})
    got += counter.update({1: (first_x, 300.0)}, 0.1)
    assert [c.direction for c in got] == expected


def test_a_narrow_band_below_one_pixel() -> None:
    counter = LineCounter(LINE, band_px=0.5)
    got = counter.update({1: (290.0, 300.0)}, 0.0, origins={1: (299.2, 300.0)})  # 0.8 px inside
    assert got == []
    assert counter.update({1: (310.0, 300.0)}, 0.1) == [Crossing("door", 1, "out", 0.1)]
    # Detected 0.8 px inside and first reported outside: a crossing at once.
    counter = LineCounter(LINE, band_px=0.5)
    assert counter.update({2: (310.0, 300.0)}, 0.0, origins={2: (299.2, 300.0)}) == [
        Crossing("door", 2, "out", 0.0)
    ]
    # First seen 0.8 px inside (no origin), then outside; and inside, 0.8 px in, then out.
    for frames in ([299.2, 310.0], [290.0, 299.2, 310.0]):
        counter = LineCounter(LINE, band_px=0.5)
        got = []
        for i, x in enumerate(frames):
            got += counter.update({3: (x, 300.0)}, i * 0.1)
        assert [c.direction for c in got] == ["out"], frames


def test_a_known_track_standing_on_the_line_does_not_hold_up_the_others() -> None:
    counter = LineCounter(LINE, band_px=8)
    frames = [{3: (320.0, 250.0), 2: (320.0, 300.0)}, {3: (300.0, 250.0), 2: (280.0, 300.0)}]
    assert [(c.track, c.direction) for c in _run(counter, frames)] == [(2, "in")]


# -- the band narrows for people who look small ------------------------------------------------


def test_the_band_is_at_most_its_fraction_of_a_persons_height() -> None:
    counter = LineCounter(LINE, band_px=8, band_height=0.09)
    assert counter.band(None) == 8
    assert counter.band(200.0) == 8  # never wider than band_px
    assert counter.band(60.0) == pytest.approx(5.4)
    assert LineCounter(LINE, band_px=8, band_height=0).band(60.0) == 8


def test_a_small_person_stepping_just_over_the_line_and_back_counts_both_ways() -> None:
    # 60 px tall (far away, or a camera that sees people small): feet 7 px over the line
    # for a few frames, then back. A band of 8 px, made for people 90-100 px tall, swallowed
    # it; 0.09 of their height (5.4 px) does not.
    xs = ramp(260, 307, 8) + [307.0] * 4 + ramp(307, 260, 8)
    frames = [{1: (x, 300.0)} for x in xs]
    got = _run(LineCounter(LINE, band_px=8), frames, heights={1: 60.0})
    assert [c.direction for c in got] == ["out", "in"]
    assert _run(LineCounter(LINE, band_px=8, band_height=0), frames, heights={1: 60.0}) == []
    # The same step by someone 100 px tall stays inside their 8 px band.
    assert _run(LineCounter(LINE, band_px=8), frames, heights={1: 100.0}) == []


def small_person(cx: float, feet: float) -> tuple[float, float, float, float]:
    return (cx - 12, feet - 60, cx + 12, feet)


def test_the_camera_counter_gives_each_line_the_tracks_heights() -> None:
    # Detections of a person 60 px tall, from inside (left) to 7 px outside and back.
    xs = ramp(240, 307, 12) + [307.0] * 4 + ramp(307, 240, 12)
    frames = [[small_person(x, 300)] for x in xs]
    counter = CameraCounter(camera())
    out: list[str] = []
    for i, boxes in enumerate(frames):
        counts = counter.update(Detections.of(boxes, [0.9] * len(boxes)), i * 0.1)
        out += [f"{zone}:{c.direction}" for zone, c in counts.crossings]
    assert out == ["entrance:out", "entrance:in"]
