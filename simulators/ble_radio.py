"""The RF model: what each gateway's scanner hears from members' phones as they move.

Input: shoppers' positions over time (:class:`~presence.positions.PositionSample`); only
members whose app advertises (``member`` set) are heard. Output: advertisement records
in the replay format of :mod:`edge_agent.ble.scanner` (``ts``, ``gateway``, ``rssi``, ``adv``
hex), sorted by time, ready for a replay scanner or ``floorwalker eval presence``.

Per advertisement and gateway:

* the phone advertises every ``advert_interval_s`` plus the 0..10 ms random delay BLE adds;
  its payload is the member app's frame with the rotating EID of
  :class:`edge_agent.ble.eid.MemberBeacon`, computed on the phone's own (skewed) clock;
* received power follows the log-distance path-loss model with the gateway's *true*
  parameters, which differ from its configured calibration by up to
  ``calibration_error_db`` / ``exponent_error``;
* log-normal shadowing: a smooth random field per gateway (``shadowing_sd_db``,
  correlation length ``shadow_corr_m``), so a spot that is weak stays weak;
* body loss: up to ``body_loss_db`` when the shopper's body is between the phone
  (carried in front) and the gateway, from the walking direction;
* fast fading (``fading_sd_db``, per advert), receiver sensitivity, random drops
  (``drop_rate``: collisions, the scanner's duty cycle), RSSI reported as integer dBm.

The app's motion hint (the frame's flags byte): on ``motion_share`` of the phones the step
detector works (motion permission given, phone carried rather than in a bag or cart); it
says "walking" when the phone moved ``motion_min_m`` in the ``motion_window_s`` ending
``motion_lag_s`` ago (step detectors need a few steps), and is wrong on ``motion_error``
of the adverts. The other phones send no hint. It has its own random stream, so the radio
draws are the same with it or without it.

Deterministic for a given seed.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypedDict

from edge_agent.ble.eid import MemberBeacon, member_secret
from floorwalker.config import StoreConfig
from presence.positions import PositionSample

#: Samples further apart than this are separate visits: the phone is not heard in between.
MAX_GAP_S = 10.0


@dataclass(frozen=True, slots=True)
class RadioParams:
    advert_interval_s: float = 0.2
    shadowing_sd_db: float = 3.0
    shadow_corr_m: float = 3.0
    fading_sd_db: float = 4.0
    body_loss_db: float = 6.0
    drop_rate: float = 0.15
    sensitivity_dbm: float = -98.0
    calibration_error_db: float = 2.0
    exponent_error: float = 0.15
    clock_skew_s: float = 30.0
    window_s: int = 300
    motion_share: float = 0.8
    motion_lag_s: float = 1.0
    motion_window_s: float = 1.0
    motion_min_m: float = 0.3
    motion_error: float = 0.03


class AdvertRecord(TypedDict):
    ts: float
    gateway: str
    rssi: int
    adv: str


class _Field:
    """A smooth random field with standard deviation ``sd`` (sum of random plane waves)."""

    def __init__(self, rng: random.Random, sd: float, corr_m: float, waves: int = 24) -> None:
        k = 2 * math.pi / (2 * corr_m)
        self._amp = sd * math.sqrt(2.0 / waves)
        self._waves = []
        for _ in range(waves):
            angle = rng.uniform(0, 2 * math.pi)
            mag = k * rng.uniform(0.5, 1.5)
            self._waves.append((mag * math.cos(angle), mag * math.sin(angle), rng.uniform(0, 2 * math.pi)))

    def at(self, x: float, y: float) -> float:
        return self._amp * sum(math.cos(kx * x + ky * y + ph) for kx, ky, ph in self._waves)


class _MotionHint:
    """What the phone's step detector says along one visit's path (see the module doc)."""

    def __init__(self, path: list[PositionSample], p: RadioParams, rng: random.Random) -> None:
        self._p, self._rng = p, rng
        self._ts = [s.ts for s in path]
        self._path = path
        self.works = rng.random() < p.motion_share

    def _pos(self, t: float) -> tuple[float, float]:
        i = bisect.bisect_right(self._ts, t) - 1
        if i < 0:
            return self._path[0].x, self._path[0].y
        if i + 1 >= len(self._path):
            return self._path[-1].x, self._path[-1].y
        a, b = self._path[i], self._path[i + 1]
        f = (t - a.ts) / (b.ts - a.ts) if b.ts > a.ts else 0.0
        return a.x + (b.x - a.x) * f, a.y + (b.y - a.y) * f

    def at(self, t: float) -> bool | None:
        if not self.works:
            return None
        p = self._p
        end = t - p.motion_lag_s
        x0, y0 = self._pos(end - p.motion_window_s)
        x1, y1 = self._pos(end)
        walking = math.hypot(x1 - x0, y1 - y0) >= p.motion_min_m
        return walking != (self._rng.random() < p.motion_error)


class _Gateway:
    def __init__(self, gid: str, pos: tuple[float, float], power: float, exponent: float, shadow: _Field):
        self.id, self.pos, self.power, self.exponent, self.shadow = gid, pos, power, exponent, shadow


class RadioModel:
    def __init__(
        self, config: StoreConfig, store_key: bytes, params: RadioParams | None = None, *, seed: int = 1
    ):
        self.params = p = params or RadioParams()
        self._rng = random.Random(seed)
        self._motion_rng = random.Random(f"motion-{seed}")
        self._store_key = store_key
        self.gateways: list[_Gateway] = []
        for gw in config.gateways:
            if gw.position is None:
                continue  # a gateway without a position cannot be placed in the model
            self.gateways.append(
                _Gateway(
                    gw.id,
                    gw.position,
                    gw.ble.measured_power_dbm
                    + self._rng.uniform(-p.calibration_error_db, p.calibration_error_db),
                    gw.ble.path_loss_exponent + self._rng.uniform(-p.exponent_error, p.exponent_error),
                    _Field(self._rng, p.shadowing_sd_db, p.shadow_corr_m),
                )
            )

    def rssi(self, gw: _Gateway, x: float, y: float, heading: float | None) -> float:
        """Mean received power (before fading) at ``gw`` from a phone at (x, y)."""
        dx, dy = gw.pos[0] - x, gw.pos[1] - y
        d = max(math.hypot(dx, dy), 0.3)
        level = gw.power - 10.0 * gw.exponent * math.log10(d) + gw.shadow.at(x, y)
        if heading is not None and d > 0.3:
            # cos of the angle between walking direction and the gateway: -1 = right behind.
            cos = (math.cos(heading) * dx + math.sin(heading) * dy) / d
            level -= self.params.body_loss_db * max(0.0, -cos)
        return level

    def hear(self, samples: Iterable[PositionSample]) -> Iterator[AdvertRecord]:
        """Every advertisement every gateway hears, in time order."""
        by_shopper: dict[str, list[PositionSample]] = {}
        for s in samples:
            if s.member is not None:
                by_shopper.setdefault(s.shopper, []).append(s)
        records: list[AdvertRecord] = []
        for path in by_shopper.values():
            path.sort(key=lambda s: s.ts)
            records.extend(self._phone(path))
        records.sort(key=lambda r: r["ts"])
        return iter(records)

    def _phone(self, path: list[PositionSample]) -> Iterator[AdvertRecord]:
        p, rng = self.params, self._rng
        member = path[0].member
        assert member is not None
        beacon = MemberBeacon(member_secret(self._store_key, member), p.window_s)
        hint = _MotionHint(path, p, self._motion_rng)
        skew = rng.uniform(-p.clock_skew_s, p.clock_skew_s)
        heading: float | None = rng.uniform(0, 2 * math.pi)
        t = path[0].ts + rng.uniform(0, p.advert_interval_s)
        i = 0
        while True:
            while i + 1 < len(path) and path[i + 1].ts < t:
                i += 1
            if i + 1 >= len(path):
                return
            a, b = path[i], path[i + 1]
            if b.ts - a.ts > MAX_GAP_S:  # the shopper was not in the store in between
                i += 1
                t = b.ts
                continue
            f = (t - a.ts) / (b.ts - a.ts) if b.ts > a.ts else 0.0
            x, y = a.x + (b.x - a.x) * f, a.y + (b.y - a.y) * f
            if math.hypot(b.x - a.x, b.y - a.y) > 0.05:
                heading = math.atan2(b.y - a.y, b.x - a.x)
            adv = beacon.advert(t + skew, hint.at(t)).hex()
            for gw in self.gateways:
                if rng.random() < p.drop_rate:
                    continue
                level = self.rssi(gw, x, y, heading) + rng.gauss(0.0, p.fading_sd_db)
                if level < p.sensitivity_dbm:
                    continue
                yield {"ts": round(t, 4), "gateway": gw.id, "rssi": round(level), "adv": adv}
            t += p.advert_interval_s + rng.uniform(0, 0.01)
