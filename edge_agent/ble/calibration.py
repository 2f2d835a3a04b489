"""``floorwalker calibrate ble``: fit each gateway's path-loss model from a phone held at
known positions.

Input: a recording in the replay format (:mod:`edge_agent.ble.scanner`; made by a gateway's
scanner while someone walks the calibration phone round) and a points file (YAML) saying
where the phone was when::

    points:
      - {x: 4.0, y: 3.0, from_ts: 1800000000, to_ts: 1800000030}
      - ...

For each gateway and point, the median RSSI of the phone's frames (member app, Eddystone-
EID or iBeacon) heard in that interval; then a least-squares fit of
``rssi = measured_power - 10 · n · log10(d)`` over the points, ``d`` the distance from the
gateway's configured position. Pure; the CLI prints the result as YAML for the store config.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from edge_agent.ble.frames import EddystoneEid, FrameError, IBeacon, MemberAdvert, parse
from edge_agent.ble.sightings import Advert
from floorwalker.config import StoreConfig, load_yaml_model
from floorwalker.errors import ConfigError

#: Fewer adverts than this at a point and the point is not used for that gateway.
MIN_ADVERTS = 5


class CalibrationPoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    x: float = Field(ge=0)
    y: float = Field(ge=0)
    from_ts: float
    to_ts: float


class CalibrationPoints(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    points: list[CalibrationPoint] = Field(min_length=2)


def read_points(path: Path) -> CalibrationPoints:
    return load_yaml_model(path, CalibrationPoints, "points")


@dataclass(frozen=True)
class GatewayFit:
    gateway: str
    measured_power_dbm: float
    path_loss_exponent: float
    points: int
    rms_db: float


def fit_path_loss(samples: list[tuple[float, float]]) -> tuple[float, float, float]:
    """Least squares of ``rssi = p - 10 n log10(d)`` over ``(distance, rssi)``: (p, n, rms)."""
    xs = [-10.0 * math.log10(max(d, 0.1)) for d, _ in samples]
    ys = [r for _, r in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx < 1e-9:
        raise ConfigError("the calibration points are all at the same distance from the gateway")
    n = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    p = my - n * mx
    rms = math.sqrt(statistics.fmean((p + n * x - y) ** 2 for x, y in zip(xs, ys, strict=True)))
    return p, n, rms


def calibrate(
    config: StoreConfig, points: CalibrationPoints, records: Iterable[tuple[str, Advert]]
) -> list[GatewayFit]:
    heard: dict[tuple[str, int], list[float]] = {}
    for gateway, advert in records:
        at = next((i for i, pt in enumerate(points.points) if pt.from_ts <= advert.ts <= pt.to_ts), None)
        if at is None:
            continue
        try:
            frame = parse(advert.data) if isinstance(advert.data, bytes) else None
        except FrameError:
            continue
        if isinstance(frame, MemberAdvert | EddystoneEid | IBeacon):
            heard.setdefault((gateway, at), []).append(advert.rssi)
    fits: list[GatewayFit] = []
    for gw in config.gateways:
        if gw.position is None:
            continue
        samples = []
        for i, pt in enumerate(points.points):
            rssi = heard.get((gw.id, i), [])
            if len(rssi) >= MIN_ADVERTS:
                samples.append((math.dist(gw.position, (pt.x, pt.y)), statistics.median(rssi)))
        if len(samples) < 2:
            continue
        p, n, rms = fit_path_loss(samples)
        n = min(max(n, 1.0), 6.0)  # the config's physical range
        p = min(max(p, -100.0), 0.0)
        fits.append(GatewayFit(gw.id, round(p, 1), round(n, 2), len(samples), round(rms, 2)))
    return fits


def as_yaml(fits: list[GatewayFit]) -> str:
    """The ``ble:`` calibration of each gateway, to paste into the store config."""
    lines = ["# floorwalker calibrate ble: paste each `ble:` into its gateway in the store config"]
    for f in fits:
        lines.append(
            f"- {{id: {f.gateway}, ble: {{measured_power_dbm: {f.measured_power_dbm}, "
            f"path_loss_exponent: {f.path_loss_exponent}}}}}  # {f.points} points, rms {f.rms_db} dB"
        )
    return "\n".join(lines) + "\n"
