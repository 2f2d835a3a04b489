"""The gateway YAML: the example loads; each mistake is one line naming file, key, problem."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from edge_agent.camera.detector import SsdLiteModel, YoloModel
from edge_agent.camera.source import FileSource
from edge_agent.gateway_config import (
    CameraConfig,
    check_against_store,
    frame_problem,
    load_gateway_config,
)
from floorwalker.config import StoreConfig
from floorwalker.errors import ConfigError
from tests.conftest import REPO

EXAMPLE = REPO / "simulators" / "data" / "gw_entrance_camera.yaml"


def test_the_example_loads_and_matches_the_demo_store(store_config: StoreConfig) -> None:
    gw = load_gateway_config(EXAMPLE)
    check_against_store(gw, store_config, EXAMPLE)
    (cam,) = gw.cameras
    assert gw.gateway == "gw-entrance" and gw.store_config == REPO / "simulators" / "data" / "demo_store.yaml"
    assert isinstance(cam.source, FileSource) and cam.source.loop
    assert isinstance(cam.model, SsdLiteModel) and cam.lines[0].enters == "entrance"
    assert frame_problem(cam, 768, 576) is None


def write(tmp_path: Path, doc: dict[str, object]) -> Path:
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def base(**camera: object) -> dict[str, object]:
    cam: dict[str, object] = {
        "id": "door",
        "source": {"kind": "rtsp", "url": "rtsp://10.0.0.5/stream"},
        "lines": [{"id": "l1", "points": [[10, 10], [10, 100]], "inside": [50, 50], "enters": "entrance"}],
    }
    cam.update(camera)
    return {"store": "demo-store", "gateway": "gw-entrance", "cameras": [cam]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, r"cameras\.0\.colour: Extra inputs are not permitted"),
        ({"source": {"kind": "ftp", "url": "x"}}, r"cameras\.0\.source: Input tag 'ftp' found using 'kind'"),
        ({"source": {"kind": "rtsp", "url": "http://x"}},
         r"cameras\.0\.source\.rtsp\.url: String should match"),
        ({"model": {"kind": "yolo"}}, r"cameras\.0\.model\.yolo\.path: Field required"),
        ({"lines": [], "zones": [], "queues": []}, r"a camera needs at least one of lines, zones or queues"),
        ({"zones": [{"zone": "entrance", "polygon": [[0, 0], [100, 100], [100, 0], [0, 100]]}]},
         r"cameras\.0\.zones\.0\.polygon: the polygon's edges 1 and 3 cross each other"),
        ({"lines": [{"id": "l1", "points": [[5, 5], [5, 5]], "inside": [1, 1], "enters": "entrance"}]},
         r"the line's two points are the same"),
        ({"lines": [{"id": "l1", "points": [[0, 0], [0, 10]], "inside": [0, 5], "enters": "entrance"}]},
         r"inside: the point lies on the line"),
        ({"threads": 0}, r"cameras\.0\.threads: Input should be greater than or equal to 1"),
        ({"publish": {"interval_s": 5, "min_interval_s": 10}}, r"min_interval_s must not be greater"),
        ({"detect_regions": [{"box": [100, 100, 90, 300]}]},
         r"cameras\.0\.detect_regions\.0: box: needs x1 > x0 and y1 > y0"),
        ({"detect_regions": [{"box": [0, 0, 100]}]}, r"cameras\.0\.detect_regions\.0\.box"),
        ({"detection": {"mode": "tiles"}}, r"cameras\.0\.detection\.mode: Input should be 'lines' or 'full'"),
        ({"detection": {"full_every": 0}}, r"cameras\.0\.detection\.full_every: Input should be greater"),
        ({"detection": {"regions": []}}, r"cameras\.0\.detection\.regions: Extra inputs are not permitted"),
        ({"tracker": {"max_speed": -1}}, r"cameras\.0\.tracker\.max_speed: Input should be greater"),
    ],
)  # fmt: skip
def test_bad_gateway_configs(tmp_path: Path, change: dict[str, object], message: str) -> None:
    path = write(tmp_path, base(**change))
    with pytest.raises(ConfigError, match=message) as err:
        load_gateway_config(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("doc_change", "message"),
    [
        ({"gateway": "gw-nowhere"}, r"gateway: 'gw-nowhere' is not in store 'demo-store'"),
        ({"store": "other-store"}, r"store: 'other-store' but the store config is 'demo-store'"),
    ],
)
def test_gateway_must_exist_in_the_store(
    tmp_path: Path, store_config: StoreConfig, doc_change: dict[str, object], message: str
) -> None:
    doc = base()
    doc.update(doc_change)
    path = write(tmp_path, doc)
    with pytest.raises(ConfigError, match=message):
        check_against_store(load_gateway_config(path), store_config, path)


def test_zones_and_lanes_must_be_covered_by_the_gateway(tmp_path: Path, store_config: StoreConfig) -> None:
    path = write(tmp_path, base(lines=[], zones=[{"zone": "pantry", "polygon": [[0, 0], [9, 0], [9, 9]]}]))
    with pytest.raises(ConfigError, match=r"cameras\[0\]\.zones\[0\]\.zone: zone 'pantry' is not covered"):
        check_against_store(load_gateway_config(path), store_config, path)
    path = write(tmp_path, base(queues=[{"lane": "lane-9", "polygon": [[0, 0], [9, 0], [9, 9]]}]))
    with pytest.raises(ConfigError, match=r"queues\[0\]\.lane: no lane 'lane-9'"):
        check_against_store(load_gateway_config(path), store_config, path)
    path = write(tmp_path, base(queues=[{"lane": "lane-1", "polygon": [[0, 0], [9, 0], [9, 9]]}]))
    with pytest.raises(ConfigError, match=r"lane 'lane-1' stands in zone 'checkout', which gateway"):
        check_against_store(load_gateway_config(path), store_config, path)


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    doc = base(source={"kind": "file", "path": "clips/door.avi"}, model={"kind": "yolo", "path": "m/y.onnx"})
    doc["store_config"] = "../store.yaml"
    gw = load_gateway_config(write(tmp_path, doc))
    cam = gw.cameras[0]
    assert isinstance(cam.source, FileSource) and cam.source.path == tmp_path / "clips" / "door.avi"
    assert isinstance(cam.model, YoloModel) and cam.model.path == tmp_path / "m" / "y.onnx"
    assert gw.store_config == tmp_path.parent / "store.yaml"


def test_zones_outside_the_frame_are_named() -> None:
    cam = CameraConfig.model_validate(
        base(zones=[{"zone": "entrance", "polygon": [[0, 0], [900, 0], [900, 300]]}])["cameras"][0]  # type: ignore[index]
    )
    assert frame_problem(cam, 1920, 1080) is None
    assert frame_problem(cam, 768, 576) == "zones[0]: point [900.0, 0.0] lies outside the 768x576 frame"


def test_detect_regions_outside_the_frame_are_named() -> None:
    cam = CameraConfig.model_validate(
        base(detect_regions=[{"box": [420, 0, 700, 280]}, {"box": [600, 300, 800, 500]}])["cameras"][0]  # type: ignore[index]
    )
    assert frame_problem(cam, 1920, 1080) is None
    problem = frame_problem(cam, 768, 576)
    assert problem == "detect_regions[1]: point [800.0, 300.0] lies outside the 768x576 frame"


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no such gateway config file"):
        load_gateway_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("store: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+ not valid YAML"):
        load_gateway_config(bad)


def test_edge_command_reports_a_bad_gateway_config_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from floorwalker.cli import app

    doc = base(zones=[{"zone": "entrance", "polygon": [[0, 0], [1, 1], [2, 2]]}])
    doc["store_config"] = str(REPO / "simulators" / "data" / "demo_store.yaml")
    path = write(tmp_path, doc)
    res = CliRunner().invoke(app, ["edge", "--gateway-config", str(path), "--mqtt-url", "mqtt://127.0.0.1:9"])
    assert res.exit_code == 2
    assert res.output.strip() == (
        f"error: {path}: cameras.0.zones.0.polygon: the polygon has no area (its points are in a line)"
    )
    res = CliRunner().invoke(app, ["edge", "--mqtt-url", "mqtt://127.0.0.1:9"])
    assert res.exit_code == 2 and "give --gateway ID or --gateway-config FILE" in res.output


@pytest.mark.parametrize(
    ("use_file", "camera", "expected"),
    [
        (True, None, "first"),  # the gateway's first camera
        (True, "no-such-camera", "error: cameras: no camera 'no-such-camera'"),
        (False, None, None),  # no gateway YAML: the command's own defaults
        (False, "cam-1", "error: --camera: only with --gateway-config"),
    ],
)
def test_pick_camera_names_the_camera_or_the_key(
    use_file: bool, camera: str | None, expected: str | None
) -> None:
    from edge_agent.gateway_config import load_gateway_config, pick_camera

    path = EXAMPLE if use_file else None
    if expected is not None and expected.startswith("error: "):
        with pytest.raises(ConfigError, match=re.escape(expected.removeprefix("error: "))):
            pick_camera(path, camera)
        return
    got = pick_camera(path, camera)
    if expected == "first":
        assert got is not None and got.id == load_gateway_config(EXAMPLE).cameras[0].id
    else:
        assert got is None
