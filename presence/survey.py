"""Site survey: what each gateway really hears across the floor, learnt from one walk.

The path-loss model alone misses what makes a store a store: a gateway's real power and
exponent differ from its calibration, shelves and fridges shadow whole areas (a spot that
is weak stays weak) — on the RF model those static errors are most of the fuser's
mistakes away from zone changes. A site survey measures them once: someone walks the
calibration phone up and down the floor in rows (``survey_walk``) while every gateway
records (``floorwalker calibrate record``), with the walk's positions over time (the
truth format of :mod:`bench.presence_eval`). :func:`build_survey` then learns, per
gateway, the *residual* — heard minus predicted RSSI — on a grid over the floor:

* each advert's residual goes to the floor cell the phone was in at that time;
* residuals are smoothed over neighbouring cells (Gaussian, ``smooth_m``: shadowing is
  correlated over metres, fading is not) and shrunk towards the gateway's mean residual
  where the walk left few adverts (``prior_adverts``, smoothed adverts per cell), so an
  unsurveyed cell falls back to "calibration offset only", never to a guess.

The result is a :class:`SurveyMap` (a JSON file, ``ble_presence.survey`` in the store
config) that :class:`~presence.zone_fusion.ZoneModel` adds to its predictions. Walking
the rows in alternating directions averages the walker's own body loss out.

The survey also keeps the walk itself as **fingerprints** (:class:`Fingerprints`): every
``fingerprint_s`` of the walk, where the phone was and the mean RSSI each gateway heard
within ``fingerprint_s`` of then (unheard: ``None``, read as the gateway's sensitivity
floor). The fuser may score a member's readings against them directly
(``ble_presence.fingerprints``). A file without them (made before) still loads. Pure code.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from edge_agent.ble.sightings import Advert
from floorwalker.config import StoreConfig
from floorwalker.errors import ConfigError
from presence.positions import PositionSample

SURVEY_VERSION = 1
GRID_M = 0.5
REMAKE = "`floorwalker calibrate survey`"


@dataclass(frozen=True)
class Fingerprints:
    """Survey fingerprints: ``xy[i]`` (metres) and the mean RSSI ``rssi[i, j]`` gateway
    ``gateways[j]`` heard there (NaN: it heard nothing)."""

    gateways: tuple[str, ...]
    xy: npt.NDArray[np.float64]
    rssi: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    def as_dict(self) -> dict[str, object]:
        return {
            "gateways": list(self.gateways),
            "xy": np.round(self.xy, 2).tolist(),
            "rssi": [[None if math.isnan(v) else round(float(v), 1) for v in row] for row in self.rssi],
        }


@dataclass(frozen=True)
class SurveyMap:
    """Per gateway, the residual (dB) to add to its path-loss prediction, per floor cell
    (``grid_m`` squares from the floor's origin, indexed ``[ix, iy]``); and, when the
    survey kept them, its fingerprints."""

    grid_m: float
    residual_db: dict[str, npt.NDArray[np.float64]]
    fingerprints: Fingerprints | None = None

    def at(self, gateway: str, x: float, y: float) -> float:
        grid = self.residual_db.get(gateway)
        if grid is None:
            return 0.0
        ix = min(max(int(x / self.grid_m), 0), grid.shape[0] - 1)
        iy = min(max(int(y / self.grid_m), 0), grid.shape[1] - 1)
        return float(grid[ix, iy])

    def to_json(self) -> str:
        doc: dict[str, object] = {
            "version": SURVEY_VERSION,
            "grid_m": self.grid_m,
            "gateways": {g: np.round(r, 1).tolist() for g, r in self.residual_db.items()},
        }
        if self.fingerprints is not None:
            doc["fingerprints"] = self.fingerprints.as_dict()
        return json.dumps(doc)


def read_survey(path: Path, config: StoreConfig) -> SurveyMap:
    """A survey file; anything wrong is a :class:`ConfigError` naming the file and the fix."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such survey file (make one: {REMAKE})") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a survey file ({exc}); re-make it: {REMAKE}") from None
    if not isinstance(raw, dict) or raw.get("version") != SURVEY_VERSION:
        raise ConfigError(f"{path}: not a version-{SURVEY_VERSION} survey file; re-make it: {REMAKE}")
    grid_m = raw.get("grid_m")
    gateways = raw.get("gateways")
    if not isinstance(grid_m, (int, float)) or grid_m <= 0 or not isinstance(gateways, dict):
        raise ConfigError(f"{path}: survey file needs a positive `grid_m` and a `gateways` mapping")
    known = {g.id for g in config.gateways}
    out: dict[str, npt.NDArray[np.float64]] = {}
    for gw, rows in gateways.items():
        if gw not in known:
            raise ConfigError(f"{path}: gateways.{gw}: not a gateway of store {config.store!r}")
        try:
            grid = np.array(rows, dtype=np.float64)
        except (ValueError, TypeError):
            raise ConfigError(f"{path}: gateways.{gw}: expected a grid of numbers") from None
        if grid.ndim != 2 or grid.size == 0 or not np.isfinite(grid).all():
            raise ConfigError(f"{path}: gateways.{gw}: expected a non-empty 2-D grid of finite numbers")
        out[gw] = grid
    fingerprints = None
    if raw.get("fingerprints") is not None:
        fingerprints = _read_fingerprints(path, raw["fingerprints"], known)
    return SurveyMap(float(grid_m), out, fingerprints)


def _read_fingerprints(path: Path, raw: object, known: set[str]) -> Fingerprints:
    where = f"{path}: fingerprints"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with `gateways`, `xy` and `rssi`")
    gws = raw.get("gateways")
    if not isinstance(gws, list) or not gws or not all(isinstance(g, str) for g in gws):
        raise ConfigError(f"{where}.gateways: expected a non-empty list of gateway ids")
    for g in gws:
        if g not in known:
            raise ConfigError(f"{where}.gateways: {g!r} is not a gateway of the store")
    if len(set(gws)) != len(gws):
        raise ConfigError(f"{where}.gateways: a gateway is listed twice")
    try:
        xy = np.array(raw.get("xy"), dtype=np.float64)
    except (ValueError, TypeError):
        raise ConfigError(f"{where}.xy: expected a list of [x, y] pairs of numbers") from None
    if xy.ndim != 2 or xy.shape[0] == 0 or xy.shape[1] != 2 or not np.isfinite(xy).all():
        raise ConfigError(f"{where}.xy: expected a non-empty list of [x, y] pairs of numbers")
    rows = raw.get("rssi")
    if not isinstance(rows, list) or len(rows) != xy.shape[0]:
        raise ConfigError(f"{where}.rssi: expected one row per point of `xy` ({xy.shape[0]})")
    try:
        rssi = np.array(
            [[math.nan if v is None else float(v) for v in row] for row in rows], dtype=np.float64
        )
    except (ValueError, TypeError):
        raise ConfigError(f"{where}.rssi: expected rows of numbers (dBm) or null (unheard)") from None
    if rssi.ndim != 2 or rssi.shape[1] != len(gws):
        raise ConfigError(f"{where}.rssi: expected {len(gws)} values a row, one per gateway")
    heard = rssi[~np.isnan(rssi)]
    if ((heard < -127) | (heard > 20)).any() or np.isinf(rssi).any():
        raise ConfigError(f"{where}.rssi: values must be dBm within -127..20 (or null)")
    return Fingerprints(tuple(gws), xy, rssi)


def survey_walk(
    config: StoreConfig,
    *,
    start: float,
    member: str,
    row_m: float = 1.0,
    speed_m_s: float = 0.7,
    step_s: float = 0.5,
) -> list[PositionSample]:
    """The surveyor's path: rows ``row_m`` apart across the floor, alternating direction
    (a serpentine), at walking pace; one sample every ``step_s``."""
    if config.floor is None:
        raise ConfigError("a site survey needs a store with a floor plan (`floor:`)")
    width, depth = config.floor.width_m, config.floor.depth_m
    margin = 0.3
    samples: list[PositionSample] = []
    t = start
    step = speed_m_s * step_s
    y = row_m / 2
    forward = True
    while y < depth:
        xs = np.arange(margin, width - margin + 1e-9, step)
        for x in xs if forward else xs[::-1]:
            zone = config.zone_at((float(x), y))
            where = zone.id if zone else "away"
            px = round(float(x), 3)
            samples.append(PositionSample(round(t, 3), "surveyor", member, px, round(y, 3), where))
            t += step_s
        y += row_m
        forward = not forward
    return samples


def predicted_rssi(config: StoreConfig, gateway: str, x: float, y: float) -> float | None:
    """The gateway's calibrated log-distance prediction at (x, y); None without a position."""
    gw = next((g for g in config.gateways if g.id == gateway), None)
    if gw is None or gw.position is None:
        return None
    d = max(math.hypot(x - gw.position[0], y - gw.position[1]), 0.5)
    return gw.ble.measured_power_dbm - 10.0 * gw.ble.path_loss_exponent * math.log10(d)


def build_survey(
    config: StoreConfig,
    records: Iterable[tuple[str, Advert]],
    walk: list[PositionSample],
    *,
    grid_m: float = GRID_M,
    smooth_m: float = 0.5,
    prior_adverts: float = 0.5,
    fingerprint_s: float = 1.0,
) -> SurveyMap:
    """Learn each gateway's residual map from the survey trace and the surveyor's path,
    and keep the walk's fingerprints (every ``fingerprint_s``; 0: none).

    Adverts outside the walk's time span, or from gateways without a position, are
    ignored; every advert in the trace is taken to be the survey phone's (record the
    survey with no other phone about)."""
    if config.floor is None:
        raise ConfigError("a site survey needs a store with a floor plan (`floor:`)")
    records = list(records)
    path = sorted(walk, key=lambda s: s.ts)
    if len(path) < 2:
        raise ConfigError("the survey walk needs at least two position samples")
    times = [s.ts for s in path]
    nx = math.ceil(config.floor.width_m / grid_m)
    ny = math.ceil(config.floor.depth_m / grid_m)
    sums: dict[str, npt.NDArray[np.float64]] = {}
    counts: dict[str, npt.NDArray[np.float64]] = {}
    for gateway, advert in records:
        i = bisect.bisect_right(times, advert.ts)
        if i == 0 or i == len(path):
            continue
        a, b = path[i - 1], path[i]
        f = (advert.ts - a.ts) / (b.ts - a.ts) if b.ts > a.ts else 0.0
        x, y = a.x + (b.x - a.x) * f, a.y + (b.y - a.y) * f
        pred = predicted_rssi(config, gateway, x, y)
        if pred is None:
            continue
        if gateway not in sums:
            sums[gateway] = np.zeros((nx, ny))
            counts[gateway] = np.zeros((nx, ny))
        ix, iy = min(int(x / grid_m), nx - 1), min(int(y / grid_m), ny - 1)
        sums[gateway][ix, iy] += advert.rssi - pred
        counts[gateway][ix, iy] += 1
    if not sums:
        raise ConfigError("no gateway heard the survey phone while the walk lasted (check the times)")
    kernel = _gaussian(smooth_m / grid_m)
    residual: dict[str, npt.NDArray[np.float64]] = {}
    for gw, s in sums.items():
        n = counts[gw]
        offset = float(s.sum() / n.sum())
        s_smooth = _blur(s - offset * n, kernel)
        n_smooth = _blur(n, kernel)
        residual[gw] = offset + s_smooth / (n_smooth + prior_adverts)
    prints = fingerprints(config, records, path, every_s=fingerprint_s) if fingerprint_s > 0 else None
    return SurveyMap(grid_m, residual, prints)


def fingerprints(
    config: StoreConfig,
    records: Iterable[tuple[str, Advert]],
    walk: list[PositionSample],
    *,
    every_s: float = 1.0,
) -> Fingerprints | None:
    """The walk as fingerprints: every ``every_s`` seconds of it (where a walk sample is
    within ``every_s``), the phone's position and each positioned gateway's mean RSSI over
    the adverts within ``every_s`` of then (NaN: none heard). None if no gateway heard it."""
    if every_s <= 0:
        raise ConfigError(f"fingerprint_s: must be positive (got {every_s})")
    path = sorted(walk, key=lambda s: s.ts)
    gws = tuple(g.id for g in config.gateways if g.position is not None)
    if not path or not gws:
        return None
    col = {g: j for j, g in enumerate(gws)}
    t0 = path[0].ts
    n_bins = int((path[-1].ts - t0) // every_s) + 1
    # Adverts into the bins whose centre is within every_s: bins i with |t - c_i| <= every_s.
    sums = np.zeros((n_bins, len(gws)))
    counts = np.zeros((n_bins, len(gws)))
    for gateway, advert in records:
        j = col.get(gateway)
        if j is None:
            continue
        k = (advert.ts - t0) / every_s - 0.5  # position in bin-centre units
        for i in range(math.ceil(k - 1), math.floor(k + 1) + 1):
            if 0 <= i < n_bins:
                sums[i, j] += advert.rssi
                counts[i, j] += 1
    times = [s.ts for s in path]
    xy: list[tuple[float, float]] = []
    keep: list[int] = []
    for i in range(n_bins):
        c = t0 + (i + 0.5) * every_s
        at = bisect.bisect_left(times, c)
        near = [s for s in path[max(at - 1, 0) : at + 1] if abs(s.ts - c) <= every_s]
        if not near or not counts[i].any():
            continue
        a = min(near, key=lambda s: abs(s.ts - c))
        xy.append((a.x, a.y))
        keep.append(i)
    if not keep:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        rssi = np.where(counts[keep] > 0, sums[keep] / np.maximum(counts[keep], 1), np.nan)
    return Fingerprints(gws, np.array(xy, dtype=np.float64), rssi)


def _gaussian(sigma_cells: float) -> npt.NDArray[np.float64]:
    half = max(1, math.ceil(3 * sigma_cells))
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma_cells) ** 2)
    result: npt.NDArray[np.float64] = k / k.sum()
    return result


def _blur(a: npt.NDArray[np.float64], k: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    rows = np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), 0, a)
    result: npt.NDArray[np.float64] = np.apply_along_axis(lambda v: np.convolve(v, k, mode="same"), 1, rows)
    return result
