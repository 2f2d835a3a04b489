"""``floorwalker config check``: every problem of a store's files, each with file, line and key."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from floorwalker.cli import app
from floorwalker.cli.config import check_store
from simulators.stores import DATA_DIR

GATEWAY = """\
store: demo-store
store_config: store.yaml
gateway: gw-entrance
cameras:
  - id: door
    source: {kind: usb, device: 0}
    lines:
      - {id: walkway, points: [[560, 90], [560, 470]], inside: [300, 300], enters: entrance}
"""

CATALOG = """\
version: 1
actions:
  - id: help
    kind: long_dwell_help
    priority: 2
    eligible: {min_dwell_s: 60}
    value: 5
    text: {headline: "Help", suggestion: "Offer help.", why: "Dwelling."}
"""


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A copy of the demo store with its CRM, BLE keys, a catalog and a gateway config beside it."""
    shutil.copy(DATA_DIR / "demo_crm.json", tmp_path / "demo_crm.json")
    shutil.copy(DATA_DIR / "demo_ble_keys.json", tmp_path / "demo_ble_keys.json")
    text = (DATA_DIR / "demo_store.yaml").read_text()
    (tmp_path / "store.yaml").write_text(text + "catalog: catalog.yaml\n")
    (tmp_path / "catalog.yaml").write_text(CATALOG)
    (tmp_path / "gw.yaml").write_text(GATEWAY)
    return tmp_path / "store.yaml"


def _edit(name: str, old: str, new: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        path = folder / name
        text = path.read_text()
        assert old in text, (name, old)
        path.write_text(text.replace(old, new, 1))

    return edit


def _crm_tier(folder: Path) -> None:
    path = folder / "demo_crm.json"
    data = json.loads(path.read_text())
    data["members"][2]["tier"] = ""
    data["members"][4]["points"] = -5
    path.write_text(json.dumps(data, indent=2))


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


#: (what breaks, the edit, the expected problems as (file, line marker or None, key, words)).
CASES: list[tuple[str, Callable[[Path], None], list[tuple[str, str | None, str, str]]]] = [
    (
        "two bad keys in the store config, both reported",
        _edit("store.yaml", "width_m: 30", "width_m: -30, colour: red"),
        [
            ("store.yaml", "colour: red", "floor.width_m", "greater than 0"),
            ("store.yaml", "colour: red", "floor.colour", "Extra inputs"),
        ],
    ),
    (
        "YAML syntax",
        _edit("store.yaml", "floor_lead: a-amy", "floor_lead: [a-amy"),
        [("store.yaml", None, "", "not valid YAML")],
    ),
    (
        "a reference across the store config",
        _edit("store.yaml", "floor_lead: a-amy", "floor_lead: a-zed"),
        [("store.yaml", None, "store config", "floor_lead 'a-zed' is not one of the associates")],
    ),
    (
        "the catalog",
        _edit("catalog.yaml", "priority: 2", "priority: high"),
        [("catalog.yaml", "priority: high", "actions.0.priority", "valid integer")],
    ),
    (
        "two members of the CRM file",
        _crm_tier,
        [
            ("demo_crm.json", '"tier": ""', "members[2].tier", "at least 1 character"),
            ("demo_crm.json", '"points": -5', "members[4].points", "greater than or equal to 0"),
        ],
    ),
    (
        "a gateway config's own key",
        _edit("gw.yaml", "gateway: gw-entrance", "gateway: gw-entrance\nfps: 9"),
        [("gw.yaml", "fps: 9", "fps", "Extra inputs")],
    ),
    (
        "a gateway counting a zone it does not cover",
        _edit("gw.yaml", "enters: entrance", "enters: dairy"),
        [("gw.yaml", None, "", "zone 'dairy' is not covered by gateway 'gw-entrance'")],
    ),
    (
        "a file the store config names is missing",
        _edit("store.yaml", "crm: demo_crm.json", "crm: demo_crm.json\npropensity_model: nowhere.onnx"),
        [("store.yaml", None, "propensity_model", "no such file")],
    ),
]


@pytest.mark.parametrize(("case", "edit", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_problem_names_file_line_and_key(
    store: Path, case: str, edit: Callable[[Path], None], expected: list[tuple[str, str | None, str, str]]
) -> None:
    edit(store.parent)
    problems = check_store(store, [])
    assert len(problems.problems) == len(expected), [str(p) for p in problems.problems]
    for problem, (name, marker, key, words) in zip(problems.problems, expected, strict=True):
        assert problem.file.name == name, str(problem)
        if marker is not None:
            assert problem.line == _line_of(store.parent / name, marker), str(problem)
        assert problem.key == key, str(problem)
        assert words in problem.message, str(problem)


def test_the_command_lists_every_problem_of_every_file_and_exits_2(store: Path) -> None:
    _edit("store.yaml", "width_m: 30", "width_m: -30")(store.parent)
    _edit("gw.yaml", "gateway: gw-entrance", "gateway: gw-entrance\nfps: 9")(store.parent)
    _crm_tier(store.parent)  # not read: the store config is broken, so where the CRM is is unknown
    result = CliRunner().invoke(app, ["config", "check", str(store)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    line = _line_of(store, "width_m: -30")
    assert errors == [
        f"error: {store}:{line}: floor.width_m: Input should be greater than 0",
        f"error: {store.parent / 'gw.yaml'}:4: fps: Extra inputs are not permitted",
    ]
    assert "Traceback" not in result.output
    assert result.stdout.strip() == "2 problems in 2 files"


def test_a_sound_store_is_one_line_and_exit_0(store: Path) -> None:
    result = CliRunner().invoke(app, ["config", "check", str(store)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "ok: 4 files (store.yaml, gw.yaml, catalog.yaml, demo_crm.json)"


def test_the_shipped_demo_store_checks_clean() -> None:
    result = check_store(DATA_DIR / "demo_store.yaml", [])
    assert [str(p) for p in result.problems if "source.path" not in p.key] == []
    assert DATA_DIR / "gw_entrance_camera.yaml" in result.files
