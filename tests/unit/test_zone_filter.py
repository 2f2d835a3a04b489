"""The zone filter (a forward filter over zones) and the unknown per-phone offset."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from presence.zone_fusion import ZoneFusion, ZoneModel
from tests.unit.test_zone_fusion import PARAMS, level, stand, two_rooms

FILTERED = replace(PARAMS, zone_filter=True)


def fusion() -> ZoneFusion:
    f = ZoneFusion(ZoneModel(two_rooms(), FILTERED.sigma_db), FILTERED)
    f.gateway_state("ga", True)
    f.gateway_state("gb", True)
    return f


def test_filter_follows_a_move_within_two_seconds() -> None:
    f = fusion()
    assert [(c.zone, c.action) for c in stand(f, 5, 5, 0.0, 10)] == [("a", "enter")]
    moved = stand(f, 15, 5, 10.0, 10, noise=1.0)
    assert [(c.zone, c.action) for c in moved] == [("a", "leave"), ("b", "enter")]
    assert moved[0].ts - 10.0 <= 2.0


def test_offset_marginalised_locates_from_differences() -> None:
    """A phone 12 dB louder than the model: with the offset marginalised the cells rank as
    for the model's own power; without it they do not."""
    config = two_rooms()
    readings = {"ga": level(3, 5, (5, 5)), "gb": level(3, 5, (15, 5))}
    louder = {g: r + 12.0 for g, r in readings.items()}
    plain = ZoneModel(config, 4.0)
    free = ZoneModel(config, 4.0, offset_sd_db=1000.0)
    assert int(np.argmax(plain.loglik(louder))) != int(np.argmax(plain.loglik(readings)))
    a, b = free.loglik(louder), free.loglik(readings)
    assert np.allclose(a - a.max(), b - b.max(), atol=1e-3)
