"""The detectors: the shipped model on real frames of vtest.avi, a YOLO model built here
(decode + NMS on known outputs), and clear errors for bad model files."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edge_agent.camera.detector import (
    PERSON_SSDLITE,
    PERSON_SSDLITE_SHA256,
    Detections,
    ModelError,
    RegionDetector,
    SsdLiteModel,
    YoloModel,
    decode_yolo,
    load_detector,
    nms,
)

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")

#: People standing or walking in frame 180 of vtest.avi, located by eye (pixel x, y of
#: the middle of each body); the two far away at the top right are left out.
FRAME_180_PEOPLE = [(215, 198), (376, 250), (514, 268), (603, 265), (601, 168)]


def read_frame(index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(VTEST))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = cap.read()
    cap.release()
    assert ok, f"cannot read frame {index} of {VTEST} (is the Debian package opencv-doc installed?)"
    return frame


@pytest.fixture(scope="module")
def ssd():  # type: ignore[no-untyped-def]
    return load_detector(SsdLiteModel(), threads=1)


def test_the_shipped_model_is_the_one_in_the_readme() -> None:
    assert hashlib.sha256(PERSON_SSDLITE.read_bytes()).hexdigest() == PERSON_SSDLITE_SHA256
    assert PERSON_SSDLITE_SHA256 in (PERSON_SSDLITE.parent / "README.md").read_text()


def test_people_are_found_where_they_are(ssd) -> None:  # type: ignore[no-untyped-def]
    det = ssd.detect(read_frame(180))
    boxes = det.boxes
    for x, y in FRAME_180_PEOPLE:
        inside = (boxes[:, 0] <= x) & (x <= boxes[:, 2]) & (boxes[:, 1] <= y) & (y <= boxes[:, 3])
        assert inside.sum() == 1, f"person at {(x, y)} is in {int(inside.sum())} boxes: {boxes.round()}"
    # Nothing on the empty lawn in the lower left, and boxes are person-shaped.
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    assert not ((centres[:, 0] < 400) & (centres[:, 1] > 350)).any()
    heights, widths = boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]
    assert (heights > widths).all() and ((heights > 30) & (heights < 200)).all()


def test_an_empty_scene_has_no_people(ssd) -> None:  # type: ignore[no-untyped-def]
    # The lawn in the lower left of the picture, scaled up to a full frame: no one there.
    lawn = cv2.resize(read_frame(0)[400:576, 0:300], (768, 576))
    assert len(ssd.detect(lawn)) == 0


def test_detections_are_in_frame_pixels_for_any_frame_size(ssd) -> None:  # type: ignore[no-untyped-def]
    frame = read_frame(180)
    half = cv2.resize(frame, (384, 288))
    full, small = ssd.detect(frame), ssd.detect(half)
    assert len(full) >= 5 and abs(len(full) - len(small)) <= 2
    assert small.boxes[:, 2].max() <= 384 and small.boxes[:, 3].max() <= 288


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 20], [1, 0, 11, 20], [30, 0, 40, 20]], np.float32)
    scores = np.array([0.6, 0.9, 0.7], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms(boxes, scores, 0.95).tolist() == [1, 2, 0]


# -- YOLO ----------------------------------------------------------------------------------------


def yolo_model(path: Path, output: np.ndarray, size: int = 64) -> Path:
    """A tiny ONNX graph with a [1, 3, size, size] input that always outputs ``output``
    (plus 0 x the mean of its input, so the input is really used)."""
    const = helper.make_tensor("raw", TensorProto.FLOAT, output.shape, output.flatten().tolist())
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
            helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
            helper.make_node("Add", ["raw", "nothing"], ["output0"]),
        ],
        "yolo-stub",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))],
        initializer=[const, zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def v8_output() -> np.ndarray:
    # Fields: cx, cy, w, h, score(person), score(bicycle); 4 anchors, model pixels (64x64).
    rows = [
        [32, 32, 10, 20, 0.9, 0.1],  # a person in the middle
        [33, 32, 10, 20, 0.8, 0.1],  # the same person again: suppressed
        [10, 10, 8, 8, 0.2, 0.1],  # too unsure
        [50, 40, 8, 16, 0.1, 0.95],  # a bicycle, not a person
    ]
    return np.array(rows, np.float32).T[np.newaxis]  # [1, 6, 4]


def test_yolo_v8_decode_nms_and_letterbox(tmp_path: Path) -> None:
    path = yolo_model(tmp_path / "yolo.onnx", v8_output())
    det = load_detector(YoloModel(kind="yolo", path=path, layout="v8", person_class=0), threads=1)
    # 128x64 frame -> scale 0.5 into 64x64, letterboxed with 16 rows top and bottom.
    d = det.detect(np.zeros((64, 128, 3), np.uint8))
    assert len(d) == 1 and d.scores[0] == pytest.approx(0.9)
    # Model box (27, 22, 37, 42) -> minus the (0, 16) offset -> / 0.5.
    assert d.boxes[0].tolist() == pytest.approx([54, 12, 74, 52])


def test_yolo_v5_layout_multiplies_objectness(tmp_path: Path) -> None:
    rows = np.array([[[20, 20, 10, 10, 0.9, 0.8, 0.1], [40, 40, 10, 10, 0.3, 0.9, 0.1]]], np.float32)
    boxes, scores = decode_yolo(rows, "v5", 0)
    assert scores.tolist() == pytest.approx([0.72, 0.27])
    assert boxes[0].tolist() == pytest.approx([15, 15, 25, 25])
    path = yolo_model(tmp_path / "v5.onnx", rows)
    d = load_detector(YoloModel(kind="yolo", path=path, layout="v5"), 1).detect(
        np.zeros((64, 64, 3), np.uint8)
    )
    assert len(d) == 1


# -- bad model files ------------------------------------------------------------------------


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"model file .*nope.onnx: not found"):
        load_detector(SsdLiteModel(path=tmp_path / "nope.onnx"))


def test_corrupt_model_file_is_caught_by_its_sha256(tmp_path: Path) -> None:
    bad = tmp_path / "person_ssdlite.onnx"
    shutil.copy(PERSON_SSDLITE, bad)
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"sha256 .* is not the expected .*corrupt or replaced") as err:
        load_detector(SsdLiteModel(path=bad))
    assert "\n" not in str(err.value)


def test_a_file_that_is_not_onnx(tmp_path: Path) -> None:
    junk = tmp_path / "model.onnx"
    junk.write_bytes(b"this is not a model")
    with pytest.raises(ModelError, match=r"not a usable ONNX model"):
        load_detector(YoloModel(kind="yolo", path=junk))


def test_a_yolo_model_with_the_wrong_input_or_layout(tmp_path: Path) -> None:
    path = yolo_model(tmp_path / "y.onnx", v8_output())
    with pytest.raises(ModelError, match=r"has no class 5"):
        load_detector(YoloModel(kind="yolo", path=path, person_class=5))
    with pytest.raises(ModelError, match=r"sha256"):
        load_detector(YoloModel(kind="yolo", path=path, sha256="0" * 64))
    # The shipped SSD model is not a YOLO model: two outputs and a uint8 NHWC input.
    with pytest.raises(ModelError, match=r"expected one input and one output"):
        load_detector(YoloModel(kind="yolo", path=PERSON_SSDLITE))


# -- detect regions --------------------------------------------------------------------------

#: Frame 123 of vtest.avi: a man in a red and navy jacket and a fair-haired woman walking
#: close together far from the camera (middle of each body, located by eye at 4x zoom).
FRAME_123_PAIR = [(583, 160), (607, 162)]
FAR_END = (420, 0, 700, 280)


def boxes_holding(boxes: np.ndarray, x: float, y: float) -> np.ndarray:
    return boxes[(boxes[:, 0] <= x) & (x <= boxes[:, 2]) & (boxes[:, 1] <= y) & (y <= boxes[:, 3])]


def test_a_region_separates_a_close_pair_far_from_the_camera(ssd) -> None:  # type: ignore[no-untyped-def]
    frame = read_frame(123)
    whole = ssd.detect(frame).boxes
    # The whole frame at 300x300: one box for the two of them.
    near = whole[np.abs((whole[:, 0] + whole[:, 2]) / 2 - 595) < 30]
    assert len(near) == 1
    zoomed = RegionDetector(ssd, [FAR_END]).detect(frame).boxes
    first, second = (boxes_holding(zoomed, x, y) for x, y in FRAME_123_PAIR)
    assert len(first) >= 1 and len(second) >= 1
    # Each person has a box of their own, centred on them.
    for (x, _), held in zip(FRAME_123_PAIR, (first, second), strict=True):
        centres = (held[:, 0] + held[:, 2]) / 2
        assert np.abs(centres - x).min() < 10, (x, held.round())


def test_a_region_keeps_everyone_outside_it(ssd) -> None:  # type: ignore[no-untyped-def]
    frame = read_frame(180)
    boxes = RegionDetector(ssd, [FAR_END]).detect(frame).boxes
    for x, y in FRAME_180_PEOPLE:
        assert len(boxes_holding(boxes, x, y)) == 1, (x, y, boxes.round())


class Scripted:
    """A stand-in detector: whole-frame boxes for the full frame, others for any crop."""

    def __init__(self, whole: Detections, crop: Detections) -> None:
        self.whole, self.crop = whole, crop

    def detect(self, frame: np.ndarray) -> Detections:
        return self.whole if frame.shape[:2] == (576, 768) else self.crop


def test_region_merge_rules() -> None:
    frame = np.zeros((576, 768, 3), np.uint8)
    whole = Detections.of(
        [
            (560, 120, 610, 200),  # a pair as one box, wholly inside the region
            (100, 300, 160, 460),  # someone far from the region
            (680, 200, 740, 300),  # someone on the region's right edge
        ],
        [0.8, 0.9, 0.7],
    )
    # Crop coordinates (the region starts at x=420, y=0).
    crop = Detections.of(
        [
            (140, 118, 168, 198),  # the man of the pair
            (165, 122, 192, 200),  # the woman
            (262, 200, 280, 300),  # the edge person, cut by the region's border
        ],
        [0.6, 0.5, 0.9],
    )
    got = RegionDetector(Scripted(whole, crop), [FAR_END]).detect(frame)
    rows = sorted(tuple(int(v) for v in b) for b in got.boxes)
    assert rows == [(100, 300, 160, 460), (560, 118, 588, 198), (585, 122, 612, 200), (680, 200, 740, 300)]


def test_a_region_outside_the_frame_changes_nothing() -> None:
    frame = np.zeros((576, 768, 3), np.uint8)
    whole = Detections.of([(100, 300, 160, 460)], [0.9])
    got = RegionDetector(Scripted(whole, Detections.of([(1, 1, 20, 40)], [0.9])), [(800, 0, 900, 100)])
    assert got.detect(frame) is whole
