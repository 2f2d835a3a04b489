"""Prometheus metrics of the store server, as the API sees them (``GET /metrics``).

Each app has its own registry (tests build many apps in one process).

``floorwalker_prompt_latency_seconds`` measures, per prompt, the time from the sensed
event (the prompt's ``cause_ts``, stamped by the gateway or till) to the moment the API
received the prompt from the broker: sensing, broker, recommender and broker again. It
includes any clock offset between the device and the store server.
``floorwalker_recommender_latency_seconds`` is the recommender's part alone: the sensed
event to the prompt's own ``ts``, stamped when the recommender made it.

The floor figures come from what the API hears on the broker: footfall (zone occupancy,
lane queues, entries and exits), checkouts (each lane's wait: its queue times the mean
time between its recent checkouts, as Home Assistant's entity), gateway statuses (camera
frames/s and dropped frames, outbox depth), the gateways' BLE reports (adverts and
sightings) and the fuser's status (per gateway, sightings resolved to a member or to
nobody: only the fuser can resolve ids, and it publishes counts, never who). Totals a
producer reports (dropped frames, resolved ids) are counters that restart from zero when
the producer does. Decisions and prompts by kind are the recommender's own counters, read
from Redis at each scrape. No ``_created`` series.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping

import redis
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from broker_config.contract import (
    BleReport,
    CheckoutEvent,
    Envelope,
    FootfallEvent,
    FuserStatus,
    GatewayStatus,
    Prompt,
)
from floorwalker.config import StoreConfig
from floorwalker.errors import FloorwalkerError
from floorwalker.queue_wait import SERVICE_SAMPLES, lane_queues, lane_wait_s
from handheld.floor import GatewayView

log = logging.getLogger(__name__)

disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RecommenderStats(Collector):
    """The recommender's counters (its Redis stats hash), read at each scrape."""

    def __init__(self) -> None:
        self.source: Callable[[], Mapping[str, int]] | None = None

    def collect(self) -> Iterator[Metric]:
        if self.source is None:
            return
        try:
            stats = self.source()
        except (redis.RedisError, FloorwalkerError) as exc:
            log.warning("metrics: the recommender's stats are not readable (%s)", exc)
            return
        decisions = CounterMetricFamily(
            "floorwalker_decisions", "The recommender's decisions, by outcome.", labels=["outcome"]
        )
        prompts = CounterMetricFamily(
            "floorwalker_recommender_prompts", "Prompts the recommender sent, by kind.", labels=["kind"]
        )
        unserved = CounterMetricFamily(
            "floorwalker_prompts_unserved",
            "Prompts no associate could take, by how routing failed.",
            labels=["route"],
        )
        for key, value in sorted(stats.items()):
            name, _, rest = key.partition(":")
            if not rest or ":" in rest:
                continue
            family = {"outcome": decisions, "prompt": prompts, "unserved": unserved}.get(name)
            if family is not None:
                family.add_metric([rest], value)
        yield from (decisions, prompts, unserved)

    def describe(self) -> Iterator[Metric]:
        return iter(())


class ReportedTotals(Collector):
    """Counters whose totals a producer reports (a camera's dropped frames, the fuser's
    resolved ids): the latest reported value per label set, exposed as a counter. A
    producer that restarts reports from zero again, which ``rate()`` reads as a reset."""

    def __init__(self, name: str, documentation: str, labels: list[str]) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self._values: dict[tuple[str, ...], int] = {}
        self._lock = threading.Lock()  # set on the MQTT thread, collected on a scrape

    def set(self, labels: tuple[str, ...], value: int) -> None:
        with self._lock:
            self._values[labels] = value

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        with self._lock:
            values = sorted(self._values.items())
        for labels, value in values:
            family.add_metric(list(labels), value)
        yield family

    def describe(self) -> Iterator[Metric]:
        return iter(())


class ApiMetrics:
    def __init__(self, config: StoreConfig | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        #: zone -> its lanes (a footfall event's ``queue_length`` is its lane's when it has one).
        self._zone_lanes: dict[str, list[str]] = {}
        for lane in config.lanes if config is not None else []:
            if lane.zone is not None:
                self._zone_lanes.setdefault(lane.zone, []).append(lane.id)
        self._queues: dict[str, int] = {}
        self._checkouts: dict[str, deque[float]] = {}
        self.recommender = RecommenderStats()
        r.register(self.recommender)
        self.prompts = Counter(
            "floorwalker_prompts", "Prompts received for this store's associates.", ["kind"], registry=r
        )
        self.deliveries = Counter(
            "floorwalker_handheld_deliveries",
            "Prompts stored for an associate's handheld: first deliveries and re-routes (the same"
            " prompt moved to another associate).",
            ["how"],
            registry=r,
        )
        self.withdrawals = Counter(
            "floorwalker_handheld_withdrawals",
            "Prompts taken off an associate's handheld: re-routed to another associate.",
            ["reason"],
            registry=r,
        )
        self.feedback = Counter(
            "floorwalker_prompt_outcomes",
            "Associates' answers to prompts, by prompt kind and outcome.",
            ["kind", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "floorwalker_prompt_latency_seconds",
            "Sensed event (cause_ts) to prompt received at the API, seconds.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.deadletters = Counter(
            "floorwalker_deadletters",
            "Dead-letter records seen on the broker, by reason.",
            ["reason"],
            registry=r,
        )
        self.gateway_up = Gauge(
            "floorwalker_gateway_up",
            "1 if the gateway's retained status says online.",
            ["gateway"],
            registry=r,
        )
        self.gateway_seen = Gauge(
            "floorwalker_gateway_last_seen_timestamp_seconds",
            "Time of the gateway's latest status message.",
            ["gateway"],
            registry=r,
        )
        self.streams = Gauge("floorwalker_handheld_streams", "Open handheld event streams.", registry=r)
        self.recommender_latency = Histogram(
            "floorwalker_recommender_latency_seconds",
            "Sensed event (cause_ts) to the recommender's prompt (its ts), seconds.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.occupancy = Gauge("floorwalker_zone_occupancy", "People in the zone.", ["zone"], registry=r)
        self.queue = Gauge("floorwalker_lane_queue", "People queueing at the lane.", ["lane"], registry=r)
        self.wait = Gauge(
            "floorwalker_lane_wait_seconds",
            "The lane's queue x the mean time between its recent checkouts, seconds.",
            ["lane"],
            registry=r,
        )
        self.footfall = Counter(
            "floorwalker_footfall",
            "People who entered (direction=in) or left (out) the zone.",
            ["zone", "direction"],
            registry=r,
        )
        self.camera_fps = Gauge(
            "floorwalker_camera_fps",
            "Frames processed per second, recently.",
            ["gateway", "camera"],
            registry=r,
        )
        self.camera_up = Gauge(
            "floorwalker_camera_streaming",
            "1 if the camera's state is streaming.",
            ["gateway", "camera"],
            registry=r,
        )
        self.camera_dropped = ReportedTotals(
            "floorwalker_camera_dropped_frames",
            "Frames the camera delivered that were never processed (inference was busy and a"
            " newer frame replaced them), as the gateway reports them.",
            ["gateway", "camera"],
        )
        r.register(self.camera_dropped)
        self.ble_adverts = Counter(
            "floorwalker_ble_adverts",
            "Member-app advertisements the gateway heard (summed from its BLE reports).",
            ["gateway"],
            registry=r,
        )
        self.ble_sightings = Counter(
            "floorwalker_ble_sightings",
            "Rotating ids the gateway reported (one per id per report).",
            ["gateway"],
            registry=r,
        )
        self.ble_resolved = ReportedTotals(
            "floorwalker_ble_resolved",
            "Sightings from the gateway whose rotating id the fuser resolved to a member.",
            ["gateway"],
        )
        r.register(self.ble_resolved)
        self.ble_unresolved = ReportedTotals(
            "floorwalker_ble_unresolved",
            "Sightings from the gateway whose id the fuser resolved to nobody (not a consenting"
            " member, revoked, or off in time).",
            ["gateway"],
        )
        r.register(self.ble_unresolved)
        self.outbox_pending = Gauge(
            "floorwalker_outbox_pending",
            "Events in the gateway's outbox not yet acknowledged.",
            ["gateway"],
            registry=r,
        )
        self.outbox_age = Gauge(
            "floorwalker_outbox_oldest_age_seconds",
            "Age of the oldest event waiting in the gateway's outbox.",
            ["gateway"],
            registry=r,
        )

    def gateway(self, view: GatewayView) -> None:
        self.gateway_up.labels(view.id).set(1 if view.state == "online" else 0)
        if view.last_seen is not None:
            self.gateway_seen.labels(view.id).set(view.last_seen)

    def floor(self, subject: str, payload: Envelope) -> None:
        """The floor figures in one message (footfall, checkout, gateway or fuser status, BLE
        report)."""
        if isinstance(payload, FootfallEvent):
            self.occupancy.labels(subject).set(payload.occupancy)
            self.footfall.labels(subject, "in").inc(payload.entered)
            self.footfall.labels(subject, "out").inc(payload.exited)
            queues = lane_queues(payload.lane_queues, payload.queue_length, self._zone_lanes.get(subject, []))
            for lane, n in queues.items():
                self._queues[lane] = n
                self.queue.labels(lane).set(n)
                self._wait(lane)
        elif isinstance(payload, CheckoutEvent):
            self._checkouts.setdefault(subject, deque(maxlen=SERVICE_SAMPLES)).append(payload.ts)
            self._wait(subject)
        elif isinstance(payload, GatewayStatus):
            for sensor in payload.sensors:
                if sensor.kind == "camera":
                    self.camera_up.labels(subject, sensor.id).set(1 if sensor.state == "streaming" else 0)
                    if sensor.rate_hz is not None:
                        self.camera_fps.labels(subject, sensor.id).set(sensor.rate_hz)
                    if sensor.dropped_frames is not None:
                        self.camera_dropped.set((subject, sensor.id), sensor.dropped_frames)
            if payload.outbox is not None:
                self.outbox_pending.labels(subject).set(payload.outbox.pending)
                self.outbox_age.labels(subject).set(payload.outbox.oldest_age_s)
        elif isinstance(payload, BleReport):
            self.ble_sightings.labels(subject).inc(len(payload.sightings))
            self.ble_adverts.labels(subject).inc(sum(s.adverts for s in payload.sightings))
        elif isinstance(payload, FuserStatus):
            for gateway, counts in payload.ble.items():
                self.ble_resolved.set((gateway,), counts.resolved)
                self.ble_unresolved.set((gateway,), counts.unresolved)

    def _wait(self, lane: str) -> None:
        wait = lane_wait_s(self._queues.get(lane), self._checkouts.get(lane))
        if wait is not None:
            self.wait.labels(lane).set(wait)

    def lane(self, lane: str) -> tuple[int | None, float | None]:
        """The lane's latest queue and its estimated wait, seconds (None while unknown)."""
        queue = self._queues.get(lane)
        times = self._checkouts.get(lane)
        return queue, lane_wait_s(queue, tuple(times) if times is not None else None)

    def prompt(self, prompt: Prompt, now: float) -> None:
        """A prompt newly stored for an associate: by kind, and its latencies."""
        self.prompts.labels(prompt.kind.value).inc()
        self.latency.observe(max(0.0, now - prompt.cause_ts))
        self.recommender_latency.observe(max(0.0, prompt.ts - prompt.cause_ts))

    def render(self) -> bytes:
        return generate_latest(self.registry)
