"""Replay a trace onto the real broker with its timing scaled, so the whole system reacts as
if the store were live.

Pure part: :func:`select` picks the lines (time window, topic filter) and :func:`retime`
moves a payload's event time to the replay clock. I/O part: :func:`replay` publishes with
pacing, bounded outstanding QoS 1 messages, a progress callback and a stop event.

By default every contract payload gets ``ts`` = the moment it is sent (``--keep-time`` to
send the recorded bytes untouched): the recommender ignores events older than
``max_event_age_s`` and measures latency from ``ts``, so a replayed morning must look like
now. Event ids are kept, so replaying the same trace twice into one Redis shows up as
duplicates, as it would live. A payload that breaks the contract is sent as recorded (the
system's dead-letter path is part of what a trace may test).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from paho.mqtt.client import MQTTMessageInfo, topic_matches_sub

from broker_config.contract import ContractError, Topics, decode, encode
from floorwalker.mqtt import MqttLink
from simulators.trace import TraceLine

#: Most QoS 1 messages in flight before the replayer waits for the broker's PUBACKs.
MAX_OUTSTANDING = 1000


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    #: 1 = as recorded, 10 = ten times faster; None = as fast as the broker takes them.
    speed: float | None = 1.0
    #: Window in seconds from the trace's first message (``--from`` / ``--to``).
    start_s: float | None = None
    end_s: float | None = None
    #: MQTT topic filter (wildcards allowed) on the trace's topics.
    topic_filter: str | None = None
    #: Prefix added to every topic (tests and benchmarks replay under a unique one).
    topic_prefix: str = ""
    retime: bool = True
    #: With ``retime``: date each event at the replay's start plus its offset in the trace
    #: (the trace's own spacing, whatever the speed) instead of the moment it is sent. For a
    #: recommender on the events' clock (``--clock event``): live, events dated ahead of
    #: the wall clock would be refused.
    trace_clock: bool = False
    #: With ``trace_clock``: the event time of the trace's first message (default: the wall
    #: clock at the first publish), for a caller that must know the mapping in advance (the
    #: simulated associates of :func:`simulators.harness.replay_staffed`).
    trace_epoch: float | None = None


@dataclass(slots=True)
class ReplayResult:
    sent: int = 0
    filtered_out: int = 0
    #: Wall-clock seconds from the first publish to the last PUBACK.
    wall_s: float = 0.0
    #: Trace seconds covered (last - first message time of what was sent).
    trace_s: float = 0.0
    #: Largest delay of a publish behind its scheduled moment, seconds (paced replays).
    max_lag_s: float = 0.0
    stopped: bool = False
    by_kind: dict[str, int] = field(default_factory=dict)
    #: Wall clock (``clock()``) at the first publish, and that message's trace time.
    wall_origin: float = 0.0
    first_t: float | None = None
    speed: float | None = None

    def to_trace_time(self, wall: float) -> float | None:
        """The trace time that a wall-clock moment of a paced replay stands for."""
        if self.speed is None or self.first_t is None:
            return None
        return self.first_t + (wall - self.wall_origin) * self.speed

    @property
    def rate(self) -> float:
        return self.sent / self.wall_s if self.wall_s > 0 else 0.0


def select(lines: Iterable[TraceLine], options: ReplayOptions, stats: ReplayResult) -> Iterator[TraceLine]:
    """The lines inside the window and matching the filter, in trace order."""
    first: float | None = None
    for line in lines:
        if first is None:
            first = line.t
        offset = line.t - first
        if options.start_s is not None and offset < options.start_s:
            stats.filtered_out += 1
            continue
        if options.end_s is not None and offset > options.end_s:
            stats.filtered_out += 1
            continue
        if options.topic_filter and not topic_matches_sub(options.topic_filter, line.topic):
            stats.filtered_out += 1
            continue
        yield line


def retime(topics: Topics, line: TraceLine, ts: float) -> bytes:
    """The payload with its event time set to ``ts`` (unchanged if it breaks the contract)."""
    try:
        message = decode(topics, line.topic, line.payload)
    except ContractError:
        return line.payload
    return encode(message.payload.model_copy(update={"ts": ts}))


def replay(
    lines: Iterable[TraceLine],
    link: MqttLink,
    options: ReplayOptions,
    *,
    stop: threading.Event | None = None,
    on_sent: Callable[[TraceLine], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> ReplayResult:
    """Publish ``lines`` through ``link`` (connected), paced by their ``t`` over ``speed``."""
    stop = stop or threading.Event()
    result = ReplayResult(speed=options.speed)
    plain = Topics()
    outstanding: deque[MQTTMessageInfo] = deque()
    origin_mono = time.monotonic()
    first_t: float | None = None
    last_t = 0.0
    for line in select(lines, options, result):
        if first_t is None:
            first_t = result.first_t = line.t
            origin_mono = time.monotonic()
            result.wall_origin = clock()
        last_t = line.t
        if options.speed is not None:
            due = origin_mono + (line.t - first_t) / options.speed
            if stop.wait(max(0.0, due - time.monotonic())):
                result.stopped = True
                break
            result.max_lag_s = max(result.max_lag_s, time.monotonic() - due)
        elif stop.is_set():
            result.stopped = True
            break
        epoch = result.wall_origin if options.trace_epoch is None else options.trace_epoch
        ts = epoch + (line.t - first_t) if options.trace_clock else clock()
        payload = retime(plain, line, ts) if options.retime else line.payload
        outstanding.append(
            link.publish(options.topic_prefix + line.topic, payload, qos=line.qos, retain=line.retain)
        )
        while len(outstanding) > MAX_OUTSTANDING:
            outstanding.popleft().wait_for_publish(30)
        result.sent += 1
        kind = line.topic.rsplit("/", 1)[-1]
        result.by_kind[kind] = result.by_kind.get(kind, 0) + 1
        if on_sent is not None:
            on_sent(line)
    while outstanding:
        info = outstanding.popleft()
        if link.connected:
            info.wait_for_publish(30)
    result.wall_s = time.monotonic() - origin_mono
    result.trace_s = last_t - first_t if first_t is not None else 0.0
    return result
