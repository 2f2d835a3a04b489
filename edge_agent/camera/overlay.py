"""Debug aid for installers: one camera frame with the configured lines, zones and queues
drawn on it, and the views the detector searches besides the full frame (derived from the
lines and zones, or the hand-drawn ``detect_regions``), so the pixel coordinates in the
gateway config and what is detected where (each person found in that frame, with its
score) can be checked by eye.

Only ``floorwalker camera-snapshot --out FILE`` calls this, on explicit request; the
running gateway never writes a frame anywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_agent.camera.detector import Detections, Frame
from edge_agent.camera.source import FrameSource, describe_source
from edge_agent.gateway_config import CameraConfig
from floorwalker.errors import ConfigError

LINE = (0, 0, 255)
ZONE = (0, 200, 0)
QUEUE = (255, 128, 0)
REGION = (0, 200, 255)
PERSON = (255, 0, 255)


def draw(frame: Frame, camera: CameraConfig, detections: Detections | None = None) -> Frame:
    """A copy of ``frame`` with every line (and its inside arrow), zone, queue, detector view and
    (when given) detected person drawn."""
    import cv2

    from edge_agent.camera.footfall import camera_views

    img = frame.copy()
    h, w = frame.shape[:2]
    if detections is not None:
        for (x0, y0, x1, y1), score in zip(detections.boxes.astype(int), detections.scores, strict=True):
            cv2.rectangle(img, (int(x0), int(y0)), (int(x1), int(y1)), PERSON, 1)
            cv2.putText(img, f"{score:.2f}", (int(x0), int(y0) - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.4, PERSON, 1)
    label = "region" if camera.detect_regions else "view"
    for i, (x0, y0, x1, y1) in enumerate(camera_views(camera, w, h)):
        cv2.rectangle(img, (x0, y0), (x1, y1), REGION, 1)
        cv2.putText(img, f"{label} {i}", (x0 + 4, y1 - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.5, REGION, 1)
    for z in camera.zones:
        pts = np.array(z.polygon, np.int32)
        cv2.polylines(img, [pts], True, ZONE, 2)
        cv2.putText(
            img, f"zone {z.zone}", tuple(int(v) for v in pts[0]), cv2.FONT_HERSHEY_SIMPLEX, 0.6, ZONE, 2
        )
    for q in camera.queues:
        pts = np.array(q.polygon, np.int32)
        cv2.polylines(img, [pts], True, QUEUE, 2)
        cv2.putText(
            img, f"queue {q.lane}", tuple(int(v) for v in pts[0]), cv2.FONT_HERSHEY_SIMPLEX, 0.6, QUEUE, 2
        )
    for ln in camera.lines:
        a = (int(ln.points[0][0]), int(ln.points[0][1]))
        b = (int(ln.points[1][0]), int(ln.points[1][1]))
        cv2.line(img, a, b, LINE, 2)
        mid = ((a[0] + b[0]) // 2, (a[1] + b[1]) // 2)
        inside = (int(ln.inside[0]), int(ln.inside[1]))
        cv2.arrowedLine(img, mid, inside, LINE, 1, tipLength=0.05)
        cv2.putText(
            img, f"{ln.id}: in -> {ln.enters}", (a[0] + 4, a[1] + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.6, LINE, 2
        )
    return img


def snapshot(camera: CameraConfig, out: Path, timeout_s: float = 15.0) -> None:
    """Grab one frame from the camera's source, find the people in it as the camera would
    (views and full frame), draw everything and write it to ``out``."""
    import cv2

    from edge_agent.camera.detector import load_detector
    from edge_agent.camera.footfall import FootfallPipeline

    source = FrameSource(camera.source).start()
    try:
        tf = source.latest(timeout_s)
    finally:
        source.stop()
    if tf is None:
        health = source.health()
        why = health.detail or health.state
        raise ConfigError(f"camera {camera.id} ({describe_source(camera.source)}): no frame ({why})")
    h, w = tf.frame.shape[:2]
    pipeline = FootfallPipeline(camera, load_detector(camera.model, camera.threads))
    detections = pipeline.detector_for(w, h).detect(tf.frame)
    if not cv2.imwrite(str(out), draw(tf.frame, camera, detections)):
        raise ConfigError(f"{out}: cannot write the image (does the folder exist? is the name .png/.jpg?)")
