"""Prometheus metrics of the store server, as the API sees them (``GET /metrics``).

Each app has its own registry (tests build many apps in one process).

``floorwalker_prompt_latency_seconds`` measures, per prompt, the time from the sensed
event (the prompt's ``cause_ts``, stamped by the gateway or till) to the moment the API
received the prompt from the broker: sensing, broker, recommender and broker again. It
includes any clock offset between the device and the store server.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from handheld.floor import GatewayView

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.prompts = Counter(
            "floorwalker_prompts", "Prompts received for this store's associates.", ["kind"], registry=r
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

    def gateway(self, view: GatewayView) -> None:
        self.gateway_up.labels(view.id).set(1 if view.state == "online" else 0)
        if view.last_seen is not None:
            self.gateway_seen.labels(view.id).set(view.last_seen)

    def render(self) -> bytes:
        return generate_latest(self.registry)
