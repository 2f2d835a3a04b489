"""Site survey: the residual maps learnt from a walk, their file, and the zone model using
them to place a phone the path-loss model alone gets wrong."""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import yaml

from edge_agent.ble.sightings import Advert
from floorwalker.config import StoreConfig, load_store_config
from floorwalker.errors import ConfigError
from presence.fuser import zone_model_for
from presence.positions import PositionSample
from presence.survey import SurveyMap, build_survey, predicted_rssi, read_survey, survey_walk
from presence.zone_fusion import FusionParams, ZoneModel
from tests.two_rooms import two_rooms


def fridge(gateway: str, x: float, y: float) -> float:
    """The store's static shadowing: a fridge blocks gb from the strip x 11..14 (-12 dB),
    and ga reads 3 dB hot everywhere (its calibration is off)."""
    if gateway == "gb":
        return -12.0 if 11.0 <= x <= 14.0 else 0.0
    return 3.0


def heard(config: StoreConfig, walk: list[PositionSample], seed: int = 1) -> list[tuple[str, Advert]]:
    """Every gateway hears each position 4 times with 4 dB fading."""
    rng = random.Random(seed)
    out: list[tuple[str, Advert]] = []
    for s in walk:
        for k in range(4):
            for g in ("ga", "gb"):
                pred = predicted_rssi(config, g, s.x, s.y)
                assert pred is not None
                rssi = pred + fridge(g, s.x, s.y) + rng.gauss(0, 4.0)
                out.append((g, Advert(s.ts + 0.1 * k, round(rssi), b"")))
    return out


def test_the_walk_sweeps_the_floor_in_alternating_rows() -> None:
    config = two_rooms()
    walk = survey_walk(config, start=100.0, member="survey", row_m=1.0, speed_m_s=1.0, step_s=0.5)
    assert all(0 <= s.x <= 20 and 0 <= s.y <= 10 for s in walk)
    rows = sorted({s.y for s in walk})
    assert rows == pytest.approx([0.5 + i for i in range(10)])
    first, second = [s.x for s in walk if s.y == rows[0]], [s.x for s in walk if s.y == rows[1]]
    assert first[0] < first[-1] and second[0] > second[-1]  # serpentine
    assert all(b.ts - a.ts == pytest.approx(0.5) for a, b in itertools.pairwise(walk))
    assert {s.zone for s in walk} == {"a", "b"}


def test_build_learns_the_static_shadowing_and_the_offset() -> None:
    config = two_rooms()
    walk = survey_walk(config, start=100.0, member="survey")
    survey = build_survey(config, heard(config, walk), walk)
    assert survey.at("gb", 12.5, 5.0) == pytest.approx(-12.0, abs=2.5)
    assert survey.at("gb", 17.0, 5.0) == pytest.approx(0.0, abs=1.5)
    assert survey.at("ga", 3.0, 3.0) == pytest.approx(3.0, abs=1.5)
    assert survey.at("ga", 16.0, 7.0) == pytest.approx(3.0, abs=1.5)


def test_unsurveyed_cells_fall_back_to_the_gateways_offset() -> None:
    """Only room a walked: room b's cells get ga's mean offset, not a guess."""
    config = two_rooms()
    walk = [s for s in survey_walk(config, start=100.0, member="survey") if s.x < 9.0]
    walk = [
        PositionSample(100.0 + 0.5 * i, s.shopper, s.member, s.x, s.y, s.zone) for i, s in enumerate(walk)
    ]
    survey = build_survey(config, heard(config, walk), walk)
    assert survey.at("ga", 18.0, 5.0) == pytest.approx(3.0, abs=1.0)


def test_the_survey_puts_a_phone_behind_the_fridge_in_its_zone() -> None:
    """At (12.5, 5) gb is shadowed by 12 dB: the path-loss model alone says zone a."""
    config = two_rooms()
    walk = survey_walk(config, start=100.0, member="survey")
    survey = build_survey(config, heard(config, walk), walk)
    x, y = 12.5, 5.0
    readings = {}
    for g in ("ga", "gb"):
        pred = predicted_rssi(config, g, x, y)
        assert pred is not None
        readings[g] = pred + fridge(g, x, y)
    plain, surveyed = ZoneModel(config), ZoneModel(config, survey=survey)
    assert ["a", "b"][int(np.argmax(plain.scores(readings)))] == "a"
    assert ["a", "b"][int(np.argmax(surveyed.scores(readings)))] == "b"


def test_file_round_trip_and_the_config_key(tmp_path: Path) -> None:
    config = two_rooms()
    walk = survey_walk(config, start=100.0, member="survey")
    survey = build_survey(config, heard(config, walk), walk)
    (tmp_path / "survey.json").write_text(survey.to_json())
    back = read_survey(tmp_path / "survey.json", config)
    assert back.at("gb", 12.5, 5.0) == pytest.approx(survey.at("gb", 12.5, 5.0), abs=0.05)
    # The store config names it relative to itself; the fuser's model loads it.
    raw = json.loads(config.model_dump_json(exclude_none=True))
    raw["ble_presence"]["survey"] = "survey.json"
    (tmp_path / "store.yaml").write_text(yaml.safe_dump(raw))
    loaded = load_store_config(tmp_path / "store.yaml")
    assert loaded.ble_presence.survey == (tmp_path / "survey.json").resolve()
    model = zone_model_for(loaded, FusionParams())
    readings = {"ga": -59.0 - 20 * math.log10(7.5) + 3.0, "gb": -59.0 - 20 * math.log10(2.5) - 12.0}
    plain = ZoneModel(config)
    assert plain.zones[int(np.argmax(plain.scores(readings)))] == "a"
    assert model.zones[int(np.argmax(model.scores(readings)))] == "b"


def grid(gateways: dict[str, object], grid_m: float = 0.5, version: int = 1) -> str:
    return json.dumps({"version": version, "grid_m": grid_m, "gateways": gateways})


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "no such survey file"),
        ("{not json", "not a survey file"),
        (grid({}, version=99), "not a version-1 survey file"),
        (grid({}, grid_m=0), "positive `grid_m`"),
        (grid({"gx": [[0.0]]}), "gateways.gx: not a gateway"),
        (grid({"ga": [1.0, 2.0]}), "gateways.ga: expected"),
        (grid({"ga": [["x"]]}), "gateways.ga: expected"),
    ],
)
def test_bad_survey_files_are_named(tmp_path: Path, content: str | None, problem: str) -> None:
    path = tmp_path / "survey.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match="survey.json: .*" + problem.replace("`", ".").replace("(", r"\(")):
        read_survey(path, two_rooms())


def test_a_survey_nobody_heard_is_refused() -> None:
    config = two_rooms()
    walk = survey_walk(config, start=100.0, member="survey")
    with pytest.raises(ConfigError, match="no gateway heard the survey phone"):
        build_survey(config, [("ga", Advert(1.0, -60, b""))], walk)


def test_an_empty_map_adds_nothing() -> None:
    assert SurveyMap(0.5, {}).at("ga", 1.0, 1.0) == 0.0
