"""Which associate's handheld gets a prompt: whoever looks after the zone or the lane."""

from __future__ import annotations

from floorwalker.config import StoreConfig


class Router:
    def __init__(self, config: StoreConfig) -> None:
        self._by_zone: dict[str, str] = {}
        for associate in config.associates:
            for zone in associate.zones:
                self._by_zone.setdefault(zone, associate.id)
        self._by_lane = {lane.id: lane.associate for lane in config.lanes}
        self._lead = config.floor_lead

    def for_zone(self, zone: str) -> str:
        return self._by_zone.get(zone, self._lead)

    def for_lane(self, lane: str) -> str:
        return self._by_lane.get(lane, self._lead)
