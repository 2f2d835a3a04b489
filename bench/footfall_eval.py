"""``floorwalker eval footfall``: run the whole camera pipeline on a video (or an image
sequence) and compare its line crossings with hand-counted ground truth, per line and
direction.

The ground truth is one small YAML file per line (``tests/data/vtest_line_gt.yaml`` is
one): the line (pixel points and a point on its inside) and every crossing with its frame
and direction. Several truth files of the same video are scored in one pass. The camera
is either built from the truth's lines with default settings, or taken from a gateway
YAML (the file ``edge`` runs; each truth line must be one of that camera's lines, with
the same points).

Times are seconds: frame ``i`` of the video is at ``i / fps`` with the video's own frame
rate (an image sequence, ``frame_%04d.jpg``, has none: the truth file's ``fps`` is used,
or ``source_fps``). A counted crossing matches a true one of the same line and direction
within ``tolerance_s`` (each used once, nearest first). Reported per line and direction:
truth, counted, matched, false counts, missed, precision and recall; never a net figure.

A :class:`Condition` replays the same footage as a harder camera would deliver it: at a
lower frame rate (frames dropped, times kept) and/or smaller (each frame shrunk by
``scale`` and placed in the middle of a grey frame of the original size, the lines moved
with it), so the same truth holds. A line outside the frame, a crossing beyond the last
frame or a truth file that does not fit the video is an error naming the key.

Optionally, boxes of the people in some frames in MOT Challenge format (``frame, id, x,
y, w, h, ...`` per line, frames counted from 1) give the detector's precision and recall:
a detection matches a true box of the same frame when their IoU is at least 0.5.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edge_agent.camera.detector import Frame, load_detector
from edge_agent.camera.footfall import FootfallPipeline
from edge_agent.camera.tracker import greedy_match, iou_matrix
from edge_agent.gateway_config import CameraConfig, LineConfig
from floorwalker.config import load_yaml_model
from floorwalker.errors import ConfigError

Direction = Literal["in", "out"]
DIRECTIONS: tuple[Direction, Direction] = ("in", "out")


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
    #: Frames in the video the crossings were counted on (the whole video).
    frames: int = Field(ge=1)
    fps: float = Field(gt=0)
    #: Width and height of the video's frames, when given: checked against the video.
    size: tuple[int, int] | None = None
    line: GtLine
    crossings: list[GtCrossing]


def load_truth(path: Path) -> LineTruth:
    return load_yaml_model(path, LineTruth, "ground-truth")


@dataclass(frozen=True, slots=True)
class Condition:
    """How the footage is replayed: every frame at full size, or fewer and/or smaller."""

    name: str = "original"
    #: Frames per second to keep (``None``: every frame).
    fps: float | None = None
    #: Shrink factor of the picture inside a frame of the original size.
    scale: float = 1.0

    def check(self) -> None:
        if self.fps is not None and self.fps <= 0:
            raise ConfigError(f"condition {self.name}: fps {self.fps} must be > 0")
        if not 0.1 <= self.scale <= 1.0:
            raise ConfigError(f"condition {self.name}: scale {self.scale} must be in 0.1..1")


#: The development conditions of ``bench footfall-accuracy``.
CONDITIONS = (
    Condition("original"),
    Condition("7fps", fps=7.0),
    Condition("small", scale=0.8),
)


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
class TrueCrossing:
    t: float
    frame: int
    direction: Direction
    who: str = ""


@dataclass(frozen=True, slots=True)
class Counted:
    t: float
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
    def false(self) -> int:
        return self.counted - self.matched

    @property
    def missed(self) -> int:
        return self.truth - self.matched

    @property
    def precision(self) -> float:
        return self.matched / self.counted if self.counted else 1.0

    @property
    def recall(self) -> float:
        return self.matched / self.truth if self.truth else 1.0

    def as_dict(self) -> dict[str, object]:
        return {
            "direction": self.direction,
            "truth": self.truth,
            "counted": self.counted,
            "matched": self.matched,
            "false": self.false,
            "missed": self.missed,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
        }


@dataclass(frozen=True, slots=True)
class LineResult:
    line: str
    directions: list[DirectionScore]
    missed: list[TrueCrossing]
    false: list[Counted]

    @property
    def both(self) -> DirectionScore:
        """Both directions together (for a one-line summary; the rows stay per direction)."""
        return DirectionScore(
            "in",
            sum(d.truth for d in self.directions),
            sum(d.counted for d in self.directions),
            sum(d.matched for d in self.directions),
        )


@dataclass(frozen=True, slots=True)
class EvalResult:
    video: str
    condition: Condition
    fps: float
    frames: int
    seconds: float
    lines: list[LineResult]
    detection: DetectionScore | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ms_per_frame(self) -> float:
        return 1000 * self.seconds / max(self.frames, 1)

    def as_dict(self) -> dict[str, object]:
        det = self.detection
        return {
            "video": self.video,
            "condition": {
                "name": self.condition.name,
                "fps": self.condition.fps,
                "scale": self.condition.scale,
            },
            "video_fps": self.fps,
            "frames": self.frames,
            "lines": [
                {
                    "line": r.line,
                    "directions": [d.as_dict() for d in r.directions],
                    "missed": [
                        {"t": g.t, "frame": g.frame, "direction": g.direction, "who": g.who} for g in r.missed
                    ],
                    "false": [
                        {"t": c.t, "frame": c.frame, "direction": c.direction, "track": c.track}
                        for c in r.false
                    ],
                }
                for r in self.lines
            ],
            "ms_per_frame": round(self.ms_per_frame, 2),
            "detection": None
            if det is None
            else {
                "frames": det.frames,
                "truth": det.truth,
                "detected": det.detected,
                "matched": det.matched,
                "precision": round(det.precision, 4),
                "recall": round(det.recall, 4),
            },
            "warnings": self.warnings,
        }


def match(
    truth: list[TrueCrossing], counted: list[Counted], tolerance_s: float
) -> tuple[list[tuple[TrueCrossing, Counted]], list[TrueCrossing], list[Counted]]:
    """Pair true and counted crossings of the same direction within ``tolerance_s`` seconds."""
    candidates = sorted(
        (abs(c.t - g.t), gi, ci)
        for gi, g in enumerate(truth)
        for ci, c in enumerate(counted)
        if c.direction == g.direction and abs(c.t - g.t) <= tolerance_s + 1e-9
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


def score_line(
    line: str, truth: list[TrueCrossing], counted: list[Counted], tolerance_s: float
) -> LineResult:
    pairs, missed, extra = match(truth, counted, tolerance_s)
    directions = [
        DirectionScore(
            d,
            truth=sum(1 for g in truth if g.direction == d),
            counted=sum(1 for c in counted if c.direction == d),
            matched=sum(1 for g, _ in pairs if g.direction == d),
        )
        for d in DIRECTIONS
    ]
    return LineResult(line, directions, missed, extra)


# -- the camera under test ---------------------------------------------------------------------


def _moved(p: tuple[float, float], scale: float, offset: tuple[float, float]) -> tuple[float, float]:
    return (p[0] * scale + offset[0], p[1] * scale + offset[1])


def camera_for(
    truths: list[tuple[Path, LineTruth]], camera: CameraConfig | None, gateway: Path | None = None
) -> CameraConfig:
    """The camera to evaluate: ``camera`` (checked against the truth lines) or a default one."""
    if camera is None:
        lines = [
            LineConfig(id=t.line.id, points=t.line.points, inside=t.line.inside, enters="zone")
            for _, t in truths
        ]
        ids = [ln.id for ln in lines]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"line.id: two truth files name the same line ({', '.join(ids)})")
        return CameraConfig(id="eval", source={"kind": "file", "path": Path("eval")}, lines=lines)
    by_id = {ln.id: ln for ln in camera.lines}
    for path, t in truths:
        ln = by_id.get(t.line.id)
        if ln is None:
            raise ConfigError(
                f"{path}: line.id: {t.line.id!r} is not a line of camera {camera.id!r} in {gateway} "
                f"(it has: {', '.join(by_id) or 'no lines'})"
            )
        if tuple(map(tuple, ln.points)) != tuple(map(tuple, t.line.points)):
            raise ConfigError(
                f"{path}: line.points: {[list(p) for p in t.line.points]} differ from camera "
                f"{camera.id!r}'s line {ln.id!r} {[list(p) for p in ln.points]} in {gateway}"
            )
    return camera


def scaled_camera(camera: CameraConfig, scale: float, offset: tuple[float, float]) -> CameraConfig:
    """The same camera with every line, zone, queue and region moved into a shrunk picture."""
    if scale == 1.0 and offset == (0.0, 0.0):
        return camera

    def poly(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return [_moved(p, scale, offset) for p in points]

    lines = [
        ln.model_copy(
            update={"points": tuple(poly(list(ln.points))), "inside": _moved(ln.inside, scale, offset)}
        )
        for ln in camera.lines
    ]
    zones = [z.model_copy(update={"polygon": poly(z.polygon)}) for z in camera.zones]
    queues = [q.model_copy(update={"polygon": poly(q.polygon)}) for q in camera.queues]
    regions = [
        r.model_copy(update={"box": tuple(round(v * scale + offset[i % 2]) for i, v in enumerate(r.box))})
        for r in camera.detect_regions
    ]
    return camera.model_copy(
        update={"lines": lines, "zones": zones, "queues": queues, "detect_regions": regions}
    )


class _Replay:
    """The frames of a video or image sequence under a :class:`Condition`, with their times."""

    def __init__(self, source: Path, condition: Condition, fallback_fps: float, source_fps: float | None):
        import cv2

        self._cv2 = cv2
        self.sequence = "%" in source.name
        if not self.sequence and not source.is_file():
            raise ConfigError(f"{source}: no such video file")
        self.cap = cv2.VideoCapture(str(source))
        if not self.cap.isOpened():
            what = "image sequence (e.g. frames/frame_%04d.jpg)" if self.sequence else "video"
            raise ConfigError(f"{source}: cannot open the {what}")
        reported = float(self.cap.get(cv2.CAP_PROP_FPS))
        if source_fps is not None:
            self.fps = source_fps
            self.fps_from = "given"
        elif self.sequence or not reported or not math.isfinite(reported):
            self.fps = fallback_fps
            self.fps_from = "truth"
        else:
            self.fps = reported
            self.fps_from = "video"
        self.frame_count = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.condition = condition
        self.size: tuple[int, int] | None = None

    def geometry(self, width: int, height: int) -> tuple[float, tuple[float, float]]:
        s = self.condition.scale
        return s, (round((width - round(width * s)) / 2), round((height - round(height * s)) / 2))

    def frames(self, first: int, last: int | None) -> Iterator[tuple[int, float, Frame]]:
        cv2 = self._cv2
        if first:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, first)
        index = first
        keep_fps = self.condition.fps
        step = self.fps / keep_fps if keep_fps is not None and keep_fps < self.fps else 1.0
        next_kept = float(first)
        while last is None or index <= last:
            ok, frame = self.cap.read()
            if not ok:
                return
            if index + 1e-9 >= next_kept:
                next_kept += step
                yield index, index / self.fps, self.shrink(frame)
            index += 1

    def shrink(self, frame: Frame) -> Frame:
        s = self.condition.scale
        if s == 1.0:
            return frame
        cv2 = self._cv2
        h, w = frame.shape[:2]
        _, (ox, oy) = self.geometry(w, h)
        small = cv2.resize(frame, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
        canvas = np.full_like(frame, 114)
        canvas[int(oy) : int(oy) + small.shape[0], int(ox) : int(ox) + small.shape[1]] = small
        return canvas

    def close(self) -> None:
        self.cap.release()


def _check_fit(
    truths: list[tuple[Path, LineTruth]], replay: _Replay, width: int, height: int, warnings: list[str]
) -> None:
    n = replay.frame_count
    for path, t in truths:
        if t.size is not None and tuple(t.size) != (width, height):
            raise ConfigError(
                f"{path}: size: the truth is for {t.size[0]}x{t.size[1]} frames but the video's are "
                f"{width}x{height} (is it the right video?)"
            )
        if n > 0 and t.frames != n:
            raise ConfigError(
                f"{path}: frames: the truth was counted on {t.frames} frames but the video has {n} "
                "(is it the right video?)"
            )
        for i, g in enumerate(t.crossings):
            if g.frame >= t.frames or (n > 0 and g.frame >= n):
                raise ConfigError(
                    f"{path}: crossings[{i}].frame: {g.frame} is beyond the video's last frame "
                    f"{(n if n > 0 else t.frames) - 1}"
                )
        for key, p in [("line.points", q) for q in t.line.points] + [("line.inside", t.line.inside)]:
            if not (0 <= p[0] <= width and 0 <= p[1] <= height):
                raise ConfigError(f"{path}: {key}: point {list(p)} lies outside the {width}x{height} frame")
        if replay.fps_from == "video" and abs(t.fps - replay.fps) > 0.01:
            warnings.append(
                f"{path}: fps: the truth says {t.fps:g} but the video plays at {replay.fps:g}; "
                "times are taken from the video"
            )
    if replay.fps_from == "truth":
        warnings.append(f"the source has no frame rate of its own: {replay.fps:g} fps from the truth file")


def evaluate(
    video: Path,
    truths: list[tuple[Path, LineTruth]],
    *,
    camera: CameraConfig | None = None,
    gateway: Path | None = None,
    condition: Condition = Condition(),
    threads: int = 1,
    first_frame: int = 0,
    last_frame: int | None = None,
    tolerance_s: float = 1.5,
    source_fps: float | None = None,
    mot: dict[int, list[Box]] | None = None,
) -> EvalResult:
    """Run the pipeline on frames ``first_frame`` .. ``last_frame`` (inclusive) of ``video``."""
    if not truths:
        raise ConfigError("--gt: at least one ground-truth file is needed")
    condition.check()
    if tolerance_s <= 0:
        raise ConfigError(f"--tolerance-s {tolerance_s}: must be > 0")
    base = camera_for(truths, camera, gateway)
    threads = threads if camera is None else base.threads
    replay = _Replay(video, condition, truths[0][1].fps, source_fps)
    warnings: list[str] = []
    counted: dict[str, list[Counted]] = {t.line.id: [] for _, t in truths}
    spent = 0.0
    processed = 0
    last_index = first_frame - 1
    det_truth = det_found = det_matched = det_frames = 0
    pipeline: FootfallPipeline | None = None
    try:
        detector = load_detector(base.model, threads)
        for index, t, frame in replay.frames(first_frame, last_frame):
            if pipeline is None:
                h, w = frame.shape[:2]
                _check_fit(truths, replay, w, h, warnings)
                scale, offset = replay.geometry(w, h)
                pipeline = FootfallPipeline(scaled_camera(base, scale, offset), detector)
            t0 = time.perf_counter()
            counts, detections = pipeline.process_with_detections(frame, t)
            spent += time.perf_counter() - t0
            if mot is not None and index in mot:
                det_frames += 1
                det_truth += len(mot[index])
                det_found += len(detections)
                det_matched += match_boxes(_scaled_boxes(mot[index], replay, frame), detections.boxes)
            processed += 1
            last_index = index
            for _, c in counts.crossings:
                if c.line in counted:
                    counted[c.line].append(Counted(round(t, 3), index, c.direction, c.track))
    finally:
        replay.close()
    if pipeline is None:
        raise ConfigError(f"{video}: no frames could be read from frame {first_frame} on")
    lines = []
    for _, truth in truths:
        # Judge the truth inside the processed frames only.
        gt = [
            TrueCrossing(round(g.frame / replay.fps, 3), g.frame, g.direction, g.who)
            for g in truth.crossings
            if first_frame <= g.frame <= last_index
        ]
        lines.append(score_line(truth.line.id, gt, counted[truth.line.id], tolerance_s))
    detection = DetectionScore(det_frames, det_truth, det_found, det_matched) if mot is not None else None
    return EvalResult(str(video), condition, replay.fps, processed, spent, lines, detection, warnings)


def _scaled_boxes(boxes: list[Box], replay: _Replay, frame: Frame) -> list[Box]:
    h, w = frame.shape[:2]
    s, (ox, oy) = replay.geometry(w, h)
    return [(b[0] * s + ox, b[1] * s + oy, b[2] * s + ox, b[3] * s + oy) for b in boxes]


def result_rows(result: EvalResult, video: str, pipeline: str) -> list[dict[str, Any]]:
    """One row per line and direction, for ``bench/out/footfall_accuracy.json``."""
    return [
        {"video": video, "line": r.line, "condition": result.condition.name, "pipeline": pipeline}
        | d.as_dict()
        for r in result.lines
        for d in r.directions
    ]
