"""BLE presence end to end on the real broker and Redis: a member's phone, as the RF model
hears it, replayed by every gateway (the gateway code with the replay scanner) -> rotating
ids on the wire -> the fuser resolves and fuses -> presence events -> the recommender ->
exactly one greeting prompt. And the CLI's gateway process publishing a replayed trace."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from bench.presence_eval import write_trace
from broker_config.contract import BleReport, PresenceEvent, Prompt, PromptKind, TopicKind, Topics
from edge_agent.agent import run_gateway
from floorwalker.config import Endpoints, ReplayScannerConfig, StoreConfig, load_store_config
from presence.fuser import FuserService
from presence.positions import PositionSample
from recommender.service import RecommenderService
from simulators.ble_radio import RadioModel, RadioParams
from tests.conftest import DEMO_STORE, Collector

pytestmark = pytest.mark.integration

MEMBER = "m_702cc64d"  # gold, consenting, in the demo CRM
QUIET = RadioParams(
    shadowing_sd_db=1.0, fading_sd_db=2.0, body_loss_db=2.0, calibration_error_db=0.5, exponent_error=0.05
)


def fast_store(tmp_path: Path) -> Path:
    """The demo store, leaving to "away" after 3 s instead of 12 (a shorter test)."""
    raw = yaml.safe_load(DEMO_STORE.read_text())
    raw["crm"] = str(DEMO_STORE.parent / raw["crm"])
    raw["ble_presence"] = {
        "secrets": str(DEMO_STORE.parent / raw["ble_presence"]["secrets"]),
        "away_timeout_s": 3,
    }
    raw["rules"] = {**raw["rules"], "require_handheld": False}  # the decision path: no handhelds
    path = tmp_path / "store.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def walk(start: float) -> list[PositionSample]:
    """Entrance 3 s, walk (2 m/s) to the middle of produce, 5 s there, on to the pantry, 5 s there."""
    out: list[PositionSample] = []
    t, x, y = start, 4.0, 2.0
    for (tx, ty), linger in (((4.0, 2.0), 3.0), ((5.0, 13.0), 5.0), ((15.0, 13.0), 5.0)):
        steps = max(1, int(((tx - x) ** 2 + (ty - y) ** 2) ** 0.5 / 1.0))
        for k in range(1, steps + 1):
            t += 0.5
            out.append(
                PositionSample(t, "s1", MEMBER, x + (tx - x) * k / steps, y + (ty - y) * k / steps, "")
            )
        x, y = tx, ty
        for _ in range(int(linger / 0.5)):
            t += 0.5
            out.append(PositionSample(t, "s1", MEMBER, x, y, ""))
    return out


def make_trace(config: StoreConfig, path: Path, start: float) -> None:
    assert config.ble_presence.secrets is not None
    key = bytes.fromhex(json.loads(config.ble_presence.secrets.read_text())["store_key"])
    write_trace(path, RadioModel(config, key, QUIET, seed=6).hear(walk(start)))


def test_replayed_walk_becomes_enter_leave_events_and_one_greeting(
    services: Endpoints, prefix: str, tmp_path: Path, collect: Callable[[list[str]], Collector]
) -> None:
    config = load_store_config(fast_store(tmp_path))
    topics = Topics(prefix)
    watch = collect(
        [
            topics.subscription(TopicKind.PRESENCE, config.store),
            topics.subscription(TopicKind.PROMPT, config.store),
            topics.subscription(TopicKind.BLE, config.store),
            topics.subscription(TopicKind.DEADLETTER, config.store),
            topics.ack(config.store, "fuser"),
        ]
    )
    recommender = RecommenderService(config, services, topic_prefix=prefix, key_prefix=prefix)
    fuser = FuserService(config, services, topic_prefix=prefix)
    stop = threading.Event()
    threads = [threading.Thread(target=recommender.run), threading.Thread(target=fuser.run)]
    trace = tmp_path / "trace.jsonl"
    make_trace(config, trace, time.time() + 3.0)
    scanner = ReplayScannerConfig(path=trace)
    for gw in config.gateways:
        threads.append(
            threading.Thread(
                target=run_gateway,
                args=(config, gw.id, services.mqtt_host, services.mqtt_port, stop),
                kwargs={"topic_prefix": prefix, "heartbeat_s": 60.0, "scanner": scanner},
            )
        )
    for th in threads:
        th.start()
    try:
        watch.wait_for(lambda msgs: any(b'"leave"' in p and "/pantry/" in t for t, p in msgs), timeout=60)
        [last] = [p for t, p in watch.messages if b'"leave"' in p and "/pantry/" in t]
        # The recommender acknowledges an event once its batch is done, after publishing
        # what it decided: with the last event's ack here, a prompt for it would be too.
        done = PresenceEvent.model_validate_json(last).event_id.encode()
        watch.wait_for(lambda msgs: any(t.endswith("/ack") and done in p for t, p in msgs), timeout=30)
    finally:
        stop.set()
        fuser.stop()
        recommender.stop()
        for th in threads:
            th.join(15)

    presence = [
        (t.split("/")[-2], PresenceEvent.model_validate_json(p))
        for t, p in watch.messages
        if "/presence" in t
    ]
    assert [(zone, e.action) for zone, e in presence] == [
        ("entrance", "enter"),
        ("entrance", "leave"),
        ("produce", "enter"),
        ("produce", "leave"),
        ("pantry", "enter"),
        ("pantry", "leave"),
    ]
    assert {(e.member, e.producer) for _, e in presence} == {(MEMBER, "fuser")}
    prompts = [Prompt.model_validate_json(p) for p in watch.on("/prompt")]
    greetings = [p for p in prompts if p.kind is PromptKind.GREET_VIP]
    assert len(greetings) == 1 and greetings[0].customer.member == MEMBER and greetings[0].zone == "entrance"
    assert watch.on("/deadletter") == []
    # On the gateways' topic: batches of rotating ids, never a member id or a device address.
    reports = watch.on("/ble")
    assert reports and all(BleReport.model_validate_json(p).sightings for p in reports)
    adverts = sum(s.adverts for p in reports for s in BleReport.model_validate_json(p).sightings)
    assert len(reports) < adverts / 3  # batched and rate-limited, not one message per advert
    for p in reports:
        assert b"m_" not in p and not re.search(rb"([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}", p)


def test_cli_gateway_replays_a_trace_and_reports_drops(
    services: Endpoints,
    prefix: str,
    tmp_path: Path,
    store_config: StoreConfig,
    collect: Callable[[list[str]], Collector],
) -> None:
    trace = tmp_path / "trace.jsonl"
    make_trace(store_config, trace, time.time() + 2.0)
    lines = trace.read_text().splitlines(keepends=True)
    first = json.loads(lines[0])
    truncated = {"ts": first["ts"], "gateway": "gw-entrance", "rssi": -60, "adv": "0201"}
    lines.insert(1, json.dumps(truncated) + "\n")
    trace.write_text("".join(lines))
    watch = collect(
        [Topics(prefix).ble("demo-store", "gw-entrance"), Topics(prefix).status("demo-store", "gw-entrance")]
    )
    gateway = subprocess.Popen(
        [
            sys.executable, "-m", "floorwalker", "edge", "--gateway", "gw-entrance",
            "--store-config", str(DEMO_STORE), "--mqtt-url", services.mqtt_url,
            "--topic-prefix", prefix, "--heartbeat", "1", "--ble-replay", str(trace),
            "--outbox", str(tmp_path / "outbox.db"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        watch.wait_for(
            lambda msgs: (
                any(b"dropped truncated 1" in p for _, p in msgs) and any("/ble" in t for t, _ in msgs)
            ),
            timeout=60,
        )
    finally:
        gateway.terminate()
        gateway.wait(10)
    reports = [BleReport.model_validate_json(p) for p in watch.on("/ble")]
    assert reports and {r.producer for r in reports} == {"gw-entrance"}
    assert all(len(s.eid) == 16 for r in reports for s in r.sightings)
