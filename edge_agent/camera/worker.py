"""One camera on a gateway, the thin shell: frames in, footfall reports out over MQTT.

Loads the detector, opens the source, runs :class:`FootfallPipeline` on the newest frame
(older ones are skipped by the source when inference falls behind), and publishes what
:class:`FootfallAggregator` says is due. Its health (state, processing rate, frames
dropped unprocessed, the last problem) goes into the gateway's status. A bad model, an unreachable
camera, a video that ends or zones that do not fit the frame stop this camera with a
one-line reason; the gateway and its other cameras keep running.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from broker_config.contract import SensorHealth
from edge_agent.camera.detector import load_detector
from edge_agent.camera.footfall import FootfallAggregator, FootfallPipeline, ZoneReport, zones_of
from edge_agent.camera.source import FrameSource, SourceHealth, describe_source
from edge_agent.gateway_config import CameraConfig, frame_problem
from edge_agent.publisher import EdgePublisher
from floorwalker.errors import FloorwalkerError

log = logging.getLogger(__name__)


class CameraWorker:
    def __init__(
        self,
        config: CameraConfig,
        publisher: EdgePublisher,
        lane_zones: dict[str, str],
        *,
        on_change: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._publisher = publisher
        self._lane_zones = lane_zones
        self._on_change = on_change
        self._clock = clock
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._state = "starting"
        self._detail = ""
        self._rate = 0.0
        self._source: FrameSource | None = None
        self.published: list[ZoneReport] = []
        self._thread = threading.Thread(target=self._run, name=f"camera-{config.id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def health(self) -> SensorHealth:
        with self._lock:
            state, detail, rate = self._state, self._detail, self._rate
        src = self._source.health() if self._source is not None else None
        if src is not None and state not in ("failed", "ended"):
            # While running, the source knows best (streaming, or reconnecting and why).
            state, detail = src.state, src.detail
            if state == "streaming":
                detail = f"{rate:.1f} fps processed, {src.frames_skipped} frames skipped"
        return SensorHealth(
            id=self.config.id,
            kind="camera",
            state=state,
            detail=detail[:300],
            rate_hz=round(rate, 2),
            dropped_frames=src.frames_skipped if src is not None else None,
        )

    def _set(self, state: str, detail: str = "") -> None:
        with self._lock:
            changed = (state, detail) != (self._state, self._detail)
            self._state, self._detail = state, detail
        if changed:
            if state == "failed":
                log.error("camera %s: %s", self.config.id, detail)
            else:
                log.info("camera %s: %s %s", self.config.id, state, detail)
            self._on_change()

    def _run(self) -> None:
        try:
            self._serve()
        except FloorwalkerError as exc:
            self._set("failed", str(exc))
        except Exception as exc:  # a camera must never take the gateway down
            log.exception("camera %s stopped", self.config.id)
            self._set("failed", f"unexpected error: {type(exc).__name__}: {exc}")

    def _serve(self) -> None:
        cfg = self.config
        pipeline = FootfallPipeline(cfg, load_detector(cfg.model, cfg.threads), self._lane_zones)
        source = FrameSource(cfg.source, clock=self._clock)
        self._source = source
        source.start()
        aggregator = FootfallAggregator(
            zones_of(cfg, self._lane_zones), cfg.publish, self._clock(), self._lane_zones
        )
        last_state: SourceHealth | None = None
        checked = False
        frames, rate_t0 = 0, time.monotonic()
        try:
            while not self._stop.is_set():
                tf = source.latest(timeout=0.5)
                health = source.health()
                if last_state is None or health.state != last_state.state:
                    last_state = health
                    if health.state != "streaming":
                        self._set(health.state, health.detail)
                if tf is None:
                    if source.finished:
                        self._publish(aggregator.flush(self._clock()))
                        final = source.health()
                        self._set(final.state, f"{describe_source(cfg.source)}: {final.detail}")
                        return
                    self._publish(aggregator.due(self._clock()))
                    continue
                if not checked:
                    h, w = tf.frame.shape[:2]
                    if problem := frame_problem(cfg, w, h):
                        self._set("failed", f"camera {cfg.id}: {problem}")
                        return
                    checked = True
                    self._set("streaming")
                counts = pipeline.process(tf.frame, tf.t)
                aggregator.add(counts)
                self._publish(aggregator.due(tf.t))
                frames += 1
                elapsed = time.monotonic() - rate_t0
                if elapsed >= 2.0:
                    with self._lock:
                        self._rate = frames / elapsed
                    frames, rate_t0 = 0, time.monotonic()
        finally:
            source.stop()

    def _publish(self, reports: list[ZoneReport]) -> None:
        for r in reports:
            self._publisher.footfall(
                r.zone,
                r.t,
                window_s=r.window_s,
                entered=r.entered,
                exited=r.exited,
                occupancy=r.occupancy,
                queue_length=r.queue_length,
                dwell_avg_s=r.dwell_avg_s,
                lane_queues=r.lane_queues,
            )
            self.published.append(r)
            if len(self.published) > 1000:
                del self.published[:500]
