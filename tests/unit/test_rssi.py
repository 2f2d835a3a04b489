"""RSSI smoothing and distance: noise shrinks, a lone spike is ignored, a real change is
followed, distance inverts the calibrated path-loss model."""

from __future__ import annotations

import random
import statistics

import pytest

from edge_agent.ble.rssi import RssiFilter, distance_m, rssi_in_range


def test_smoothing_shrinks_the_scatter_of_a_steady_signal() -> None:
    rng = random.Random(7)
    raw = [-70 + rng.gauss(0, 5) for _ in range(300)]
    f = RssiFilter(raw[0], 0.0)
    smooth = [f.update(r, 0.2 * i) for i, r in enumerate(raw[1:], 1)][50:]
    assert statistics.pstdev(smooth) < statistics.pstdev(raw) / 2
    assert statistics.fmean(smooth) == pytest.approx(-70, abs=1.5)


def test_a_single_spike_is_rejected() -> None:
    f = RssiFilter(-70, 0.0)
    for i in range(1, 20):
        f.update(-70, i * 0.2)
    before = f.rssi
    f.update(-30, 4.0)  # 40 dB jump in one advert: not physics
    assert f.rssi == before


def test_a_real_step_is_followed_within_a_few_seconds() -> None:
    f = RssiFilter(-80, 0.0)
    for i in range(1, 10):
        f.update(-80, i * 0.2)
    t = 2.0
    while f.rssi < -62 and t < 10:
        t += 0.2
        f.update(-60, t)
    assert t - 2.0 <= 3.0


@pytest.mark.parametrize(
    ("rssi", "power", "n", "expected"),
    [
        (-59, -59, 2.0, 1.0),
        (-79, -59, 2.0, 10.0),
        (-81, -59, 2.2, 10.0),
        (-39, -59, 2.0, 0.1),
        (-127, -59, 1.0, 1000.0),
    ],
)
def test_distance_inverts_the_path_loss_model(rssi: float, power: float, n: float, expected: float) -> None:
    assert distance_m(rssi, power, n) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    ("rssi", "ok"), [(-127, True), (20, True), (-128, False), (21, False), (float("nan"), False)]
)
def test_physical_range(rssi: float, ok: bool) -> None:
    assert rssi_in_range(rssi) is ok
