"""The system under a replay: a recommender process on the broker and Redis, started on a
unique topic/key prefix, with a way to know when it has handled everything sent.

Used by ``floorwalker evaluate --start-system`` and ``floorwalker bench simulate``. The
recommender runs as its own process (as in production); readiness is proven by a round
trip (a message it must dead-letter comes back on the dead-letter topic), completion by
its counters in Redis (valid events + rejects).
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import math
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import redis

from broker_config.contract import ContractError, DeadLetter, Prompt, TopicKind, Topics, decode, encode
from floorwalker import procs
from floorwalker.config import Endpoints, StoreConfig
from floorwalker.errors import FloorwalkerError
from floorwalker.mqtt import MqttLink, Received
from recommender.keys import Keys
from simulators.associates import AssociateSimulator
from simulators.evaluate import Output
from simulators.record import Capture
from simulators.replay import ReplayOptions, ReplayResult, replay
from simulators.service_level import Delivery, Reply, ServiceLevel, measure
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


# -- a replay with simulated associates (the service-level figure) ------------------------


def staffed_config(layout: Path, work_dir: Path) -> tuple[StoreConfig, Path]:
    """The store config of ``layout`` with ``rules.require_handheld`` on (routing only to
    associates whose handheld is heard), written to ``work_dir`` (its paths made absolute)."""
    import yaml

    from floorwalker.config import load_store_config

    config = load_store_config(layout)
    data = config.model_dump(mode="json", exclude_unset=True)
    data["rules"] = {**data.get("rules", {}), "require_handheld": True}
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / f"{config.store}-staffed.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_store_config(path), path


@dataclasses.dataclass(slots=True)
class StaffedRun:
    """What a replay with simulated associates saw: every prompt delivery, the recommender's
    counters at the end, and the simulator (its answers and shifts)."""

    associates: AssociateSimulator
    deliveries: list[Delivery]
    stats: dict[str, int]
    syncs: int = 0

    def service_level(self) -> ServiceLevel:
        replies = [Reply(a.prompt_id, a.associate, a.outcome, a.ts) for a in self.associates.answers]
        return measure(self.deliveries, replies, self.stats, self.associates.available)


#: Messages the recommender consumes (counted in its ``events`` or ``rejected:*``).
_CONSUMED = frozenset(
    {
        TopicKind.PRESENCE,
        TopicKind.CHECKOUT,
        TopicKind.FOOTFALL,
        TopicKind.FEEDBACK,
        TopicKind.ASSOCIATE_STATUS,
    }
)


class _Staffing:
    """The lines of a staffed replay: the trace's, merged in event-time order with what the
    simulated associates send, in lockstep with the recommender.

    An associate answers a prompt no sooner than ``Behaviour.min_answer_s`` after it shows.
    So before a message dated ``y`` goes out, every prompt decided up to ``y - min_answer_s``
    must be known: when a message sent earlier is dated that early and not yet confirmed,
    a sync message goes out first (a payload the recommender must dead-letter: its dead
    letter coming back proves everything before it was handled and its prompts published),
    and the prompts that came back meanwhile go to the simulator. The lines (and so the
    recommender's decisions on the events' clock) are the same at any replay speed."""

    def __init__(
        self,
        config: StoreConfig,
        capture: Capture,
        sim: AssociateSimulator,
        epoch: float,
        topic_prefix: str,
        reroute_after_s: float,
        check_alive: Callable[[], None],
        timeout_s: float,
    ) -> None:
        self.store = config.store
        self.capture = capture
        self.sim = sim
        self.epoch = epoch
        self.plain = Topics()
        self.topics = Topics(topic_prefix)
        self.reroute_after_s = reroute_after_s
        self.check_alive = check_alive
        self.timeout_s = timeout_s
        self.gap = sim.behaviour.min_answer_s
        self.probe_topic = self.plain.presence(config.store, config.zones[0].id)
        self.deliveries: list[Delivery] = []
        self.probes: set[str] = set()
        self.syncs = 0
        self.consumed = 0
        self._cursor = 0
        self._oldest_unsynced: float | None = None
        self._latest = -math.inf  # latest event time sent
        self._synced_at = -math.inf  # latest event time sent at the last sync
        #: Event time and wall clock of each message sent, for delivery latencies.
        self._sent_ts: list[float] = []
        self._sent_wall: list[float] = []
        self._seen: dict[str, float] = {}

    def lines(self, trace: Iterable[TraceLine]) -> Iterator[TraceLine]:
        it = iter(trace)
        first = next(it, None)
        if first is None:
            return
        first_t = first.t
        pending: TraceLine | None = first
        while True:
            if pending is None:
                pending = next(it, None)
            sim_ts = self.sim.next_ts()
            line_ts = None if pending is None else self.epoch + (pending.t - first_t)
            if sim_ts is None and line_ts is None:
                break
            y = min(t for t in (sim_ts, line_ts) if t is not None)
            if self._oldest_unsynced is not None and self._oldest_unsynced <= y - self.gap:
                yield from self._sync(first_t)
                continue
            if line_ts is not None and (sim_ts is None or line_ts <= sim_ts):
                assert pending is not None
                out, pending = pending, None
            else:
                ts, topic, payload = self.sim.pop()
                spec = self.plain.parse(topic).spec
                out = TraceLine(first_t + (ts - self.epoch), topic, encode(payload), spec.qos, spec.retain)
                y = ts
            self._oldest_unsynced = y if self._oldest_unsynced is None else min(self._oldest_unsynced, y)
            self._latest = max(self._latest, y)
            self._count(out)
            yield out
        yield from self._sync(first_t)

    def _count(self, line: TraceLine) -> None:
        try:
            kind = self.plain.parse(line.topic).kind
        except ContractError:
            return
        self.consumed += kind in _CONSUMED

    def on_sent(self, line: TraceLine, first_t: float | None) -> None:
        """Called by the replay after each publish: when (wall clock) which event time went."""
        if first_t is None:
            return
        ts = self.epoch + (line.t - first_t)
        self._sent_ts.append(max(ts, self._sent_ts[-1]) if self._sent_ts else ts)
        self._sent_wall.append(time.time())

    def _sync(self, first_t: float) -> Iterator[TraceLine]:
        self.syncs += 1
        payload = f"service-level sync {self.syncs} (not JSON: dead-lettered on purpose)".encode()
        sha = hashlib.sha256(payload).hexdigest()
        self.probes.add(sha)
        t = first_t + (self._latest - self.epoch) if self._latest > -math.inf else first_t
        self.consumed += 1  # rejected, and counted so
        yield TraceLine(t, self.probe_topic, payload, 1, False)
        # Resumed when the replay asks for the next line: the probe is published.
        deadline = time.monotonic() + self.timeout_s
        while not self._take_outputs(sha):
            self.check_alive()
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"the recommender did not answer sync {self.syncs} within {self.timeout_s:.0f} s"
                )
            time.sleep(0.002)
        self._oldest_unsynced = None
        self._synced_at = self._latest

    def _take_outputs(self, probe_sha: str) -> bool:
        """Hand new prompts to the simulator; True once the probe's dead letter came back."""
        found = False
        outputs = self.capture.outputs
        prompt_prev = self._synced_at
        while self._cursor < len(outputs):
            o = outputs[self._cursor]
            self._cursor += 1
            try:
                msg = decode(self.topics, o.topic, o.payload)
            except ContractError:
                continue
            body = msg.payload
            if isinstance(body, DeadLetter) and body.payload_sha256 == probe_sha:
                found = True
            elif isinstance(body, Prompt) and msg.address.subject is not None:
                self._delivered(msg.address.subject, body, o.received, prompt_prev)
        return found

    def _delivered(
        self, associate: str, prompt: Prompt, received: float | None, synced_before: float
    ) -> None:
        previous = self._seen.get(prompt.event_id)
        if previous is None:
            seen_at = prompt.ts
        else:
            # A re-route: same payload, offered at the first tick reroute_after_s later,
            # and after the last sync (it was not there then) — never past what was sent.
            seen_at = max(math.ceil(previous + self.reroute_after_s), math.floor(synced_before) + 1)
            seen_at = min(seen_at, self._latest)
        self._seen[prompt.event_id] = seen_at
        latency = None
        if received is not None and previous is None:
            i = bisect.bisect_left(self._sent_ts, prompt.ts)
            if i < len(self._sent_wall):
                latency = max(0.0, received - self._sent_wall[i])
        self.deliveries.append(Delivery(prompt.event_id, associate, prompt.ts, seen_at, latency))
        self.sim.on_prompt(associate, prompt, seen_at)


def replay_staffed(
    lines: Iterable[TraceLine],
    config: StoreConfig,
    mqtt: tuple[str, int],
    options: ReplayOptions,
    recommender: RecommenderProcess,
    make_associates: Callable[[float], AssociateSimulator],
    *,
    settle_s: float = 1.0,
    timeout_s: float = 300.0,
    on_sent: Callable[[TraceLine], None] | None = None,
) -> tuple[list[Output], ReplayResult, StaffedRun]:
    """Replay ``lines`` with simulated associates signing in and out and answering the
    prompts they get (:class:`_Staffing`), the recommender on the events' clock and
    ``rules.require_handheld`` on (:func:`staffed_config`). ``make_associates(origin)``:
    the simulator, its day starting at event time ``origin`` (the trace's first message).

    Returns the outputs (without the sync dead letters), the replay's result and the run."""
    from recommender.catalog import DEFAULT_CATALOG, load_catalog

    if not config.rules.require_handheld:
        raise HarnessError("a staffed replay needs rules.require_handheld on (staffed_config)")
    # A whole second: the recommender ticks (re-routes, dwell checks) at whole seconds of the
    # events' clock, so the trace must start at the same fraction of a second every run.
    epoch = float(math.floor(time.time()))
    options = dataclasses.replace(options, trace_clock=True, trace_epoch=epoch)
    sim = make_associates(epoch)
    reroute = load_catalog(config.catalog or DEFAULT_CATALOG).policy.reroute_after_s
    topics = Topics(options.topic_prefix)
    capture = Capture(
        mqtt[0],
        mqtt[1],
        [topics.subscription(TopicKind.PROMPT, config.store), topics.deadletter(config.store)],
    )
    capture.start()
    staffing = _Staffing(
        config, capture, sim, epoch, options.topic_prefix, reroute, recommender._check_alive, timeout_s
    )
    link = MqttLink(mqtt[0], mqtt[1], client_id=f"staffed-{uuid.uuid4().hex[:8]}")
    link.connect()
    first_t: list[float] = []

    def sent(line: TraceLine) -> None:
        if not first_t:
            first_t.append(line.t)
        staffing.on_sent(line, first_t[0])
        if on_sent is not None and line.topic != staffing.probe_topic:
            on_sent(line)

    try:
        result = replay(staffing.lines(lines), link, options, on_sent=sent)
        if recommender.wait_handled(staffing.consumed, timeout_s) is None:
            raise HarnessError(f"the recommender did not handle every message within {timeout_s:.0f} s")
        raw: dict[bytes, bytes] = recommender.redis.hgetall(recommender.keys.stats)  # type: ignore[assignment]
        stats = {k.decode(): int(v) for k, v in raw.items()}
        capture.settle(settle_s, timeout_s)
        for shift in sim.shifts.values():  # retained statuses: leave none behind
            link.publish(topics.associate_status(config.store, shift.associate), b"", qos=1, retain=True)
    finally:
        link.close()
        capture.stop()
    outputs = [o for o in capture.outputs if not _is_probe(topics, o, staffing.probes)]
    run = StaffedRun(sim, staffing.deliveries, stats, staffing.syncs)
    return outputs, result, run


def _is_probe(topics: Topics, output: Output, probes: set[str]) -> bool:
    try:
        msg = decode(topics, output.topic, output.payload)
    except ContractError:
        return False
    return isinstance(msg.payload, DeadLetter) and msg.payload.payload_sha256 in probes
