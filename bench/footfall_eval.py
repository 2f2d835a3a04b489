"""``floorwalker eval footfall``: run the whole camera pipeline on a video and compare the
line crossings with hand-counted ground truth.

The ground truth is a small YAML file (``tests/data/vtest_line_gt.yaml`` is one): the
line (pixel points and a point on its inside) and every crossing with its frame and
direction. The video is processed frame by frame (none skipped), with time = frame / fps.
A counted crossing matches a true one of the same direction within ``tolerance_frames``
(each used once, nearest first); from that come per-direction count errors and the
precision and recall of crossing events, plus the time the pipeline took per frame.

Optionally, boxes of the people in some frames in MOT Challenge format (``frame, id, x,
y, w, h, ...`` per line, frames counted from 1; ``tests/data/vtest_people_mot.txt`` has
three frames of vtest.avi boxed by hand) give the detector's precision and recall: a
detection matches a true box of the same frame when their IoU is at least 0.5.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edge_agent.camera.detector import SsdLiteModel, YoloModel, load_detector
from edge_agent.camera.footfall import FootfallPipeline
from edge_agent.camera.tracker import greedy_match, iou_matrix
from edge_agent.gateway_config import CameraConfig, LineConfig
from floorwalker.config import load_yaml_model
from floorwalker.errors import ConfigError

Direction = Literal["in", "out"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GtLine(_Strict):
    id: str
    points: tuple[tuple[float, float], tuple[float, float]]
    inside: tuple[float, float]


class GtCrossing(_Strict):
    frame: int = Field(ge=0)
    direction: Direction
    who: str = ""


class LineTruth(_Strict):
    video: str
    frames: int = Field(ge=1)
    fps: float = Field(gt=0)
    line: GtLine
    crossings: list[GtCrossing]


def load_truth(path: Path) -> LineTruth:
    return load_yaml_model(path, LineTruth, "ground-truth")


Box = tuple[float, float, float, float]


def load_mot(path: Path) -> dict[int, list[Box]]:
    """True boxes per frame (0-based here) from a MOT Challenge style text file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the MOT file ({exc.strerror})") from None
    boxes: dict[int, list[Box]] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            frame, _id, x, y, w, h = (float(v) for v in line.split(",")[:6])
        except ValueError:
            raise ConfigError(f"{path}: line {n}: expected frame,id,x,y,w,h,... numbers") from None
        if frame < 1 or w <= 0 or h <= 0:
            raise ConfigError(f"{path}: line {n}: frame must be >= 1 and width, height > 0")
        boxes.setdefault(int(frame) - 1, []).append((x, y, x + w, y + h))
    return boxes


@dataclass(frozen=True, slots=True)
class DetectionScore:
    frames: int
    truth: int
    detected: int
    matched: int

    @property
    def precision(self) -> float:
        return self.matched / self.detected if self.detected else 1.0

    @property
    def recall(self) -> float:
        return self.matched / self.truth if self.truth else 1.0


def match_boxes(truth: list[Box], detected: np.ndarray, iou: float = 0.5) -> int:
    """How many true boxes a detection matches (IoU >= ``iou``, each used once)."""
    ious = iou_matrix(np.asarray(truth, np.float32).reshape(-1, 4), detected.astype(np.float32))
    return len(greedy_match(ious, iou))


@dataclass(frozen=True, slots=True)
class Counted:
    frame: int
    direction: Direction
    track: int


@dataclass(frozen=True, slots=True)
class DirectionScore:
    direction: Direction
    truth: int
    counted: int
    matched: int

    @property
    def count_error(self) -> int:
        return self.counted - self.truth


@dataclass(frozen=True, slots=True)
class EvalResult:
    video: str
    frames: int
    first_frame: int
    directions: list[DirectionScore]
    counted: list[Counted]
    missed: list[GtCrossing]
    extra: list[Counted]
    seconds: float
    detection: DetectionScore | None = None

    @property
    def truth_total(self) -> int:
        return sum(d.truth for d in self.directions)

    @property
    def matched(self) -> int:
        return sum(d.matched for d in self.directions)

    @property
    def precision(self) -> float:
        return self.matched / len(self.counted) if self.counted else 1.0

    @property
    def recall(self) -> float:
        return self.matched / self.truth_total if self.truth_total else 1.0

    @property
    def count_accuracy(self) -> float:
        """1 - |counted - truth| / truth, over both directions (per direction, then summed)."""
        err = sum(abs(d.count_error) for d in self.directions)
        return 1.0 - err / self.truth_total if self.truth_total else 1.0

    @property
    def ms_per_frame(self) -> float:
        return 1000 * self.seconds / max(self.frames, 1)


def match(
    truth: list[GtCrossing], counted: list[Counted], tolerance: int
) -> tuple[list[tuple[GtCrossing, Counted]], list[GtCrossing], list[Counted]]:
    """Pair true and counted crossings of the same direction within ``tolerance`` frames."""
    candidates = sorted(
        (abs(c.frame - g.frame), gi, ci)
        for gi, g in enumerate(truth)
        for ci, c in enumerate(counted)
        if c.direction == g.direction and abs(c.frame - g.frame) <= tolerance
    )
    used_g: set[int] = set()
    used_c: set[int] = set()
    pairs = []
    for _, gi, ci in candidates:
        if gi not in used_g and ci not in used_c:
            used_g.add(gi)
            used_c.add(ci)
            pairs.append((truth[gi], counted[ci]))
    missed = [g for i, g in enumerate(truth) if i not in used_g]
    extra = [c for i, c in enumerate(counted) if i not in used_c]
    return pairs, missed, extra


def evaluate(
    video: Path,
    truth: LineTruth,
    *,
    model: SsdLiteModel | YoloModel | None = None,
    threads: int = 1,
    first_frame: int = 0,
    last_frame: int | None = None,
    tolerance_frames: int = 15,
    mot: dict[int, list[Box]] | None = None,
    regions: list[tuple[int, int, int, int]] | None = None,
) -> EvalResult:
    """Run the pipeline on frames ``first_frame`` .. ``last_frame`` (inclusive) of ``video``."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise ConfigError(f"{video}: cannot open the video (missing or not a video file)")
    line = LineConfig(id=truth.line.id, points=truth.line.points, inside=truth.line.inside, enters="zone")
    camera = CameraConfig(
        id="eval",
        source={"kind": "file", "path": video},
        model=model or SsdLiteModel(),
        threads=threads,
        lines=[line],
        detect_regions=[{"box": r} for r in regions or []],
    )
    pipeline = FootfallPipeline(camera, load_detector(camera.model, threads))
    counted: list[Counted] = []
    index = 0
    spent = 0.0
    processed = 0
    det_truth = det_found = det_matched = det_frames = 0
    try:
        if first_frame:
            cap.set(cv2.CAP_PROP_POS_FRAMES, first_frame)
            index = first_frame
        while last_frame is None or index <= last_frame:
            ok, frame = cap.read()
            if not ok:
                break
            t0 = time.perf_counter()
            detections = pipeline.detector.detect(frame)
            counts = pipeline.counter.update(detections, index / truth.fps)
            spent += time.perf_counter() - t0
            if mot is not None and index in mot:
                det_frames += 1
                det_truth += len(mot[index])
                det_found += len(detections)
                det_matched += match_boxes(mot[index], detections.boxes)
            processed += 1
            counted += [Counted(index, c.direction, c.track) for _, c in counts.crossings]
            index += 1
    finally:
        cap.release()
    end = index - 1
    # Crossings near the ends of a segment may fall either side of it: judge the truth
    # inside the processed frames only.
    gt = [g for g in truth.crossings if first_frame <= g.frame <= end]
    pairs, missed, extra = match(gt, counted, tolerance_frames)
    directions = [
        DirectionScore(
            d,
            truth=sum(1 for g in gt if g.direction == d),
            counted=sum(1 for c in counted if c.direction == d),
            matched=sum(1 for g, _ in pairs if g.direction == d),
        )
        for d in ("in", "out")
    ]
    detection = DetectionScore(det_frames, det_truth, det_found, det_matched) if mot is not None else None
    return EvalResult(
        str(video), processed, first_frame, directions, counted, missed, extra, spent, detection
    )
