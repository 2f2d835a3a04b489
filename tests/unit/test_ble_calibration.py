"""Calibration: a phone held at known points through the RF model; the fit recovers each
gateway's true measured power and path-loss exponent (which differ from the config)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from edge_agent.ble.calibration import _Point, as_yaml, calibrate, fit_gateways, fit_path_loss, read_points
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
        samples += [PositionSample(start + i * 0.5, "phone", "m_702cc64d", x, y, "") for i in range(40)]
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
        # 3 of every 4 points fitted, the 4th held out; the fit beats the (wrong) config there.
        assert (fit.points, fit.holdout_points) == (6, 2) and fit.use
        assert fit.holdout_rms_db is not None and fit.configured_holdout_rms_db is not None
        assert fit.holdout_rms_db <= fit.configured_holdout_rms_db + 0.5
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


def test_a_clamped_exponent_refits_the_power_and_reports_the_printed_models_error() -> None:
    """Issue 22, item 2: a raw exponent below 1 is clamped, the 1 m power refitted for it,
    and the rms is the returned model's own."""
    samples = [(float(d), -79.0 + 2.4 * math.log10(d)) for d in (1, 2, 4, 8, 16)]  # n = -0.24
    p, n, rms = fit_path_loss(samples)
    assert n == 1.0
    own = math.sqrt(sum((p - 10 * n * math.log10(d) - r) ** 2 for d, r in samples) / len(samples))
    assert rms == pytest.approx(own)
    assert p == pytest.approx(sum(r + 10 * math.log10(d) for d, r in samples) / len(samples))


def _points(
    store_config: StoreConfig, gateway: str, n: int, at: tuple[float, float], rssi: float
) -> list[_Point]:
    gx, gy = next(g.position for g in store_config.gateways if g.id == gateway) or (0.0, 0.0)
    pts = []
    for k in range(n):
        x, y = gx + at[0] + k, gy + at[1]
        d = math.hypot(x - gx, y - gy)
        pts.append(_Point(x, y, {gateway: [rssi - 30 * math.log10(d)] * 6}))
    return pts


def test_too_few_points_keep_the_configured_model_and_say_so(store_config: StoreConfig) -> None:
    [fit] = [
        f
        for f in fit_gateways(store_config, _points(store_config, "gw-entrance", 2, (1, 0), -50))
        if f.gateway == "gw-entrance"
    ]
    assert not fit.use and "too few points" in fit.note
    assert (fit.measured_power_dbm, fit.path_loss_exponent) == (-59.0, 2.2)
    assert "too few points" in as_yaml([fit])


def test_a_fit_worse_than_the_configured_model_on_held_out_points_is_refused(
    store_config: StoreConfig,
) -> None:
    # Points that follow the configured model (-59, 2.2) except the held-out 4th, 8th: a fit
    # of the others is exact, but the held-out points disagree more with it than with config.
    pts = _points(store_config, "gw-entrance", 8, (1, 0.5), -59)
    pts = [
        _Point(p.x, p.y, {"gw-entrance": [-59 - 22 * math.log10(math.hypot(p.x - 4, p.y - 3))] * 6})
        if i % 4 == 3
        else p
        for i, p in enumerate(pts)
    ]
    [fit] = [f for f in fit_gateways(store_config, pts) if f.gateway == "gw-entrance"]
    assert not fit.use and "worse than the configured" in fit.note
