"""Camera footfall, the pure part: detections -> tracks -> crossings, occupancy, dwell, queues
-> per-zone reports at an interval and on change.

:class:`CameraCounter` runs the tracker and every line, zone and queue of one camera over
a frame's detections (time passed in). :class:`FootfallAggregator` folds those per-frame
counts into one :class:`ZoneReport` per store zone, due every ``interval_s`` or sooner when
a count changed (never more often than ``min_interval_s``): never one message per frame.
:class:`FootfallPipeline` adds the detector in front. No clocks, sockets or files here, so
a recorded trace replays exactly.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from edge_agent.camera.appearance import with_appearance
from edge_agent.camera.detector import Detections, Detector, Frame, RegionDetector
from edge_agent.camera.line_counter import CountLine, Crossing, LineCounter
from edge_agent.camera.tracker import Track, Tracker
from edge_agent.camera.views import PixelRect, ViewDetector, plan_views
from edge_agent.camera.zones import PolygonZone
from edge_agent.gateway_config import CameraConfig, PublishConfig
from floorwalker.geometry import Point


@dataclass(frozen=True, slots=True)
class FrameCounts:
    """What one frame changed."""

    t: float
    tracks: list[Track]
    #: (store zone entered or exited, crossing)
    crossings: list[tuple[str, Crossing]]
    #: store zone -> people inside its polygon(s) now
    occupancy: dict[str, int]
    #: lane -> people in its queue polygon(s) now
    queues: dict[str, int]
    #: store zone -> dwell times of visits that ended in this frame
    dwells: dict[str, tuple[float, ...]]


class CameraCounter:
    """Tracker, lines, zones and queues of one camera; pure over detections and time."""

    def __init__(self, config: CameraConfig, lane_zones: dict[str, str] | None = None) -> None:
        self.config = config
        self.tracker = Tracker(config.tracker)
        self.lines = [
            (
                ln.enters,
                LineCounter(CountLine(ln.id, ln.points[0], ln.points[1], ln.inside), band_px=ln.band_px),
            )
            for ln in config.lines
        ]
        self.zones = [(z.zone, PolygonZone(z.zone, list(z.polygon))) for z in config.zones]
        self.queues = [(q.lane, PolygonZone(q.lane, list(q.polygon))) for q in config.queues]
        #: lane -> the store zone its queue is published on
        self.lane_zones = lane_zones or {}
        self._newest_id = 0

    def update(self, detections: Detections, t: float) -> FrameCounts:
        tracks = self.tracker.update(detections, t)
        feet = self.config.anchor == "feet"

        def pick(tr: Track) -> Point:
            return tr.feet if feet else tr.centre

        def origin(tr: Track) -> Point:
            return tr.origin_feet if feet else tr.origin_centre

        # Lines see only people actually detected in this frame: a predicted position of a
        # hidden person must not carry them over a line.
        seen: dict[int, Point] = {tr.id: pick(tr) for tr in tracks if tr.seen}
        present: dict[int, Point] = {tr.id: pick(tr) for tr in tracks}
        # Where a track just confirmed was first detected (ids are issued in order, so a
        # new one is above every id seen before; later its line state is the counter's).
        origins = {tr.id: origin(tr) for tr in tracks if tr.seen and tr.id > self._newest_id}
        self._newest_id = max([self._newest_id, *(tr.id for tr in tracks)])
        # Each seen person's height: the band around a line narrows for someone small.
        heights = {tr.id: tr.box[3] - tr.box[1] for tr in tracks if tr.seen}
        crossings = [
            (zone, c) for zone, counter in self.lines for c in counter.update(seen, t, origins, heights)
        ]
        occupancy: dict[str, int] = defaultdict(int)
        dwells: dict[str, tuple[float, ...]] = {}
        for zone, poly in self.zones:
            snap = poly.update(present, t)
            occupancy[zone] += snap.occupancy
            if snap.finished_dwells:
                dwells[zone] = dwells.get(zone, ()) + snap.finished_dwells
        queues: dict[str, int] = defaultdict(int)
        for lane, poly in self.queues:
            queues[lane] += poly.update(present, t).occupancy
        return FrameCounts(t, tracks, crossings, dict(occupancy), dict(queues), dwells)


@dataclass(frozen=True, slots=True)
class ZoneReport:
    """One FootfallEvent's worth for one zone."""

    zone: str
    t: float
    window_s: float
    entered: int
    exited: int
    occupancy: int
    queue_length: int | None
    dwell_avg_s: float | None
    lane_queues: dict[str, int] | None


@dataclass(slots=True)
class _Tally:
    window_start: float
    last_sent: float | None = None
    entered: int = 0
    exited: int = 0
    entered_total: int = 0
    exited_total: int = 0
    occupancy: int | None = None  # from polygons, when the zone has one
    lanes: dict[str, int] = field(default_factory=dict)
    dwells: list[float] = field(default_factory=list)
    sent_state: tuple[int, int | None] | None = None

    def state(self) -> tuple[int, int | None]:
        queue = sum(self.lanes.values()) if self.lanes else None
        return (self.current_occupancy(), queue)

    def current_occupancy(self) -> int:
        if self.occupancy is not None:
            return self.occupancy
        # No polygon for this zone: people who came in through our lines and did not leave.
        return max(0, self.entered_total - self.exited_total)


class FootfallAggregator:
    """Per-zone counts over publish windows; :meth:`due` says which zones to publish now."""

    def __init__(
        self, zones: list[str], publish: PublishConfig, start_t: float, lane_zones: dict[str, str]
    ) -> None:
        self.publish = publish
        self.lane_zones = lane_zones
        self._tallies = {z: _Tally(window_start=start_t) for z in zones}

    def add(self, counts: FrameCounts) -> None:
        for zone, crossing in counts.crossings:
            tally = self._tallies[zone]
            if crossing.direction == "in":
                tally.entered += 1
                tally.entered_total += 1
            else:
                tally.exited += 1
                tally.exited_total += 1
        for zone, n in counts.occupancy.items():
            self._tallies[zone].occupancy = n
        for lane, n in counts.queues.items():
            self._tallies[self.lane_zones[lane]].lanes[lane] = n
        for zone, ds in counts.dwells.items():
            self._tallies[zone].dwells.extend(ds)

    def due(self, t: float) -> list[ZoneReport]:
        """Reports for zones whose interval is up, or that changed and may publish again."""
        reports = []
        for zone, tally in self._tallies.items():
            since = t - (tally.last_sent if tally.last_sent is not None else tally.window_start)
            changed = bool(tally.entered or tally.exited) or tally.state() != tally.sent_state
            if since >= self.publish.interval_s or (changed and since >= self.publish.min_interval_s):
                reports.append(self._report(zone, tally, t))
        return reports

    def flush(self, t: float) -> list[ZoneReport]:
        """Every zone with anything unsent (at shutdown or when the video ends)."""
        return [
            self._report(zone, tally, t)
            for zone, tally in self._tallies.items()
            if tally.entered or tally.exited or tally.state() != tally.sent_state
        ]

    def _report(self, zone: str, tally: _Tally, t: float) -> ZoneReport:
        start = tally.last_sent if tally.last_sent is not None else tally.window_start
        occupancy, queue = tally.state()
        report = ZoneReport(
            zone=zone,
            t=t,
            window_s=round(max(t - start, 1e-3), 3),
            entered=tally.entered,
            exited=tally.exited,
            occupancy=occupancy,
            queue_length=queue,
            dwell_avg_s=round(sum(tally.dwells) / len(tally.dwells), 2) if tally.dwells else None,
            lane_queues=dict(tally.lanes) if tally.lanes else None,
        )
        tally.entered = tally.exited = 0
        tally.dwells.clear()
        tally.last_sent = t
        tally.sent_state = (occupancy, queue)
        return report


class FootfallPipeline:
    """Detector + :class:`CameraCounter`: one call per frame."""

    def __init__(
        self, config: CameraConfig, detector: Detector, lane_zones: dict[str, str] | None = None
    ) -> None:
        self.config = config
        self.model = detector
        regions = [r.box for r in config.detect_regions]
        #: Set on the first frame (the views depend on the frame's size).
        self.detector: Detector | None = RegionDetector(detector, regions) if regions else None
        self.counter = CameraCounter(config, lane_zones)

    def detector_for(self, width: int, height: int) -> Detector:
        """The detector over this camera's views (planned for the first frame's size)."""
        if self.detector is None:
            self.detector = ViewDetector(
                self.model,
                camera_views(self.config, width, height),
                full_every=self.config.detection.full_every,
            )
        return self.detector

    def process(self, frame: Frame, t: float) -> FrameCounts:
        return self.process_with_detections(frame, t)[0]

    def process_with_detections(self, frame: Frame, t: float) -> tuple[FrameCounts, Detections]:
        h, w = frame.shape[:2]
        detections = with_appearance(frame, self.detector_for(w, h).detect(frame))
        return self.counter.update(detections, t), detections


def camera_views(config: CameraConfig, width: int, height: int) -> list[PixelRect]:
    """The views a camera's detector searches besides the full frame (none: full frame only)."""
    if config.detect_regions:
        return [r.box for r in config.detect_regions]
    polygons = [list(z.polygon) for z in config.zones] + [list(q.polygon) for q in config.queues]
    lines = [(ln.points[0], ln.points[1]) for ln in config.lines]
    return plan_views(lines, polygons, width, height, config.detection)


def zones_of(config: CameraConfig, lane_zones: dict[str, str]) -> list[str]:
    """The store zones a camera reports on, in config order."""
    zones: list[str] = []
    for z in (
        [ln.enters for ln in config.lines]
        + [z.zone for z in config.zones]
        + [lane_zones[q.lane] for q in config.queues]
    ):
        if z not in zones:
            zones.append(z)
    return zones
