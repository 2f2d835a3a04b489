"""Where the detector looks: views of the picture derived from the counting lines and zones.

The shipped model sees a 300x300 picture. Given a whole 768x576 frame, someone 60-100 px
tall is 30-50 px to it and squeezed to 40 % of their width, so people far from the camera
are missed and two walking side by side become one box. Nobody needs to draw regions by
hand for that: the people that matter are the ones near a counting line (or inside a
zone or queue), so :func:`plan_views` derives, from the camera's geometry alone, a square
*view* around each line (the line, ``margin`` of the frame height either side of it and a
person's height above it, where the body of someone whose feet are on the line is) and
each zone. Views that overlap a lot are merged; a view nearly as large as the frame is
dropped (the full frame does as well).

:class:`ViewDetector` runs the model on every view each frame (each one inference, the
crop resized to the model's input so people come out larger) and on the whole frame every
``full_every`` frames, so someone elsewhere in the picture is still found now and then.
The views' boxes are merged with the full frame's like hand-drawn regions were: a box cut
by a view's inner edge is dropped (the full frame or another view sees that person whole),
a full-frame box wholly inside a view is dropped, and one more NMS joins the rest.
Nothing here reads a clock; the frame counter is the only state.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edge_agent.camera.detector import Detections, Detector, Frame, detect_in_crops

#: x0, y0, x1, y1 in frame pixels.
PixelRect = tuple[int, int, int, int]
Point = tuple[float, float]


class DetectionConfig(BaseModel):
    """How a camera's frames are searched for people (``detection:`` in the camera config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``lines``: views derived from the lines and zones, plus the full frame now and then;
    #: ``full``: the full frame only (one inference a frame, small people are missed).
    mode: Literal["lines", "full"] = "lines"
    #: How far either side of a line a view reaches, as a fraction of the frame height.
    margin: float = Field(default=0.2, gt=0, le=1)
    #: Room above a line's highest point for the body of someone standing on it (fraction
    #: of the frame height).
    person: float = Field(default=0.2, ge=0, le=1)
    #: The smallest view side, as a fraction of the frame height.
    min_side: float = Field(default=0.5, gt=0, le=1)
    #: The full frame is searched every this many frames (1: every frame).
    full_every: int = Field(default=20, ge=1, le=1000)
    #: A view covering more than this share of the frame is dropped for the full frame.
    max_area: float = Field(default=0.7, gt=0, le=1)


def _square(x0: float, y0: float, x1: float, y1: float, min_side: float, w: int, h: int) -> PixelRect:
    """The smallest square (at least ``min_side``) around a box, moved inside the frame."""
    side = min(max(x1 - x0, y1 - y0, min_side), float(min(w, h)))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    sx0 = min(max(cx - side / 2, 0.0), w - side)
    sy0 = min(max(cy - side / 2, 0.0), h - side)
    return (round(sx0), round(sy0), round(sx0 + side), round(sy0 + side))


def _area(r: PixelRect) -> int:
    return max(r[2] - r[0], 0) * max(r[3] - r[1], 0)


def plan_views(
    lines: list[tuple[Point, Point]],
    polygons: list[list[Point]],
    width: int,
    height: int,
    config: DetectionConfig,
) -> list[PixelRect]:
    """The views of a ``width`` x ``height`` frame to search besides the full frame."""
    if config.mode == "full":
        return []
    m, up, lo = config.margin * height, config.person * height, config.min_side * height
    boxes: list[tuple[float, float, float, float]] = []
    for p, q in lines:
        boxes.append(
            (min(p[0], q[0]) - m, min(p[1], q[1]) - max(up, m), max(p[0], q[0]) + m, max(p[1], q[1]) + m / 2)
        )
    for poly in polygons:
        px = [v[0] for v in poly]
        py = [v[1] for v in poly]
        boxes.append((min(px), min(py) - up, max(px), max(py)))
    views = [_square(*bx, lo, width, height) for bx in boxes]
    # Merge two views when one square around both is not much bigger than the larger one.
    merged = True
    while merged and len(views) > 1:
        merged = False
        for i in range(len(views)):
            for j in range(i + 1, len(views)):
                va, vb = views[i], views[j]
                u = (min(va[0], vb[0]), min(va[1], vb[1]), max(va[2], vb[2]), max(va[3], vb[3]))
                sq = _square(*u, lo, width, height)
                small_enough = _area(sq) <= config.max_area * width * height
                if small_enough and _area(sq) <= 1.3 * max(_area(va), _area(vb)):
                    views[i] = sq
                    del views[j]
                    merged = True
                    break
            if merged:
                break
    unique: list[PixelRect] = []
    for v in views:
        if v not in unique and _area(v) <= config.max_area * width * height:
            unique.append(v)
    return unique


class ViewDetector:
    """A detector run on some views of each frame and on the full frame every ``full_every``."""

    def __init__(
        self,
        base: Detector,
        views: list[PixelRect],
        *,
        full_every: int = 1,
        edge_px: float = 8.0,
        merge_iou: float = 0.5,
    ) -> None:
        self.base = base
        self.views = views
        self.full_every = full_every if views else 1
        self.edge_px = edge_px
        self.merge_iou = merge_iou
        self._frame = 0

    @property
    def inferences_per_frame(self) -> float:
        return len(self.views) + 1 / self.full_every

    def detect(self, frame: Frame) -> Detections:
        run_full = self._frame % self.full_every == 0
        self._frame += 1
        if run_full:
            whole = self.base.detect(frame)
        else:
            whole = Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))
        return detect_in_crops(self.base, frame, self.views, whole, self.edge_px, self.merge_iou)
