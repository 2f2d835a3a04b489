"""Zone fusion: switches past hysteresis and dwell, no flapping between two equal gateways,
"away" after the timeout, "unknown" (not away) while a covering gateway is offline."""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

import numpy as np
import pytest

from edge_agent.ble.sightings import Advert
from floorwalker.config import BlePresenceConfig, StoreConfig
from presence.eid_resolver import EidResolver
from presence.pipeline import PresencePipeline
from presence.positions import PositionSample
from presence.zone_fusion import SURVEYED, FusionParams, ZoneChange, ZoneFusion, ZoneModel, ZoneState
from simulators.ble_radio import RadioModel, RadioParams

POWER, N = -59.0, 2.0
M = "m_702cc64d"


def two_rooms(floor: bool = True) -> StoreConfig:
    """Zones a (x 0..10) and b (x 10..20), each with a gateway in its middle."""
    zones = [
        {"id": "a", "name": "A", "polygon": [[0, 0], [10, 0], [10, 10], [0, 10]]},
        {"id": "b", "name": "B", "polygon": [[10, 0], [20, 0], [20, 10], [10, 10]]},
    ]
    gateways = [
        {
            "id": "ga",
            "zones": ["a"],
            "position": [5, 5],
            "ble": {"measured_power_dbm": POWER, "path_loss_exponent": N},
        },
        {
            "id": "gb",
            "zones": ["b"],
            "position": [15, 5],
            "ble": {"measured_power_dbm": POWER, "path_loss_exponent": N},
        },
    ]
    if not floor:
        for z in zones:
            del z["polygon"]
    return StoreConfig.model_validate(
        {
            "store": "s1",
            "name": "S",
            **({"floor": {"width_m": 20, "depth_m": 10}} if floor else {}),
            "zones": zones,
            "gateways": gateways,
            "associates": [{"id": "a1", "display_name": "A"}],
            "floor_lead": "a1",
        }
    )


def level(x: float, y: float, gw: tuple[float, float]) -> float:
    return POWER - 10 * N * math.log10(max(math.hypot(x - gw[0], y - gw[1]), 0.5))


PARAMS = FusionParams(stale_s=4.0, hysteresis=2.0, min_dwell_s=1.0, away_timeout_s=10.0)


def fusion(config: StoreConfig | None = None, params: FusionParams = PARAMS) -> ZoneFusion:
    f = ZoneFusion(ZoneModel(config or two_rooms(), params.sigma_db), params)
    f.gateway_state("ga", True)
    f.gateway_state("gb", True)
    return f


def stand(
    f: ZoneFusion,
    x: float,
    y: float,
    t0: float,
    seconds: float,
    noise: float = 0.0,
    rng: random.Random | None = None,
    moving: bool | None = None,
) -> list[ZoneChange]:
    """Both gateways report every 0.5 s while the member stands at (x, y); tick each time.
    ``moving``: the app's motion hint in those reports (None: the app sends none)."""
    rng = rng or random.Random(0)
    out: list[ZoneChange] = []
    t = t0
    while t < t0 + seconds:
        for gw, pos in (("ga", (5.0, 5.0)), ("gb", (15.0, 5.0))):
            f.observe(M, gw, level(x, y, pos) + rng.gauss(0, noise), t, moving)
        out += f.tick(t)
        t += 0.5
    return out


def test_enter_then_switch_after_the_dwell() -> None:
    f = fusion()
    first = stand(f, 5, 5, 0.0, 5)
    assert [(c.zone, c.action) for c in first] == [("a", "enter")]
    assert first[0].ts == pytest.approx(1.0)  # min dwell after first heard
    moved = stand(f, 15, 5, 5.0, 5)
    assert [(c.zone, c.action) for c in moved] == [("a", "leave"), ("b", "enter")]
    assert 6.0 <= moved[0].ts <= 7.5
    assert moved[1].confidence > 0.9
    assert f.state_of(M) == (ZoneState.IN, "b")


def test_no_flapping_between_two_equal_gateways() -> None:
    """On the border the two gateways are equally strong; their readings scatter by 3 dB."""
    rng = random.Random(3)
    f = fusion()
    changes = stand(f, 10.0, 5.0, 0.0, 300, noise=3.0, rng=rng)
    # Without hysteresis the stronger of the two would change hands again and again:
    rng = random.Random(3)
    stronger = [
        max((level(10, 5, (5, 5)) + rng.gauss(0, 3), "a"), (level(10, 5, (15, 5)) + rng.gauss(0, 3), "b"))[1]
        for _ in range(600)
    ]
    naive_switches = sum(1 for p, q in itertools.pairwise(stronger) if p != q)
    assert naive_switches > 100
    enters = [c for c in changes if c.action == "enter"]
    assert 1 <= len(enters) <= 2


def test_away_after_the_timeout_and_not_before() -> None:
    f = fusion()
    stand(f, 5, 5, 0.0, 5)  # last heard at 4.5
    assert f.tick(4.5 + 9.5) == []
    assert [(c.zone, c.action) for c in f.tick(4.5 + 10.0)] == [("a", "leave")]
    assert f.state_of(M) == (ZoneState.AWAY, None)
    assert f.members() == []  # nothing kept for someone who left


def test_unknown_not_away_when_the_covering_gateway_is_offline() -> None:
    f = fusion()
    stand(f, 5, 5, 0.0, 5)
    f.gateway_state("ga", False)  # its retained status says offline
    assert f.tick(30.0) == [] and f.tick(100.0) == []
    assert f.state_of(M) == (ZoneState.UNKNOWN, "a")
    f.gateway_state("ga", True)
    back = stand(f, 5, 5, 101.0, 5)
    assert back == []  # still in a: no second enter
    assert f.state_of(M) == (ZoneState.IN, "a")


def test_silence_with_any_gateway_offline_is_unknown() -> None:
    f = fusion()
    stand(f, 5, 5, 0.0, 5)
    f.gateway_state("gb", False)  # not a's gateway, but the member may have walked under it
    assert f.tick(60.0) == []
    assert f.state_of(M)[0] is ZoneState.UNKNOWN


def test_without_a_floor_plan_the_strongest_gateways_zone_wins() -> None:
    f = fusion(two_rooms(floor=False))
    changes = stand(f, 14, 5, 0.0, 5)
    assert [(c.zone, c.action) for c in changes] == [("b", "enter")]


def test_members_are_bounded() -> None:
    f = ZoneFusion(ZoneModel(two_rooms()), PARAMS, max_members=3)
    for i in range(5):
        f.observe(f"m_member{i:04d}", "ga", -60, float(i))
    assert len(f.members()) == 3


def test_a_slight_but_steady_lead_switches_after_settling() -> None:
    """Just inside b, near the border: b leads, but by less than the hysteresis."""
    f = fusion()
    stand(f, 5, 5, 0.0, 5)
    model = ZoneModel(two_rooms(), PARAMS.sigma_db)
    scores = model.scores({"ga": level(10.6, 5, (5, 5)), "gb": level(10.6, 5, (15, 5))})
    assert 0.5 < scores[1] - scores[0] < PARAMS.hysteresis
    moved = stand(f, 10.6, 5, 5.0, 10)
    assert [(c.zone, c.action) for c in moved] == [("a", "leave"), ("b", "enter")]
    assert moved[0].ts - 5.0 >= PARAMS.settle_s - 0.5


def test_the_survey_picks_sharper_defaults_and_explicit_values_win() -> None:
    plain = FusionParams.from_config(BlePresenceConfig())
    assert (plain.sigma_db, plain.hysteresis, plain.min_dwell_s) == (4.0, 2.0, 1.0)
    surveyed = FusionParams.from_config(BlePresenceConfig(survey=Path("survey.json")))
    assert surveyed == SURVEYED
    assert (surveyed.sigma_db, surveyed.hysteresis, surveyed.min_dwell_s) == (2.5, 3.5, 0.5)
    mine = FusionParams.from_config(BlePresenceConfig(survey=Path("s.json"), hysteresis=5.0, sigma_db=3.0))
    assert (mine.sigma_db, mine.hysteresis, mine.min_dwell_s) == (3.0, 5.0, 0.5)
    assert (surveyed.walking_hysteresis, surveyed.walking_settle_s) == (1.0, 1.0)
    walk = FusionParams.from_config(BlePresenceConfig(walking_hysteresis=0.7))
    assert (walk.walking_hysteresis, walk.walking_min_dwell_s, walk.walking_settle_s) == (0.7, 0.5, 2.0)


@pytest.mark.parametrize("params", [FusionParams(), SURVEYED], ids=["path-loss", "surveyed"])
@pytest.mark.parametrize("seed", range(4))
def test_no_flapping_on_the_border_through_the_gateways_smoothing(params: FusionParams, seed: int) -> None:
    """A phone on the border for five minutes, as the gateways really hear it (RF model: 4 dB
    fading per advert, 15 % dropped; each gateway's Kalman filter and report rules): one
    zone, held (at most one change of mind, as above) — with either set of defaults."""
    key = bytes(range(32))
    config = two_rooms()
    walk = [PositionSample(1_800_000_000.0 + 0.5 * i, "s1", M, 10.0, 5.0, "a") for i in range(600)]
    calm = RadioParams(shadowing_sd_db=0, calibration_error_db=0, exponent_error=0, body_loss_db=0)
    radio = RadioModel(config, key, calm, seed=seed)
    records = [(r["gateway"], Advert(r["ts"], r["rssi"], bytes.fromhex(r["adv"]))) for r in radio.hear(walk)]
    assert len(records) > 2000
    pipeline = PresencePipeline(config, EidResolver(key, [M], window_s=300, skew_s=90), params)
    enters = [c for c in pipeline.run(records) if c.action == "enter"]
    assert 1 <= len(enters) <= 2


@pytest.mark.parametrize(
    ("moving", "settle"),
    [(True, PARAMS.walking_settle_s), (False, PARAMS.settle_s), (None, PARAMS.settle_s)],
    ids=["walking", "still", "no-hint"],
)
def test_a_walking_member_switches_on_a_slight_lead_sooner(moving: bool | None, settle: float) -> None:
    """Just inside b (a lead below the hysteresis): walking, the short settle; else the long one."""
    assert PARAMS.walking_settle_s < PARAMS.settle_s
    f = fusion()
    stand(f, 5, 5, 0.0, 5, moving=moving)
    moved = stand(f, 10.6, 5, 5.0, 10, moving=moving)
    assert [(c.zone, c.action) for c in moved] == [("a", "leave"), ("b", "enter")]
    assert settle - 0.5 <= moved[0].ts - 5.0 <= settle + 0.5


def test_a_stale_walking_hint_counts_for_nothing() -> None:
    f = fusion()
    stand(f, 5, 5, 0.0, 5, moving=True)
    stand(f, 5, 5, 5.0, 10)  # the reports stop carrying a hint: the last one goes stale
    moved = stand(f, 10.6, 5, 15.0, 10)
    assert moved[0].ts - 15.0 >= PARAMS.settle_s - 0.5


# -- the time filter's spreading, on the demo store's grid ------------------------------------


@pytest.fixture(scope="module")
def demo_model() -> ZoneModel:
    from floorwalker.config import load_store_config
    from tests.conftest import DEMO_STORE

    return ZoneModel(load_store_config(DEMO_STORE))


def _delta(model: ZoneModel, cell: int) -> np.ndarray:
    logp = np.full(model.cells, -1e9)
    logp[cell] = 0.0
    return logp


def test_no_time_no_spreading(demo_model: ZoneModel) -> None:
    logp = np.full(demo_model.cells, 5.0)  # not even normalised: returned as it is
    assert demo_model.spread(logp, 0.0, FusionParams()) is logp
    assert demo_model.spread(logp, -1.0, FusionParams()) is logp


def test_standing_still_only_leaks_towards_anywhere(demo_model: ZoneModel) -> None:
    n, cell = demo_model.cells, demo_model.cells // 2
    params = FusionParams(speed_m_s=0.0, jump_per_s=0.02)
    p = np.exp(demo_model.spread(_delta(demo_model, cell), 10.0, params))
    leak = 1 - math.exp(-0.02 * 10)
    assert p[cell] == pytest.approx(1 - leak + leak / n)
    assert np.delete(p, cell) == pytest.approx(np.full(n - 1, leak / n))
    # Moving a tenth of a cell (under 0.2 of one) is not spreading either.
    slow = FusionParams(speed_m_s=0.05, jump_per_s=1e-9)
    assert np.exp(demo_model.spread(_delta(demo_model, cell), 1.0, slow)) == pytest.approx(
        np.eye(n)[cell], abs=1e-9
    )


def test_walking_spreads_symmetrically_and_keeps_the_mass(demo_model: ZoneModel) -> None:
    n = demo_model.cells
    centre = _interior_cell(demo_model)
    params = FusionParams(speed_m_s=1.0, jump_per_s=1e-9)
    p = np.exp(demo_model.spread(_delta(demo_model, centre), 1.0, params))
    assert p.sum() == pytest.approx(1.0)
    assert p.argmax() == centre and p[centre] < 0.2  # a 1 m (2-cell) blur
    left, right, down, up = (
        _neighbour(demo_model, centre, dx, dy) for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1))
    )
    assert p[left] == pytest.approx(p[right]) and p[down] == pytest.approx(p[up]) == pytest.approx(p[left])
    assert p[left] < p[centre]
    # Four metres is as far as it spreads, however long the gap.
    capped = np.exp(demo_model.spread(_delta(demo_model, centre), 10.0, params))
    longer = np.exp(demo_model.spread(_delta(demo_model, centre), 30.0, params))
    assert capped == pytest.approx(longer, abs=1e-9)
    wide = np.exp(demo_model.spread(_delta(demo_model, centre), 4.0, params))
    assert wide[centre] < p[centre] and wide.sum() == pytest.approx(1.0) and (wide > 0).sum() > n // 4


def _cell_xy(model: ZoneModel) -> list[tuple[int, int]]:
    return list(zip(model._cell_ix.tolist(), model._cell_iy.tolist(), strict=True))


def _interior_cell(model: ZoneModel) -> int:
    """A cell with the whole 3-sigma blur (of a 2-cell sigma) inside the grid."""
    cells = set(_cell_xy(model))
    for i, (x, y) in enumerate(_cell_xy(model)):
        if all((x + dx, y + dy) in cells for dx in range(-7, 8) for dy in range(-7, 8)):
            return i
    raise AssertionError("no interior cell")


def _neighbour(model: ZoneModel, cell: int, dx: int, dy: int) -> int:
    x, y = _cell_xy(model)[cell]
    return _cell_xy(model).index((x + dx, y + dy))


# -- the two optional filters decide the same walk the same way ---------------------------------


@pytest.mark.parametrize(
    "params",
    [
        FusionParams(stale_s=4.0, hysteresis=2.0, min_dwell_s=1.0, away_timeout_s=10.0, time_filter=True),
        FusionParams(stale_s=4.0, away_timeout_s=10.0, zone_filter=True, switch_per_s=0.1, switch_margin=1.0),
    ],
    ids=["time filter", "zone filter"],
)
def test_a_walk_from_room_to_room_through_either_filter(params: FusionParams) -> None:
    f = fusion(params=params)
    first = stand(f, 5, 5, 0.0, 5)
    assert [(c.zone, c.action) for c in first] == [("a", "enter")]
    moved = stand(f, 15, 5, 5.0, 10)
    assert [(c.zone, c.action) for c in moved] == [("a", "leave"), ("b", "enter")]
    assert 5.0 <= moved[0].ts <= 10.0 and moved[1].confidence > 0.5
    assert f.state_of(M) == (ZoneState.IN, "b")
    back = stand(f, 5, 5, 15.0, 10)
    assert [(c.zone, c.action) for c in back] == [("b", "leave"), ("a", "enter")]


def test_a_silent_online_gateway_counts_against_its_own_zone() -> None:
    model = ZoneModel(two_rooms())
    heard = {"ga": level(12, 5, (5, 5))}  # as loud as someone 7 m from ga, in b or in a's corners
    a, b = model.zones.index("a"), model.zones.index("b")
    alone, with_silence = model.scores(heard), model.scores(heard, ["gb"])
    assert with_silence[b] - with_silence[a] < alone[b] - alone[a]  # gb would have heard them in b


# -- the evidence model, worked out by hand on two 10 m rooms --------------------------------
# Cells are 0.5 m squares centred at (i + 1/2) * 0.5 m: 20 x 20 in each room, room a's first,
# x outer and y inner; cell 0 is centred at (0.25, 0.25), cell 189 at (4.75, 4.75).


def _pred(cell: tuple[float, float], gw: tuple[float, float]) -> float:
    """The path-loss model's RSSI, never closer than half a metre."""
    return POWER - 10 * N * math.log10(max(math.hypot(cell[0] - gw[0], cell[1] - gw[1]), 0.5))


def test_the_grid_covers_each_zone_with_half_metre_cells() -> None:
    model = ZoneModel(two_rooms())
    assert model.fingerprint and model.cells == 800
    plain = ZoneModel(two_rooms(floor=False))
    assert not plain.fingerprint and plain.cells == 0


def test_a_reading_scores_each_cell_by_its_gaussian_log_likelihood() -> None:
    model = ZoneModel(two_rooms())  # sigma 4 dB by default
    near = _pred((4.75, 4.75), (5, 5))  # 0.35 m from ga: counted as 0.5 m
    ll = model.loglik({"ga": near})
    assert ll[189] == pytest.approx(0.0)
    far = _pred((0.25, 0.25), (5, 5))
    assert ll[0] == pytest.approx(-((far - near) ** 2) / (2 * 4.0**2))
    sharper = ZoneModel(two_rooms(), sigma_db=2.0).loglik({"ga": near})
    assert sharper[0] == pytest.approx(4 * ll[0])


def test_a_silent_gateway_scores_each_cell_by_the_chance_of_missing_the_phone_there() -> None:
    from scipy.stats import norm

    model = ZoneModel(two_rooms(), miss_probability=0.2)
    ll = model.loglik({}, ["gb"])
    for cell, index in (((0.25, 0.25), 0), ((4.75, 4.75), 189)):
        below = norm.cdf((-98.0 - _pred(cell, (15, 5))) / 4.0)  # heard under the sensitivity
        assert ll[index] == pytest.approx(math.log(0.2 + 0.8 * below))
