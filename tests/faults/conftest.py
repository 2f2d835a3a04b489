"""Fault scenarios: their own Mosquitto and Redis (killed and restarted here, so never the
session's shared ones), a recommender as a real process, a gateway with a real outbox."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from broker_config.contract import Prompt, TopicKind, Topics, decode
from edge_agent.outbox import Outbox
from edge_agent.publisher import EdgePublisher
from floorwalker.config import Endpoints, write_without_handhelds
from floorwalker.mqtt import MqttLink, Received
from floorwalker.services import Services
from recommender.keys import Keys
from tests.conftest import DEMO_STORE

#: Events per scenario in `make test`; `make faults` runs the issue's 10 000.
EVENTS = int(os.environ.get("FLOORWALKER_FAULT_EVENTS", "1500"))
STORE = "demo-store"
CRM_MEMBERS = [m["member"] for m in json.loads((DEMO_STORE.parent / "demo_crm.json").read_text())["members"]]


@dataclass
class Stack:
    svc: Services
    endpoints: Endpoints
    prefix: str
    tmp: Path
    recommender: subprocess.Popen[bytes] | None = None
    log_files: list[Path] = field(default_factory=list)

    @property
    def topics(self) -> Topics:
        return Topics(self.prefix)

    @property
    def keys(self) -> Keys:
        return Keys(STORE, self.prefix)

    def kill(self, name: str) -> None:
        """``kill -9`` one of our servers."""
        proc = self.svc.recorded()[name]
        os.kill(proc.pid, signal.SIGKILL)
        for child in self.svc._children:  # reap it, so its pid is really gone
            if child.pid == proc.pid:
                child.wait(10)

    def restart(self) -> None:
        self.endpoints = self.svc.up()

    def start_recommender(self) -> None:
        log = self.tmp / f"recommender-{len(self.log_files)}.log"
        self.log_files.append(log)
        argv = [
            sys.executable, "-m", "floorwalker", "recommender",
            "--store-config", str(write_without_handhelds(DEMO_STORE, self.tmp)),  # the decision path
            "--mqtt-url", f"mqtt://{self.endpoints.mqtt_host}:{self.endpoints.mqtt_port}",
            "--redis-url", self.endpoints.redis_url,
            "--topic-prefix", self.prefix, "--key-prefix", self.prefix,
            "--client-id", "fault-recommender",
        ]  # fmt: skip
        self.recommender = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        # Ready once its persistent session exists: its first ack or prompt proves it, but
        # the session alone is enough for the broker to keep events for it.
        deadline = time.monotonic() + 30
        while "serving on" not in log.read_text(errors="replace"):
            assert self.recommender.poll() is None, log.read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "recommender did not start in 30 s"
            time.sleep(0.1)

    def stop_recommender(self, sig: int = signal.SIGTERM) -> None:
        if self.recommender is not None and self.recommender.poll() is None:
            self.recommender.send_signal(sig)
            self.recommender.wait(20)
        self.recommender = None

    def gateway(self, gateway: str = "gw-fresh") -> EdgePublisher:
        pub = EdgePublisher(
            STORE,
            gateway,
            self.endpoints.mqtt_host,
            self.endpoints.mqtt_port,
            topics=self.topics,
            outbox=Outbox(self.tmp / f"outbox-{gateway}.db"),
        )
        pub.start(time.time())
        return pub


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    svc = Services(tmp_path / "svc")
    endpoints = svc.up()
    # A restart must come back where the clients expect it.
    svc.mqtt_port = endpoints.mqtt_port
    svc.redis_port = svc.recorded()["redis"].port
    s = Stack(svc, endpoints, f"f{uuid.uuid4().hex[:8]}/", tmp_path)
    yield s
    s.stop_recommender()
    svc.down()


class PromptWatch:
    """A handheld's view: every prompt on the store's prompt topics, on a persistent session."""

    def __init__(self, stack: Stack) -> None:
        self.prompts: list[Prompt] = []
        self._topics = stack.topics
        self.link = MqttLink(
            stack.endpoints.mqtt_host,
            stack.endpoints.mqtt_port,
            client_id=f"watch-{uuid.uuid4().hex[:6]}",
            subscriptions=[(stack.topics.subscription(TopicKind.PROMPT, STORE), 1)],
            on_message=self._add,
            persistent_session=True,
        )
        self.link.connect()

    def _add(self, msg: Received) -> bool:
        body = decode(self._topics, msg.topic, msg.payload).payload
        assert isinstance(body, Prompt)
        self.prompts.append(body)
        return True

    def caused_by(self, events: list[tuple[str, str]]) -> list[Prompt]:
        """The prompts received so far that these (member, event id) events caused."""
        ids = {event_id for _, event_id in events}
        return [p for p in list(self.prompts) if p.cause_event_id in ids]

    def wait_for_invite(self, stack: Stack, timeout: float = 60.0) -> Prompt:
        """A guest pays at lane 1 now: wait for the join invite it earns (a decision made
        after whatever fault came before)."""
        till = EdgePublisher(
            STORE, "pos-1", stack.endpoints.mqtt_host, stack.endpoints.mqtt_port,
            topics=stack.topics, status=False,
        )  # fmt: skip
        till.start(time.time())
        basket: list[dict[str, object]] = [
            {"sku": "kikkoman-500", "category": "sauces", "qty": 1, "amount_cents": 399}
        ]
        event_id = till.checkout("lane-1", time.time(), member=None, items=basket)
        till.stop(time.time())
        deadline = time.monotonic() + timeout
        while not (found := [p for p in list(self.prompts) if p.cause_event_id == event_id]):
            assert time.monotonic() < deadline, f"no prompt for the guest's checkout within {timeout} s"
            time.sleep(0.05)
        return found[0]

    def duplicates(self) -> tuple[int, int]:
        """(prompts received more than once, decisions prompted more than once)."""
        ids = [p.event_id for p in self.prompts]
        causes = {(p.cause_event_id, p.kind) for p in self.prompts}
        by_cause = len({p.event_id for p in self.prompts}) - len(causes)
        return len(ids) - len(set(ids)), by_cause

    def close(self) -> None:
        self.link.close()


def produce(pub: EdgePublisher, start: int, stop: int) -> list[tuple[str, str]]:
    """Presence events ``start``..``stop``: (member, event id) each, spread over members so
    no member's dedupe window (128 ids) is outgrown."""
    made = []
    n_synthetic = max(10, EVENTS // 60)
    for i in range(start, stop):
        members = CRM_MEMBERS if i % 30 == 0 else [f"m_fault{j:05d}" for j in range(n_synthetic)]
        member = members[(i // 30 if i % 30 == 0 else i) % len(members)]
        zone = ("produce", "pantry")[(i // 7) % 2]
        action = "enter" if i % 2 == 0 else "leave"
        made.append((member, pub.presence(zone, member, action, time.time())))
    return made


def wait_drained(pub: EdgePublisher, timeout: float = 120.0) -> float:
    """Seconds until the outbox is empty (every event acknowledged by the recommender)."""
    assert pub.outbox is not None
    t0 = time.monotonic()
    while pub.outbox.pending():
        assert time.monotonic() - t0 < timeout, f"{pub.outbox.pending()} events still unacknowledged"
        time.sleep(0.1)
    return time.monotonic() - t0


def missing(client: redis.Redis, keys: Keys, events: list[tuple[str, str]]) -> int:
    """Events the recommender never committed (not in their member's dedupe set)."""
    pipe = client.pipeline(transaction=False)
    for member, event_id in events:
        pipe.zscore(keys.member_seen(member), event_id)
    return sum(score is None for score in pipe.execute())


def durable_state(client: redis.Redis, keys: Keys) -> dict[str, object]:
    """Every member's profile and dedupe set: what must survive a Redis restart."""
    state: dict[str, object] = {}
    for key in client.scan_iter(match=keys.pattern(), count=1000):
        name = key.decode()
        if name.endswith(":profile"):
            state[name] = client.hgetall(name)
        elif name.endswith(":seen"):
            state[name] = set(client.zrange(name, 0, -1))
    return state


def record(name: str, figures: dict[str, object]) -> None:
    """Print a scenario's figure and keep it (bench/out/faults/<name>.json) for the docs."""
    figures = {"events": EVENTS, **figures}
    print(f"\nFAULT {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
    out = Path(__file__).resolve().parents[2] / "bench" / "out" / "faults"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(figures, indent=2))
