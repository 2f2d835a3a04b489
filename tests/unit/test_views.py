"""Views derived from a camera's lines and zones, and how their detections are merged."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.camera.detector import Detections, Frame
from edge_agent.camera.views import DetectionConfig, ViewDetector, plan_views

W, H = 768, 576


def contains(view: tuple[int, int, int, int], x: float, y: float) -> bool:
    return view[0] <= x <= view[2] and view[1] <= y <= view[3]


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("short vertical line far away", ((250, 150), (250, 330))),
        ("horizontal door line", ((300, 400), (500, 400))),
        ("line at the frame's corner", ((700, 20), (760, 120))),
    ],
)
def test_a_view_covers_the_line_and_the_people_on_it(name: str, line: tuple) -> None:  # type: ignore[type-arg]
    (view,) = plan_views([line], [], W, H, DetectionConfig())
    x0, y0, x1, y1 = view
    assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H, name
    assert abs((x1 - x0) - (y1 - y0)) <= 1  # square, as the model's input
    assert x1 - x0 <= 0.8 * H  # smaller than the frame: people come out larger
    for x, y in line:
        assert contains(view, x, y)
        assert contains(view, x, max(y - 0.15 * H, 0))  # the body above feet on the line


def test_two_lines_close_together_share_one_view_and_far_apart_get_two() -> None:
    cfg = DetectionConfig()
    close = plan_views([((250, 150), (250, 330)), ((280, 150), (280, 330))], [], W, H, cfg)
    far = plan_views([((100, 300), (100, 400)), ((650, 300), (650, 400))], [], W, H, cfg)
    assert len(close) == 1 and len(far) == 2


def test_full_mode_and_a_line_across_the_whole_picture_need_no_view() -> None:
    assert plan_views([((250, 150), (250, 330))], [], W, H, DetectionConfig(mode="full")) == []
    assert plan_views([((0, 300), (768, 300))], [], W, H, DetectionConfig()) == []


class Scripted:
    """A stand-in model: what it 'finds' depends on the picture's size (full frame or view)."""

    def __init__(self, whole: Detections, crop: Detections) -> None:
        self.whole, self.crop, self.calls = whole, crop, 0

    def detect(self, frame: Frame) -> Detections:
        self.calls += 1
        return self.whole if frame.shape[:2] == (H, W) else self.crop


def test_the_full_frame_runs_every_nth_frame_and_views_every_frame() -> None:
    whole = Detections.of([(10, 10, 40, 100)], [0.9])  # someone far from the view
    crop = Detections.of([(20, 20, 60, 120)], [0.8])  # in view pixels
    model = Scripted(whole, crop)
    det = ViewDetector(model, [(100, 100, 400, 400)], full_every=3)
    got = [det.detect(np.zeros((H, W, 3), np.uint8)) for _ in range(6)]
    assert model.calls == 6 + 2
    assert [len(g) for g in got] == [2, 1, 1, 2, 1, 1]
    assert got[1].boxes.tolist() == [[120, 120, 160, 220]]  # moved into frame pixels
