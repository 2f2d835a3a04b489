"""The zone filter (a forward filter over zones) and the unknown per-phone offset."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest

from floorwalker.config import StoreConfig
from presence.zone_fusion import ZoneChange, ZoneFusion, ZoneModel
from tests.unit.test_zone_fusion import PARAMS, M, level, row_of_rooms, stand, two_rooms

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


# -- the forward filter worked out by hand, on evidence the test sets -------------------------------


class Scripted(ZoneModel):
    """The store's zones and gateways, but each tick's zone evidence (log) is the next one
    the test gives, whatever the readings."""

    def __init__(self, config: StoreConfig, evidence: list[list[float]]) -> None:
        super().__init__(config)
        self.evidence = [np.array(e) for e in evidence]

    def scores(self, readings: dict[str, float], silent: Iterable[str] = ()) -> npt.NDArray[np.float64]:
        return self.evidence.pop(0)


def scripted(config: StoreConfig, evidence: list[list[float]], switch_per_s: float) -> list[list[ZoneChange]]:
    """The member heard every 0.5 s from t = 100; each tick's events."""
    f = ZoneFusion(
        Scripted(config, evidence), replace(FILTERED, switch_per_s=switch_per_s, switch_margin=1.0)
    )
    for gw in config.gateways:
        f.gateway_state(gw.id, True)
    out = []
    for k in range(len(evidence)):
        f.observe(M, "ga", -60.0, 100.0 + 0.5 * k)
        out.append(f.tick(100.0 + 0.5 * k))
    return out


LN = math.log
#: Over 0.5 s the member stays with probability exp(-0.5 · 2 ln(4/3)) = 3/4.
STAY_THREE_QUARTERS = 2 * LN(4 / 3)


def switch(at: float, share: float, old: str = "a", new: str = "b") -> list[ZoneChange]:
    return [ZoneChange(M, old, "leave", at, share), ZoneChange(M, new, "enter", at, share)]


@pytest.mark.parametrize(
    ("switch_per_s", "events"),
    [
        # a 9:1 (0.9), then b three times as likely each tick. Moving at 1/4 per 0.5 s:
        #   prior (0.7, 0.3) · (1, 3) -> (0.7, 0.9): b leads by ln(9/7) = 0.25 < 1, hold;
        #   (0.4375, 0.5625) -> prior (0.46875, 0.53125) · (1, 3): ln 3.4 = 1.22, b at 0.773.
        (STAY_THREE_QUARTERS, [[ZoneChange(M, "a", "enter", 100.0, 0.9)], [], switch(101.0, 0.773), []]),
        # Never moving on its own: (0.9, 0.1) -> (0.75, 0.25) -> (0.5, 0.5) -> (0.25, 0.75),
        # b leads by ln 3 = 1.10 only at the third tick.
        (0.0, [[ZoneChange(M, "a", "enter", 100.0, 0.9)], [], [], switch(101.5, 0.75)]),
    ],
    ids=["moves at 1/4 per tick", "never moves"],
)
def test_the_zone_filter_holds_a_zone_against_fresh_evidence_until_the_posterior_leads(
    switch_per_s: float, events: list[list[ZoneChange]]
) -> None:
    evidence = [[0.0, -LN(9)], [0.0, LN(3)], [0.0, LN(3)], [0.0, LN(3)]]
    assert scripted(two_rooms(), evidence, switch_per_s) == events


def test_the_zone_filter_moves_the_member_to_any_other_zone_alike() -> None:
    """Three rooms, a at 0.8: over 0.5 s 1/4 of each zone's mass moves, half to each other
    zone, so the prior is 0.125 + 0.625 p: (0.625, 0.1875, 0.1875) · (1, 4, 1) -> b leads a
    by ln 1.2, hold; (0.4, 0.48, 0.12) -> (0.375, 0.425, 0.2) · (1, 4, 1): b at 1.7 / 2.275."""
    evidence = [[0.0, -LN(8), -LN(8)], [0.0, LN(4), 0.0], [0.0, LN(4), 0.0]]
    events = scripted(row_of_rooms(3), evidence, STAY_THREE_QUARTERS)
    assert events == [[ZoneChange(M, "a", "enter", 100.0, 0.8)], [], switch(101.0, 0.747)]


def test_a_posterior_lead_of_exactly_the_margin_switches() -> None:
    """Never moving on its own: b's log-odds are -2, then -2 + 3 = 1, the margin itself."""
    events = scripted(two_rooms(), [[0.0, -2.0], [0.0, 3.0]], 0.0)
    share = round(1 / (1 + math.exp(-1)), 3)
    assert events == [
        [ZoneChange(M, "a", "enter", 100.0, round(1 / (1 + math.exp(-2)), 3))],
        switch(100.5, share),
    ]
