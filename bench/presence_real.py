"""``floorwalker bench presence-real``: BLE zone presence on real radio data.

The development set is Kolakowski's BLE RSS data set (CC BY 4.0; M. Kolakowski,
"Automated Calibration of RSS Fingerprinting Based Systems Using a Mobile Robot and
Machine Learning", Sensors 21(18) 6270, 2021, doi:10.3390/s21186270; data:
doi:10.5281/zenodo.5457591), read from ``../shared/devdata/ble-rss-kolakowski2021/`` (see
its SOURCE.md; nothing of it is copied into the project). Six fixed receivers in a
furnished flat hear a tag carried at lanyard height by a robot whose true position is
known 3 times a second.

What this does, all in the anchors' frame (``calibration_df.csv`` and
``test_robot_df.csv``; the per-path ``calib*_df.csv`` files are in the LiDAR frame and are
not used):

1. The flat becomes a store: the rooms, drawn along the walls of ``layout.csv``, are the
   zones; each receiver is a gateway in the room it stands in.
2. Each run becomes a trace: every (row, receiver) RSSI is one member-app advertisement of
   one member (``m_tag``), so the public path runs unchanged — gateway smoothing and
   reporting, id resolution, fusion.
3. Calibration run only: ``calibrate ble`` (path loss and sensitivity per receiver, checked
   on held-out points) and ``calibrate survey`` (the residual maps), from its true path.
4. Test run: zone accuracy overall and near borders, per-zone precision and recall, for
   the strongest-receiver baseline, the fuser, the fuser deciding with its zone filter
   (``FusionParams.zone_filter``), and that with an unknown per-phone offset marginalised
   (``FusionParams.offset_sd_db``), each with the default calibration, ``calibrate ble``,
   and ``calibrate ble`` + survey; the fuser scoring the survey's fingerprints
   (``ble_presence.fingerprints``); and the fuser when the tag sends the member app's
   motion hint, taken from the robot's own drive log (:func:`motion_hint`).
5. Held out on the calibration run (:func:`heldout`): its 120 s blocks dealt round 4
   folds, calibration and survey refitted on the other three; where settings were chosen.

Writes ``bench/out/presence_real.json``. Nothing here is tuned on the test run.
"""

from __future__ import annotations

import bisect
import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.presence_eval import PresenceReport, evaluate, strongest_receiver
from edge_agent.ble.calibration import GatewayFit, apply, calibrate_walk
from edge_agent.ble.eid import MemberBeacon, member_secret
from edge_agent.ble.sightings import Advert
from floorwalker import geometry
from floorwalker.config import StoreConfig
from floorwalker.errors import ConfigError
from presence.eid_resolver import EidResolver
from presence.pipeline import PresencePipeline
from presence.positions import PositionSample
from presence.survey import SurveyMap, build_survey
from presence.zone_fusion import FusionParams

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "devdata" / "ble-rss-kolakowski2021"
CALIBRATION = "calibration/calibration_df.csv"
TEST = "tests/test_robot_df.csv"
MEMBER = "m_tag"
STORE_KEY = bytes(range(32))
#: Anchor frame: the flat spans 0..9.07 m by 0..7.1 m.
FLOOR = (9.1, 7.1)

#: The rooms, along the walls of layout.csv (wall midlines; door openings are borders).
#: "sw" and "se" are the small rooms either side of the hall; "living" is the L-shaped room
#: with the kitchen corner. The lines they share: x 1.985 (sw | hall), x 3.965 (hall | se),
#: y 2.1 (the bottom rooms | the rest; the hall opens onto the living room), x 2.64
#: (bedroom | living room).
ROOMS: dict[str, list[tuple[float, float]]] = {
    "sw": [(0.0, 0.0), (1.985, 0.0), (1.985, 2.1), (0.0, 2.1)],
    "hall": [(1.985, 0.0), (3.965, 0.0), (3.965, 2.1), (1.985, 2.1)],
    "se": [(3.965, 0.0), (6.22, 0.0), (6.22, 2.1), (3.965, 2.1)],
    "bedroom": [(0.0, 2.1), (2.64, 2.1), (2.64, 7.1), (0.0, 7.1)],
    "living": [(2.64, 2.1), (6.27, 2.1), (6.27, 4.19), (9.07, 4.19), (9.07, 7.1), (2.64, 7.1)],
}
#: The phone-offset variant's prior spread (dB): phones differ from the calibration tag by a
#: few dB, an uncalibrated model is ~10 dB off (chosen before looking at the test run).
OFFSET_SD_DB = 6.0
#: Held out on the calibration run: 120 s blocks dealt round 4 folds.
HELDOUT_FOLDS = 4
HELDOUT_BLOCK_S = 120.0
#: layout.csv's outline, as the rooms above were drawn from (checked on load).
LAYOUT_VERTICES = 38
#: The robot's drive logs (``epoch_s,command,speed``), per run.
CALIBRATION_MOTION = [f"calibration/calib{i}_motion.txt" for i in range(1, 5)]
TEST_MOTION = ["tests/test_robot_motion.txt"]
#: Commands that move the tag along the floor (turning on the spot barely moves it): the
#: robot's "walking", as the member app's step detector says it.
DRIVING = frozenset({"forward", "reverse"})
#: The motion hint follows the robot's command this late, like the simulated step detector
#: (``simulators.ble_radio``: walking once the phone moved in the second that ended 1 s ago).
HINT_LAG_S = 1.0

#: The tag's motion hint at a time: True walking, False still, None no hint.
Hint = Callable[[float], bool | None]


@dataclass(frozen=True)
class Run:
    """One recorded run: per row the time (s), true position and RSSI per anchor (None: unheard)."""

    ts: list[float]
    xy: list[tuple[float, float]]
    rssi: list[list[float | None]]


def missing(data: Path) -> str | None:
    """Why the data set cannot be used (None when it can)."""
    need = ["anchors.csv", "layout.csv", CALIBRATION, TEST, *CALIBRATION_MOTION, *TEST_MOTION]
    absent = [n for n in need if not (data / n).is_file()]
    if absent:
        return (
            f"the Kolakowski BLE RSS data set is not at {data} (missing: {', '.join(absent)}); "
            "put it there (see its SOURCE.md) or pass --data"
        )
    return None


def _require(data: Path) -> None:
    why = missing(data)
    if why is not None:
        raise ConfigError(why)


def read_anchors(data: Path) -> dict[str, tuple[float, float]]:
    with (data / "anchors.csv").open() as fh:
        return {f"a{int(r['id'])}": (float(r["x"]), float(r["y"])) for r in csv.DictReader(fh)}


def read_run(path: Path) -> Run:
    ts: list[float] = []
    xy: list[tuple[float, float]] = []
    rssi: list[list[float | None]] = []
    with path.open() as fh:
        for r in csv.DictReader(fh):
            ts.append(float(r["ts"]) / 1e9)  # float nanoseconds
            xy.append((float(r["x"]), float(r["y"])))
            rssi.append([float(r[f"rssi_{i}"]) if r.get(f"rssi_{i}") else None for i in range(1, 7)])
    return Run(ts, xy, rssi)


def store_config(data: Path) -> StoreConfig:
    """The flat as a store: rooms as zones, anchors as gateways (default calibration)."""
    with (data / "layout.csv").open() as fh:
        vertices = list(csv.DictReader(fh))
    if len(vertices) != LAYOUT_VERTICES:
        raise ConfigError(
            f"{data / 'layout.csv'}: {len(vertices)} wall vertices, the rooms were drawn from 38"
        )
    anchors = read_anchors(data)
    gateways = []
    for gid, pos in anchors.items():
        zone = next((z for z, poly in ROOMS.items() if geometry.contains(poly, pos)), None)
        if zone is None:  # on an outer wall: the nearest room
            zone = min(ROOMS, key=lambda z: math.dist(geometry.centroid(ROOMS[z]), pos))
        gateways.append({"id": gid, "zones": [zone], "position": list(pos)})
    return StoreConfig.model_validate(
        {
            "store": "kolakowski-flat",
            "name": "Kolakowski 2021 flat (rooms as zones)",
            "associates": [{"id": "a-bench", "display_name": "Bench", "zones": list(ROOMS)}],
            "floor_lead": "a-bench",
            "floor": {"width_m": FLOOR[0], "depth_m": FLOOR[1]},
            "zones": [{"id": z, "name": z, "polygon": [list(p) for p in poly]} for z, poly in ROOMS.items()],
            "gateways": gateways,
        }
    )


def room_at(xy: tuple[float, float]) -> str:
    for zone, poly in ROOMS.items():
        if geometry.contains(poly, xy):
            return zone
    return min(ROOMS, key=lambda z: _edge_distance(xy, ROOMS[z]))  # a point on a wall


def _edge_distance(p: tuple[float, float], poly: list[tuple[float, float]]) -> float:
    from bench.presence_eval import distance_to_polygon

    return distance_to_polygon(p, poly)


def read_motion(data: Path, names: list[str]) -> list[tuple[float, str]]:
    """The robot's drive commands ``(epoch_s, command)`` from its logs, by time."""
    out: list[tuple[float, str]] = []
    for name in names:
        for line in (data / name).read_text().splitlines():
            if line.strip():
                ts, command, _speed = line.split(",")
                out.append((float(ts), command.strip()))
    out.sort()
    return out


def motion_hint(log: list[tuple[float, str]], lag_s: float = HINT_LAG_S) -> Hint:
    """The member app's motion hint from a drive log: walking while the latest command at
    least ``lag_s`` old moves the robot (:data:`DRIVING`), still after any other, none
    before the log starts."""
    times = [t for t, _ in log]

    def hint(ts: float) -> bool | None:
        i = bisect.bisect_right(times, ts - lag_s) - 1
        return None if i < 0 else log[i][1] in DRIVING

    return hint


def to_records(run: Run, gateways: list[str], hint: Hint | None = None) -> list[tuple[str, Advert]]:
    """The run as a trace: one member-app advert per heard (row, anchor), by time; with
    ``hint``, each advert carries the app's motion hint at its time."""
    beacon = MemberBeacon(member_secret(STORE_KEY, MEMBER), 300)
    out: list[tuple[str, Advert]] = []
    for ts, levels in zip(run.ts, run.rssi, strict=True):
        adv = beacon.advert(ts, None if hint is None else hint(ts))
        for gw, level in zip(gateways, levels, strict=True):
            if level is not None:
                out.append((gw, Advert(ts, round(level, 1), adv)))
    return out


def to_truth(run: Run) -> list[PositionSample]:
    return [
        PositionSample(ts, "robot", MEMBER, round(x, 3), round(y, 3), room_at((x, y)))
        for ts, (x, y) in zip(run.ts, run.xy, strict=True)
    ]


def _evaluate(
    config: StoreConfig,
    records: list[tuple[str, Advert]],
    truth: list[PositionSample],
    params: FusionParams,
    survey: SurveyMap | None,
) -> tuple[PresenceReport, PresenceReport]:
    """(fuser, strongest-receiver baseline) on the same reports."""
    resolver = EidResolver(STORE_KEY, [MEMBER], window_s=300, skew_s=90)
    pipeline = PresencePipeline(config, resolver, params, survey=survey)
    changes = list(pipeline.run(records, tail_s=2.0))
    baseline = strongest_receiver(config, pipeline.observed, params.stale_s)
    return evaluate(config, changes, truth), evaluate(config, baseline, truth)


def run_presence_real(data: Path, out: Path) -> dict[str, Any]:
    _require(data)
    config = store_config(data)
    gateways = [g.id for g in config.gateways]
    cal, test = read_run(data / CALIBRATION), read_run(data / TEST)
    cal_records, test_records = to_records(cal, gateways), to_records(test, gateways)
    cal_walk = [(t, x, y) for t, (x, y) in zip(cal.ts, cal.xy, strict=True)]
    fits = calibrate_walk(config, cal_records, cal_walk)
    calibrated = apply(config, fits)
    survey = build_survey(calibrated, cal_records, to_truth(cal))
    truth = to_truth(test)
    results: dict[str, Any] = {}
    variants = {
        "default": (config, None, False),
        "calibrate ble": (calibrated, None, False),
        "ble + survey": (calibrated, survey, False),
        "ble + survey fingerprints": (calibrated, survey, True),
    }
    for name, (cfg, srv, prints) in variants.items():
        base = _params(cfg, srv is not None, prints)
        row: dict[str, Any] = {}
        methods = [("fuser", base), ("fuser + zone filter", replace(base, zone_filter=True))]
        if not prints:  # the phone offset is of the path-loss model only
            methods.append(
                (
                    "fuser + zone filter + phone offset",
                    replace(base, zone_filter=True, offset_sd_db=OFFSET_SD_DB),
                )
            )
        for label, params in methods:
            report, baseline = _evaluate(cfg, test_records, truth, params, srv)
            row[label] = report.as_dict()
            row["strongest receiver"] = baseline.as_dict()
        results[name] = row
    # The tag as a phone whose app sends the motion hint (the robot's drive log as its step
    # detector): the fuser follows a walking member on its walking settings.
    hinted = to_records(test, gateways, motion_hint(read_motion(data, TEST_MOTION)))
    report, baseline = _evaluate(calibrated, hinted, truth, _params(calibrated, True, False), survey)
    results["ble + survey, motion hint"] = {
        "fuser": report.as_dict(),
        "strongest receiver": baseline.as_dict(),
    }
    doc: dict[str, Any] = {
        "benchmark": "presence_real",
        "data": "Kolakowski 2021 BLE RSS data set, CC BY 4.0, doi:10.5281/zenodo.5457591",
        "development_figure": True,
        "zones": list(ROOMS),
        "calibration_run": {"rows": len(cal.ts), "adverts": len(cal_records)},
        "test_run": {"rows": len(test.ts), "adverts": len(test_records), "samples": len(truth)},
        "calibration": [_fit_dict(f) for f in fits],
        "results": results,
        "heldout": heldout(config, cal, hint=motion_hint(read_motion(data, CALIBRATION_MOTION))),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def _params(config: StoreConfig, surveyed: bool, fingerprints: bool) -> FusionParams:
    """The fuser's defaults for the store, with a survey (and its fingerprints) or not."""
    update: dict[str, Any] = {"survey": Path("survey.json") if surveyed else None}
    if fingerprints:
        update["fingerprints"] = True
    return FusionParams.from_config(config.ble_presence.model_copy(update=update))


def _select(run: Run, keep: list[bool]) -> Run:
    idx = [i for i, k in enumerate(keep) if k]
    return Run([run.ts[i] for i in idx], [run.xy[i] for i in idx], [run.rssi[i] for i in idx])


def heldout(
    config: StoreConfig, cal: Run, folds: int = HELDOUT_FOLDS, *, hint: Hint | None = None
) -> dict[str, Any]:
    """Held out on the calibration run: its 120 s blocks dealt round ``folds`` folds; each
    fold is scored with ``calibrate ble`` and the survey refitted on the other folds. Per
    method, the accuracy / near-border accuracy / median zone-change delay per fold and
    their means (a fold's delay counts the entry at each block's start too). With ``hint``
    (the robot's drive log), also the fuser on a tag that sends the motion hint."""
    gateways = [g.id for g in config.gateways]
    t0 = cal.ts[0]
    block = [int((t - t0) // HELDOUT_BLOCK_S) % folds for t in cal.ts]
    rows: dict[str, list[PresenceReport]] = {}
    for f in range(folds):
        train, test = _select(cal, [b != f for b in block]), _select(cal, [b == f for b in block])
        train_records, test_records = to_records(train, gateways), to_records(test, gateways)
        walk = [(t, x, y) for t, (x, y) in zip(train.ts, train.xy, strict=True)]
        calibrated = apply(config, calibrate_walk(config, train_records, walk))
        survey = build_survey(calibrated, train_records, to_truth(train))
        truth = to_truth(test)
        for label, prints in (("fuser, ble + survey", False), ("fuser, ble + survey fingerprints", True)):
            report, baseline = _evaluate(
                calibrated, test_records, truth, _params(calibrated, True, prints), survey
            )
            rows.setdefault(label, []).append(report)
        rows.setdefault("strongest receiver", []).append(baseline)
        if hint is not None:
            hinted = to_records(test, gateways, hint)
            report, _ = _evaluate(calibrated, hinted, truth, _params(calibrated, True, False), survey)
            rows.setdefault("fuser, ble + survey, motion hint", []).append(report)
    out: dict[str, Any] = {"folds": folds, "block_s": HELDOUT_BLOCK_S}
    for label, reports in rows.items():
        near = [r.boundary_accuracy for r in reports if r.boundary_accuracy is not None]
        delays = [r.median_delay_s for r in reports if r.median_delay_s is not None]
        out[label] = {
            "accuracy": [round(r.accuracy, 4) for r in reports],
            "boundary_accuracy": [
                None if r.boundary_accuracy is None else round(r.boundary_accuracy, 4) for r in reports
            ],
            "median_delay_s": [
                None if r.median_delay_s is None else round(r.median_delay_s, 2) for r in reports
            ],
            "mean_accuracy": round(sum(r.accuracy for r in reports) / len(reports), 4),
            "mean_boundary_accuracy": round(sum(near) / len(near), 4) if near else None,
            "mean_median_delay_s": round(sum(delays) / len(delays), 2) if delays else None,
        }
    return out


def _fit_dict(f: GatewayFit) -> dict[str, Any]:
    return {
        "gateway": f.gateway,
        "measured_power_dbm": f.measured_power_dbm,
        "path_loss_exponent": f.path_loss_exponent,
        "sensitivity_dbm": f.sensitivity_dbm,
        "points": f.points,
        "holdout_points": f.holdout_points,
        "holdout_rms_db": f.holdout_rms_db,
        "configured_holdout_rms_db": f.configured_holdout_rms_db,
        "used": f.use,
        "note": f.note,
    }


def print_presence_real(doc: dict[str, Any]) -> None:
    """The figures beside the strongest-receiver baseline, per calibration."""
    from rich.console import Console
    from rich.table import Table

    def pct(v: object) -> str:
        return "n/a" if v is None else f"{100 * float(str(v)):.1f} %"

    table = Table(title="BLE zone presence, Kolakowski 2021 test run (development figures)")
    for col in ("calibration", "method", "accuracy", "near borders", "median delay", "zone changes"):
        table.add_column(col, justify="right")
    for calib, row in doc["results"].items():
        for method, r in row.items():
            delay = "-" if r["median_delay_s"] is None else f"{r['median_delay_s']:.2f} s"
            table.add_row(
                calib, method, pct(r["accuracy"]), pct(r["boundary_accuracy"]), delay, str(r["changes"])
            )
    console = Console()
    console.print(table)
    held = doc.get("heldout")
    if held:
        console.print(
            f"Held out on the calibration run ({held['folds']} folds of {held['block_s']:.0f} s blocks):"
        )
        for label, r in held.items():
            if isinstance(r, dict):
                per_fold = ", ".join(pct(a) for a in r["accuracy"])
                lag = r.get("mean_median_delay_s")
                console.print(
                    f"  {label}: {pct(r['mean_accuracy'])} / {pct(r['mean_boundary_accuracy'])} near borders"
                    f" / {'-' if lag is None else f'{lag:.2f} s'} median delay (folds: {per_fold})"
                )
    for f in doc["calibration"]:
        state = "used" if f["used"] else "kept configured"
        console.print(
            f"{f['gateway']}: {f['measured_power_dbm']} dBm, n {f['path_loss_exponent']}, "
            f"sensitivity {f['sensitivity_dbm']} dBm; held-out rms {f['holdout_rms_db']} dB against "
            f"{f['configured_holdout_rms_db']} configured ({state}) {f['note']}"
        )
