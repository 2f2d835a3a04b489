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
