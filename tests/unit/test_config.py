"""Store config validation: every mistake names the file, the key and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from floorwalker.config import load_store_config
from floorwalker.errors import ConfigError
from tests.conftest import DEMO_STORE

BASE = {
    "store": "s1",
    "name": "Store",
    "zones": [{"id": "a", "name": "A", "categories": ["tea"]}, {"id": "b", "name": "B"}],
    "gateways": [{"id": "gw-1", "zones": ["a", "b"]}],
    "lanes": [{"id": "lane-1", "pos": "pos-1", "associate": "x"}],
    "associates": [{"id": "x", "display_name": "X", "zones": ["a"]}],
    "floor_lead": "x",
}


def write(tmp_path: Path, **changes: object) -> Path:
    path = tmp_path / "store.yaml"
    path.write_text(yaml.safe_dump({**BASE, **changes}))
    return path


def test_demo_store_loads_and_resolves_its_crm_path() -> None:
    config = load_store_config(DEMO_STORE)
    assert config.store == "demo-store"
    assert config.crm is not None and config.crm.is_absolute() and config.crm.exists()


@pytest.mark.parametrize(
    ("changes", "key", "problem"),
    [
        ({"store": "Store One"}, "store", "pattern"),
        ({"zones": [{"id": "a", "name": "A"}, {"id": "a", "name": "A2"}]}, "zones", "duplicate id 'a'"),
        ({"gateways": [{"id": "gw-1", "zones": []}]}, "gateways.0.zones", "at least 1"),
        (
            {"lanes": [{"id": "lane-1", "pos": "pos-1", "associate": "nobody"}]},
            "",
            "unknown associate 'nobody'",
        ),
        ({"associates": [{"id": "x", "display_name": "X", "zones": ["roof"]}]}, "", "unknown zone 'roof'"),
        ({"floor_lead": "y"}, "", "floor_lead 'y'"),
        ({"rules": {"replenish_from": 2.0, "replenish_until": 1.5}}, "rules", "replenish_until"),
        ({"rules": {"vip_tier": ["gold"]}}, "rules.vip_tier", "Extra inputs"),
        ({"colour": "red"}, "colour", "Extra inputs"),
        # The layout: polygons, a floor they lie on, no overlaps, devices on the floor.
        (
            {"zones": [{"id": "a", "name": "A", "polygon": [[0, 0], [4, 4], [4, 0], [0, 4]]}]},
            "zones.0.polygon",
            "cross each other",
        ),
        ({"floor": {"width_m": 10, "depth_m": 10}}, "", "needs a polygon per zone"),
        (
            {
                "floor": {"width_m": 10, "depth_m": 10},
                "zones": [
                    {"id": "a", "name": "A", "polygon": [[0, 0], [6, 0], [6, 6], [0, 6]]},
                    {"id": "b", "name": "B", "polygon": [[5, 5], [9, 5], [9, 9], [5, 9]]},
                ],
            },
            "",
            "zones 'a' and 'b' overlap",
        ),
        (
            {
                "floor": {"width_m": 10, "depth_m": 10},
                "zones": [
                    {"id": "a", "name": "A", "polygon": [[0, 0], [5, 0], [5, 10], [0, 10]]},
                    {"id": "b", "name": "B", "polygon": [[5, 0], [10, 0], [10, 10], [5, 10]]},
                ],
                "gateways": [{"id": "gw-1", "zones": ["a"], "position": [12, 3]}],
            },
            "",
            "gateway 'gw-1': position (12.0, 3.0) lies outside the floor",
        ),
        ({"entrances": [{"id": "door", "zone": "cellar", "position": [0, 0]}]}, "", "unknown zone 'cellar'"),
    ],
)
def test_invalid_config_names_key_and_problem(
    tmp_path: Path, changes: dict[str, object], key: str, problem: str
) -> None:
    path = write(tmp_path, **changes)
    with pytest.raises(ConfigError) as err:
        load_store_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {key}")
    assert problem in message


def test_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such store config file"):
        load_store_config(tmp_path / "nope.yaml")


def test_roles_and_engine_paths(tmp_path: Path) -> None:
    demo = load_store_config(DEMO_STORE)
    assert [a.id for a in demo.associates if a.role == "manager"] == ["a-amy"]
    assert all(a.role == "associate" for a in demo.associates if a.id != "a-amy")
    path = write(tmp_path, catalog="my-catalog.yaml", propensity_model="models/p.onnx")
    config = load_store_config(path)
    assert config.catalog == (tmp_path / "my-catalog.yaml").resolve()
    assert config.propensity_model == (tmp_path / "models" / "p.onnx").resolve()
    bad = write(tmp_path, associates=[{"id": "x", "display_name": "X", "role": "boss"}])
    with pytest.raises(ConfigError, match=r"associates\.0\.role"):
        load_store_config(bad)
