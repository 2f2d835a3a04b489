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

import bisect
import dataclasses
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


#: Every HOLDOUT_EVERY-th point (in time order) is held out of the fit to validate it.
HOLDOUT_EVERY = 4
#: Fewer fitted points than this and the gateway keeps its configured calibration.
MIN_POINTS = 3
#: A point where a gateway heard less than this share of the adverts that the best-hearing
#: gateway heard there is censored: its weak adverts went unreported, so its median is
#: biased high. It is neither fitted nor used to validate.
CENSORED_SHARE = 0.5
#: The physical range of the model (the store config's limits).
EXPONENT_RANGE = (1.0, 6.0)
POWER_RANGE = (-100.0, 0.0)
#: A fit is refused when it predicts the held-out points worse than the configured model by
#: more than this (dB rms; smaller differences are the points' own noise).
HOLDOUT_TOLERANCE_DB = 0.5
#: Adverts a gateway must have heard before its sensitivity (weakest RSSI) is estimated.
MIN_SENSITIVITY_ADVERTS = 50


@dataclass(frozen=True)
class GatewayFit:
    """One gateway's calibration. ``use`` says whether the fit replaces its configured
    model; ``note`` says why not (or what was adjusted)."""

    gateway: str
    measured_power_dbm: float
    path_loss_exponent: float
    sensitivity_dbm: float
    points: int
    rms_db: float | None
    holdout_points: int
    holdout_rms_db: float | None
    configured_holdout_rms_db: float | None
    use: bool
    note: str = ""


@dataclass(frozen=True)
class _Point:
    x: float
    y: float
    rssi: dict[str, list[float]]


def fit_path_loss(samples: list[tuple[float, float]]) -> tuple[float, float, float]:
    """Least squares of ``rssi = p - 10 n log10(d)`` over ``(distance, rssi)``: (p, n, rms).

    When ``n`` falls outside the physical range it is clamped and ``p`` refitted for it,
    so the rms is always that of the model returned."""
    xs = [-10.0 * math.log10(max(d, 0.1)) for d, _ in samples]
    ys = [r for _, r in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx < 1e-9:
        raise ConfigError("the calibration points are all at the same distance from the gateway")
    n = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    n = min(max(n, EXPONENT_RANGE[0]), EXPONENT_RANGE[1])
    p = min(max(my - n * mx, POWER_RANGE[0]), POWER_RANGE[1])
    return p, n, _rms(p, n, samples)


def _rms(p: float, n: float, samples: list[tuple[float, float]]) -> float:
    return math.sqrt(statistics.fmean((p - 10.0 * n * math.log10(max(d, 0.1)) - r) ** 2 for d, r in samples))


def _frame_ok(advert: Advert) -> bool:
    try:
        frame = parse(advert.data) if isinstance(advert.data, bytes) else None
    except FrameError:
        return False
    return isinstance(frame, MemberAdvert | EddystoneEid | IBeacon)


def calibrate(
    config: StoreConfig, points: CalibrationPoints, records: Iterable[tuple[str, Advert]]
) -> list[GatewayFit]:
    """Fit from a phone held at known points (``points``: where it was when)."""
    heard: dict[int, dict[str, list[float]]] = {}
    for gateway, advert in records:
        at = next((i for i, pt in enumerate(points.points) if pt.from_ts <= advert.ts <= pt.to_ts), None)
        if at is not None and _frame_ok(advert):
            heard.setdefault(at, {}).setdefault(gateway, []).append(advert.rssi)
    pts = [_Point(pt.x, pt.y, heard.get(i, {})) for i, pt in enumerate(points.points)]
    return fit_gateways(config, pts)


def calibrate_walk(
    config: StoreConfig,
    records: Iterable[tuple[str, Advert]],
    walk: list[tuple[float, float, float]],
    *,
    cell_m: float = 1.0,
) -> list[GatewayFit]:
    """Fit from a phone walked round (``walk``: ``(ts, x, y)`` samples, e.g. a site survey's
    or a robot's path): each advert is placed where the walk was at its time, and the
    adverts are pooled per ``cell_m`` square (a point per square, in the order first walked)."""
    path = sorted(walk)
    if len(path) < 2:
        raise ConfigError("the calibration walk needs at least two position samples")
    times = [t for t, _, _ in path]
    cells: dict[tuple[int, int], tuple[list[tuple[float, float]], dict[str, list[float]]]] = {}
    for gateway, advert in records:
        i = bisect.bisect_right(times, advert.ts)
        if i == 0 or i == len(path) or path[i][0] - path[i - 1][0] > MAX_WALK_GAP_S or not _frame_ok(advert):
            continue
        (ta, xa, ya), (tb, xb, yb) = path[i - 1], path[i]
        f = (advert.ts - ta) / (tb - ta) if tb > ta else 0.0
        x, y = xa + (xb - xa) * f, ya + (yb - ya) * f
        where, heard = cells.setdefault((int(x // cell_m), int(y // cell_m)), ([], {}))
        where.append((x, y))
        heard.setdefault(gateway, []).append(advert.rssi)
    pts = [
        _Point(statistics.fmean(x for x, _ in where), statistics.fmean(y for _, y in where), heard)
        for where, heard in cells.values()
    ]
    return fit_gateways(config, pts)


#: A walk's samples further apart than this in time are a pause: adverts between them are not placed.
MAX_WALK_GAP_S = 5.0


def fit_gateways(config: StoreConfig, points: list[_Point]) -> list[GatewayFit]:
    """Per positioned gateway: fit on 3 of every 4 points, validate on the 4th, and use the
    fit only when it predicts the held-out points at least as well as the configured model."""
    fits: list[GatewayFit] = []
    for gw in config.gateways:
        if gw.position is None:
            continue
        cal = gw.ble
        fit_s: list[tuple[float, float]] = []
        hold_s: list[tuple[float, float]] = []
        all_rssi: list[float] = []
        censored = 0
        for i, pt in enumerate(points):
            rssi = pt.rssi.get(gw.id, [])
            all_rssi += rssi
            most = max((len(v) for v in pt.rssi.values()), default=0)
            if len(rssi) < MIN_ADVERTS:
                continue
            if len(rssi) < CENSORED_SHARE * most:
                censored += 1
                continue
            sample = (math.dist(gw.position, (pt.x, pt.y)), statistics.median(rssi))
            (hold_s if i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1 else fit_s).append(sample)
        sens = cal.sensitivity_dbm
        if len(all_rssi) >= MIN_SENSITIVITY_ADVERTS:
            sens = round(sorted(all_rssi)[len(all_rssi) // 100], 1)  # the weakest 1 % heard
        cens = f"; {censored} censored points left out" if censored else ""
        keep = GatewayFit(
            gw.id, cal.measured_power_dbm, cal.path_loss_exponent, sens, len(fit_s), None,
            len(hold_s), None, None, False,
        )  # fmt: skip
        if len(fit_s) < MIN_POINTS or not hold_s:
            fits.append(_replace(keep, note=(
                f"too few points ({len(fit_s)} to fit, {len(hold_s)} to validate; need {MIN_POINTS} "
                f"and 1 with >= {MIN_ADVERTS} adverts each){cens}: kept its configured model"
            )))  # fmt: skip
            continue
        try:
            p, n, rms = fit_path_loss(fit_s)
        except ConfigError:
            fits.append(_replace(keep, note="all points at one distance: kept its configured model"))
            continue
        held = _rms(p, n, hold_s)
        before = _rms(cal.measured_power_dbm, cal.path_loss_exponent, hold_s)
        fit = GatewayFit(
            gw.id, round(p, 1), round(n, 2), sens, len(fit_s), round(rms, 2), len(hold_s),
            round(held, 2), round(before, 2), True, cens.lstrip("; "),
        )  # fmt: skip
        if held > before + HOLDOUT_TOLERANCE_DB:
            fit = _replace(fit, use=False, note=(
                f"the fit ({p:.1f}, {n:.2f}) predicts the held-out points worse than the configured "
                f"model ({held:.1f} dB rms against {before:.1f}): kept the configured model{cens}"
            ))  # fmt: skip
        fits.append(fit)
    return fits


def _replace(fit: GatewayFit, **changes: object) -> GatewayFit:
    return dataclasses.replace(fit, **changes)  # type: ignore[arg-type]


def apply(config: StoreConfig, fits: list[GatewayFit]) -> StoreConfig:
    """The store config with each validated fit (and every measured sensitivity) in place."""
    by_id = {f.gateway: f for f in fits}
    gateways = []
    for gw in config.gateways:
        f = by_id.get(gw.id)
        if f is not None:
            ble = gw.ble.model_copy(update={"sensitivity_dbm": f.sensitivity_dbm})
            if f.use:
                ble = ble.model_copy(
                    update={
                        "measured_power_dbm": f.measured_power_dbm,
                        "path_loss_exponent": f.path_loss_exponent,
                    }
                )
            gw = gw.model_copy(update={"ble": ble})
        gateways.append(gw)
    return config.model_copy(update={"gateways": gateways})


def as_yaml(fits: list[GatewayFit]) -> str:
    """The ``ble:`` calibration of each gateway, to paste into the store config; a gateway
    whose fit was not validated keeps its configured model, and the comment says why."""
    lines = [
        "# floorwalker calibrate ble: paste each `ble:` into its gateway in the store config",
        f"# (fitted on 3 of every {HOLDOUT_EVERY} points, checked on the others: 'held-out rms')",
    ]
    for f in fits:
        if f.use:
            why = (
                f"{f.points} points, rms {f.rms_db} dB; held-out rms {f.holdout_rms_db} dB on "
                f"{f.holdout_points} points (configured model: {f.configured_holdout_rms_db} dB)"
            )
            if f.note:
                why += f"; {f.note}"
        else:
            why = f.note
        lines.append(
            f"- {{id: {f.gateway}, ble: {{measured_power_dbm: {f.measured_power_dbm}, "
            f"path_loss_exponent: {f.path_loss_exponent}, sensitivity_dbm: {f.sensitivity_dbm}}}}}  # {why}"
        )
    return "\n".join(lines) + "\n"
