"""One YAML file per gateway: which store and gateway it is, and its cameras.

Each camera names its source (file, RTSP, HTTP or USB), its detector model, the thread
count for inference, and what to count, all in the camera's pixel coordinates:

* ``lines``: a segment and a point on its inside; crossing towards the inside *enters*
  the named store zone, crossing back *exits* it;
* ``zones``: a polygon per store zone for occupancy and dwell;
* ``queues``: a polygon per checkout lane, whose occupancy is the lane's queue length
  (published on the lane's zone).

Every error names the file, the key and the problem; references (zones, lanes) are
checked against the store config, and polygons against the frame when the first frame
arrives (:func:`frame_problem`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from broker_config.contract import Ident
from edge_agent.camera.detector import ModelConfig, SsdLiteModel
from edge_agent.camera.source import SourceConfig
from edge_agent.camera.tracker import TrackerConfig
from edge_agent.camera.views import DetectionConfig
from floorwalker import geometry
from floorwalker.config import StoreConfig, load_yaml_model
from floorwalker.errors import ConfigError

PixelPoint = tuple[Annotated[float, Field(ge=0, le=20_000)], Annotated[float, Field(ge=0, le=20_000)]]
PixelPolygon = Annotated[list[PixelPoint], Field(min_length=3, max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _valid_polygon(poly: list[PixelPoint]) -> list[PixelPoint]:
    if problem := geometry.polygon_problem(poly):
        raise ValueError(problem)
    return poly


class LineConfig(_Strict):
    id: Ident
    #: The counting segment, two pixel points.
    points: tuple[PixelPoint, PixelPoint]
    #: Any pixel on the side people are on after entering.
    inside: PixelPoint
    #: The store zone a crossing towards ``inside`` enters (and a crossing back exits).
    enters: Ident
    #: Half-width of the band around the line in which a person's side is left unchanged.
    band_px: float = Field(default=8.0, ge=0, le=200)

    @model_validator(mode="after")
    def _shape(self) -> LineConfig:
        a, b = self.points
        if a == b:
            raise ValueError("points: the line's two points are the same")
        dx, dy = b[0] - a[0], b[1] - a[1]
        cross = dx * (self.inside[1] - a[1]) - dy * (self.inside[0] - a[0])
        if abs(cross) < 1e-6:
            raise ValueError("inside: the point lies on the line; put it on the side people enter")
        return self


class ZoneAreaConfig(_Strict):
    #: The store zone this polygon of the picture shows.
    zone: Ident
    polygon: PixelPolygon

    _valid = field_validator("polygon")(_valid_polygon)


class QueueAreaConfig(_Strict):
    #: The checkout lane whose queue this polygon covers.
    lane: Ident
    polygon: PixelPolygon

    _valid = field_validator("polygon")(_valid_polygon)


class DetectRegionConfig(_Strict):
    """A part of the picture the detector also looks at on its own, at a higher resolution."""

    #: x0, y0, x1, y1 in pixels: e.g. a square over the far end of a counting line, about
    #: 3-5 times the height of a person standing there.
    box: tuple[
        Annotated[int, Field(ge=0, le=20_000)],
        Annotated[int, Field(ge=0, le=20_000)],
        Annotated[int, Field(ge=0, le=20_000)],
        Annotated[int, Field(ge=0, le=20_000)],
    ]

    @model_validator(mode="after")
    def _shape(self) -> DetectRegionConfig:
        x0, y0, x1, y1 = self.box
        if x1 - x0 < 32 or y1 - y0 < 32:
            raise ValueError("box: needs x1 > x0 and y1 > y0, at least 32 px each way")
        return self


class PublishConfig(_Strict):
    #: Every zone's counts are published at least this often (seconds) ...
    interval_s: float = Field(default=10.0, ge=0.5, le=3600)
    #: ... and when they change, but not more often than this.
    min_interval_s: float = Field(default=1.0, ge=0.1, le=3600)

    @model_validator(mode="after")
    def _order(self) -> PublishConfig:
        if self.min_interval_s > self.interval_s:
            raise ValueError("min_interval_s must not be greater than interval_s")
        return self


class CameraConfig(_Strict):
    id: Ident
    source: SourceConfig
    model: ModelConfig = SsdLiteModel()
    #: onnxruntime intra-op threads for this camera's detector.
    threads: int = Field(default=1, ge=1, le=64)
    #: Which point of a person's box is counted: the feet (bottom centre) or the centre.
    anchor: Literal["feet", "centre"] = "feet"
    lines: list[LineConfig] = []
    zones: list[ZoneAreaConfig] = []
    queues: list[QueueAreaConfig] = []
    tracker: TrackerConfig = TrackerConfig()
    publish: PublishConfig = PublishConfig()
    #: Where the detector looks: by default views derived from the lines and zones (see
    #: ``edge_agent/camera/views.py``), no hand tuning.
    detection: DetectionConfig = DetectionConfig()
    #: Optional hand-drawn regions instead of the derived views (each one more inference a
    #: frame, the full frame every frame); not needed in the default setup.
    detect_regions: list[DetectRegionConfig] = Field(default=[], max_length=4)

    @model_validator(mode="after")
    def _something_to_count(self) -> CameraConfig:
        if not (self.lines or self.zones or self.queues):
            raise ValueError("a camera needs at least one of lines, zones or queues")
        ids = [line.id for line in self.lines]
        if len(set(ids)) != len(ids):
            raise ValueError("lines: two lines have the same id")
        return self

    def polygons(self) -> list[tuple[str, list[PixelPoint]]]:
        """Every polygon and line with its config key, for the frame check."""
        out: list[tuple[str, list[PixelPoint]]] = []
        out += [(f"lines[{i}]", [*ln.points]) for i, ln in enumerate(self.lines)]
        out += [(f"zones[{i}]", z.polygon) for i, z in enumerate(self.zones)]
        out += [(f"queues[{i}]", q.polygon) for i, q in enumerate(self.queues)]
        for i, r in enumerate(self.detect_regions):
            x0, y0, x1, y1 = (float(v) for v in r.box)
            out.append((f"detect_regions[{i}]", [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]))
        return out


class GatewayFileConfig(_Strict):
    store: Ident
    #: The store's YAML (relative to this file); the gateway must be one of its gateways.
    store_config: Path | None = None
    gateway: Ident
    heartbeat_s: float = Field(default=30.0, ge=1, le=3600)
    cameras: list[CameraConfig] = Field(default=[], max_length=16)

    @model_validator(mode="after")
    def _unique(self) -> GatewayFileConfig:
        ids = [c.id for c in self.cameras]
        if len(set(ids)) != len(ids):
            raise ValueError("cameras: two cameras have the same id")
        return self


def load_gateway_config(path: Path) -> GatewayFileConfig:
    """Read and validate a gateway YAML; relative paths are made relative to the file."""
    config = load_yaml_model(path, GatewayFileConfig, "gateway config")
    base = path.resolve().parent

    def rel(p: Path) -> Path:
        return p if p.is_absolute() else (base / p).resolve()

    cameras = []
    for cam in config.cameras:
        update: dict[str, object] = {}
        if cam.source.kind == "file":
            update["source"] = cam.source.model_copy(update={"path": rel(cam.source.path)})
        if cam.model.path is not None:
            update["model"] = cam.model.model_copy(update={"path": rel(cam.model.path)})
        cameras.append(cam.model_copy(update=update))
    store_config = rel(config.store_config) if config.store_config else None
    return config.model_copy(update={"cameras": cameras, "store_config": store_config})


def check_against_store(config: GatewayFileConfig, store: StoreConfig, path: Path) -> None:
    """The gateway, its zones and lanes exist in the store, and the gateway covers them."""
    if config.store != store.store:
        raise ConfigError(f"{path}: store: {config.store!r} but the store config is {store.store!r}")
    gw = next((g for g in store.gateways if g.id == config.gateway), None)
    if gw is None:
        known = ", ".join(g.id for g in store.gateways)
        raise ConfigError(
            f"{path}: gateway: {config.gateway!r} is not in store {store.store!r} (known: {known})"
        )
    covered = set(gw.zones)
    for ci, cam in enumerate(config.cameras):
        for key, zone in [(f"lines[{i}].enters", ln.enters) for i, ln in enumerate(cam.lines)] + [
            (f"zones[{i}].zone", z.zone) for i, z in enumerate(cam.zones)
        ]:
            if zone not in covered:
                raise ConfigError(
                    f"{path}: cameras[{ci}].{key}: zone {zone!r} is not covered by gateway "
                    f"{gw.id!r} (covers: {', '.join(gw.zones)})"
                )
        for i, q in enumerate(cam.queues):
            lane = store.lane(q.lane)
            if lane is None:
                raise ConfigError(f"{path}: cameras[{ci}].queues[{i}].lane: no lane {q.lane!r} in the store")
            if lane.zone is None or lane.zone not in covered:
                raise ConfigError(
                    f"{path}: cameras[{ci}].queues[{i}].lane: lane {q.lane!r} stands in zone "
                    f"{lane.zone!r}, which gateway {gw.id!r} does not cover"
                )


def frame_problem(camera: CameraConfig, width: int, height: int) -> str | None:
    """Why the camera's lines and polygons do not fit a ``width`` x ``height`` frame, if they don't."""
    for key, points in camera.polygons():
        for p in points:
            if not (0 <= p[0] <= width and 0 <= p[1] <= height):
                return f"{key}: point {list(p)} lies outside the {width}x{height} frame"
    return None


def pick_camera(gateway_config: Path | None, camera: str | None) -> CameraConfig | None:
    """The camera a command runs: ``camera`` (or the first) of the gateway YAML at
    ``gateway_config``; None without one. One line naming the key when it is not there."""
    if gateway_config is None:
        if camera is not None:
            raise ConfigError("--camera: only with --gateway-config")
        return None
    gw = load_gateway_config(gateway_config)
    cams = [c for c in gw.cameras if camera is None or c.id == camera]
    if not cams:
        have = ", ".join(c.id for c in gw.cameras) or "none"
        raise ConfigError(f"{gateway_config}: cameras: no camera {camera!r} (have: {have})")
    return cams[0]
