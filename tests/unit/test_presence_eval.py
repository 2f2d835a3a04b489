"""The presence evaluation: metrics on hand-made timelines, and the whole path on the RF
model (fixed seeds, so the figures are exact for this code, not a matter of luck)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from bench.presence_eval import (
    demo_walks,
    evaluate,
    neighbours,
    read_truth,
    run_eval,
    strongest_receiver,
    write_trace,
    write_truth,
)
from edge_agent.ble.frames import encode_ibeacon
from floorwalker.config import StoreConfig
from floorwalker.errors import ConfigError
from presence.fuser import resolver_for
from presence.positions import PositionSample
from presence.zone_fusion import ZoneChange
from simulators.ble_radio import RadioModel

M = "m_702cc64d"


def truth(zones: list[str]) -> list[PositionSample]:
    """One sample per second."""
    return [PositionSample(float(i), "s1", M, 1.0, 1.0, z) for i, z in enumerate(zones)]


def enter(zone: str, ts: float) -> ZoneChange:
    return ZoneChange(M, zone, "enter", ts, 1.0)


def leave(zone: str, ts: float) -> ZoneChange:
    return ZoneChange(M, zone, "leave", ts, 1.0)


def test_metrics_on_a_hand_made_timeline(store_config: StoreConfig) -> None:
    t = truth(["entrance"] * 10 + ["produce"] * 10)
    # Each zone noticed 2 s late.
    r = evaluate(store_config, [enter("entrance", 2), leave("entrance", 12), enter("produce", 12)], t)
    assert r.samples == 20
    assert r.accuracy == pytest.approx(16 / 20)
    assert r.median_delay_s == pytest.approx(2.0)
    assert r.stays == 2 and r.missed_stays == 0
    assert sorted(r.confusion) == [("entrance", "away", 2), ("produce", "entrance", 2)]
    assert r.neighbour_share_of_errors == 0.5  # entrance borders produce; "away" borders nothing


def test_a_stay_never_recognized_is_missed(store_config: StoreConfig) -> None:
    r = evaluate(store_config, [enter("entrance", 0)], truth(["entrance"] * 10 + ["dairy"] * 10))
    assert r.missed_stays == 1 and r.accuracy == 0.5
    assert r.neighbour_share_of_errors == 0.0  # dairy does not border entrance


def test_neighbours_of_the_demo_store(store_config: StoreConfig) -> None:
    near = neighbours(store_config)
    assert ("produce", "pantry") in near and ("entrance", "checkout") in near
    assert ("entrance", "dairy") not in near


def test_walks_stay_inside_zones_and_files_round_trip(store_config: StoreConfig, tmp_path: Path) -> None:
    walks = demo_walks(store_config, [M, "m_1d54fa96"], start=1_800_000_000.0, stops=2, seed=5)
    assert {s.member for s in walks} == {M, "m_1d54fa96"}
    for s in walks:
        zone = store_config.zone_at((s.x, s.y))
        assert zone is not None and zone.id == s.zone
    write_truth(tmp_path / "truth.jsonl", walks)
    assert read_truth(tmp_path / "truth.jsonl") == walks


def test_bad_files_are_named(store_config: StoreConfig, tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text('{"ts": 1, "gateway": "gw-entrance", "rssi": -60}\n')
    (tmp_path / "truth.jsonl").write_text(json.dumps({"ts": 1}) + "\n")
    with pytest.raises(ConfigError, match=r"truth.jsonl:1: not a position sample"):
        run_eval(store_config, resolver_for(store_config), tmp_path / "t.jsonl", tmp_path / "truth.jsonl")
    write_truth(tmp_path / "truth.jsonl", [])
    with pytest.raises(ConfigError, match=r"t.jsonl:1: not an advertisement record"):
        run_eval(store_config, resolver_for(store_config), tmp_path / "t.jsonl", tmp_path / "truth.jsonl")


def test_walks_through_the_rf_model_find_the_right_zones(store_config: StoreConfig, tmp_path: Path) -> None:
    """Three members, seeded: the fused zone is right most of the time and changes are seen
    within seconds (the full figures come from `floorwalker eval presence`)."""
    assert store_config.ble_presence.secrets is not None
    key = bytes.fromhex(json.loads(store_config.ble_presence.secrets.read_text())["store_key"])
    walks = demo_walks(store_config, [M, "m_1d54fa96", "m_1a459b48"], start=1_800_000_000.0, stops=3, seed=11)
    write_trace(tmp_path / "trace.jsonl", RadioModel(store_config, key, seed=11).hear(walks))
    write_truth(tmp_path / "truth.jsonl", walks)
    result = run_eval(
        store_config, resolver_for(store_config), tmp_path / "trace.jsonl", tmp_path / "truth.jsonl"
    )
    r = result.report
    assert result.baseline.samples == r.samples  # the baseline is always scored beside it
    assert r.accuracy > 0.8
    assert r.median_delay_s is not None and r.median_delay_s < 3.0
    assert r.missed_stays <= 1


def _ibeacon_trace(store_config: StoreConfig, tmp_path: Path, gateway: str = "gw-entrance") -> None:
    adv = encode_ibeacon(uuid.UUID(int=7), 1, 2, -59).hex()
    with (tmp_path / "t.jsonl").open("w") as fh:
        for k in range(40):
            fh.write(json.dumps({"ts": T + 0.5 * k, "gateway": gateway, "rssi": -50, "adv": adv}) + "\n")
    walk = [PositionSample(T + 0.5 * k, "s", "tag-1", 4.0, 3.0, "entrance") for k in range(40)]
    write_truth(tmp_path / "truth.jsonl", walk)


T = 1_800_000_000.0


def test_an_ibeacon_trace_is_scored_not_silently_zero(store_config: StoreConfig, tmp_path: Path) -> None:
    """Issue 22, item 1: iBeacon adverts count for the (only) truth member."""
    _ibeacon_trace(store_config, tmp_path)
    result = run_eval(
        store_config, resolver_for(store_config), tmp_path / "t.jsonl", tmp_path / "truth.jsonl"
    )
    assert result.beacons == {f"ibeacon:{uuid.UUID(int=7)}:1:2": "tag-1"}
    assert result.report.accuracy > 0.8 and result.baseline.accuracy > 0.8


def test_unknown_gateways_and_unresolved_traces_are_errors(store_config: StoreConfig, tmp_path: Path) -> None:
    _ibeacon_trace(store_config, tmp_path, gateway="gw-elsewhere")
    with pytest.raises(ConfigError, match=r"not in store .demo-store. \(gw-elsewhere\)"):
        run_eval(store_config, resolver_for(store_config), tmp_path / "t.jsonl", tmp_path / "truth.jsonl")
    _ibeacon_trace(store_config, tmp_path)
    walk = [
        PositionSample(T, "s", "a", 4.0, 3.0, "entrance"),
        PositionSample(T, "t", "b", 4.0, 3.0, "entrance"),
    ]
    write_truth(tmp_path / "truth.jsonl", walk)  # two members, one beacon named like neither
    with pytest.raises(ConfigError, match=r"none of its 40 adverts resolved.*40 ibeacon:"):
        run_eval(store_config, resolver_for(store_config), tmp_path / "t.jsonl", tmp_path / "truth.jsonl")


def test_no_sample_near_a_border_is_not_applicable(store_config: StoreConfig) -> None:
    """Issue 22, item 6: no sample near a border gives None ("n/a"), not 0 %."""
    far = [PositionSample(T, "s", M, 15.0, 13.0, "pantry")]
    r = evaluate(store_config, [ZoneChange(M, "pantry", "enter", T - 1, 1.0)], far)
    assert (r.accuracy, r.boundary_samples, r.boundary_accuracy) == (1.0, 0, None)
    assert r.per_zone["pantry"].precision == 1.0 and r.per_zone["pantry"].recall == 1.0


def test_strongest_receiver_baseline_names_the_loudest_gateways_zone(store_config: StoreConfig) -> None:
    obs = [(M, "gw-entrance", -50.0, T), (M, "gw-checkout", -70.0, T), (M, "gw-checkout", -40.0, T + 1)]
    changes = strongest_receiver(store_config, obs)
    assert [(c.zone, c.action) for c in changes] == [
        ("entrance", "enter"),
        ("entrance", "leave"),
        ("checkout", "enter"),
    ]
