"""Zone fusion: switches past hysteresis and dwell, no flapping between two equal gateways,
"away" after the timeout, "unknown" (not away) while a covering gateway is offline."""

from __future__ import annotations

import itertools
import math
import random
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edge_agent.ble.sightings import Advert
from floorwalker.config import BlePresenceConfig, StoreConfig
from presence.eid_resolver import EidResolver
from presence.pipeline import PresencePipeline
from presence.positions import PositionSample
from presence.survey import SurveyMap
from presence.zone_fusion import SURVEYED, FusionParams, ZoneChange, ZoneFusion, ZoneModel, ZoneState
from simulators.ble_radio import RadioModel, RadioParams
from tests.two_rooms import POWER, N, two_rooms

M = "m_702cc64d"


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
    # The leave is certain (confidence 1), stamped when the timeout ran out.
    assert f.tick(4.5 + 10.0) == [ZoneChange(M, "a", "leave", 14.5, 1.0)]
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


def border_enters(params: FusionParams, seed: int) -> int:
    """Zone entries of a phone on the border of two equal rooms for five minutes, as the
    gateways really hear it (RF model: 4 dB fading per advert, 15 % dropped; each gateway's
    Kalman filter and report rules; on most seeds the app's motion hint, "still" but wrong
    on 3 % of the adverts)."""
    key = bytes(range(32))
    config = two_rooms()
    walk = [PositionSample(1_800_000_000.0 + 0.5 * i, "s1", M, 10.0, 5.0, "a") for i in range(600)]
    calm = RadioParams(shadowing_sd_db=0, calibration_error_db=0, exponent_error=0, body_loss_db=0)
    radio = RadioModel(config, key, calm, seed=seed)
    records = [(r["gateway"], Advert(r["ts"], r["rssi"], bytes.fromhex(r["adv"]))) for r in radio.hear(walk)]
    assert len(records) > 2000
    pipeline = PresencePipeline(config, EidResolver(key, [M], window_s=300, skew_s=90), params)
    return sum(1 for c in pipeline.run(records) if c.action == "enter")


@pytest.mark.parametrize("params", [FusionParams(), SURVEYED], ids=["path-loss", "surveyed"])
@pytest.mark.parametrize("seed", range(16))
def test_no_flapping_on_the_border_through_the_gateways_smoothing(params: FusionParams, seed: int) -> None:
    """One zone, held (at most one change of mind, as above) with either set of defaults,
    on every seed the rule was chosen on."""
    assert 1 <= border_enters(params, seed) <= 2


@pytest.mark.parametrize("params", [FusionParams(), SURVEYED], ids=["path-loss", "surveyed"])
@pytest.mark.parametrize("seed", range(16, 32))
def test_on_seeds_not_chosen_on_a_border_phone_changes_its_mind_at_most_twice(
    params: FusionParams, seed: int
) -> None:
    """Seeds 16-31 were not looked at while the rule was chosen: three of these 32 runs give
    one change of mind more than the seeds above (3 entries in five minutes; the summed lead
    of 2026-12-08 took the survey's worst case from 7 to 3 here, bench/README.md)."""
    assert 1 <= border_enters(params, seed) <= 3


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


# -- a store of rooms in a row, for the cases two_rooms does not cover --------------------------


def row_of_rooms(rooms: int = 2, *, sensitivity: float = -98.0, kiosk: bool = False) -> StoreConfig:
    """``rooms`` 10 m rooms a, b, c, ... along x, each with its gateway (ga, gb, ...) in the
    middle. ``kiosk``: one more zone, last, a 15 cm square that holds no cell centre and that
    no gateway covers."""
    ids = "abcdefgh"[:rooms]
    zones: list[dict[str, object]] = [
        {
            "id": z,
            "name": z.upper(),
            "polygon": [[10 * i, 0], [10 * i + 10, 0], [10 * i + 10, 10], [10 * i, 10]],
        }
        for i, z in enumerate(ids)
    ]
    width = 10 * rooms
    if kiosk:
        x = width + 0.3
        zones.append(
            {"id": "kiosk", "name": "K", "polygon": [[x, 0.3], [x + 0.15, 0.3], [x + 0.15, 0.45], [x, 0.45]]}
        )
        width += 1
    gateways = [
        {
            "id": f"g{z}",
            "zones": [z],
            "position": [10 * i + 5, 5],
            "ble": {"measured_power_dbm": POWER, "path_loss_exponent": N, "sensitivity_dbm": sensitivity},
        }
        for i, z in enumerate(ids)
    ]
    return StoreConfig.model_validate(
        {
            "store": "s1",
            "name": "S",
            "floor": {"width_m": width, "depth_m": 10},
            "zones": zones,
            "gateways": gateways,
            "associates": [{"id": "a1", "display_name": "A"}],
            "floor_lead": "a1",
        }
    )


def one_room() -> StoreConfig:
    return StoreConfig.model_validate(
        {
            "store": "s1",
            "name": "S",
            "zones": [{"id": "a", "name": "A"}],
            "gateways": [{"id": "ga", "zones": ["a"]}],
            "associates": [{"id": "a1", "display_name": "A"}],
            "floor_lead": "a1",
        }
    )


def hear(
    f: ZoneFusion, t: float, ga: float | None = None, gb: float | None = None, moving: bool | None = None
) -> list[ZoneChange]:
    """The gateways that hear the member report at ``t`` (None: silent); then one tick."""
    for gw, rssi in (("ga", ga), ("gb", gb)):
        if rssi is not None:
            f.observe(M, gw, rssi, t, moving)
    return f.tick(t)


def softmax_share(scores: list[float], i: int) -> float:
    """A zone's share of the evidence, as an event's confidence (3 places)."""
    return round(math.exp(scores[i]) / sum(math.exp(s) for s in scores), 3)


# -- decisions, where the evidence is exact: without a floor plan a zone's score is the RSSI --------
# of its strongest gateway (dB), so a lead of 0.5 is exactly a quarter of the hysteresis.

PLAIN = two_rooms(floor=False)


@pytest.mark.parametrize(
    ("lead", "switch_at"),
    [(0.25, None), (0.5, 106.0), (1.5, 106.0), (2.0, 103.0), (3.0, 103.0)],
    ids=["under a quarter", "a quarter", "slight", "the hysteresis", "clear"],
)
def test_how_long_a_lead_must_hold_before_the_zone_switches(lead: float, switch_at: float | None) -> None:
    """Hysteresis 2, min dwell 1 s, settle 4 s: a lead under a quarter of the hysteresis never
    switches; from a quarter it must hold for settle_s; from the full hysteresis, min_dwell_s."""
    f = fusion(PLAIN)
    entered = [c for t in (100.0, 100.5, 101.0) for c in hear(f, t, ga=-60.0, gb=-70.0)]
    # First heard at 100: in a min_dwell_s later; a's share is 1 / (1 + e^-10), 1.0 to 3 places.
    assert entered == [ZoneChange(M, "a", "enter", 101.0, 1.0)]
    changes = [c for k in range(17) for c in hear(f, 102.0 + 0.5 * k, ga=-60.0, gb=-60.0 + lead)]
    if switch_at is None:
        assert changes == []
        assert f.state_of(M) == (ZoneState.IN, "a")
    else:
        share = softmax_share([-60.0, -60.0 + lead], 1)  # both events carry b's share
        assert changes == [
            ZoneChange(M, "a", "leave", switch_at, share),
            ZoneChange(M, "b", "enter", switch_at, share),
        ]


@pytest.mark.parametrize(
    ("hints", "switch_at"),
    [
        ({(101.0, "ga"): True}, 105.0),
        ({(100.5, "ga"): True}, 105.5),
        ({}, 105.5),
        ({(101.0, "ga"): True, (101.0, "gb"): False}, 105.5),
    ],
    ids=["hint stale_s old", "hint older", "no hint", "revoked by a later report of the same instant"],
)
def test_a_walking_hint_counts_until_it_is_stale_s_old(
    hints: dict[tuple[float, str], bool], switch_at: float
) -> None:
    """A clear lead from 104.5: walking (the latest hint says so and is at most stale_s = 4 s
    old) switches after the walking dwell, 0.5 s; otherwise after min_dwell_s, 1 s."""
    f = fusion(PLAIN)
    for k in range(8):  # in a, 100 .. 103.5; ga reports first, then gb
        t = 100.0 + 0.5 * k
        for gw, rssi in (("ga", -60.0), ("gb", -70.0)):
            f.observe(M, gw, rssi, t, hints.get((t, gw)))
        f.tick(t)
    assert f.state_of(M) == (ZoneState.IN, "a")
    changes = [c for k in range(4) for c in hear(f, 104.5 + 0.5 * k, ga=-60.0, gb=-58.0)]
    assert [(c.zone, c.action, c.ts) for c in changes] == [
        ("a", "leave", switch_at),
        ("b", "enter", switch_at),
    ]


def in_a_then(
    f: ZoneFusion, leads: list[float], hints: list[bool | None], t0: float = 104.5
) -> list[ZoneChange]:
    """In a from 101 (heard from 100, min dwell 1 s; no hint), a report of both gateways and
    a tick every 0.5 s to 104; then b leads by ``leads[k]`` dB at ``t0 + 0.5 k``, with the
    motion hint ``hints[k]`` (the last one repeats)."""
    for k in range(9):
        hear(f, 100.0 + 0.5 * k, ga=-60.0, gb=-70.0)
    assert f.state_of(M) == (ZoneState.IN, "a")
    changes: list[ZoneChange] = []
    for k, lead in enumerate(leads):
        changes += hear(f, t0 + 0.5 * k, ga=-60.0, gb=-60.0 + lead, moving=hints[min(k, len(hints) - 1)])
    return changes


@pytest.mark.parametrize(
    ("lead", "hints", "switch_at"),
    [
        (2.0, [None], 105.5),
        (2.0, [True], 105.0),
        (2.0, [False], 108.0),
        (2.0, [True, False], 108.0),
        (2.0, [False, True, False], 108.0),
        (3.0, [False], 106.5),
        (4.0, [False], 106.0),
        (10.0, [False], 105.5),
    ],
    ids=[
        "no hint",
        "walking",
        "still",
        "walking once, then still",
        "still, one wrong walking",
        "still, lead 3",
        "still, lead 4",
        "still, lead 10",
    ],
)
def test_a_phone_known_to_stand_still_switches_once_its_summed_lead_is_enough(
    lead: float, hints: list[bool | None], switch_at: float
) -> None:
    """Hysteresis 2, min dwell 1 s, settle 4 s, the walking dwell 0.5 s; b leads from 104.5 on
    reports every 0.5 s. Without a hint: the clear lead for min_dwell_s, 105.5. Walking (said
    for walking_confirm_s, 0.5 s, by 105.0): the walking dwell, 105.0. A phone whose hint
    says still — or says "walking" once among "still" (at 104.5, or at 105.0 where it would
    end the walking dwell): not said for 0.5 s, so not walking — needs its lead less a
    quarter of the margin (0.5), summed over the 0.5 s per tick, to reach (2 - 0.5) x 4 s = 6,
    and at least min_dwell_s: lead 2 adds 0.75 a tick, 6 at the 8th tick (108.0, before the
    settle at 108.5); lead 3 adds 1.25, 6.25 at the 5th (106.5); lead 4 adds 1.75, 7 at the
    4th (106.0); lead 10 adds 4.75, 9.5 at the 2nd, but min_dwell_s holds it to 105.5."""
    f = fusion(PLAIN)
    changes = in_a_then(f, [lead] * 10, hints)
    assert [(c.zone, c.action, c.ts) for c in changes] == [
        ("a", "leave", switch_at),
        ("b", "enter", switch_at),
    ]


@pytest.mark.parametrize(
    ("hint", "switches"),
    [(False, []), (None, [("b", 105.5), ("a", 107.0), ("b", 108.5), ("a", 110.0)])],
    ids=["still", "no hint"],
)
def test_a_still_phone_does_not_follow_a_lead_that_swings_about_zero(
    hint: bool | None, switches: list[tuple[str, float]]
) -> None:
    """b leads by 3 (past the hysteresis, 2) for 1.5 s, then a by 3 for 1.5 s, four times
    from 104.5 to 110.0. Without a hint each swing holds past min_dwell_s (1 s), so the zone
    follows each one at its third tick: b at 105.5, a at 107.0, b at 108.5, a at 110.0.
    Still: b's summed lead gains (3 - 0.5) x 0.5 = 1.25 a tick and loses (3 + 0.5) x 0.5 =
    1.75, so it peaks at 3.75, short of 6; a slight lead never lasts the settle_s (4 s) either."""
    f = fusion(PLAIN)
    leads = [3.0, 3.0, 3.0, -3.0, -3.0, -3.0] * 2
    changes = in_a_then(f, leads, [hint])
    assert [(c.zone, c.ts) for c in changes if c.action == "enter"] == switches


@pytest.mark.parametrize(("tick_at", "enters"), [(104.0, True), (104.5, False)])
def test_a_reading_counts_until_it_is_stale_s_old(tick_at: float, enters: bool) -> None:
    f = fusion(PLAIN)
    assert hear(f, 100.0, ga=-60.0) == []  # a, from 100 (min dwell 1 s)
    assert f.tick(tick_at) == ([ZoneChange(M, "a", "enter", tick_at, 1.0)] if enters else [])


@pytest.mark.parametrize(
    ("readings", "zone", "confidence"),
    [
        ((-60.0, -61.0), "a", 0.731),  # 1 / (1 + e^-1)
        ((-61.0, -60.0), "b", 0.731),
        ((-60.0, -62.0), "a", 0.881),  # 1 / (1 + e^-2)
        ((-60.0, None), "a", 1.0),  # b unheard: no evidence for it at all
    ],
)
def test_an_enter_carries_the_zones_share_of_the_evidence(
    readings: tuple[float, float | None], zone: str, confidence: float
) -> None:
    f = fusion(PLAIN)
    changes = [c for t in (0.0, 0.5, 1.0) for c in hear(f, t, *readings)]
    assert changes == [ZoneChange(M, zone, "enter", 1.0, confidence)]


def test_in_a_store_with_one_zone_entering_it_is_certain() -> None:
    f = ZoneFusion(ZoneModel(one_room()), PARAMS)
    changes = [c for t in (0.0, 0.5, 1.0) for c in hear(f, t, ga=-80.0)]
    assert changes == [ZoneChange(M, "a", "enter", 1.0, 1.0)]


@pytest.mark.parametrize(
    ("late_ts", "zone"), [(99.5, "a"), (100.0, "b")], ids=["older, delayed", "same instant"]
)
def test_each_gateways_latest_reading_counts(late_ts: float, zone: str) -> None:
    """ga's -90 arrives last: a delayed, older reading is ignored; one for the same instant
    (re-sent) replaces the first."""
    f = fusion(PLAIN)
    f.observe(M, "ga", -60.0, 100.0)
    f.observe(M, "gb", -70.0, 100.0)
    f.observe(M, "ga", -90.0, late_ts)
    assert f.tick(100.0) == []
    assert [(c.zone, c.action) for c in f.tick(101.0)] == [(zone, "enter")]


# -- forgetting ----------------------------------------------------------------------------------


def test_someone_heard_too_briefly_to_enter_is_forgotten_after_the_away_timeout() -> None:
    f = fusion()
    assert hear(f, 0.0, ga=level(5, 5, (5, 5))) == []  # gone before the min dwell
    assert f.tick(9.5) == [] and f.members() == [M]
    assert f.tick(10.0) == [] and f.members() == []  # no leave: they never entered


def test_a_member_unknown_for_fifteen_minutes_is_forgotten_without_an_event() -> None:
    f = fusion()
    stand(f, 5, 5, 0.0, 5)
    f.gateway_state("ga", False)
    assert f.tick(100.0) == []  # unknown from 100
    assert f.tick(1000.0) == [] and f.state_of(M) == (ZoneState.UNKNOWN, "a")  # 900 s: kept
    assert f.tick(1000.5) == [] and f.members() == []


def test_members_beyond_the_bound_drop_the_one_heard_longest_ago() -> None:
    f = ZoneFusion(ZoneModel(PLAIN), PARAMS, max_members=3)
    for name, ts in (("m_a", 1.0), ("m_b", 2.0), ("m_c", 3.0), ("m_a", 4.0), ("m_d", 5.0)):
        f.observe(name, "ga", -60.0, ts)
    assert sorted(f.members()) == ["m_a", "m_c", "m_d"]  # not m_b, last heard at 2


def test_ten_thousand_members_by_default() -> None:
    f = ZoneFusion(ZoneModel(PLAIN), PARAMS)
    for i in range(10_001):
        f.observe(f"m_{i:08x}", "ga", -60.0, float(i))
    assert len(f.members()) == 10_000 and "m_00000000" not in f.members()


# -- gateways that are down, or never heard from ---------------------------------------------------


@pytest.mark.parametrize(
    ("gb_status", "after"),
    [(True, [ZoneChange(M, "a", "leave", 11.5, 1.0)]), (None, []), (False, [])],
    ids=["gb up", "gb never heard from", "gb down"],
)
def test_silence_is_a_leave_only_when_every_gateway_is_known_to_be_up(
    gb_status: bool | None, after: list[ZoneChange]
) -> None:
    f = ZoneFusion(ZoneModel(two_rooms()), PARAMS)
    f.gateway_state("ga", True)
    if gb_status is not None:
        f.gateway_state("gb", gb_status)  # its retained status; gb never hears the member
    entered = [c for t in (0.0, 0.5, 1.0, 1.5) for c in hear(f, t, ga=level(5, 5, (5, 5)))]
    assert [(c.zone, c.action, c.ts) for c in entered] == [("a", "enter", 1.0)]
    assert f.tick(1.5 + 10.0) == after
    assert f.state_of(M) == ((ZoneState.AWAY, None) if after else (ZoneState.UNKNOWN, "a"))


QUIET = row_of_rooms(sensitivity=-80.0)
SNAPSHOT_AND_FILTERS = pytest.mark.parametrize(
    "params",
    [PARAMS, replace(PARAMS, time_filter=True), replace(PARAMS, zone_filter=True)],
    ids=["snapshot", "time filter", "zone filter"],
)


@SNAPSHOT_AND_FILTERS
@pytest.mark.parametrize(
    ("gb_status", "state"),
    [(True, (ZoneState.IN, "a")), (None, (ZoneState.UNKNOWN, None)), (False, (ZoneState.UNKNOWN, None))],
    ids=["gb up", "gb never heard from", "gb down"],
)
def test_a_silent_gateway_that_is_up_rules_its_zone_out(
    params: FusionParams, gb_status: bool | None, state: tuple[ZoneState, str | None]
) -> None:
    """ga hears the phone as from 7 m away. Alone, that fits b (more of the 7 m circle round
    ga lies in b than in a's corners). But gb, which would hear a phone anywhere in b above
    its -80 dBm sensitivity, hears nothing: if gb is up, the member is in a; if it is down or
    was never heard from, its silence says nothing, and b, the best guess, has no gateway up
    to watch it: "unknown", no event."""
    heard = level(12, 5, (5, 5))
    model = ZoneModel(QUIET, params.sigma_db)
    alone, with_silence = model.scores({"ga": heard}), model.scores({"ga": heard}, ["gb"])
    assert alone[1] > alone[0] and with_silence[0] > with_silence[1]
    f = ZoneFusion(model, params)
    f.gateway_state("ga", True)
    if gb_status is not None:
        f.gateway_state("gb", gb_status)
    changes = [c for k in range(6) for c in hear(f, 0.5 * k, ga=heard)]
    assert [(c.zone, c.action) for c in changes] == ([("a", "enter")] if state[0] is ZoneState.IN else [])
    assert f.state_of(M) == state


@SNAPSHOT_AND_FILTERS
def test_a_zone_too_small_for_a_grid_cell_is_never_chosen(params: FusionParams) -> None:
    """The kiosk holds no cell: its evidence is nil (log 0, quietly), whatever is heard."""
    model = ZoneModel(row_of_rooms(kiosk=True), params.sigma_db)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = model.scores({"ga": level(5, 5, (5, 5)), "gb": level(5, 5, (15, 5))})
    assert len(scores) == 3 and scores[2] == -math.inf and scores[0] > scores[1]
    f = ZoneFusion(model, params)
    changes = stand(f, 5, 5, 0.0, 3)
    assert [(c.zone, c.action) for c in changes] == [("a", "enter")]
    assert f.state_of(M) == (ZoneState.IN, "a")


# -- the settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("survey", [None, Path("survey.json")], ids=["path-loss", "surveyed"])
def test_every_setting_given_in_the_config_reaches_the_fuser(survey: Path | None) -> None:
    given = {
        "stale_s": 6.0,
        "hysteresis": 5.0,
        "min_dwell_s": 2.5,
        "away_timeout_s": 30.0,
        "sigma_db": 3.0,
        "settle_s": 7.0,
        "walking_hysteresis": 0.7,
        "walking_min_dwell_s": 0.25,
        "walking_settle_s": 1.5,
    }
    params = FusionParams.from_config(BlePresenceConfig.model_validate({**given, "survey": survey}))
    assert {k: getattr(params, k) for k in given} == given


# -- the evidence model: offsets, the survey, the per-zone sums ---------------------------------


@pytest.mark.parametrize("offset_sd", [0.5, 1.0, 3.0])
def test_an_unknown_common_offset_widens_a_single_readings_spread(offset_sd: float) -> None:
    """One reading, pred + offset (tau) + noise (sigma): it is Gaussian with variance
    sigma² + tau², so a cell's log-likelihood is -err² / (2 (sigma² + tau²))."""
    model = ZoneModel(two_rooms(), 4.0, offset_sd_db=offset_sd)
    near = _pred((4.75, 4.75), (5, 5))
    ll = model.loglik({"ga": near})
    far = _pred((0.25, 0.25), (5, 5))
    assert ll[189] == pytest.approx(0.0)
    assert ll[0] == pytest.approx(-((far - near) ** 2) / (2 * (4.0**2 + offset_sd**2)))


def test_with_an_offset_a_silent_gateway_expects_the_phone_as_loud_as_the_readings_say() -> None:
    """Heard 6 dB louder than cell 189 predicts, with tau = sigma = 4 dB: the offset's posterior
    mean there is 6 tau² / (tau² + sigma²) = 3 dB, so the silent gb is expected 3 dB louder too."""
    model = ZoneModel(QUIET, 4.0, offset_sd_db=4.0)
    cell = (4.75, 4.75)
    ll = model.loglik({"ga": _pred(cell, (5, 5)) + 6.0}, ["gb"])
    heard = -(6.0**2) / (2 * (4.0**2 + 4.0**2))
    z = (-80.0 - (_pred(cell, (15, 5)) + 3.0)) / 4.0  # the sensitivity, in sigmas from the expectation
    below = 0.5 * (1 + math.erf(z / math.sqrt(2)))  # the normal CDF
    assert ll[189] == pytest.approx(heard + math.log(0.2 + 0.8 * below))


def test_a_site_survey_adds_its_residual_to_the_path_loss_prediction() -> None:
    survey = SurveyMap(grid_m=1.0, residual_db={"ga": np.full((20, 10), 6.0)})  # ga: 6 dB louder
    model = ZoneModel(two_rooms(), 4.0, survey)
    near, far = _pred((4.75, 4.75), (5, 5)), _pred((0.25, 0.25), (5, 5))
    ll = model.loglik({"ga": near + 6.0, "gb": _pred((4.75, 4.75), (15, 5))})
    assert ll[189] == pytest.approx(0.0)
    assert ll[0] == pytest.approx(
        -((far - near) ** 2 + (_pred((0.25, 0.25), (15, 5)) - _pred((4.75, 4.75), (15, 5))) ** 2)
        / (2 * 4.0**2)
    )


@pytest.mark.parametrize(("b_above", "expected"), [(0.0, (0.0, 0.0)), (math.log(3), (0.0, math.log(3)))])
def test_a_zones_score_is_the_log_of_its_cells_summed_probabilities(
    b_above: float, expected: tuple[float, float]
) -> None:
    """400 cells a room, each e^-1000 (b's e^-1000 · e^b_above): log(400 e^-1000) and so on —
    however unlikely every cell is."""
    model = ZoneModel(two_rooms())
    logp = np.full(model.cells, -1000.0)
    logp[400:] += b_above
    assert model.zone_log(logp) == pytest.approx(np.array(expected) + math.log(400) - 1000.0)


# -- the time filter ------------------------------------------------------------------------------


def _cell(x: float, y: float) -> int:
    """two_rooms' cell holding (x, y): 400 a room, x outer, y inner."""
    ix, iy = int(x / 0.5), int(y / 0.5)
    return (ix * 20 + iy) if ix < 20 else 400 + (ix - 20) * 20 + iy


@pytest.mark.parametrize(("speed", "dt", "sigma_cells"), [(1.0, 1.0, 2.0), (0.5, 1.0, 1.0), (0.25, 2.0, 1.0)])
def test_walking_blurs_a_point_by_a_gaussian_of_speed_times_time(
    speed: float, dt: float, sigma_cells: float
) -> None:
    """Around (5.25, 5.25), far from the walls: a cell dx, dy cells away gets
    exp(-(dx² + dy²) / (2 sigma²)) of the centre's mass, sigma = speed · dt (in cells)."""
    model = ZoneModel(two_rooms())
    centre = _cell(5.25, 5.25)
    p = np.exp(model.spread(_delta(model, centre), dt, FusionParams(speed_m_s=speed, jump_per_s=1e-12)))
    assert p.sum() == pytest.approx(1.0)
    for dx, dy in ((1, 0), (0, 1), (-1, 1), (2, 0), (-2, -1), (0, -3)):
        ratio = p[_cell(5.25 + 0.5 * dx, 5.25 + 0.5 * dy)] / p[centre]
        assert ratio == pytest.approx(math.exp(-(dx * dx + dy * dy) / (2 * sigma_cells**2)), rel=1e-6)


def test_moving_at_most_a_fifth_of_a_cell_is_not_spreading() -> None:
    model = ZoneModel(two_rooms())
    centre = _cell(5.25, 5.25)
    still = FusionParams(speed_m_s=0.2, jump_per_s=1e-12)  # 0.1 m in 0.5 s: 0.2 of a cell
    p = np.exp(model.spread(_delta(model, centre), 0.5, still))
    assert p[centre] == pytest.approx(1.0) and np.delete(p, centre).max() < 1e-9


@pytest.mark.parametrize(("speed", "dt"), [(1.0, 1.0), (0.5, 1.0), (1.0, 10.0)])
def test_walking_keeps_a_uniform_posterior_uniform(speed: float, dt: float) -> None:
    """Anywhere is as likely after walking as before: no mass piles up at the walls or leaks
    off the floor."""
    model = ZoneModel(two_rooms())
    p = np.exp(model.spread(np.zeros(model.cells), dt, FusionParams(speed_m_s=speed)))
    assert p == pytest.approx(np.full(model.cells, 1 / model.cells), rel=1e-9)


@pytest.mark.parametrize(
    ("ticks", "evidence_s", "weight"),
    [((100.0, 100.5, 101.0), 1.0, 2.0), ((100.0, 102.0), 1.0, 2.0), ((100.0, 100.5, 101.0), 2.0, 1.5)],
    ids=["every 0.5 s", "a 2 s gap counts once", "evidence_s 2"],
)
def test_the_time_filter_weighs_each_update_by_its_share_of_evidence_s(
    ticks: tuple[float, ...], evidence_s: float, weight: float
) -> None:
    """Standing still (no walking, no jumps), the posterior is the evidence to the power of
    the summed weights: the first update counts once, each later one dt / evidence_s, at most
    once. The enter's confidence is the zone's share of that posterior."""
    params = replace(PARAMS, time_filter=True, speed_m_s=0.0, jump_per_s=1e-12, evidence_s=evidence_s)
    f = fusion(params=params)
    readings = {"ga": level(10.6, 5, (5, 5)), "gb": level(10.6, 5, (15, 5))}
    changes = [c for t in ticks for c in hear(f, t, readings["ga"], readings["gb"])]
    zones = f.model.zone_log(weight * f.model.loglik(readings))
    assert changes == [ZoneChange(M, "b", "enter", ticks[-1], softmax_share(list(zones - zones.max()), 1))]
