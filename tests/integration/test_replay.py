"""Replay onto the real broker: order and relative timing at 10x, windows and filters,
recording, corrupt lines skipped with a count and a named line."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from broker_config.contract import (
    AssociateStatus,
    CheckoutEvent,
    Envelope,
    EnvelopeSource,
    FootfallEvent,
    PresenceEvent,
    Prompt,
    Topics,
    decode,
    encode,
)
from floorwalker.config import Endpoints, StoreConfig, write_without_handhelds
from floorwalker.mqtt import MqttLink, Received
from simulators.harness import RecommenderProcess, replay_and_capture
from simulators.record import Recorder
from simulators.replay import ReplayOptions, replay
from simulators.stores import DEMO_STORE
from simulators.trace import Header, TraceLine, TraceReader, write_trace

pytestmark = pytest.mark.integration

T0 = 1.78e9


def _trace(path: Path, n: int = 40, span_s: float = 15.0) -> list[TraceLine]:
    """Footfall from two zones at irregular times over ``span_s`` seconds."""
    rng = random.Random(4)
    source = EnvelopeSource("gw-fresh")
    times = [*sorted(rng.uniform(0, span_s) for _ in range(n - 2)), 0.0, span_s]
    lines = []
    for i, t in enumerate(sorted(times)):
        zone = "produce" if i % 3 else "pantry"
        event = source.make(FootfallEvent, T0 + t, window_s=60, entered=i, exited=0, occupancy=i)
        lines.append(TraceLine(T0 + t, Topics().footfall("demo-store", zone), encode(event)))
    write_trace(path, Header("demo-store", "test", T0), lines)
    return lines


def _link(ep: Endpoints) -> MqttLink:
    link = MqttLink(ep.mqtt_host, ep.mqtt_port, client_id=f"replay-{uuid.uuid4().hex[:8]}")
    link.connect()
    return link


def test_replay_at_10x_keeps_order_and_is_never_early(
    services: Endpoints, prefix: str, tmp_path: Path
) -> None:
    """At 10x every message goes out in trace order, none before its moment (its trace
    offset over 10 after the first), each stamped with the replay clock when it went out.
    Only lower bounds on time: a slow or busy machine makes messages late, never early."""
    lines = _trace(tmp_path / "t.jsonl")
    arrivals: list[tuple[str, bytes]] = []
    done = threading.Event()

    def on_message(msg: Received) -> bool:
        arrivals.append((msg.topic, msg.payload))
        if len(arrivals) == len(lines):
            done.set()
        return True

    listener = MqttLink(
        services.mqtt_host, services.mqtt_port, f"listen-{uuid.uuid4().hex[:8]}",
        subscriptions=[(f"{prefix}fw/v1/demo-store/#", 1)], on_message=on_message,
    )  # fmt: skip
    listener.connect()
    link = _link(services)
    try:
        before = time.time()
        result = replay(TraceReader(tmp_path / "t.jsonl"), link, ReplayOptions(speed=10, topic_prefix=prefix))
        after = time.time()
        assert done.wait(30), f"got {len(arrivals)} of {len(lines)}"
    finally:
        link.close()
        listener.close()
    topics = Topics(prefix)
    received = [decode(topics, t, p).payload for t, p in arrivals]
    sent = [decode(Topics(), x.topic, x.payload).payload for x in lines]
    assert [r.event_id for r in received] == [s.event_id for s in sent]  # same order, nothing lost
    assert result.sent == len(lines) and result.wall_s >= (lines[-1].t - lines[0].t) / 10
    # Retimed: ts is the replay clock at the publish, within the replay, never early.
    ts = [r.ts for r in received]
    assert before <= ts[0] and ts[-1] <= after and ts == sorted(ts)
    for r, line in zip(received, lines, strict=True):
        assert r.ts - ts[0] >= (line.t - lines[0].t) / 10 - 1e-3, "published before its moment"


def test_window_and_topic_filter_and_recording(services: Endpoints, prefix: str, tmp_path: Path) -> None:
    lines = _trace(tmp_path / "t.jsonl", n=30, span_s=10.0)
    recorded = tmp_path / "rec.jsonl"
    recorder = Recorder(recorded, "demo-store", services.mqtt_host, services.mqtt_port, topic_prefix=prefix)
    recorder.start()
    link = _link(services)
    options = ReplayOptions(
        speed=None, start_s=2.0, end_s=8.0, topic_filter="fw/v1/+/zone/produce/#", topic_prefix=prefix,
        retime=False,
    )  # fmt: skip
    try:
        result = replay(TraceReader(tmp_path / "t.jsonl"), link, options)
    finally:
        link.close()
    expected = [x for x in lines if 2.0 <= x.t - T0 <= 8.0 and "/produce/" in x.topic]
    assert result.sent == len(expected) and result.filtered_out == len(lines) - len(expected)
    deadline = time.monotonic() + 10
    while recorder.count < len(expected) and time.monotonic() < deadline:
        time.sleep(0.05)
    recorder.stop()
    back = list(TraceReader(recorded))
    # The recording is a trace itself: same topics (prefix removed) and the exact bytes.
    assert [(x.topic, x.payload) for x in back] == [(x.topic, x.payload) for x in expected]


def test_cli_replay_skips_a_corrupt_line_and_names_it(
    services: Endpoints, prefix: str, tmp_path: Path
) -> None:
    path = tmp_path / "t.jsonl"
    _trace(path, n=5, span_s=1.0)
    rows = path.read_text().splitlines()
    rows.insert(3, '{"t": 1.78e9, "topic": 42, "payload": "x"}')
    path.write_text("\n".join(rows) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "floorwalker", "replay", str(path), "--speed", "max",
         "--mqtt-url", services.mqtt_url, "--topic-prefix", prefix],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "sent 5 messages" in result.stdout
    assert f"skipped 1 corrupt line(s), first {path}:4: key 'topic'" in result.stderr
    bad_speed = subprocess.run(
        [sys.executable, "-m", "floorwalker", "replay", str(path), "--speed", "fast",
         "--mqtt-url", services.mqtt_url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad_speed.returncode == 2 and "error: --speed 'fast'" in bad_speed.stderr
    json.loads(rows[0])  # the header stays a header


def test_cli_record_writes_a_replayable_trace(services: Endpoints, prefix: str, tmp_path: Path) -> None:
    out = tmp_path / "rec.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "floorwalker", "record", "--out", str(out), "--duration", "3",
         "--mqtt-url", services.mqtt_url, "--topic-prefix", prefix],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("recording ")  # subscribed from here on
        lines = _trace(tmp_path / "t.jsonl", n=4, span_s=0.1)
        link = _link(services)
        try:
            replay(lines, link, ReplayOptions(speed=None, topic_prefix=prefix, retime=False))
        finally:
            link.close()
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "recorded 4 messages" in stdout
    reader = TraceReader(out)
    assert reader.header.source == "record"
    assert [(x.topic, x.payload) for x in reader] == [(x.topic, x.payload) for x in lines]


def _store_minutes(path: Path) -> None:
    """100 s of the demo store that a wall clock would decide differently at each speed: a
    member prompted twice (the second after the 90 s minimum gap), a prompt nobody accepts
    (re-routed after 45 s), a guest at a till, a long queue; the handhelds' status beats."""
    t0 = T0
    topics, lines = Topics(), []
    fresh, entrance, pos, till = (
        EnvelopeSource(p) for p in ("gw-fresh", "gw-entrance", "pos-1", "gw-checkout")
    )
    for t in range(0, 100, 10):  # each handheld's status, as the API publishes it while connected
        for a in ("a-amy", "a-ben", "a-cara", "a-dan"):
            status = EnvelopeSource("api").make(AssociateStatus, t0 + t, state="available")
            lines.append(TraceLine(t0 + t, topics.associate_status("demo-store", a), encode(status)))
    store = "demo-store"

    def visit(t: float, zone: str, member: str) -> tuple[float, str, Envelope]:
        gw = entrance if zone == "entrance" else fresh
        return t, topics.presence(store, zone), gw.make(PresenceEvent, t0 + t, member=member, action="enter")

    guest = pos.make(CheckoutEvent, t0 + 3, member=None, items=[], total_cents=0)
    queue = till.make(FootfallEvent, t0 + 20, window_s=10, entered=3, exited=1, occupancy=9, queue_length=6)
    events = [
        visit(1, "pantry", "m_702cc64d"),
        (3.0, topics.checkout(store, "lane-1"), guest),
        visit(5, "entrance", "m_cbbd5a3c"),
        (20.0, topics.footfall(store, "checkout"), queue),
        visit(93, "entrance", "m_702cc64d"),
        visit(97, "produce", "m_cbbd5a3c"),
    ]
    lines += [TraceLine(t0 + t, topic, encode(e)) for t, topic, e in events]
    lines.sort(key=lambda x: x.t)
    write_trace(path, Header("demo-store", "test", t0), lines)


@pytest.mark.timeout(240)  # 100 s of trace at max speed, 10x and 2x (50 s)
def test_a_replay_gives_the_same_prompts_at_any_speed(
    services: Endpoints, store_config: StoreConfig, tmp_path: Path
) -> None:
    """Issue 20: caps, gaps, re-routes and dwell took the wall clock, so a replay at max
    speed decided differently from one at 1x. The recommender now runs on the events' clock.

    The slowest replay is 2x, not 1x: on a wall clock, its second visit of m_702cc64d would
    come 46 s after the first, inside the 90 s minimum gap, so the second prompt would not
    be made and the assertions below would fail; at 2x the test takes 50 s, not 100."""
    trace = tmp_path / "t.jsonl"
    _store_minutes(trace)
    seen: dict[str, list[tuple[str, str, str]]] = {}
    for name, speed in (("max", None), ("10x", 10.0), ("2x", 2.0)):
        prefix = f"speed{uuid.uuid4().hex[:8]}/"
        no_handhelds = write_without_handhelds(DEMO_STORE, tmp_path)  # the decision path's clock
        rec = RecommenderProcess(store_config, no_handhelds, services, prefix, tmp_path / name)
        rec.start()
        try:
            outputs, _, done = replay_and_capture(
                TraceReader(trace), store_config, (services.mqtt_host, services.mqtt_port),
                ReplayOptions(speed=speed, topic_prefix=prefix), recommender=rec, timeout_s=60,
            )  # fmt: skip
        finally:
            rec.stop()
        assert done is not None
        got = []
        for out in outputs:
            if out.topic.endswith("/prompt"):
                p = Prompt.model_validate_json(out.payload)
                got.append((p.kind.value, p.customer.member or "-", out.topic.split("/")[-2]))
        seen[name] = sorted(got)
    kinds = {k for k, _, _ in seen["2x"]}
    assert {"greet_vip", "replenishment_due", "join_invite", "open_till"} <= kinds, seen["2x"]
    assert len([g for g in seen["2x"] if g[1] == "m_702cc64d"]) >= 3  # two prompts, one re-routed
    assert seen["max"] == seen["10x"] == seen["2x"], seen
