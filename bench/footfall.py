"""``floorwalker bench footfall``: frames per second of the whole camera pipeline (decode +
detect + track + count) beside the bare model on the same frames, on one CPU core, and
the process's peak RSS.

onnxruntime runs with one intra-op thread and OpenCV with one thread, so the figures are
what one core of this machine does. Each frame is decoded, timed through the pipeline
(the line-derived views, the full frame when it is due, the appearance cue, tracking,
every line and zone), and then through the bare model alone (one full-frame inference,
the detector the pipeline is built on) in the same run, so load on the machine hits both
alike; ``ratio`` is pipeline fps / bare model fps. The camera is the gateway YAML's when
one is given; otherwise a vertical line through the middle of the picture (no settings
of any particular video). Writes ``bench/out/footfall.json``.
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

from edge_agent.gateway_config import CameraConfig
from floorwalker.errors import ConfigError

#: The issue's targets.
TARGET_FPS = 25.0
TARGET_RSS_MB = 300.0
TARGET_RATIO = 0.8
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def middle_line_camera(video: Path, width: int, height: int) -> CameraConfig:
    """A camera with one vertical line across the middle half of the picture, default settings."""
    x = width / 2
    return CameraConfig.model_validate(
        {
            "id": "bench",
            "source": {"kind": "file", "path": str(video)},
            "threads": 1,
            "lines": [
                {
                    "id": "middle",
                    "points": [[x, round(0.25 * height)], [x, round(0.75 * height)]],
                    "inside": [0.25 * width, height / 2],
                    "enters": "z",
                }
            ],
        }
    )


def run_footfall_bench(
    video: Path, frames: int, out: Path, warmup: int = 10, camera: CameraConfig | None = None
) -> dict[str, object]:
    import cv2

    from edge_agent.camera.detector import load_detector
    from edge_agent.camera.footfall import FootfallPipeline, camera_views

    cv2.setNumThreads(1)
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise ConfigError(f"{video}: cannot open the video (on Debian it comes with the package opencv-doc)")
    fps = float(cap.get(cv2.CAP_PROP_FPS)) or 10.0
    width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    camera = camera or middle_line_camera(video, width, height)
    camera = camera.model_copy(update={"threads": 1})
    model = load_detector(camera.model, threads=1)
    pipeline = FootfallPipeline(camera, model)
    pipe_s: list[float] = []
    bare_s: list[float] = []
    decode_s = 0.0
    crossings = 0
    index = 0
    frame = None
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
        model.detect(frame)
        t3 = time.perf_counter()
        if index >= warmup:
            decode_s += t1 - t0
            pipe_s.append(t2 - t0)
            bare_s.append(t3 - t2)
            crossings += len(counts.crossings)
        index += 1
    cap.release()
    assert frame is not None
    pipe, bare = np.asarray(pipe_s), np.asarray(bare_s)
    pipe_fps = len(pipe) / float(pipe.sum())
    bare_fps = len(bare) / float(bare.sum())
    ratio = pipe_fps / bare_fps
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    views = camera_views(camera, width, height)
    full_every = 1 if camera.detect_regions or not views else camera.detection.full_every
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
        "camera": {
            "lines": [ln.model_dump(mode="json") for ln in camera.lines],
            "detection": camera.detection.model_dump(mode="json"),
            "detect_regions": [list(r.box) for r in camera.detect_regions],
        },
        "views": [list(v) for v in views],
        "inferences_per_frame": round(len(views) + 1 / full_every, 3),
        "frames": len(pipe),
        "pipeline_fps": round(pipe_fps, 1),
        "bare_model_fps": round(bare_fps, 1),
        "ratio": round(ratio, 3),
        "pipeline_ms_p50": round(float(np.percentile(pipe, 50)) * 1000, 2),
        "pipeline_ms_p95": round(float(np.percentile(pipe, 95)) * 1000, 2),
        "decode_ms_per_frame": round(1000 * decode_s / len(pipe), 2),
        "peak_rss_mb": round(rss_mb, 1),
        "crossings_counted": crossings,
        "targets": {"fps": TARGET_FPS, "ratio": TARGET_RATIO, "peak_rss_mb": TARGET_RSS_MB},
        "target_met": bool(pipe_fps >= TARGET_FPS and ratio >= TARGET_RATIO and rss_mb <= TARGET_RSS_MB),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    table = Table(
        title=f"footfall pipeline on one core ({len(pipe)} frames of {video.name}, "
        f"{result['inferences_per_frame']} inferences a frame)"
    )
    for col in ("pipeline fps", "bare model fps", "ratio", "ms p50", "ms p95", "decode ms", "peak RSS MB"):
        table.add_column(col, justify="right")
    table.add_column("target met")
    table.add_row(
        str(result["pipeline_fps"]),
        str(result["bare_model_fps"]),
        str(result["ratio"]),
        str(result["pipeline_ms_p50"]),
        str(result["pipeline_ms_p95"]),
        str(result["decode_ms_per_frame"]),
        str(result["peak_rss_mb"]),
        "yes" if result["target_met"] else "no",
    )
    Console().print(table)
    Console().print(f"wrote {out}")
    return result
