"""``eval footfall`` (matching in seconds, replay conditions, per line and direction on real
segments of vtest.avi, truth files that do not fit) and ``bench footfall`` (a short run),
through the command line where a person would use them."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.footfall_eval import Condition, Counted, TrueCrossing, _Replay, match, scaled_camera
from edge_agent.gateway_config import CameraConfig
from floorwalker.cli import app
from tests.conftest import REPO

VTEST = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
GT = REPO / "tests" / "data" / "vtest_line_gt.yaml"
GT2 = REPO / "tests" / "data" / "vtest_line2_gt.yaml"
GATEWAY = REPO / "simulators" / "data" / "gw_entrance_camera.yaml"


@pytest.mark.parametrize(
    ("truth", "counted", "pairs", "missed", "extra"),
    [
        ([(1.0, "in")], [(1.2, "in")], 1, 0, 0),
        ([(1.0, "in")], [(1.2, "out")], 0, 1, 1),  # wrong direction is a miss and a false count
        ([(1.0, "in")], [(4.0, "in")], 0, 1, 1),  # too late
        ([(1.0, "in"), (1.4, "in")], [(1.3, "in")], 1, 1, 0),  # one counted matches one true
        ([(1.0, "in"), (2.0, "in")], [(1.9, "in"), (1.1, "in")], 2, 0, 0),  # nearest first
        ([(1.0, "in")], [(1.5, "in")], 1, 0, 0),  # exactly the tolerance
    ],
)
def test_match_in_seconds(
    truth: list[tuple[float, str]], counted: list[tuple[float, str]], pairs: int, missed: int, extra: int
) -> None:
    gt = [TrueCrossing(t, round(t * 10), d) for t, d in truth]  # type: ignore[arg-type]
    got = [Counted(t, round(t * 10), d, 1) for t, d in counted]  # type: ignore[arg-type]
    p, m, e = match(gt, got, tolerance_s=0.5)
    assert (len(p), len(m), len(e)) == (pairs, missed, extra)
    assert all(g.direction == c.direction and abs(g.t - c.t) <= 0.5 for g, c in p)


def test_replay_at_7_fps_keeps_seven_frames_a_second_with_their_own_times() -> None:
    replay = _Replay(Path(VTEST), Condition("7fps", fps=7.0), 10.0, None)
    try:
        kept = [(i, t) for i, t, _ in replay.frames(0, 19)]
    finally:
        replay.close()
    assert replay.fps == 10.0 and replay.fps_from == "video"
    assert len(kept) == 14 and kept[0] == (0, 0.0) and kept[-1][0] <= 19
    assert all(t == i / 10 for i, t in kept)
    gaps = {b[0] - a[0] for a, b in itertools.pairwise(kept)}
    assert gaps == {1, 2}


def test_a_shrunk_replay_moves_the_lines_with_the_picture() -> None:
    replay = _Replay(Path(VTEST), Condition("small", scale=0.5), 10.0, None)
    try:
        (_, _, frame) = next(replay.frames(0, 0))
    finally:
        replay.close()
    assert frame.shape[:2] == (576, 768)
    scale, offset = replay.geometry(768, 576)
    assert (scale, offset) == (0.5, (192, 144))
    assert (frame[:100, :100] == 114).all() and not (frame[200:300, 300:400] == 114).all()
    cam = CameraConfig.model_validate(
        {
            "id": "c",
            "source": {"kind": "usb"},
            "lines": [{"id": "w", "points": [[560, 90], [560, 470]], "inside": [300, 300], "enters": "z"}],
        }
    )
    moved = scaled_camera(cam, scale, offset).lines[0]
    assert moved.points == ((472, 189), (472, 379)) and moved.inside == (342, 294)


def run_eval(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["eval", "footfall", *args])
    return res.exit_code, res.output


def test_eval_footfall_scores_two_lines_per_direction(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    code, output = run_eval(VTEST, "--gt", str(GT), "--gt", str(GT2), "--last-frame", "70", "--out", str(out))
    assert code == 0, output
    result = json.loads(out.read_text())
    assert result["frames"] == 71 and result["video_fps"] == 10.0
    lines = {ln["line"]: {d["direction"]: d for d in ln["directions"]} for ln in result["lines"]}
    assert set(lines) == {"walkway", "path"}
    # The hand count has three people walking in over the walkway line in frames 0-70, none out.
    walk_in = lines["walkway"]["in"]
    assert (walk_in["truth"], lines["walkway"]["out"]["truth"]) == (3, 0)
    assert (
        walk_in["matched"] + walk_in["missed"] == 3
        and walk_in["counted"] == walk_in["matched"] + walk_in["false"]
    )
    assert walk_in["recall"] == walk_in["matched"] / 3
    assert "accuracy" not in output  # no net figure


def test_eval_footfall_runs_the_gateway_yaml_camera(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    args = [VTEST, "--gt", str(GT), "--gateway-config", str(GATEWAY), "--last-frame", "20", "--out", str(out)]
    code, output = run_eval(*args)
    assert code == 0, output
    assert json.loads(out.read_text())["lines"][0]["line"] == "walkway"
    # A truth line the camera does not have is named.
    code, output = run_eval(VTEST, "--gt", str(GT2), "--gateway-config", str(GATEWAY))
    assert code == 2
    assert output.strip().startswith(f"error: {GT2}: line.id: 'path' is not a line of camera 'door'")


def truth_file(tmp_path: Path, replace: tuple[str, str]) -> Path:
    text = GT.read_text()
    assert replace[0] in text
    text = text.replace(*replace)
    path = tmp_path / "gt.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        (("points: [[560, 90], [560, 470]]", "points: [[560, 90], [560, 700]]"),
         "line.points: point [560.0, 700.0] lies outside the 768x576 frame"),
        (("frames: 795", "frames: 900"),
         "frames: the truth was counted on 900 frames but the video has 795 (is it the right video?)"),
        (("{frame: 776,", "{frame: 795,"), "crossings[32].frame: 795 is beyond the video's last frame 794"),
        (("fps: 10\n", "fps: 10\nsize: [640, 480]\n"),
         "size: the truth is for 640x480 frames but the video's are 768x576 (is it the right video?)"),
    ],
)  # fmt: skip
def test_a_truth_file_that_does_not_fit_the_video_is_one_line_naming_the_key(
    tmp_path: Path, replace: tuple[str, str], message: str
) -> None:
    bad = truth_file(tmp_path, replace)
    code, output = run_eval(VTEST, "--gt", str(bad), "--last-frame", "3")
    assert code == 2, output
    assert output.strip() == f"error: {bad}: {message}"


def test_a_truth_file_with_another_frame_rate_warns_and_the_video_wins(tmp_path: Path) -> None:
    other = truth_file(tmp_path, ("fps: 10\n", "fps: 25\n"))
    out = tmp_path / "eval.json"
    code, output = run_eval(VTEST, "--gt", str(other), "--last-frame", "3", "--out", str(out))
    assert code == 0, output
    assert "fps: the truth says 25 but the video plays at 10" in output
    assert json.loads(out.read_text())["video_fps"] == 10.0


def test_eval_footfall_on_an_image_sequence(tmp_path: Path) -> None:
    import cv2

    cap = cv2.VideoCapture(VTEST)
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(12):
        ok, frame = cap.read()
        assert ok and cv2.imwrite(str(frames / f"frame_{i:04d}.jpg"), frame)
    cap.release()
    gt = tmp_path / "gt.yaml"
    gt.write_text(
        "video: frames\nframes: 12\nfps: 10\nline: {id: walkway, points: [[560, 90], [560, 470]], "
        "inside: [300, 300]}\ncrossings: [{frame: 11, direction: in}]\n"
    )
    out = tmp_path / "eval.json"
    code, output = run_eval(str(frames / "frame_%04d.jpg"), "--gt", str(gt), "--out", str(out))
    assert code == 0, output
    assert "no frame rate of its own: 10 fps from the truth file" in output
    result = json.loads(out.read_text())
    assert result["frames"] == 12 and result["lines"][0]["directions"][0]["truth"] == 1


def test_eval_footfall_with_a_broken_ground_truth_file(tmp_path: Path) -> None:
    bad = tmp_path / "gt.yaml"
    bad.write_text("video: x\nframes: 10\nfps: 10\nline: {id: l}\ncrossings: []\n")
    code, output = run_eval(VTEST, "--gt", str(bad))
    assert code == 2
    assert output.strip().startswith(f"error: {bad}:") and "line.points: Field required" in output
    assert len(output.strip().splitlines()) == 1


def test_bench_footfall_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "footfall.json"
    res = CliRunner().invoke(app, ["bench", "footfall", "--frames", "8", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["frames"] == 8 and data["threads"] == 1 and data["frame_size"] == [768, 576]
    assert data["pipeline_fps"] > 0 and data["bare_model_fps"] > 0 and data["peak_rss_mb"] > 0
    assert data["ratio"] == pytest.approx(data["pipeline_fps"] / data["bare_model_fps"], rel=0.05)
    assert set(data["targets"]) == {"fps", "ratio", "peak_rss_mb"}
    # No settings of the sample video: a line through the middle, and the view derived from it.
    assert data["camera"]["lines"][0]["points"] == [[384.0, 144.0], [384.0, 432.0]]
    assert data["camera"]["detect_regions"] == [] and len(data["views"]) == 1


def test_detector_precision_and_recall_on_hand_boxed_people(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    mot = REPO / "tests" / "data" / "vtest_people_mot.txt"
    args = [VTEST, "--gt", str(GT), "--first-frame", "98", "--last-frame", "102"]
    code, output = run_eval(*args, "--mot", str(mot), "--out", str(out))
    assert code == 0, output
    det = json.loads(out.read_text())["detection"]
    # Frame 100 has seven people boxed by hand; the far one and a pair walking close together
    # are the hard ones.
    assert (det["frames"], det["truth"]) == (1, 7)
    assert 5 <= det["matched"] <= det["detected"] and det["recall"] == round(det["matched"] / 7, 4)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,1,10,10,5\n", r"line 1: expected frame,id,x,y,w,h"),
        ("0,1,10,10,5,5\n", r"line 1: frame must be >= 1"),
        ("3,1,10,10,5,5\n\n4,1,a,b,c,d\n", r"line 3: expected frame,id,x,y,w,h"),
    ],
)
def test_broken_mot_files(tmp_path: Path, text: str, message: str) -> None:
    from bench.footfall_eval import load_mot
    from floorwalker.errors import ConfigError

    path = tmp_path / "gt.txt"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_mot(path)
