"""The gateway's BLE core: advertisements in, rate-limited sightings of ephemeral ids out.

Per advertisement: parse the frame, keep member-app and Eddystone-EID frames, check the
RSSI is physically possible, and fold it into that id's :class:`RssiFilter`. Every
``report_interval_s`` the gateway asks :meth:`SightingTable.report` for what is due: an id
heard since the last report whose smoothed RSSI moved by ``change_db`` or more, that is
new, or whose last report is ``heartbeat_s`` old. Nothing is published per advertisement.

The table is keyed by the ephemeral id and never sees a device address; ids unheard for
``forget_s`` are dropped, and at most ``max_ids`` are kept (the least recently heard go
first), so memory stays bounded whatever the radio hears. Pure; time is passed in.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Final

from edge_agent.ble.frames import AdFields, EddystoneEid, FrameError, MemberAdvert, classify, parse_ad
from edge_agent.ble.rssi import RssiFilter, distance_m, rssi_in_range
from floorwalker.config import BleCalibration

MAX_IDS: Final = 4096


@dataclass(frozen=True, slots=True)
class Advert:
    """One advertisement as a scanner heard it: raw AD bytes (replay) or bleak's fields."""

    ts: float
    rssi: float
    data: bytes | AdFields


@dataclass(frozen=True, slots=True)
class Sighting:
    eid: str
    rssi_dbm: float
    distance_m: float
    adverts: int
    last_seen: float
    moving: bool | None = None

    def fields(self) -> dict[str, object]:
        """The contract's ``BleSighting`` fields."""
        return {
            "eid": self.eid,
            "rssi_dbm": self.rssi_dbm,
            "distance_m": self.distance_m,
            "adverts": self.adverts,
            "last_seen": self.last_seen,
            "moving": self.moving,
        }


class _Track:
    __slots__ = (
        "adverts",
        "filter",
        "last_seen",
        "moving",
        "reported_at",
        "reported_moving",
        "reported_rssi",
    )

    def __init__(self, rssi: float, ts: float, moving: bool | None) -> None:
        self.filter = RssiFilter(rssi, ts)
        self.adverts = 1
        self.last_seen = ts
        self.moving = moving
        self.reported_rssi: float | None = None
        self.reported_moving: bool | None = None
        self.reported_at = 0.0


class SightingTable:
    def __init__(
        self,
        calibration: BleCalibration,
        *,
        change_db: float = 2.0,
        heartbeat_s: float = 3.0,
        forget_s: float = 30.0,
        max_ids: int = MAX_IDS,
    ) -> None:
        self.calibration = calibration
        self.change_db = change_db
        self.heartbeat_s = heartbeat_s
        self.forget_s = forget_s
        self.max_ids = max_ids
        self._tracks: dict[str, _Track] = {}
        self._last_report: float | None = None
        #: adverts, member, eddystone_eid, beacon, other, dropped:{reason}, evicted
        self.counters: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._tracks)

    def add(self, advert: Advert) -> str | None:
        """Fold in one advertisement; return the ephemeral id it carried (hex), if any."""
        counters = self.counters
        counters["adverts"] += 1
        if not rssi_in_range(advert.rssi):
            counters["dropped:rssi_range"] += 1
            return None
        try:
            fields = parse_ad(advert.data) if isinstance(advert.data, bytes) else advert.data
            frame = classify(fields)
        except FrameError as exc:
            counters[f"dropped:{exc.reason.value}"] += 1
            return None
        if isinstance(frame, MemberAdvert):
            counters["member"] += 1
        elif isinstance(frame, EddystoneEid):
            counters["eddystone_eid"] += 1
        else:
            counters["beacon" if frame is not None else "other"] += 1
            return None
        eid = frame.eid.hex()
        moving = frame.moving if isinstance(frame, MemberAdvert) else None
        track = self._tracks.get(eid)
        if track is None:
            if len(self._tracks) >= self.max_ids:
                self._evict()
            self._tracks[eid] = _Track(advert.rssi, advert.ts, moving)
        else:
            track.filter.update(advert.rssi, advert.ts)
            track.adverts += 1
            if advert.ts >= track.last_seen:
                track.last_seen = advert.ts
                track.moving = moving
        return eid

    def _evict(self) -> None:
        oldest = min(self._tracks, key=lambda k: self._tracks[k].last_seen)
        del self._tracks[oldest]
        self.counters["evicted"] += 1

    def report(self, now: float) -> tuple[float, list[Sighting]]:
        """What is due at ``now``: ``(seconds covered, sightings)``; resets advert counts."""
        window = now - self._last_report if self._last_report is not None else 0.0
        self._last_report = now
        cal = self.calibration
        due: list[Sighting] = []
        forgotten: list[str] = []
        for eid, t in self._tracks.items():
            if now - t.last_seen > self.forget_s:
                forgotten.append(eid)
                continue
            if t.adverts == 0:
                continue  # not heard since the last report: the fuser lets it go stale
            rssi = t.filter.rssi
            if (
                t.reported_rssi is None
                or abs(rssi - t.reported_rssi) >= self.change_db
                or now - t.reported_at >= self.heartbeat_s
                or t.moving != t.reported_moving  # started or stopped walking: say so now
            ):
                due.append(
                    Sighting(
                        eid,
                        round(rssi, 1),
                        round(distance_m(rssi, cal.measured_power_dbm, cal.path_loss_exponent), 2),
                        t.adverts,
                        t.last_seen,
                        t.moving,
                    )
                )
                t.reported_moving = t.moving
                t.reported_rssi = rssi
                t.reported_at = now
                t.adverts = 0
        for eid in forgotten:
            del self._tracks[eid]
        return max(window, 1e-3), due

    def summary(self) -> str:
        """One line for the gateway's status ``detail``."""
        c = self.counters
        dropped = ", ".join(
            f"{k.split(':', 1)[1]} {v}" for k, v in sorted(c.items()) if k.startswith("dropped:")
        )
        line = f"{c['adverts']} adverts, {c['member'] + c['eddystone_eid']} member, {len(self)} ids"
        return f"{line}; dropped {dropped}" if dropped else line
