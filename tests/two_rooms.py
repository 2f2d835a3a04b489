"""The smallest store the BLE tests share: two rooms side by side, a gateway in each."""

from __future__ import annotations

from typing import Any

from floorwalker.config import StoreConfig

#: The gateways' path-loss model (1 m power, exponent) when ``path_loss`` is asked for.
POWER, N = -59.0, 2.0


def two_rooms(*, floor: bool = True, path_loss: bool = True) -> StoreConfig:
    """Zones a (x 0..10) and b (x 10..20), a gateway in the middle of each. ``floor``: a
    floor plan (the zones' polygons); ``path_loss``: the gateways carry POWER and N,
    else the config's defaults."""
    zones: list[dict[str, Any]] = [
        {"id": "a", "name": "A", "polygon": [[0, 0], [10, 0], [10, 10], [0, 10]]},
        {"id": "b", "name": "B", "polygon": [[10, 0], [20, 0], [20, 10], [10, 10]]},
    ]
    if not floor:
        for z in zones:
            del z["polygon"]
    ble = {"ble": {"measured_power_dbm": POWER, "path_loss_exponent": N}} if path_loss else {}
    gateways = [
        {"id": gid, "zones": [zone], "position": pos, **ble}
        for gid, zone, pos in (("ga", "a", [5, 5]), ("gb", "b", [15, 5]))
    ]
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
