"""``eval footfall`` (matching, a real segment of vtest.avi) and ``bench footfall`` (a short
run) through the command line, and one clear line for a bad ground-truth file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.footfall_eval import Counted, GtCrossing, match
from floorwalker.cli import app
from tests.conftest import REPO

VTEST = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
GT = REPO / "tests" / "data" / "vtest_line_gt.yaml"


@pytest.mark.parametrize(
    ("truth", "counted", "pairs", "missed", "extra"),
    [
        ([(10, "in")], [(12, "in")], 1, 0, 0),
        ([(10, "in")], [(12, "out")], 0, 1, 1),  # wrong direction is a miss and an extra
        ([(10, "in")], [(40, "in")], 0, 1, 1),  # too late
        ([(10, "in"), (14, "in")], [(13, "in")], 1, 1, 0),  # one counted matches one true
        ([(10, "in"), (20, "in")], [(19, "in"), (11, "in")], 2, 0, 0),  # nearest first
    ],
)
def test_match(
    truth: list[tuple[int, str]], counted: list[tuple[int, str]], pairs: int, missed: int, extra: int
) -> None:
    gt = [GtCrossing(frame=f, direction=d) for f, d in truth]  # type: ignore[arg-type]
    got = [Counted(f, d, 1) for f, d in counted]  # type: ignore[arg-type]
    p, m, e = match(gt, got, tolerance=5)
    assert (len(p), len(m), len(e)) == (pairs, missed, extra)
    assert all(g.direction == c.direction and abs(g.frame - c.frame) <= 5 for g, c in p)


def test_eval_footfall_on_the_first_seconds_of_vtest(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    res = CliRunner().invoke(
        app, ["eval", "footfall", VTEST, "--gt", str(GT), "--last-frame", "70", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert result["frames"] == 71
    # The hand count has three people walking in during frames 0-70, none out.
    directions = {d["direction"]: d for d in result["directions"]}
    assert (directions["in"]["truth"], directions["out"]["truth"]) == (3, 0)
    assert directions["in"]["matched"] >= 2 and result["precision"] == 1.0
    assert "count accuracy" in res.output


def test_eval_footfall_with_a_broken_ground_truth_file(tmp_path: Path) -> None:
    bad = tmp_path / "gt.yaml"
    bad.write_text("video: x\nframes: 10\nfps: 10\nline: {id: l}\ncrossings: []\n")
    res = CliRunner().invoke(app, ["eval", "footfall", VTEST, "--gt", str(bad)])
    assert res.exit_code == 2
    assert res.output.strip().startswith(f"error: {bad}: line.points: Field required")


def test_eval_footfall_rejects_a_bad_region_in_one_line() -> None:
    res = CliRunner().invoke(app, ["eval", "footfall", VTEST, "--gt", str(GT), "--region", "1,2,3"])
    assert res.exit_code == 2
    assert res.output.strip() == "error: --region '1,2,3': expected four whole numbers x0,y0,x1,y1 (pixels)"


def test_bench_footfall_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "footfall.json"
    res = CliRunner().invoke(app, ["bench", "footfall", "--frames", "8", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["frames"] == 8 and data["threads"] == 1 and data["frame_size"] == [768, 576]
    assert data["fps"] > 0 and data["peak_rss_mb"] > 0
    assert set(data["targets"]) == {"fps", "peak_rss_mb"}
    # By default one detect region (the far end of the walkway line): two inferences a frame.
    assert data["detect_regions"] == [[420, 0, 700, 280]] and data["inferences_per_frame"] == 2


def test_detector_precision_and_recall_on_hand_boxed_people(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    mot = REPO / "tests" / "data" / "vtest_people_mot.txt"
    args = ["eval", "footfall", VTEST, "--gt", str(GT), "--first-frame", "98", "--last-frame", "102"]
    res = CliRunner().invoke(app, [*args, "--mot", str(mot), "--out", str(out)])
    assert res.exit_code == 0, res.output
    det = json.loads(out.read_text())["detection"]
    # Frame 100 has seven people boxed by hand; the far one and a pair walking close together
    # are the hard ones.
    assert (det["frames"], det["truth"]) == (1, 7)
    assert 5 <= det["matched"] <= det["detected"] and det["recall"] == det["matched"] / 7


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
