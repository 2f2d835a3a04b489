"""The system under a replay: a recommender process on the broker and Redis, started on a
unique topic/key prefix, with a way to know when it has handled everything sent.

Used by ``floorwalker evaluate --start-system`` and ``floorwalker bench simulate``. The
recommender runs as its own process (as in production); readiness is proven by a round
trip (a message it must dead-letter comes back on the dead-letter topic), completion by
its counters in Redis (valid events + rejects).
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import redis

from broker_config.contract import TopicKind, Topics
from floorwalker import procs
from floorwalker.config import Endpoints, StoreConfig
from floorwalker.errors import FloorwalkerError
from floorwalker.mqtt import MqttLink, Received
from recommender.keys import Keys
from simulators.evaluate import Output
from simulators.record import Capture
from simulators.replay import ReplayOptions, ReplayResult, replay
from simulators.trace import TraceLine


class HarnessError(FloorwalkerError):
    """The system under replay did not start or did not finish."""


class RecommenderProcess:
    def __init__(
        self, config: StoreConfig, config_path: Path, ep: Endpoints, prefix: str, work_dir: Path
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.ep = ep
        self.prefix = prefix
        self.topics = Topics(prefix)
        self.keys = Keys(config.store, prefix)
        self.redis = redis.Redis.from_url(ep.redis_url)
        work_dir.mkdir(parents=True, exist_ok=True)
        self.log_file = work_dir / "recommender.log"
        self._stderr = work_dir / "recommender.stderr"
        self._proc: procs.Process | None = None

    def start(self, timeout: float = 30.0) -> None:
        argv = [
            sys.executable, "-m", "floorwalker", "--log-file", str(self.log_file),
            "recommender", "--store-config", str(self.config_path),
            "--mqtt-url", self.ep.mqtt_url, "--redis-url", self.ep.redis_url,
            "--topic-prefix", self.prefix, "--key-prefix", self.prefix,
            "--client-id", f"recommender-{uuid.uuid4().hex[:6]}",
            "--clock", "event",  # the replay's own clock: the same decisions at any speed
        ]  # fmt: skip
        self._proc = procs.spawn(argv, self._stderr, append=False)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        """Send a message the recommender must reject until its dead letter comes back."""
        got = threading.Event()

        def on_message(_msg: Received) -> bool:
            got.set()
            return True

        link = MqttLink(
            self.ep.mqtt_host, self.ep.mqtt_port, f"probe-{uuid.uuid4().hex[:8]}",
            subscriptions=[(self.topics.subscription(TopicKind.DEADLETTER, self.config.store), 1)],
            on_message=on_message,
        )  # fmt: skip
        link.connect()
        try:
            deadline = time.monotonic() + timeout
            probe = self.topics.presence(self.config.store, self.config.zones[0].id)
            while not got.is_set():
                self._check_alive()
                if time.monotonic() > deadline:
                    raise HarnessError(f"the recommender did not answer within {timeout:.0f} s")
                link.publish(probe, b"readiness probe (not JSON)", qos=1)
                got.wait(0.5)
        finally:
            link.close()
        self.redis.delete(self.keys.stats)  # count only what the replay sends

    def handled(self) -> int:
        """Events handled so far (valid ones plus rejects), from the recommender's counters."""
        raw: dict[bytes, bytes] = self.redis.hgetall(self.keys.stats)  # type: ignore[assignment]
        stats = {k.decode(): int(v) for k, v in raw.items()}
        return stats.get("events", 0) + sum(v for k, v in stats.items() if k.startswith("rejected:"))

    def wait_handled(self, expected: int, timeout: float) -> float | None:
        """Wait until ``expected`` events were handled; the monotonic time it was seen, or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if self.handled() >= expected:
                return time.monotonic()
            time.sleep(0.05)
        return None

    def _check_alive(self) -> None:
        if self._proc is not None:
            procs.check_alive(
                self._proc,
                "the recommender",
                [self.log_file, self._stderr],
                lines=5,
                error=HarnessError,
                message=lambda _name, code, why: f"the recommender exited (code {code}): {why}",
            )

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            procs.stop(proc, timeout)
        batch = list(self.redis.scan_iter(match=f"{self.prefix}*", count=1000))
        for i in range(0, len(batch), 1000):
            self.redis.delete(*batch[i : i + 1000])
        self.redis.close()


def replay_and_capture(
    lines: Iterable[TraceLine],
    config: StoreConfig,
    mqtt: tuple[str, int],
    options: ReplayOptions,
    *,
    recommender: RecommenderProcess | None = None,
    settle_s: float = 2.0,
    timeout_s: float = 300.0,
    on_sent: Callable[[TraceLine], None] | None = None,
) -> tuple[list[Output], ReplayResult, float | None]:
    """Replay while listening to what the system publishes (prompts, dead letters, presence).

    Returns the outputs, the replay's result and, with a ``recommender``, the seconds from
    the first publish until it had handled every event sent (None if it never did). Without
    one, waits until nothing arrived for ``settle_s``.
    """
    if recommender is not None:  # its clock is the events': keep the trace's spacing in their ts
        options = dataclasses.replace(options, trace_clock=True)
    topics = Topics(options.topic_prefix)
    capture = Capture(
        mqtt[0],
        mqtt[1],
        [
            topics.subscription(TopicKind.PROMPT, config.store),
            topics.deadletter(config.store),
            # Presence a fuser publishes from BLE reports (replayed presence is recognized by id).
            topics.subscription(TopicKind.PRESENCE, config.store),
        ],
    )
    capture.start()
    link = MqttLink(mqtt[0], mqtt[1], client_id=f"replay-{uuid.uuid4().hex[:8]}")
    link.connect()
    started = time.monotonic()
    done_after: float | None = None
    try:
        result = replay(lines, link, options, on_sent=on_sent)
        if recommender is not None:
            consumed = result.by_kind.get("presence", 0) + result.by_kind.get("checkout", 0)
            done = recommender.wait_handled(consumed, timeout_s)
            done_after = None if done is None else done - started
        capture.settle(settle_s, timeout_s)
    finally:
        link.close()
        capture.stop()
    return capture.outputs, result, done_after
