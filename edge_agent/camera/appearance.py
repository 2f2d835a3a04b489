"""A cheap appearance cue per detected person: the mean colour of the upper and the lower
body, six numbers in 0..1.

Two people walking side by side have boxes that overlap and move alike, so position alone
lets their ids swap; their clothes usually differ. The tracker adds the difference of
these vectors to its matching cost (``TrackerConfig.appearance_weight``). Only the middle
half of the box's width is used, to leave out the background and the neighbour. The cost
is a few small array means per person, nothing next to the detector.
"""

from __future__ import annotations

import numpy as np

from edge_agent.camera.detector import Detections, FloatArray, Frame

#: Upper body and lower body, as fractions of the box's height.
_BANDS = ((0.15, 0.5), (0.5, 0.9))


def appearance(frame: Frame, boxes: FloatArray) -> FloatArray:
    """``[n, 6]``: mean B, G, R of the upper and lower body of each box, scaled to 0..1."""
    h, w = frame.shape[:2]
    out = np.zeros((len(boxes), 3 * len(_BANDS)), np.float32)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        bw, bh = x1 - x0, y1 - y0
        cx0 = int(np.clip(x0 + 0.25 * bw, 0, w - 1))
        cx1 = int(np.clip(x1 - 0.25 * bw, cx0 + 1, w))
        for k, (top, bottom) in enumerate(_BANDS):
            ry0 = int(np.clip(y0 + top * bh, 0, h - 1))
            ry1 = int(np.clip(y0 + bottom * bh, ry0 + 1, h))
            patch = frame[ry0:ry1, cx0:cx1]
            if patch.size:
                out[i, 3 * k : 3 * k + 3] = patch.reshape(-1, patch.shape[-1])[:, :3].mean(axis=0) / 255.0
    return out


def with_appearance(frame: Frame, detections: Detections) -> Detections:
    """The same detections carrying their appearance vectors."""
    return Detections(detections.boxes, detections.scores, appearance(frame, detections.boxes))
