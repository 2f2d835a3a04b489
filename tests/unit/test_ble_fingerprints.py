"""Survey fingerprints: the zone evidence from the survey walk's own readings (kernel kNN),
hand-worked on two rooms; the survey file with and without them; bad values refused."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from edge_agent.ble.sightings import Advert
from floorwalker.config import BlePresenceConfig, StoreConfig
from floorwalker.errors import ConfigError
from presence.fuser import zone_model_for
from presence.positions import PositionSample
from presence.survey import Fingerprints, SurveyMap, build_survey, fingerprints, read_survey
from presence.zone_fusion import FINGERPRINTED, FusionParams, ZoneFusion, ZoneModel
from tests.two_rooms import two_rooms as _two_rooms

NAN = math.nan


def two_rooms() -> StoreConfig:
    """The shared two rooms, the gateways on the config's default path-loss model."""
    return _two_rooms(path_loss=False)


def three_prints() -> Fingerprints:
    """Two fingerprints in room a, one in room b, one outside the zones (ignored)."""
    return Fingerprints(
        ("ga", "gb"),
        np.array([[2.0, 5.0], [4.0, 5.0], [16.0, 5.0], [30.0, 5.0]]),
        np.array([[-50.0, -80.0], [-55.0, -75.0], [-80.0, -50.0], [-52.0, -78.0]]),
    )


def model(prints: Fingerprints, *, sigma: float = 4.0, k: int = 20, mix: float = 0.0) -> ZoneModel:
    return ZoneModel(
        two_rooms(),
        4.0,
        fingerprints=prints,
        fingerprint_sigma_db=sigma,
        fingerprint_k=k,
        fingerprint_mix=mix,
    )


def test_each_zone_scores_the_summed_likelihood_of_its_nearest_fingerprints() -> None:
    # Readings (ga -52, gb -78), sigma 4 dB: squared errors / (2 * 16).
    # a1: (2² + 2²) / 32 = 0.25; a2: (3² + 3²) / 32 = 0.5625; b: (28² + 28²) / 32 = 49.
    m = model(three_prints())
    assert m.uses_fingerprints
    scores = m.scores({"ga": -52.0, "gb": -78.0})
    assert scores[0] == pytest.approx(math.log(math.exp(-0.25) + math.exp(-0.5625)))
    assert scores[1] == pytest.approx(-49.0)


def test_only_the_k_nearest_count_and_a_zone_without_any_gets_its_best() -> None:
    # k = 1: only a1 counts for a; b has none among the nearest, so its own best (-49).
    scores = model(three_prints(), k=1).scores({"ga": -52.0, "gb": -78.0})
    assert scores[0] == pytest.approx(-0.25)
    assert scores[1] == pytest.approx(-49.0)
    # Near room b's fingerprint instead: b wins by the same reasoning.
    scores = model(three_prints(), k=1).scores({"ga": -79.0, "gb": -51.0})
    assert scores[1] == pytest.approx(-(1 + 1) / 32)
    assert int(np.argmax(scores)) == 1


def test_an_unheard_gateway_reads_as_its_floor_and_silence_is_evidence() -> None:
    # a's fingerprint: gb never heard (its floor, -98); b's: gb heard at -50.
    prints = Fingerprints(
        ("ga", "gb"), np.array([[2.0, 5.0], [16.0, 5.0]]), np.array([[-60.0, NAN], [-60.0, -50.0]])
    )
    # ga -60 (exact for both), gb online and silent: P(unheard) = 0.2 + 0.8 * P(below -98).
    # a: at its floor, half below: log(0.2 + 0.4) = log 0.6; b: 12 sigma above: log 0.2.
    scores = model(prints).scores({"ga": -60.0}, silent=["gb"])
    assert scores[0] == pytest.approx(math.log(0.6))
    assert scores[1] == pytest.approx(math.log(0.2), abs=1e-9)
    assert scores[0] - scores[1] == pytest.approx(math.log(3.0))


def test_a_gateway_the_survey_did_not_cover_counts_as_never_heard() -> None:
    prints = Fingerprints(("ga",), np.array([[2.0, 5.0], [16.0, 5.0]]), np.array([[-50.0], [-80.0]]))
    # gb heard at -98 (its floor) matches both fingerprints alike: only ga decides.
    scores = model(prints).scores({"ga": -50.0, "gb": -98.0})
    assert scores[0] == pytest.approx(0.0)
    assert scores[1] == pytest.approx(-(30.0**2) / 32)


def test_mixing_adds_the_path_loss_evidence_relative_to_its_best_zone() -> None:
    readings = {"ga": -52.0, "gb": -78.0}
    alone = model(three_prints()).scores(readings)
    grid = ZoneModel(two_rooms(), 4.0).scores(readings)
    mixed = model(three_prints(), mix=0.5).scores(readings)
    assert mixed == pytest.approx(alone + 0.5 * (grid - grid.max()))


def test_the_fuser_enters_the_zone_the_fingerprints_favour_with_its_share() -> None:
    m = model(three_prints())
    fusion = ZoneFusion(m, FusionParams(fingerprints=True, min_dwell_s=0.0))
    for gw in ("ga", "gb"):
        fusion.gateway_state(gw, True)
    fusion.observe("m1", "ga", -52.0, 100.0)
    fusion.observe("m1", "gb", -78.0, 100.0)
    changes = fusion.tick(100.0)
    assert [(c.zone, c.action) for c in changes] == [("a", "enter")]
    # Confidence: a's share, 1 / (1 + exp(-49 - log(e^-0.25 + e^-0.5625))), i.e. 1.0 rounded.
    assert changes[0].confidence == 1.0


def test_params_from_config_with_fingerprints() -> None:
    ble = BlePresenceConfig(survey=Path("survey.json"), fingerprints=True, fingerprint_k=7)
    p = FusionParams.from_config(ble)
    assert p.fingerprints and p.fingerprint_k == 7
    assert p.hysteresis == FINGERPRINTED.hysteresis == 2.0
    assert p.fingerprint_sigma_db == 4.0
    assert not FusionParams.from_config(BlePresenceConfig(survey=Path("survey.json"))).fingerprints


@pytest.mark.parametrize(
    ("key", "kwargs"),
    [
        ("fingerprint_sigma_db", {"fingerprint_sigma_db": 0.0}),
        ("fingerprint_k", {"fingerprint_k": 0}),
        ("fingerprint_mix", {"fingerprint_mix": -1.0}),
    ],
)
def test_bad_fusion_params_name_the_key(key: str, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=key):
        FusionParams(**kwargs)  # type: ignore[arg-type]


def test_bad_config_values_name_the_key() -> None:
    with pytest.raises(ValidationError, match="fingerprints"):
        BlePresenceConfig(fingerprints=True)
    with pytest.raises(ValidationError, match="fingerprint_k"):
        BlePresenceConfig(survey=Path("s.json"), fingerprint_k=0)
    with pytest.raises(ValidationError, match="fingerprint_sigma_db"):
        BlePresenceConfig(survey=Path("s.json"), fingerprint_sigma_db=-1)


def test_fingerprints_on_with_a_survey_without_them_is_refused_at_start() -> None:
    survey = SurveyMap(0.5, {"ga": np.zeros((40, 20))})
    with pytest.raises(ConfigError, match=r"ble_presence\.fingerprints: .*no fingerprints"):
        zone_model_for(two_rooms(), FusionParams(fingerprints=True), survey)
    # Off (the default), the same survey is fine.
    assert not zone_model_for(two_rooms(), FusionParams(), survey).uses_fingerprints


def test_survey_file_with_and_without_fingerprints_loads(tmp_path: Path) -> None:
    config = two_rooms()
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"version": 1, "grid_m": 0.5, "gateways": {"ga": [[1.0, 2.0]]}}))
    assert read_survey(old, config).fingerprints is None
    new = tmp_path / "new.json"
    new.write_text(SurveyMap(0.5, {"ga": np.array([[1.0, 2.0]])}, three_prints()).to_json())
    loaded = read_survey(new, config).fingerprints
    assert loaded is not None and len(loaded) == 4
    assert loaded.gateways == ("ga", "gb")
    assert loaded.rssi[2].tolist() == [-80.0, -50.0]
    unheard = tmp_path / "unheard.json"
    prints = Fingerprints(("ga", "gb"), np.array([[1.0, 1.0]]), np.array([[-60.0, NAN]]))
    unheard.write_text(SurveyMap(0.5, {}, prints).to_json())
    assert "null" in unheard.read_text()
    again = read_survey(unheard, config).fingerprints
    assert again is not None and math.isnan(again.rssi[0, 1]) and again.rssi[0, 0] == -60.0


@pytest.mark.parametrize(
    ("fingerprints", "names"),
    [
        ("nope", "fingerprints: expected a mapping"),
        ({"gateways": ["gz"], "xy": [[1, 1]], "rssi": [[-60]]}, "fingerprints.gateways: 'gz'"),
        ({"gateways": ["ga", "ga"], "xy": [[1, 1]], "rssi": [[-60, -60]]}, "fingerprints.gateways"),
        ({"gateways": ["ga"], "xy": [[1, 1, 1]], "rssi": [[-60]]}, "fingerprints.xy"),
        ({"gateways": ["ga"], "xy": [[1, 1]], "rssi": []}, "fingerprints.rssi: expected one row"),
        ({"gateways": ["ga"], "xy": [[1, 1]], "rssi": [[-60, -61]]}, "fingerprints.rssi: expected 1"),
        ({"gateways": ["ga"], "xy": [[1, 1]], "rssi": [["loud"]]}, "fingerprints.rssi: expected rows"),
        ({"gateways": ["ga"], "xy": [[1, 1]], "rssi": [[50]]}, "fingerprints.rssi: values must be"),
    ],
)
def test_bad_fingerprints_in_a_survey_file_name_the_key(
    tmp_path: Path, fingerprints: object, names: str
) -> None:
    path = tmp_path / "survey.json"
    doc = {"version": 1, "grid_m": 0.5, "gateways": {}, "fingerprints": fingerprints}
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=names.replace(".", r"\.")):
        read_survey(path, two_rooms())


def test_the_survey_keeps_the_walk_as_fingerprints() -> None:
    config = two_rooms()
    # The phone stands at (2, 5) for 2 s, then at (16, 5) for 2 s; samples every 0.5 s.
    walk = [PositionSample(100.0 + i * 0.5, "s", "p", 2.0 if i < 4 else 16.0, 5.0, "") for i in range(8)]
    records = [("ga", Advert(100.0 + i * 0.2, -50.0 if i < 10 else -80.0, b"")) for i in range(20)]
    records += [("gb", Advert(102.0 + i * 0.2, -52.0, b"")) for i in range(9)]
    prints = fingerprints(config, records, walk, every_s=1.0)
    assert prints is not None
    # Bins centred at 100.5, 101.5, 102.5, 103.5 (each takes the adverts within 1 s).
    assert prints.xy.tolist() == [[2.0, 5.0], [2.0, 5.0], [16.0, 5.0], [16.0, 5.0]]
    assert prints.rssi[0, 0] == -50.0 and math.isnan(prints.rssi[0, 1])  # gb not yet heard
    assert prints.rssi[3].tolist() == [-80.0, -52.0]
    # build_survey keeps them unless told not to.
    assert build_survey(config, records, walk).fingerprints is not None
    assert build_survey(config, records, walk, fingerprint_s=0).fingerprints is None
