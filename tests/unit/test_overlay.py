"""The installer's snapshot overlay: what is configured is drawn where it is."""

from __future__ import annotations

import numpy as np

from edge_agent.camera.overlay import LINE, REGION, draw
from edge_agent.gateway_config import CameraConfig


def test_lines_and_detect_regions_are_drawn_where_configured() -> None:
    cam = CameraConfig.model_validate(
        {
            "id": "door",
            "source": {"kind": "usb", "device": 0},
            "lines": [{"id": "w", "points": [[560, 90], [560, 470]], "inside": [300, 300], "enters": "z"}],
            "detect_regions": [{"box": [420, 0, 700, 280]}],
        }
    )
    frame = np.zeros((576, 768, 3), np.uint8)
    img = draw(frame, cam)
    assert not frame.any()  # the camera's frame itself is left alone
    assert tuple(img[200, 560]) == LINE
    assert tuple(img[140, 420]) == REGION and tuple(img[280, 600]) == REGION  # the region's edges
    assert not img[150:250, 430:550].any()  # and nothing inside it


def test_the_views_derived_from_a_line_are_drawn() -> None:
    from edge_agent.camera.footfall import camera_views

    cam = CameraConfig.model_validate(
        {
            "id": "door",
            "source": {"kind": "usb", "device": 0},
            "lines": [{"id": "w", "points": [[250, 150], [250, 330]], "inside": [100, 240], "enters": "z"}],
        }
    )
    (view,) = camera_views(cam, 768, 576)
    x0, y0, x1, y1 = view
    img = draw(np.zeros((576, 768, 3), np.uint8), cam)
    assert tuple(img[(y0 + y1) // 2, x0]) == REGION and tuple(img[y1, (x0 + x1) // 2]) == REGION


def test_detected_people_are_drawn_with_their_boxes() -> None:
    from edge_agent.camera.detector import Detections
    from edge_agent.camera.overlay import PERSON

    cam = CameraConfig.model_validate(
        {
            "id": "door",
            "source": {"kind": "usb", "device": 0},
            "lines": [{"id": "w", "points": [[560, 90], [560, 470]], "inside": [300, 300], "enters": "z"}],
            "detection": {"mode": "full"},
        }
    )
    img = draw(np.zeros((576, 768, 3), np.uint8), cam, Detections.of([(100, 200, 140, 300)], [0.9]))
    assert tuple(img[250, 100]) == PERSON and tuple(img[300, 120]) == PERSON
    assert not img[220:280, 110:130].any()
