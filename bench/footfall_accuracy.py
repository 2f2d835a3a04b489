"""``floorwalker bench footfall-accuracy``: the development set's table, one row per video,
line, condition, direction and pipeline, in ``bench/out/footfall_accuracy.json``.

The development set is OpenCV's sample ``vtest.avi`` with its hand-counted lines
(``tests/data/vtest_*_gt.yaml``), replayed under each of :data:`CONDITIONS`: as recorded
(10 fps), at 7 fps, and shrunk to 0.8 inside a frame of the same size (people 50-85 px
tall). Every truth line is scored in one pass per condition, with default settings
(``lines``) and, as the baseline, the same pipeline on full frames only (``full-frame``):
the bare detector's view of the scene. Each row says its ``set``: ``development`` for the
lines the settings were chosen on (walkway, path), ``held-out`` for the lines in
:data:`HELD_OUT`, counted by hand before the pipeline ever ran on them and not tuned on.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.footfall_eval import CONDITIONS, camera_for, evaluate, load_truth, result_rows

REPO = Path(__file__).resolve().parents[1]
TRUTHS = sorted((REPO / "tests" / "data").glob("vtest_*_gt.yaml"))
#: Truth lines no setting was chosen on (``vtest_line3_gt.yaml``); every other line is development.
HELD_OUT = frozenset({"middle"})


def run_accuracy(video: Path, out: Path, *, baseline: bool = True) -> list[dict[str, Any]]:
    truths = [(p, load_truth(p)) for p in TRUTHS]
    default = camera_for(truths, None)
    pipelines = [("lines", default)]
    if baseline:
        full = default.model_copy(update={"detection": default.detection.model_copy(update={"mode": "full"})})
        pipelines.append(("full-frame", full))
    rows: list[dict[str, Any]] = []
    for condition in CONDITIONS:
        for name, camera in pipelines:
            result = evaluate(video, truths, camera=camera, condition=condition)
            rows += [
                r | {"set": "held-out" if r["line"] in HELD_OUT else "development"}
                for r in result_rows(result, video.name, name)
            ]
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "note": "rows with set 'development': settings were chosen looking at these lines; "
        "'held-out': lines counted by hand and never tuned on",
        "tolerance_s": 1.5,
        "rows": rows,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    table = Table(title="crossings per line, direction and condition")
    cols = ("line", "set", "condition", "pipeline", "dir", "truth", "counted", "false", "missed", "P", "R")
    for col in cols:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r["line"], r["set"], r["condition"], r["pipeline"], r["direction"], str(r["truth"]),
            str(r["counted"]), str(r["false"]), str(r["missed"]), f"{r['precision']:.1%}",
            f"{r['recall']:.1%}",
        )  # fmt: skip
    Console().print(table)
    Console().print(f"wrote {out}")
    return rows
