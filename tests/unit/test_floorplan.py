"""The layout as the simulators walk it, and layout mistakes named by file and key."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from floorwalker import geometry
from floorwalker.config import load_store_config
from floorwalker.errors import ConfigError
from simulators.floorplan import build_floorplan
from tests.conftest import DEMO_STORE

BIG_STORE = DEMO_STORE.parent / "big_store.yaml"


def test_demo_store_adjacency_comes_from_shared_walls() -> None:
    plan = build_floorplan(load_store_config(DEMO_STORE))
    assert plan.neighbours["entrance"] == ("checkout", "produce")
    assert plan.neighbours["dairy"] == ("beauty", "pantry")
    assert "dairy" not in plan.neighbours["produce"]  # no shared wall
    assert plan.entrance_zones == ("entrance",) and plan.checkout_zone == "checkout"
    # The door between two zones lies on both outlines' shared wall.
    assert plan.door("produce", "pantry") == (10.0, 13.0)


def test_big_store_has_twenty_connected_zones() -> None:
    config = load_store_config(BIG_STORE)
    plan = build_floorplan(config)
    assert len(config.zones) == 20
    rng = random.Random(3)
    for zone in plan.polygons:
        for _ in range(20):
            assert geometry.contains(plan.polygons[zone], plan.random_point(zone, rng))


def _write(tmp_path: Path, mutate: object) -> Path:
    raw = yaml.safe_load(DEMO_STORE.read_text())
    raw["crm"] = str(DEMO_STORE.parent / raw["crm"])
    mutate(raw)  # type: ignore[operator]
    path = tmp_path / "store.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _zone(raw: dict[str, list[dict[str, object]]], zid: str) -> dict[str, object]:
    return next(z for z in raw["zones"] if z["id"] == zid)


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda r: _zone(r, "dairy").update(polygon=[[18, 12], [30, 12], [30, 20], [18, 20]]), "overlap"),
        (lambda r: _zone(r, "dairy").update(polygon=[[20, 12], [30, 20], [30, 12], [20, 20]]), "cross"),
        (lambda r: _zone(r, "dairy").update(polygon=[[20, 12], [30, 12]]), "zones.3.polygon"),
        (lambda r: r["gateways"][0].update(position=[40, 3]), "position (40.0, 3.0) lies outside the floor"),
        (lambda r: r.update(simulation={"doors": [["dairy", "attic"]]}), "simulation.doors[0]: unknown zone"),
        (
            lambda r: r.update(simulation={"zones": {"attic": {"dwell_s": 5}}}),
            "simulation.zones: unknown zone",
        ),
        (lambda r: r.update(simulation={"open_hour": 20, "close_hour": 9}), "close_hour"),
    ],
)
def test_layout_errors_name_file_and_key(tmp_path: Path, mutate: object, needle: str) -> None:
    path = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        load_store_config(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_unreachable_zone_is_named(tmp_path: Path) -> None:
    def island(raw: dict[str, list[dict[str, object]]]) -> None:
        raw["floor"] = {"width_m": 40, "depth_m": 20}  # type: ignore[call-overload]
        raw["zones"].append({"id": "annex", "name": "Annex", "categories": ["tea"],
                             "polygon": [[32, 0], [40, 0], [40, 5], [32, 5]]})  # fmt: skip

    path = _write(tmp_path, island)
    with pytest.raises(ConfigError, match=r"zones: zone 'annex' cannot be reached .*simulation.doors"):
        build_floorplan(load_store_config(path), str(path))
    # A door makes it reachable.
    fixed = _write(tmp_path, lambda r: (island(r), r.update(simulation={"doors": [["annex", "dairy"]]})))
    plan = build_floorplan(load_store_config(fixed), str(fixed))
    assert "dairy" in plan.neighbours["annex"]
