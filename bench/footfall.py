"""``floorwalker bench footfall``: frames per second of detector + tracker + counting on one
CPU core, and the process's peak RSS.

onnxruntime runs with one intra-op thread and OpenCV with one thread, so the figure is
what one core of this machine does. Video decoding is timed separately (a camera's
decoder is not the pipeline); the per-frame time covers the resize, inference, NMS,
tracking, the line and zone counting. The process's peak resident set size comes from
``getrusage`` after the run. Writes ``bench/out/footfall.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from floorwalker.errors import ConfigError

#: The issue's targets.
TARGET_FPS = 25.0
TARGET_RSS_MB = 300.0
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
#: Detect regions of vtest.avi as the README's accuracy figures use them: over the far end
#: of the walkway line, and over the path on the far left (the held-out second line).
VTEST_REGIONS: list[tuple[int, int, int, int]] = [(420, 0, 700, 280), (106, 96, 394, 384)]


def run_footfall_bench(
    video: Path, frames: int, out: Path, warmup: int = 10, regions: int = 1
) -> dict[str, object]:
    """``regions``: how many of :data:`VTEST_REGIONS` the camera also runs the detector on."""
    import cv2

    from edge_agent.camera.detector import load_detector
    from edge_agent.camera.footfall import FootfallPipeline
    from edge_agent.gateway_config import CameraConfig

    cv2.setNumThreads(1)
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise ConfigError(f"{video}: cannot open the video (on Debian it comes with the package opencv-doc)")
    fps = float(cap.get(cv2.CAP_PROP_FPS)) or 10.0
    camera = CameraConfig.model_validate(
        {
            "id": "bench",
            "source": {"kind": "file", "path": str(video)},
            "threads": 1,
            "lines": [
                {"id": "walkway", "points": [[560, 90], [560, 470]], "inside": [300, 300], "enters": "z"}
            ],
            "zones": [{"zone": "z", "polygon": [[0, 90], [560, 90], [560, 470], [0, 470]]}],
            "detect_regions": [{"box": r} for r in VTEST_REGIONS[:regions]],
        }
    )
    pipeline = FootfallPipeline(camera, load_detector(camera.model, threads=1))
    per_frame: list[float] = []
    decode_s = 0.0
    crossings = 0
    index = 0
    while index < frames + warmup:
        t0 = time.perf_counter()
        ok, frame = cap.read()
        if not ok:  # a short video: play it again
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = cap.read()
            if not ok:
                raise ConfigError(f"{video}: no frames could be read")
        t1 = time.perf_counter()
        counts = pipeline.process(frame, index / fps)
        t2 = time.perf_counter()
        if index >= warmup:
            decode_s += t1 - t0
            per_frame.append(t2 - t1)
            crossings += len(counts.crossings)
        index += 1
    cap.release()
    times = np.asarray(per_frame)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result: dict[str, object] = {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "load_avg_1m": os.getloadavg()[0],
        },
        "video": str(video),
        "frame_size": [int(frame.shape[1]), int(frame.shape[0])],
        "model": "models/person_ssdlite.onnx (300x300)",
        "threads": 1,
        "detect_regions": [list(r) for r in VTEST_REGIONS[:regions]],
        "inferences_per_frame": 1 + regions,
        "frames": len(per_frame),
        "fps": round(len(per_frame) / float(times.sum()), 1),
        "ms_per_frame_p50": round(float(np.percentile(times, 50)) * 1000, 2),
        "ms_per_frame_p95": round(float(np.percentile(times, 95)) * 1000, 2),
        "decode_ms_per_frame": round(1000 * decode_s / len(per_frame), 2),
        "peak_rss_mb": round(rss_mb, 1),
        "crossings_counted": crossings,
        "targets": {"fps": TARGET_FPS, "peak_rss_mb": TARGET_RSS_MB},
        "target_met": bool(len(per_frame) / float(times.sum()) >= TARGET_FPS and rss_mb <= TARGET_RSS_MB),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    table = Table(
        title=f"footfall pipeline on one core ({len(per_frame)} frames of {video.name}, "
        f"{regions} detect region(s))"
    )
    for col in ("fps", "ms/frame p50", "ms/frame p95", "decode ms/frame", "peak RSS MB", "target met"):
        table.add_column(col, justify="right")
    table.add_row(
        str(result["fps"]),
        str(result["ms_per_frame_p50"]),
        str(result["ms_per_frame_p95"]),
        str(result["decode_ms_per_frame"]),
        str(result["peak_rss_mb"]),
        "yes" if result["target_met"] else "no",
    )
    Console().print(table)
    Console().print(f"wrote {out}")
    return result
