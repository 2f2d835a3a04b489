"""Calibration: a phone held at known points through the RF model; the fit recovers each
gateway's true measured power and path-loss exponent (which differ from the config)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from edge_agent.ble.calibration import as_yaml, calibrate, fit_path_loss, read_points
from edge_agent.ble.sightings import Advert
from floorwalker.config import StoreConfig
from floorwalker.errors import ConfigError
from presence.positions import PositionSample
from simulators.ble_radio import RadioModel, RadioParams

KEY = bytes(range(32))
T0 = 1_800_000_000.0
SPOTS = [
    (2.0, 2.0),
    (6.0, 10.0),
    (12.0, 17.0),
    (18.0, 9.0),
    (27.0, 18.0),
    (28.0, 3.0),
    (14.0, 2.0),
    (24.0, 8.0),
]


def test_fit_of_exact_samples() -> None:
    samples = [(float(d), -60 - 10 * 2.5 * math.log10(d)) for d in (1, 2, 5, 10, 20)]
    p, n, rms = fit_path_loss(samples)
    assert (p, n, rms) == pytest.approx((-60, 2.5, 0), abs=1e-9)


def test_calibration_recovers_the_true_parameters(store_config: StoreConfig, tmp_path: Path) -> None:
    params = RadioParams(
        shadowing_sd_db=0.0, body_loss_db=0.0, fading_sd_db=2.0, calibration_error_db=4.0, exponent_error=0.4
    )
    model = RadioModel(store_config, KEY, params, seed=9)
    samples: list[PositionSample] = []
    lines = ["points:"]
    for k, (x, y) in enumerate(SPOTS):
        start = T0 + k * 30
        samples += [PositionSample(start + i * 0.5, "phone", "m_chen0001", x, y, "") for i in range(40)]
        lines.append(f"  - {{x: {x}, y: {y}, from_ts: {start + 2}, to_ts: {start + 18}}}")
    (tmp_path / "points.yaml").write_text("\n".join(lines) + "\n")
    records = [
        (r["gateway"], Advert(r["ts"], r["rssi"], bytes.fromhex(r["adv"]))) for r in model.hear(samples)
    ]

    fits = {f.gateway: f for f in calibrate(store_config, read_points(tmp_path / "points.yaml"), records)}

    assert set(fits) == {g.id for g in store_config.gateways}
    for gw in model.gateways:
        fit = fits[gw.id]
        assert fit.measured_power_dbm == pytest.approx(gw.power, abs=1.5)
        assert fit.path_loss_exponent == pytest.approx(gw.exponent, abs=0.15)
        assert fit.points == len(SPOTS)
    # The truth differed from the config, so a fit that just echoed the config would fail above.
    assert any(abs(g.power - (-59.0)) > 1.5 for g in model.gateways)
    snippet = as_yaml(list(fits.values()))
    assert (
        f"- {{id: gw-entrance, ble: {{measured_power_dbm: {fits['gw-entrance'].measured_power_dbm},"
        in snippet
    )


def test_a_broken_points_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text("points: [{x: 1, y: 2}]\n")
    with pytest.raises(ConfigError, match=r"p.yaml: points.0.from_ts: Field required"):
        read_points(tmp_path / "p.yaml")
