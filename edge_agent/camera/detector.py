"""Person detection: one :class:`Detector` interface, two ONNX backends.

* :class:`SsdLiteDetector` runs the model Floorwalker ships (``models/person_ssdlite.onnx``,
  see ``models/README.md``); its sha256 and input/output spec are checked at load.
* :class:`YoloDetector` runs a YOLO-family ONNX model the operator brings (YOLOv5 or
  YOLOv8 output layout); boxes are decoded and suppressed in numpy.

Which one a camera uses is a typed config union (:data:`ModelConfig`). Inference goes
through onnxruntime with a configurable thread count, and each frame is resized exactly
once. Frames stay in memory; nothing here writes them anywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from floorwalker.errors import PermanentError

#: Where the shipped model lives (a source checkout or an editable install).
MODELS_DIR: Final = Path(__file__).resolve().parents[2] / "models"
PERSON_SSDLITE: Final = MODELS_DIR / "person_ssdlite.onnx"
PERSON_SSDLITE_SHA256: Final = "967d54625daf3b67adedef692af3d6076002909ba8adc2677478e53ff8f028ea"
SSD_SIZE: Final = 300
SSD_ANCHORS: Final = 1917

#: A BGR image as OpenCV delivers it (uint8, height x width x 3).
Frame = npt.NDArray[Any]
FloatArray = npt.NDArray[np.float32]


class ModelError(PermanentError):
    """The model file is missing, corrupt or does not have the expected inputs/outputs."""


@dataclass(frozen=True, slots=True)
class Detections:
    """People found in one frame: ``boxes`` ``[n, 4]`` as x0, y0, x1, y1 in frame pixels."""

    boxes: FloatArray
    scores: FloatArray
    #: ``[n, k]`` appearance vectors (see :mod:`edge_agent.camera.appearance`), when computed.
    features: FloatArray | None = None

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    @staticmethod
    def of(boxes: list[tuple[float, float, float, float]], scores: list[float]) -> Detections:
        return Detections(
            np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32).reshape(-1)
        )


class Detector(Protocol):
    """Finds people in a BGR frame (as OpenCV delivers it)."""

    def detect(self, frame: Frame) -> Detections: ...


# -- config --------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SsdLiteModel(_Strict):
    """The shipped SSDLite pedestrian detector."""

    kind: Literal["ssdlite"] = "ssdlite"
    #: Default: the file in ``models/``; its sha256 must match the one shipped.
    path: Path | None = None
    #: Tuned on vtest.avi (see docs/camera.md): a lower threshold and a looser
    #: NMS keep two people walking side by side as two boxes.
    score_threshold: float = Field(default=0.3, gt=0, lt=1)
    nms_iou: float = Field(default=0.65, gt=0, le=1)


class YoloModel(_Strict):
    """A YOLO-family ONNX model of the operator's own."""

    kind: Literal["yolo"]
    path: Path
    #: ``v8``: output ``[1, 4 + classes, anchors]``; ``v5``: ``[1, anchors, 5 + classes]``.
    layout: Literal["v8", "v5"] = "v8"
    #: Index of the person class among the model's classes (COCO: 0).
    person_class: int = Field(default=0, ge=0)
    score_threshold: float = Field(default=0.4, gt=0, lt=1)
    nms_iou: float = Field(default=0.5, gt=0, le=1)
    #: Checked at load when given.
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None


ModelConfig = Annotated[SsdLiteModel | YoloModel, Field(discriminator="kind")]


def load_detector(model: SsdLiteModel | YoloModel, threads: int = 1) -> Detector:
    """Build the detector ``model`` names; :class:`ModelError` says what is wrong with the file."""
    if isinstance(model, SsdLiteModel):
        return SsdLiteDetector(model, threads)
    return YoloDetector(model, threads)


# -- shared pieces ---------------------------------------------------------------------------


def nms(boxes: FloatArray, scores: FloatArray, iou_threshold: float) -> npt.NDArray[np.intp]:
    """Indices of the boxes kept by greedy non-maximum suppression, best score first."""
    if len(scores) == 0:
        return np.zeros((0,), np.intp)
    x0, y0, x1, y1 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.maximum(x1 - x0, 0) * np.maximum(y1 - y0, 0)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0)
        h = np.maximum(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0)
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, np.intp)


def _session(path: Path, threads: int, expected_sha256: str | None) -> object:
    import onnxruntime as ort

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"model file {path}: not found (see models/README.md)") from None
    except OSError as exc:
        raise ModelError(f"model file {path}: cannot read ({exc.strerror})") from None
    if expected_sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected_sha256:
            raise ModelError(
                f"model file {path}: sha256 {digest[:12]}... is not the expected {expected_sha256[:12]}... "
                "(corrupt or replaced; restore it from the repository or rebuild it)"
            )
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for a bad file
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"model file {path}: not a usable ONNX model ({first})") from None


def _io(session: object) -> tuple[list[tuple[str, str, list[object]]], list[tuple[str, str, list[object]]]]:
    ins = [(i.name, i.type, list(i.shape)) for i in session.get_inputs()]  # type: ignore[attr-defined]
    outs = [(o.name, o.type, list(o.shape)) for o in session.get_outputs()]  # type: ignore[attr-defined]
    return ins, outs


# -- detect regions ------------------------------------------------------------------------------


#: A pixel rectangle of the camera picture: x0, y0, x1, y1.
PixelRect = tuple[int, int, int, int]


class RegionDetector:
    """Runs a detector on the whole frame and again on a few regions of it, then merges.

    The shipped model sees a 300x300 picture, so in a 768x576 frame someone 60 px tall far
    from the camera is 30 px to the model, and two people walking close together there come
    out as one box. A region (drawn by the operator over the far end of a counting line) is
    cut out and resized on its own, so the model sees those people 2-3x larger. Merging:

    * a region's boxes that touch the region's edge inside the frame are dropped (a person
      cut in half there is seen whole by the full frame);
    * full-frame boxes lying wholly inside a region are dropped: the region saw the same
      people at a higher resolution (keeping both would count a merged pair next to its
      two halves);
    * what is left goes through one more NMS at ``merge_iou`` (people on a region's edge).

    Each region costs one more inference per frame.
    """

    def __init__(
        self,
        base: Detector,
        regions: list[PixelRect],
        *,
        edge_px: float = 8.0,
        merge_iou: float = 0.5,
    ) -> None:
        self.base = base
        self.regions = regions
        self.edge_px = edge_px
        self.merge_iou = merge_iou

    def detect(self, frame: Frame) -> Detections:
        full = self.base.detect(frame)
        return detect_in_crops(self.base, frame, self.regions, full, self.edge_px, self.merge_iou)


def detect_in_crops(
    base: Detector,
    frame: Frame,
    crops: Sequence[tuple[int, int, int, int]],
    whole: Detections,
    edge_px: float,
    merge_iou: float,
) -> Detections:
    """Detect again in each crop ``(x0, y0, x1, y1)`` of ``frame`` and merge with the boxes
    found on the whole frame (``whole``; empty when the whole frame was not run): a crop's
    boxes replace the whole frame's boxes lying inside it; a crop's box cut by the crop's
    inner edge is dropped (the whole frame or another crop sees that person whole); one NMS
    joins the rest."""
    h, w = frame.shape[:2]
    boxes, scores = whole.boxes, whole.scores
    parts_b: list[FloatArray] = []
    parts_s: list[FloatArray] = []
    e = edge_px
    for rx0, ry0, rx1, ry1 in crops:
        x0, y0, x1, y1 = max(rx0, 0), max(ry0, 0), min(rx1, w), min(ry1, h)
        if x1 - x0 < 16 or y1 - y0 < 16:
            continue  # outside this frame (the config check names it at start-up)
        inner = (boxes[:, 0] >= x0 + e) & (boxes[:, 1] >= y0 + e)
        inner &= (boxes[:, 2] <= x1 - e) & (boxes[:, 3] <= y1 - e)
        boxes, scores = boxes[~inner], scores[~inner]
        found = base.detect(frame[y0:y1, x0:x1])
        b = found.boxes + np.array([x0, y0, x0, y0], np.float32)
        cut = np.zeros(len(found), bool)
        if x0 > 0:
            cut |= b[:, 0] <= x0 + e
        if y0 > 0:
            cut |= b[:, 1] <= y0 + e
        if x1 < w:
            cut |= b[:, 2] >= x1 - e
        if y1 < h:
            cut |= b[:, 3] >= y1 - e
        parts_b.append(b[~cut])
        parts_s.append(found.scores[~cut])
    if not parts_b:  # no crop inside this frame: nothing was replaced
        return whole
    all_b = np.concatenate([boxes, *parts_b]).astype(np.float32)
    all_s = np.concatenate([scores, *parts_s]).astype(np.float32)
    keep = nms(all_b, all_s, merge_iou)
    return Detections(all_b[keep], all_s[keep])


# -- SSDLite -------------------------------------------------------------------------------------


class SsdLiteDetector:
    """The shipped SSDLite pedestrian model: 300x300 RGB uint8 in, decoded boxes and scores out."""

    def __init__(self, config: SsdLiteModel, threads: int = 1) -> None:
        self.config = config
        path = config.path or PERSON_SSDLITE
        self._session = _session(path, threads, PERSON_SSDLITE_SHA256)
        ins, outs = _io(self._session)
        want_in = [("image", "tensor(uint8)", [1, SSD_SIZE, SSD_SIZE, 3])]
        want_out = [
            ("boxes", "tensor(float)", [1, SSD_ANCHORS, 4]),
            ("scores", "tensor(float)", [1, SSD_ANCHORS]),
        ]
        if ins != want_in or outs != want_out:
            raise ModelError(f"model file {path}: inputs {ins} / outputs {outs} do not match the spec")

    def detect(self, frame: Frame) -> Detections:
        import cv2

        h, w = frame.shape[:2]
        # The one resize; the colour swap is a cheap channel shuffle on the small image.
        small = cv2.cvtColor(cv2.resize(frame, (SSD_SIZE, SSD_SIZE)), cv2.COLOR_BGR2RGB)
        boxes, scores = self._session.run(None, {"image": small[np.newaxis]})  # type: ignore[attr-defined]
        scores = scores[0]
        keep = scores >= self.config.score_threshold
        if not keep.any():
            return Detections.empty()
        b = boxes[0][keep]
        s = scores[keep].astype(np.float32)
        xyxy = np.stack([b[:, 1] * w, b[:, 0] * h, b[:, 3] * w, b[:, 2] * h], axis=1)
        xyxy = np.clip(xyxy, 0, [w, h, w, h]).astype(np.float32)
        idx = nms(xyxy, s, self.config.nms_iou)
        return Detections(xyxy[idx], s[idx])


# -- YOLO ------------------------------------------------------------------------------------------


class YoloDetector:
    """A YOLO-family model: letterboxed RGB float input, centre/size boxes and class scores out."""

    def __init__(self, config: YoloModel, threads: int = 1) -> None:
        self.config = config
        self._session = _session(config.path, threads, config.sha256)
        ins, outs = _io(self._session)
        path = config.path
        if len(ins) != 1 or len(outs) != 1:
            raise ModelError(f"model file {path}: expected one input and one output, got {ins} / {outs}")
        name, dtype, shape = ins[0]
        if dtype != "tensor(float)" or len(shape) != 4 or shape[1] != 3:
            raise ModelError(f"model file {path}: input {name} {dtype} {shape} is not [1, 3, H, W] float")
        if not all(isinstance(d, int) and d > 0 for d in shape[2:]):
            raise ModelError(f"model file {path}: input {name} needs a fixed height and width, got {shape}")
        self._input = name
        self._h, self._w = int(str(shape[2])), int(str(shape[3]))
        _, out_type, out_shape = outs[0]
        classes_axis = 1 if config.layout == "v8" else 2
        extra = 4 if config.layout == "v8" else 5
        n = out_shape[classes_axis] if len(out_shape) == 3 else None
        if out_type != "tensor(float)" or len(out_shape) != 3:
            raise ModelError(f"model file {path}: output {out_type} {out_shape} is not a 3-D float tensor")
        if isinstance(n, int) and n <= extra + config.person_class:
            raise ModelError(
                f"model file {path}: output {out_shape} has no class {config.person_class} "
                f"for layout {config.layout}"
            )

    def detect(self, frame: Frame) -> Detections:
        import cv2

        h, w = frame.shape[:2]
        scale = min(self._w / w, self._h / h)
        nw, nh = round(w * scale), round(h * scale)
        canvas = np.full((self._h, self._w, 3), 114, np.uint8)
        top, left = (self._h - nh) // 2, (self._w - nw) // 2
        canvas[top : top + nh, left : left + nw] = cv2.resize(frame, (nw, nh))
        blob = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)[np.newaxis].astype(np.float32)
        blob /= 255.0
        (raw,) = self._session.run(None, {self._input: blob})  # type: ignore[attr-defined]
        boxes, scores = decode_yolo(raw, self.config.layout, self.config.person_class)
        keep = scores >= self.config.score_threshold
        boxes, scores = boxes[keep], scores[keep]
        # Back from letterboxed model pixels to frame pixels.
        boxes = (boxes - np.array([left, top, left, top], np.float32)) / scale
        boxes = np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)
        idx = nms(boxes, scores, self.config.nms_iou)
        return Detections(boxes[idx], scores[idx])


def decode_yolo(
    raw: FloatArray, layout: Literal["v8", "v5"], person_class: int
) -> tuple[FloatArray, FloatArray]:
    """Person boxes (x0, y0, x1, y1 in model pixels) and scores from a YOLO output tensor."""
    rows = raw[0].T if layout == "v8" else raw[0]  # -> [anchors, fields]
    # v5 multiplies objectness by the class probability; v8 has no objectness.
    scores = rows[:, 4 + person_class] if layout == "v8" else rows[:, 4] * rows[:, 5 + person_class]
    cx, cy, bw, bh = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    return boxes.astype(np.float32), scores.astype(np.float32)
