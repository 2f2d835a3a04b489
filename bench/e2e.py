"""``floorwalker bench``: event -> prompt latency through the real broker, recommender and
Redis, next to the floor (one raw MQTT hop + one raw Redis EVALSHA) measured in the same run.

For each target rate the bench starts the recommender as a separate process on a fresh
topic/key prefix, loads synthetic consenting VIP profiles, waits until an event comes back
as a prompt, then publishes events at the rate for the given duration: presence ``enter``
events of a new member each time (-> one ``greet_vip``) alternating with non-member
checkouts (-> one ``join_invite``). Every prompt is matched to its cause by
``cause_event_id``; latency is the prompt's arrival time minus the event's ``ts``.

Layout: :func:`measure_floor` (the floor), :class:`RateDriver` (one rate: recommender,
profiles, load, prompts -> :class:`RateSamples`), :func:`summarize` (pure: samples and the
floor -> :class:`RateResult`), :func:`run_on` (floor before, rates, floor after, on given
services; writes the JSON) and :func:`run_bench` (starts and stops our own services around
:func:`run_on`; what the CLI calls).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import logging
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import redis
from rich.console import Console
from rich.table import Table

from bench.relay import TRIVIAL_SCRIPT
from broker_config.contract import (
    CheckoutEvent,
    ContractError,
    EnvelopeSource,
    PresenceEvent,
    Prompt,
    TopicKind,
    Topics,
    decode,
    encode,
)
from floorwalker import procs
from floorwalker.config import Endpoints, StoreConfig, load_store_config
from floorwalker.errors import FloorwalkerError
from floorwalker.mqtt import MqttLink, Received
from floorwalker.services import Services
from recommender.keys import Keys

#: The issue's targets: p50 within 3x the floor, p99 within 10 ms, nothing lost.
TARGET_P50_OVER_FLOOR = 3.0
TARGET_P99_MS = 10.0

#: What the load generator plays: a gateway covering ``ENTRANCE`` and the POS of ``LANE``.
GATEWAY, ENTRANCE = "gw-entrance", "entrance"
POS, LANE = "pos-1", "lane-1"
MEMBER_ID = re.compile(r"^m_[A-Za-z0-9]{6,40}$")

FLOOR_SAMPLES = 2000
FLOOR_RATE_EPS = 1000.0
WARMUP_EVENTS = 200
WARMUP_RATE_EPS = 400.0
DRAIN_S = 10.0
READY_TIMEOUT_S = 30.0
#: The bench process publishes and receives on three threads; a short GIL switch interval
#: keeps a busy thread from delaying a receive callback by up to the 5 ms default.
SWITCH_INTERVAL_S = 0.0005
#: The relay is timed at the rates' lower end: each of its events costs two hops.
RELAY_RATE_EPS = 500.0
#: Seconds the relay also runs at each rate's own pace, after the rate (its p99 and CPU).
RELAY_AT_RATE_S = 5.0


class BenchError(FloorwalkerError):
    """The bench could not run (the recommender died, nothing came back, ...)."""


# -- results (pure) ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateResult:
    rate_eps: float
    achieved_eps: float
    duration_s: float
    sent: int
    prompts_expected: int
    prompts_received: int
    lost: int
    duplicates: int
    unexpected: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    p50_over_floor: float | None
    max_send_lag_ms: float
    target_met: bool
    #: CPU time per event of each process (ms), where /proc tells: where the time goes.
    cpu_ms_per_event: dict[str, float] = field(default_factory=dict)
    #: How busy the whole machine was while sending and draining (all cores, %), and how
    #: much of that was other processes (a noisy neighbour skews the figures).
    machine_busy_pct: float | None = None
    others_busy_pct: float | None = None
    #: p50 of member entries (two Redis round trips: the read, then the claim) and of
    #: guest checkouts (one), the two halves of the load.
    p50_member_ms: float | None = None
    p50_guest_ms: float | None = None
    #: p50 over the relay's (:attr:`Floor.relay_p50_ms`): what deciding adds, as a factor.
    p50_over_relay: float | None = None
    #: The relay run at this very rate right after (:data:`RELAY_AT_RATE_S`): its p99 and
    #: its CPU per event, what any process of this shape pays here, deciding nothing.
    relay_p99_ms: float | None = None
    relay_cpu_ms_per_event: float | None = None


def percentile(samples: Sequence[float] | np.ndarray[Any, Any], q: float) -> float | None:
    """The ``q``-th percentile (numpy's linear interpolation), or None without samples."""
    if len(samples) == 0:
        return None
    return float(np.percentile(np.asarray(samples, dtype=float), q))


def summarize(
    *,
    rate_eps: float,
    duration_s: float,
    expected_ids: Sequence[str],
    receipts: Sequence[tuple[str, float]],
    floor_p50_ms: float,
    max_send_lag_ms: float = 0.0,
    member_ids: Collection[str] = (),
    relay_p50_ms: float | None = None,
) -> RateResult:
    """One rate's result from what was sent and what came back.

    ``expected_ids`` are the ids of the events sent (each should earn exactly one prompt);
    ``receipts`` are ``(cause_event_id, latency_ms)`` per prompt received, in arrival
    order. The first prompt per expected id counts for latency; later ones are duplicates;
    prompts for ids not sent in this window (warm-up, strays) count as ``unexpected``.
    ``member_ids``: which of them were member entries (the rest: guest checkouts).
    """
    expected = set(expected_ids)
    members = set(member_ids)
    seen: set[str] = set()
    latencies: list[float] = []
    by_kind: dict[bool, list[float]] = {True: [], False: []}
    duplicates = unexpected = 0
    for cause, latency_ms in receipts:
        if cause not in expected:
            unexpected += 1
        elif cause in seen:
            duplicates += 1
        else:
            seen.add(cause)
            latencies.append(latency_ms)
            by_kind[cause in members].append(latency_ms)
    sent = len(expected_ids)
    lost = len(expected - seen)
    lat = np.asarray(latencies, dtype=float)
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    over = p50 / floor_p50_ms if p50 is not None and floor_p50_ms > 0 else None
    met = (
        p50 is not None
        and p99 is not None
        and floor_p50_ms > 0
        and p50 <= TARGET_P50_OVER_FLOOR * floor_p50_ms
        and p99 <= TARGET_P99_MS
        and lost == 0
    )
    return RateResult(
        rate_eps=rate_eps,
        achieved_eps=sent / duration_s if duration_s > 0 else 0.0,
        duration_s=duration_s,
        sent=sent,
        prompts_expected=len(expected),
        prompts_received=len(seen),
        lost=lost,
        duplicates=duplicates,
        unexpected=unexpected,
        p50_ms=p50,
        p90_ms=percentile(lat, 90),
        p99_ms=p99,
        max_ms=float(lat.max()) if lat.size else None,
        p50_over_floor=over,
        max_send_lag_ms=max_send_lag_ms,
        target_met=met,
        p50_member_ms=percentile(by_kind[True], 50),
        p50_guest_ms=percentile(by_kind[False], 50),
        p50_over_relay=p50 / relay_p50_ms if p50 is not None and relay_p50_ms else None,
    )


@dataclass(frozen=True, slots=True)
class RateSamples:
    """What one rate measured, before it is judged against the floor."""

    rate_eps: float
    duration_s: float
    expected_ids: list[str]
    receipts: list[tuple[str, float]]
    max_send_lag_ms: float
    cpu_ms_per_event: dict[str, float]
    machine_busy_pct: float | None
    others_busy_pct: float | None
    member_ids: list[str] = field(default_factory=list)
    #: The relay at this rate (:func:`measure_relay`): latencies and CPU per event.
    relay_ms: list[float] = field(default_factory=list)
    relay_cpu_ms_per_event: float | None = None

    def result(self, floor_p50_ms: float, relay_p50_ms: float | None = None) -> RateResult:
        r = summarize(
            rate_eps=self.rate_eps,
            duration_s=self.duration_s,
            expected_ids=self.expected_ids,
            receipts=self.receipts,
            floor_p50_ms=floor_p50_ms,
            max_send_lag_ms=self.max_send_lag_ms,
            member_ids=self.member_ids,
            relay_p50_ms=relay_p50_ms,
        )
        return replace(
            r,
            cpu_ms_per_event=self.cpu_ms_per_event,
            machine_busy_pct=self.machine_busy_pct,
            others_busy_pct=self.others_busy_pct,
            relay_p99_ms=percentile(self.relay_ms, 99),
            relay_cpu_ms_per_event=self.relay_cpu_ms_per_event,
        )


@dataclass(frozen=True, slots=True)
class Floor:
    mqtt_hop_p50_ms: float
    mqtt_hop_p99_ms: float
    mqtt_hop_samples: int
    evalsha_p50_ms: float
    evalsha_p99_ms: float
    evalsha_samples: int
    #: Event -> message through a relay process that only receives, runs one trivial
    #: EVALSHA and publishes (:mod:`bench.relay`): the least the real path's
    #: shape (two hops, one script, Python and paho) costs. Not part of the target.
    relay_p50_ms: float | None = None
    relay_p99_ms: float | None = None
    relay_samples: int = 0
    #: Machine load while the floor was measured (as for each rate): a busy neighbour
    #: inflates the floor too.
    floor_machine_busy_pct: float | None = None
    floor_others_busy_pct: float | None = None

    @property
    def floor_p50_ms(self) -> float:
        return self.mqtt_hop_p50_ms + self.evalsha_p50_ms


def floor_from_samples(
    mqtt_hop_ms: Sequence[float], evalsha_ms: Sequence[float], relay_ms: Sequence[float] = ()
) -> Floor:
    hop50, hop99 = percentile(mqtt_hop_ms, 50), percentile(mqtt_hop_ms, 99)
    ev50, ev99 = percentile(evalsha_ms, 50), percentile(evalsha_ms, 99)
    if hop50 is None or hop99 is None or ev50 is None or ev99 is None:
        raise BenchError("the floor measurement got no samples")
    return Floor(
        hop50, hop99, len(mqtt_hop_ms), ev50, ev99, len(evalsha_ms),
        percentile(relay_ms, 50), percentile(relay_ms, 99), len(relay_ms),
    )  # fmt: skip


def machine_info() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
    }


def report(floor: Floor, results: Sequence[RateResult], floors: Sequence[Floor] = ()) -> dict[str, Any]:
    """The JSON document written to ``out`` (see bench/README.md); ``floor`` is the one the
    rates were judged against, ``floors`` every floor measurement of the run."""
    return {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "targets": {
            "p50_over_floor_max": TARGET_P50_OVER_FLOOR,
            "p99_ms_max": TARGET_P99_MS,
            "lost_max": 0,
        },
        "floor_p50_ms": floor.floor_p50_ms,
        **asdict(floor),
        "relay_over_floor": floor.relay_p50_ms / floor.floor_p50_ms if floor.relay_p50_ms else None,
        "floor_runs": [{"floor_p50_ms": f.floor_p50_ms, **asdict(f)} for f in floors or [floor]],
        "rates": [asdict(r) for r in results],
    }


# -- CPU accounting (Linux /proc; None elsewhere) -------------------------------------------


def _ticks_per_s() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError, AttributeError):
        return 100


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds used so far by ``pid`` (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _ticks_per_s()


def machine_cpu_s() -> tuple[float, float, float] | None:
    """(busy, of which interrupts, total) CPU seconds over all cores since boot."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    hz = _ticks_per_s()
    total = user + nice + system + idle + iowait + irq + softirq + steal
    return (total - idle - iowait) / hz, (irq + softirq) / hz, total / hz


@dataclass
class CpuMeter:
    """CPU used by named processes, and by the whole machine, between start() and stop()."""

    pids: dict[str, int]
    _procs: dict[str, float] = field(default_factory=dict, init=False)
    _machine: tuple[float, float, float] | None = field(default=None, init=False)

    def start(self) -> None:
        self._procs = {n: t for n, pid in self.pids.items() if (t := process_cpu_s(pid)) is not None}
        self._machine = machine_cpu_s()

    def stop(self) -> tuple[dict[str, float], float | None, float | None]:
        """(CPU seconds per process, machine busy %, busy % of processes not ours).

        Interrupt time (which carries our own loopback traffic) counts as busy, not as others'.
        """
        used: dict[str, float] = {}
        for name, before in self._procs.items():
            after = process_cpu_s(self.pids[name])
            if after is not None:
                used[name] = after - before
        now = machine_cpu_s()
        if now is None or self._machine is None or now[2] <= self._machine[2]:
            return used, None, None
        busy, irq, total = (a - b for a, b in zip(now, self._machine, strict=True))
        others = max(0.0, busy - irq - sum(used.values()))
        return used, 100.0 * busy / total, 100.0 * others / total


# -- pacing --------------------------------------------------------------------------------


def paced(count: int, rate_eps: float) -> Iterator[tuple[int, float]]:
    """Yield ``(i, lag_s)`` for ``i`` in ``range(count)``, event ``i`` due ``i / rate`` after
    the start by the monotonic clock. Whatever is due is yielded at once (a late sender
    catches up rather than drifting); in between it sleeps rather than spins."""
    start = time.monotonic()
    i = 0
    while i < count:
        now = time.monotonic()
        due = min(count, int((now - start) * rate_eps) + 1)
        while i < due:
            yield i, max(0.0, time.monotonic() - (start + i / rate_eps))
            i += 1
        if i < count:
            wait = start + i / rate_eps - time.monotonic()
            if wait > 0:
                time.sleep(wait)


# -- MQTT helpers --------------------------------------------------------------------------


def _client_id(prefix: str, role: str) -> str:
    return f"{prefix.replace('/', '-')}{role}"


def _wait(predicate: Callable[[], bool], timeout: float, poll: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True


# -- the floor -----------------------------------------------------------------------------


def measure_mqtt_hop(ep: Endpoints, prefix: str, samples: int, rate_eps: float) -> list[float]:
    """One QoS 1 publish -> receive hop through the broker, in ms (same process, perf_counter)."""
    topic = f"{prefix}bench/floor"
    return _timed_messages(ep, prefix, "floor", topic, topic, samples, rate_eps)


def _timed_messages(
    ep: Endpoints, prefix: str, role: str, publish_to: str, receive_on: str, samples: int, rate_eps: float
) -> list[float]:
    """Publish ``samples`` time stamps to ``publish_to`` (QoS 1, paced at ``rate_eps``) and
    time each one's arrival on ``receive_on``, in ms (perf_counter: both ends are here).
    Probes go first, until one comes back: every subscription on the way is in place."""
    received: list[float] = []
    probes: list[bytes] = []

    def on_message(msg: Received) -> bool:
        now = time.perf_counter()
        payload = msg.payload
        if payload.startswith(b"probe"):
            probes.append(payload)
        else:
            received.append((now - float(payload)) * 1000.0)
        return True

    sub = MqttLink(ep.mqtt_host, ep.mqtt_port, _client_id(prefix, f"{role}-sub"),
                   subscriptions=[(receive_on, 1)], on_message=on_message)  # fmt: skip
    pub = MqttLink(ep.mqtt_host, ep.mqtt_port, _client_id(prefix, f"{role}-pub"))
    sub.connect()
    try:
        pub.connect()
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while not probes:
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"the {role} probe on {publish_to} never came back through {ep.mqtt_url}"
                    )
                pub.publish(publish_to, b"probe", qos=1)
                _wait(lambda: bool(probes), 0.1)
            for _i, _lag in paced(samples, rate_eps):
                pub.publish(publish_to, repr(time.perf_counter()).encode(), qos=1)
            _wait(lambda: len(received) >= samples, 10.0)
        finally:
            pub.close()
    finally:
        sub.close()
    return received


def measure_evalsha(redis_url: str, samples: int) -> list[float]:
    """Round trips of EVALSHA on a trivial script (``return 1``), in ms."""
    client = redis.Redis.from_url(redis_url)
    try:
        client.script_load(TRIVIAL_SCRIPT)
        sha = hashlib.sha1(TRIVIAL_SCRIPT.encode()).hexdigest()
        for _ in range(min(100, samples)):
            client.evalsha(sha, 0)
        out: list[float] = []
        for _ in range(samples):
            t0 = time.perf_counter()
            client.evalsha(sha, 0)
            out.append((time.perf_counter() - t0) * 1000.0)
        return out
    finally:
        client.close()


def measure_relay(
    ep: Endpoints, prefix: str, samples: int, rate_eps: float
) -> tuple[list[float], float | None]:
    """Event -> message latency through :mod:`bench.relay` (a separate process
    that receives, runs one trivial ``EVALSHA`` and publishes), in ms, and the relay's CPU
    per event in ms: the least a recommender of this shape could cost. Two broker hops,
    like the real path."""
    topic_in, topic_out = f"{prefix}bench/relay/in", f"{prefix}bench/relay/out"
    argv = [
        sys.executable, "-m", "bench.relay",
        "--mqtt-host", ep.mqtt_host, "--mqtt-port", str(ep.mqtt_port), "--redis-url", ep.redis_url,
        "--client-id", _client_id(prefix, "relay"), "--topic-in", topic_in, "--topic-out", topic_out,
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        if proc.stdout.readline().strip() != b"ready":
            proc.wait(READY_TIMEOUT_S)
            why = proc.stderr.read().decode(errors="replace").strip().splitlines()
            raise BenchError(f"the floor's relay process did not start: {why[-1] if why else 'no output'}")
        before = process_cpu_s(proc.pid)
        latencies = _timed_messages(ep, prefix, "relay", topic_in, topic_out, samples, rate_eps)
        after = process_cpu_s(proc.pid)
        cpu = (
            None
            if before is None or after is None or not latencies
            else (after - before) * 1000.0 / len(latencies)
        )
        return latencies, cpu
    finally:
        procs.stop(proc, 10.0)


def measure_floor(
    ep: Endpoints,
    prefix: str,
    samples: int = FLOOR_SAMPLES,
    rate_eps: float = FLOOR_RATE_EPS,
    service_pids: dict[str, int] | None = None,
) -> Floor:
    meter = CpuMeter({"bench": os.getpid(), **(service_pids or {})})
    meter.start()
    hops = measure_mqtt_hop(ep, prefix, samples, rate_eps)
    evalsha = measure_evalsha(ep.redis_url, samples)
    relay, _cpu = measure_relay(ep, prefix, samples, RELAY_RATE_EPS)
    _, busy, others = meter.stop()
    return replace(
        floor_from_samples(hops, evalsha, relay), floor_machine_busy_pct=busy, floor_others_busy_pct=others
    )


# -- one rate ------------------------------------------------------------------------------


def member_id(rate_eps: float, i: int, kind: str = "x") -> str:
    """Synthetic member ``i`` of a rate (``kind`` "x" measured, "w" warm-up), e.g. ``m_b500x0000007``."""
    member = f"m_b{round(rate_eps)}{kind}{i:07d}"
    if not MEMBER_ID.match(member):
        raise BenchError(f"synthetic member id {member!r} breaks the contract")
    return member


_TS = re.compile(rb'"ts":[-+0-9.eE]+')


def restamp(payload: bytes, ts: float) -> bytes:
    """An encoded event with its envelope's ``ts`` (the first ``"ts"`` key: the envelope's
    fields come first) set to ``ts``."""
    out, n = _TS.subn(b'"ts":' + repr(ts).encode(), payload, count=1)
    if n != 1:
        raise BenchError("an encoded event without a ts field")
    return out


class PromptSink:
    """Receives prompts (QoS 1) and notes when each arrived; decodes them with the contract
    only when asked, after the load, so that validating thousands of prompts does not take
    CPU from the system under test while it is measured. Latency is arrival time minus the
    prompt's ``cause_ts``, the time its event was published."""

    def __init__(self, ep: Endpoints, topics: Topics, store: str, client_id: str) -> None:
        self.topics = topics
        #: (arrival time, topic, payload), appended on paho's thread, taken on ours.
        self._arrived: deque[tuple[float, str, bytes]] = deque()
        self._receipts: list[tuple[str, float]] = []
        self.rejected = 0
        self.undecodable = 0
        self.link = MqttLink(
            ep.mqtt_host,
            ep.mqtt_port,
            client_id,
            subscriptions=[
                (topics.subscription(TopicKind.PROMPT, store), 1),
                (topics.subscription(TopicKind.DEADLETTER, store), 1),
            ],
            on_message=self._on_message,
        )

    def _on_message(self, msg: Received) -> bool:
        self._arrived.append((time.time(), msg.topic, msg.payload))
        return True

    @property
    def arrived(self) -> int:
        """Messages received so far, decoded or not (dead letters included)."""
        return len(self._arrived) + len(self._receipts) + self.rejected + self.undecodable

    @property
    def receipts(self) -> list[tuple[str, float]]:
        """(cause event id, latency ms) of every prompt received so far, in arrival order."""
        while self._arrived:
            now, topic, payload = self._arrived.popleft()
            try:
                body = decode(self.topics, topic, payload).payload
            except ContractError:
                self.undecodable += 1
                continue
            if isinstance(body, Prompt):
                self._receipts.append((body.cause_event_id, (now - body.cause_ts) * 1000.0))
            else:
                self.rejected += 1  # a dead letter: the recommender refused one of our events
        return self._receipts

    def clear(self) -> None:
        self._arrived.clear()
        self._receipts.clear()

    def received_ids(self) -> set[str]:
        return {cause for cause, _ in self.receipts}

    def has(self, cause: str) -> bool:
        return any(c == cause for c, _ in self.receipts)


class RateDriver:
    """One rate: its own prefix, recommender process, profiles, load and prompt sink."""

    def __init__(
        self,
        ep: Endpoints,
        config_path: Path,
        rate_eps: float,
        duration_s: float,
        work_dir: Path,
        *,
        drain_s: float = DRAIN_S,
        service_pids: dict[str, int] | None = None,
    ) -> None:
        if rate_eps <= 0 or duration_s <= 0:
            raise BenchError(f"rate {rate_eps} and duration {duration_s} must be greater than 0")
        self.ep = ep
        self.config_path = config_path
        self.config: StoreConfig = load_store_config(config_path)
        self.rate_eps = rate_eps
        self.duration_s = duration_s
        self.drain_s = drain_s
        self.count = max(1, round(rate_eps * duration_s))
        self.tag = f"{round(rate_eps)}"
        self.prefix = f"bench{uuid.uuid4().hex[:8]}r{self.tag}/"
        self.topics = Topics(self.prefix)
        self.keys = Keys(self.config.store, self.prefix)
        self.work_dir = work_dir
        self.log_file = work_dir / f"recommender-{self.tag}eps.log"
        self.stderr_file = work_dir / f"recommender-{self.tag}eps.stderr"
        self.redis = redis.Redis.from_url(ep.redis_url)
        self.gateway = EnvelopeSource(GATEWAY)
        self.pos = EnvelopeSource(POS)
        self._proc: procs.Process | None = None
        self.service_pids = dict(service_pids or {})

    # -- setup ---------------------------------------------------------------------------

    def member(self, i: int, kind: str = "x") -> str:
        return member_id(self.rate_eps, i, kind)

    def load_profiles(self, members: Sequence[str], chunk: int = 2000) -> None:
        """Consenting gold members without purchase history: an 'enter' earns one greeting."""
        for start in range(0, len(members), chunk):
            pipe = self.redis.pipeline(transaction=False)
            for n, m in enumerate(members[start : start + chunk], start):
                pipe.hset(
                    self.keys.profile(m),
                    mapping={"name": f"Bench {n}", "tier": "gold", "points": str(100 + n), "consent": "1"},
                )
            pipe.execute()

    def start_recommender(self) -> None:
        argv = [
            sys.executable, "-m", "floorwalker", "--log-file", str(self.log_file),
            "recommender", "--store-config", str(self.config_path),
            "--mqtt-url", self.ep.mqtt_url, "--redis-url", self.ep.redis_url,
            "--topic-prefix", self.prefix, "--key-prefix", self.prefix, "--no-load-crm",
        ]  # fmt: skip
        self._proc = procs.spawn(argv, self.stderr_file, append=False)

    def stop_recommender(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            procs.stop(proc, timeout)

    def _check_alive(self) -> None:
        if self._proc is not None:
            procs.check_alive(
                self._proc,
                "the recommender",
                [self.log_file, self.stderr_file],
                lines=5,
                error=BenchError,
                message=lambda _name, code, why: f"the recommender exited (code {code}): {why}",
            )

    def cleanup_keys(self) -> None:
        batch: list[bytes] = []
        for key in self.redis.scan_iter(match=f"{self.prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                self.redis.delete(*batch)
                batch.clear()
        if batch:
            self.redis.delete(*batch)

    # -- load ------------------------------------------------------------------------------

    def event(self, i: int, member: str, ts: float) -> tuple[str, bytes, str]:
        """Event ``i`` at ``ts`` as (topic, payload, event id): even -> a member enters
        (greeting), odd -> a non-member checkout (join invite)."""
        if i % 2 == 0:
            event: PresenceEvent | CheckoutEvent = self.gateway.make(
                PresenceEvent, ts, member=member, action="enter"
            )
            topic = self.topics.presence(self.config.store, ENTRANCE)
        else:
            event = self.pos.make(
                CheckoutEvent,
                ts,
                member=None,
                items=[{"sku": "bench-1", "category": "tea", "qty": 1, "amount_cents": 250}],
                total_cents=250,
            )
            topic = self.topics.checkout(self.config.store, LANE)
        return topic, encode(event), event.event_id

    def send(self, link: MqttLink, i: int, member: str) -> str | None:
        """Event ``i``, now. Returns the event id, or None if paho refused the publish."""
        topic, payload, event_id = self.event(i, member, time.time())
        return event_id if link.publish(topic, payload, qos=1).rc == 0 else None

    def wait_ready(self, link: MqttLink, sink: PromptSink) -> None:
        """Resend one event until its prompt comes back: recommender and sink are subscribed."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        n = 0
        while time.monotonic() < deadline:
            self._check_alive()
            sent = self.send(link, 1, "")  # a non-member checkout
            if sent is not None and _wait(functools.partial(sink.has, sent), 0.25):
                return
            n += 1
        raise BenchError(
            f"no prompt came back within {READY_TIMEOUT_S:.0f} s ({n} tries); see {self.log_file}"
        )

    def drive(
        self, link: MqttLink, sink: PromptSink, count: int, rate: float, kind: str
    ) -> tuple[list[str], float, float]:
        """Publish ``count`` events at ``rate``; return (ids sent, send window s, max lag ms)."""
        ids: list[str] = []
        max_lag = 0.0
        # Encoded before the load starts and stamped as each is sent: like the floor's hop,
        # latency starts at the publish. The generator's own pydantic work (a gateway's
        # time, not the server's) is neither in the latency nor competing for the CPU
        # while the system under test handles the events.
        now = time.time()
        events = [self.event(i, self.member(i // 2, kind), now) for i in range(count)]
        t0 = time.monotonic()
        for i, (topic, payload, event_id) in enumerate(events):
            wait = t0 + i / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            else:
                max_lag = max(max_lag, -wait)
            if link.publish(topic, restamp(payload, time.time()), qos=1).rc == 0:
                ids.append(event_id)
        window = time.monotonic() - t0
        expected = set(ids)

        def drained() -> bool:
            # Count first: decoding waits until every prompt is in.
            return sink.arrived >= len(expected) and expected <= sink.received_ids()

        _wait(lambda: drained() or self._proc_dead(), self.drain_s, 0.05)
        self._check_alive()
        return ids, window, max_lag * 1000.0

    def _proc_dead(self) -> bool:
        return self._proc is not None and self._proc.poll() is not None

    def run(self, say: Callable[[str], None] = print) -> RateSamples:
        presences = (self.count + 1) // 2
        warm = (WARMUP_EVENTS + 1) // 2
        self.load_profiles([self.member(i) for i in range(presences)])
        self.load_profiles([self.member(i, "w") for i in range(warm)])
        sink = PromptSink(self.ep, self.topics, self.config.store, _client_id(self.prefix, "bench-sink"))
        pub = MqttLink(self.ep.mqtt_host, self.ep.mqtt_port, _client_id(self.prefix, "bench-pub"))
        try:
            self.start_recommender()
            sink.link.connect()
            pub.connect()
            self.wait_ready(pub, sink)
            self.drive(pub, sink, WARMUP_EVENTS, WARMUP_RATE_EPS, "w")
            sink.clear()
            say(f"  {self.rate_eps:g} events/s for {self.duration_s:g} s: {self.count} events ...")
            meter = CpuMeter(self._pids())
            meter.start()
            ids, window, max_lag_ms = self.drive(pub, sink, self.count, self.rate_eps, "x")
            members = ids[0::2] if len(ids) == self.count else []  # events alternate member, guest
            cpu_s, busy_pct, others_pct = meter.stop()
            receipts = list(sink.receipts)
        finally:
            pub.close()
            sink.link.close()
            self.stop_recommender()
            with contextlib.suppress(redis.RedisError):
                self.cleanup_keys()
            self.redis.close()
        if sink.rejected or sink.undecodable:
            say(f"  warning: {sink.rejected} dead letters, {sink.undecodable} undecodable prompts")
        return RateSamples(
            self.rate_eps, window, ids, receipts, max_lag_ms,
            {n: 1000.0 * s / max(1, len(ids)) for n, s in cpu_s.items()}, busy_pct, others_pct,
            members,
        )  # fmt: skip

    def _pids(self) -> dict[str, int]:
        pids = {"bench": os.getpid(), **self.service_pids}
        if self._proc is not None:
            pids["recommender"] = self._proc.pid
        return pids


# -- the whole run -------------------------------------------------------------------------


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def _cpu(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _busy(busy: float | None, others: float | None, *, short: bool = False) -> str:
    if busy is None or others is None:
        return "-" if short else "machine load unknown"
    if short:
        return f"{busy:.0f}% ({others:.0f}%)"
    return f"machine {busy:.0f}% busy ({others:.0f}% not ours)"


def print_table(floor: Floor, results: Sequence[RateResult], console: Console) -> None:
    load = _busy(floor.floor_machine_busy_pct, floor.floor_others_busy_pct)
    console.print(
        f"floor p50 (the lower measurement) {floor.floor_p50_ms:.3f} ms = "
        f"MQTT hop p50 {floor.mqtt_hop_p50_ms:.3f} ms (p99 {floor.mqtt_hop_p99_ms:.3f}) + "
        f"EVALSHA p50 {floor.evalsha_p50_ms:.3f} ms (p99 {floor.evalsha_p99_ms:.3f}); {load}"
    )
    if floor.relay_p50_ms is not None:
        console.print(
            f"relay p50 {floor.relay_p50_ms:.3f} ms (p99 {_ms(floor.relay_p99_ms)}, "
            f"{floor.relay_p50_ms / floor.floor_p50_ms:.1f} x floor): receive, one trivial EVALSHA, "
            "publish -- the least this path's shape costs"
        )
    table = Table(title="event -> prompt latency (ms)")
    for col in ("rate", "achieved", "sent", "received", "lost", "dup", "p50", "p90", "p99", "max",
                "x floor", "x relay", "relay p99", "CPU/ev", "relay CPU/ev", "target",
                "busy (others)"):  # fmt: skip
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            f"{r.rate_eps:g}",
            f"{r.achieved_eps:.0f}",
            str(r.sent),
            str(r.prompts_received),
            str(r.lost),
            str(r.duplicates),
            _ms(r.p50_ms),
            _ms(r.p90_ms),
            _ms(r.p99_ms),
            _ms(r.max_ms),
            "-" if r.p50_over_floor is None else f"{r.p50_over_floor:.1f}",
            "-" if r.p50_over_relay is None else f"{r.p50_over_relay:.1f}",
            _ms(r.relay_p99_ms),
            _cpu(r.cpu_ms_per_event.get("recommender")),
            _cpu(r.relay_cpu_ms_per_event),
            "[green]met[/]" if r.target_met else "[red]missed[/]",
            _busy(r.machine_busy_pct, r.others_busy_pct, short=True),
        )
    console.print(table)


def run_on(
    ep: Endpoints,
    rates: Sequence[float],
    duration_s: float,
    out: Path,
    work_dir: Path,
    *,
    config_path: Path | None = None,
    floor_samples: int = FLOOR_SAMPLES,
    drain_s: float = DRAIN_S,
    service_pids: dict[str, int] | None = None,
    console: Console | None = None,
    relay_at_rate_s: float = RELAY_AT_RATE_S,
) -> dict[str, Any]:
    """Measure the floor, then each rate, on running services; write and return the report."""
    if not rates:
        raise BenchError("no rates given")
    console = console or Console()
    if config_path is None:
        from simulators.stores import DEMO_STORE

        config_path = DEMO_STORE
    config_path = bench_store_config(config_path, work_dir)

    def floor_now(when: str) -> Floor:
        console.print(
            f"floor ({when}): {floor_samples} MQTT hops and {floor_samples} EVALSHA round trips ..."
        )
        return measure_floor(
            ep, f"bench{uuid.uuid4().hex[:8]}floor/", floor_samples, service_pids=service_pids
        )

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        floors = [floor_now("before")]
        runs: list[RateSamples] = []
        for rate in rates:
            driver = RateDriver(
                ep, config_path, rate, duration_s, work_dir, drain_s=drain_s, service_pids=service_pids
            )
            run = driver.run(console.print)
            relay_ms, relay_cpu = measure_relay(
                ep, f"bench{uuid.uuid4().hex[:8]}relay/", max(1, round(rate * relay_at_rate_s)), rate
            )
            runs.append(replace(run, relay_ms=relay_ms, relay_cpu_ms_per_event=relay_cpu))
            r = runs[-1].result(floors[0].floor_p50_ms)
            cpu = ", ".join(f"{n} {v:.3f}" for n, v in r.cpu_ms_per_event.items())
            console.print(
                f"  -> received {r.prompts_received}/{r.prompts_expected}, p50 {_ms(r.p50_ms)} ms "
                f"(member entries {_ms(r.p50_member_ms)}, guest checkouts {_ms(r.p50_guest_ms)}), "
                f"p99 {_ms(r.p99_ms)} ms; CPU ms/event: {cpu or '-'}; "
                + _busy(r.machine_busy_pct, r.others_busy_pct)
            )
            console.print(
                f"     the relay at {rate:g}/s: p99 {_ms(r.relay_p99_ms)} ms, "
                f"CPU {_cpu(r.relay_cpu_ms_per_event)} ms/event"
            )
        floors.append(floor_now("after"))
    finally:
        sys.setswitchinterval(old_interval)
    # A neighbour's burst only ever inflates the floor: judge against the lower measurement
    # (of the relay likewise).
    floor = min(floors, key=lambda f: f.floor_p50_ms)
    relayed = [f for f in floors if f.relay_p50_ms is not None]
    if relayed:
        best = min(relayed, key=lambda f: f.relay_p50_ms or 0.0)
        floor = replace(
            floor,
            relay_p50_ms=best.relay_p50_ms,
            relay_p99_ms=best.relay_p99_ms,
            relay_samples=best.relay_samples,
        )
    results = [run.result(floor.floor_p50_ms, floor.relay_p50_ms) for run in runs]
    print_table(floor, results, console)
    doc = report(floor, results, floors)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    console.print(f"wrote {out}")
    return doc


def bench_store_config(config_path: Path, work_dir: Path) -> Path:
    """A copy of the store config whose catalog (the full one) has no holdout and no
    per-associate hourly caps, so every synthetic event's prompt is sent and can be timed
    (the bench sends hundreds of join invites a second to one lane), and with
    ``rules.require_handheld`` off: the bench runs no handhelds, so no associate says they
    are on the floor."""
    import yaml

    from recommender.catalog import DEFAULT_CATALOG

    config = load_store_config(config_path)
    catalog = yaml.safe_load((config.catalog or DEFAULT_CATALOG).read_text())
    catalog.setdefault("policy", {})["holdout_pct"] = 0
    for action in catalog["actions"]:
        action.get("caps", {}).pop("per_associate_per_hour", None)
    work_dir.mkdir(parents=True, exist_ok=True)
    catalog_path = work_dir / "bench-catalog.yaml"
    catalog_path.write_text(yaml.safe_dump(catalog, sort_keys=False))
    raw = yaml.safe_load(config_path.read_text())
    raw["catalog"] = str(catalog_path)
    raw["rules"] = {**(raw.get("rules") or {}), "require_handheld": False}
    if config.crm is not None:
        raw["crm"] = str(config.crm)
    out = work_dir / "bench-store.yaml"
    out.write_text(yaml.safe_dump(raw, sort_keys=False))
    return out


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM unwind like Ctrl-C, so the recommender and the services are stopped."""

    def handler(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_bench(rates: list[float], duration_s: float, out: Path) -> None:
    """Start our own Mosquitto and Redis in a temporary run directory, bench, stop them."""
    bad = [r for r in rates if not (math.isfinite(r) and r > 0)]
    if bad or not rates or not (math.isfinite(duration_s) and duration_s > 0):
        raise BenchError(f"rates {rates} and duration {duration_s} must be positive numbers")
    console = Console()
    if not console.is_terminal:
        console = Console(width=180)  # the table is wider than rich's 80-column default
    # Our own MQTT clients would log every connect; the recommender logs to its own file.
    logging.getLogger("floorwalker.mqtt").setLevel(logging.WARNING)
    run_dir = Path(tempfile.mkdtemp(prefix="floorwalker-bench-"))
    services = Services(run_dir)
    ok = False
    with _sigterm_as_interrupt():
        try:
            ep = services.up()
            console.print(f"services: {ep.mqtt_url}, {ep.redis_url} (run dir {run_dir})")
            pids = {name: proc.pid for name, proc in services.recorded().items()}
            run_on(ep, rates, duration_s, out, run_dir, service_pids=pids, console=console)
            ok = True
        finally:
            services.down()
            if ok:
                shutil.rmtree(run_dir, ignore_errors=True)
            else:
                console.print(f"logs kept in {run_dir}")
