"""The BLE parts of the store config: the scanner is a typed union picked by `kind`, limits
are enforced with the key named, the key file path resolves next to the config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from floorwalker.config import BleakScannerConfig, ReplayScannerConfig, load_store_config
from floorwalker.errors import ConfigError
from tests.conftest import DEMO_STORE

BASE = {
    "store": "s1",
    "name": "Store",
    "zones": [{"id": "a", "name": "A"}],
    "gateways": [{"id": "gw-1", "zones": ["a"]}],
    "associates": [{"id": "x", "display_name": "X"}],
    "floor_lead": "x",
}


def write(tmp_path: Path, **changes: object) -> Path:
    path = tmp_path / "store.yaml"
    path.write_text(yaml.safe_dump({**BASE, **changes}))
    return path


def test_scanner_kinds(tmp_path: Path) -> None:
    gateways = [
        {"id": "gw-1", "zones": ["a"], "scanner": {"kind": "bleak", "adapter": "hci1", "passive": False}},
        {"id": "gw-2", "zones": ["a"], "scanner": {"kind": "replay", "path": "t.jsonl", "speed": 4}},
        {"id": "gw-3", "zones": ["a"]},
    ]
    config = load_store_config(write(tmp_path, gateways=gateways))
    one, two, three = (g.scanner for g in config.gateways)
    assert one == BleakScannerConfig(adapter="hci1", passive=False)
    assert two == ReplayScannerConfig(path=Path("t.jsonl"), speed=4)
    assert three is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"gateways": [{"id": "gw-1", "zones": ["a"], "scanner": {"kind": "usb"}}]},
            "gateways.0.scanner: Input tag 'usb'",
        ),
        (
            {"gateways": [{"id": "gw-1", "zones": ["a"], "scanner": {"kind": "replay"}}]},
            "gateways.0.scanner.replay.path: Field required",
        ),
        (
            {"ble_presence": {"eid_window_s": 3600}},
            "ble_presence.eid_window_s: Input should be less than or equal to 900",
        ),
        ({"ble_presence": {"fuser": "gw-1"}}, "ble_presence.fuser 'gw-1' is also a gateway id"),
        ({"ble_presence": {"hysterisis": 2}}, "ble_presence.hysterisis: Extra inputs"),
    ],
)
def test_mistakes_name_the_key(tmp_path: Path, changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=r"store\.yaml: ") as err:
        load_store_config(write(tmp_path, **changes))
    assert message in str(err.value)


def test_demo_store_key_file_resolves_next_to_it() -> None:
    secrets = load_store_config(DEMO_STORE).ble_presence.secrets
    assert secrets is not None and secrets.is_absolute() and secrets.exists()
