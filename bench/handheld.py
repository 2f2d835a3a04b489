"""``floorwalker bench handheld``: prompt on the broker -> prompt on the associates' open pages.

Starts ``floorwalker api`` as its own process on a fresh topic/key prefix, opens
``pages`` Server-Sent Event streams for one associate (as that many phones would), then
publishes contract prompts at ``rate`` per second onto the associate's prompt topic, as
the recommender does. Latency per prompt and page is the arrival of its SSE event minus
the moment it was handed to the MQTT client (``perf_counter``, same process): broker,
the API's decode, name lookup, Redis ``HSETNX`` + ``XADD``, fan-out and HTTP. The floor
next to it is one raw QoS 1 MQTT hop measured in the same run. Every prompt must arrive
exactly once on every page: lost and repeated deliveries are counted.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import redis
from rich.console import Console
from rich.table import Table

from bench.e2e import BenchError, machine_info, measure_mqtt_hop, paced, percentile
from broker_config.contract import EnvelopeSource, Prompt, PromptKind, Topics, encode, new_event_id
from floorwalker import procs
from floorwalker.config import Endpoints, load_store_config
from floorwalker.mqtt import MqttLink
from floorwalker.services import Services, free_port, http_answers
from handheld.auth import issue_token, open_session
from recommender.keys import Keys

ASSOCIATE = "a-ben"
READY_TIMEOUT_S = 20.0
DRAIN_S = 10.0


@dataclass(frozen=True)
class HandheldResult:
    rate_pps: float
    pages: int
    prompts: int
    deliveries_expected: int
    deliveries: int
    lost: int
    repeated: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    floor_mqtt_hop_p50_ms: float | None
    p50_over_floor: float | None


class _Page:
    """One open handheld stream on a thread: prompt id -> arrival times."""

    def __init__(self, url: str, token: str) -> None:
        self.arrivals: dict[str, list[float]] = {}
        self.ready = threading.Event()
        self._url, self._token = url, token
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        request = urllib.request.Request(self._url, headers={"Authorization": f"Bearer {self._token}"})
        event = ""
        try:
            with urllib.request.urlopen(request) as resp:
                while raw := resp.readline():
                    line = raw.decode().rstrip("\r\n")
                    if line.startswith("event:"):
                        event = line.removeprefix("event:").strip()
                    elif line.startswith("data:") and event == "prompt":
                        now = time.perf_counter()
                        pid = json.loads(line.removeprefix("data:"))["prompt_id"]
                        self.arrivals.setdefault(pid, []).append(now)
                    elif line.startswith("data:") and event == "ready":
                        self.ready.set()
        except OSError:
            return  # the API stopped: the run is over


def summarize(
    rate: float, sent: dict[str, float], pages: list[dict[str, list[float]]], floor_p50: float | None
) -> HandheldResult:
    """Latencies, losses and repeats from send times and each page's arrivals (pure)."""
    latencies: list[float] = []
    lost = repeated = 0
    for arrivals in pages:
        for pid, t0 in sent.items():
            got = arrivals.get(pid, [])
            if not got:
                lost += 1
                continue
            repeated += len(got) - 1
            latencies.append((got[0] - t0) * 1000.0)
    p50 = percentile(latencies, 50)
    return HandheldResult(
        rate_pps=rate,
        pages=len(pages),
        prompts=len(sent),
        deliveries_expected=len(sent) * len(pages),
        deliveries=len(latencies),
        lost=lost,
        repeated=repeated,
        p50_ms=p50,
        p99_ms=percentile(latencies, 99),
        max_ms=max(latencies) if latencies else None,
        floor_mqtt_hop_p50_ms=floor_p50,
        p50_over_floor=(p50 / floor_p50) if p50 is not None and floor_p50 else None,
    )


def _prompt(source: EnvelopeSource) -> Prompt:
    now = time.time()
    return source.make(
        Prompt,
        now,
        kind=PromptKind.GREET_VIP,
        customer={"member": "m_702cc64d", "tier": "gold"},
        zone="pantry",
        headline="Gold member in Pantry",
        suggestion="Greet them by name.",
        why="Gold member, just walked into Pantry.",
        cause_event_id=new_event_id(),
        cause_ts=now,
        expires_at=now + 300,
    )


def run_on(
    ep: Endpoints, work_dir: Path, *, prompts: int, rate: float, pages: int, out: Path, console: Console
) -> HandheldResult:
    """Bench on running services; writes ``out`` and returns the result."""
    from simulators.stores import DEMO_STORE

    if prompts <= 0 or rate <= 0 or pages <= 0:
        raise BenchError(f"--prompts {prompts}, --rate {rate} and --pages {pages} must be positive")
    store_path = DEMO_STORE
    config = load_store_config(store_path)
    prefix = f"hb{uuid.uuid4().hex[:8]}/"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = work_dir / "api-bench.log"
    argv = [sys.executable, "-m", "floorwalker", "--log-file", str(log), "api", "--store-config",
            str(store_path), "--mqtt-url", ep.mqtt_url, "--redis-url", ep.redis_url, "--port", str(port),
            "--topic-prefix", prefix, "--key-prefix", prefix]  # fmt: skip
    api = procs.spawn(argv, work_dir / "api-bench.stderr.log", new_session=False)
    client = redis.Redis.from_url(ep.redis_url)
    link = MqttLink(ep.mqtt_host, ep.mqtt_port, client_id=f"{prefix[:-1]}-recommender")
    try:
        not_ready = f"the API did not get ready on {base}: "
        if not procs.wait_ready(
            api,
            lambda: http_answers(f"{base}/readyz"),
            READY_TIMEOUT_S,
            "the API",
            [log],
            poll=0.1,
            error=BenchError,
            message=lambda _name, _code, tail: not_ready + tail,
        ):
            raise BenchError(not_ready + procs.log_tail(log))
        keys = Keys(config.store, prefix)
        # The pages' session, as the sign-in link's exchange opens it (a link works once).
        token, _ = open_session(
            client, keys, config, issue_token(client, keys, config, ASSOCIATE).token, time.time()
        )
        open_pages = [_Page(f"{base}/api/stream", token) for _ in range(pages)]
        for page in open_pages:
            if not page.ready.wait(READY_TIMEOUT_S):
                raise BenchError(f"a handheld stream on {base} never became ready")
        console.print(f"floor: {min(prompts, 500)} raw MQTT hops ...")
        hops = measure_mqtt_hop(ep, prefix, min(prompts, 500), rate)
        floor_p50 = percentile(hops, 50)
        link.connect()
        topic = Topics(prefix).prompt(config.store, ASSOCIATE)
        source = EnvelopeSource("recommender")
        sent: dict[str, float] = {}
        console.print(f"{prompts} prompts at {rate:g}/s to {pages} open page(s) ...")
        for _i, _lag in paced(prompts, rate):
            p = _prompt(source)
            payload = encode(p)
            sent[p.event_id] = time.perf_counter()
            link.publish(topic, payload, qos=1)
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline and not all(len(pg.arrivals) >= prompts for pg in open_pages):
            time.sleep(0.05)
        time.sleep(0.2)  # a late repeat would show up now
        result = summarize(rate, sent, [pg.arrivals for pg in open_pages], floor_p50)
    finally:
        link.close()
        procs.stop(api, 10)
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
        client.close()
    _print(result, console)
    doc = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine_info()}
    doc |= asdict(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    console.print(f"wrote {out}")
    return result


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _print(r: HandheldResult, console: Console) -> None:
    table = Table(title="prompt on the broker -> SSE event on each open handheld page")
    for col in ("rate/s", "pages", "delivered", "lost", "repeated", "p50 ms", "p99 ms", "max ms",
                "MQTT hop p50 ms", "p50 / hop"):  # fmt: skip
        table.add_column(col, justify="right")
    table.add_row(
        f"{r.rate_pps:g}",
        str(r.pages),
        f"{r.deliveries}/{r.deliveries_expected}",
        str(r.lost),
        str(r.repeated),
        _ms(r.p50_ms),
        _ms(r.p99_ms),
        _ms(r.max_ms),
        _ms(r.floor_mqtt_hop_p50_ms),
        "-" if r.p50_over_floor is None else f"{r.p50_over_floor:.1f}x",
    )
    console.print(table)


def run_bench(prompts: int, rate: float, pages: int, out: Path) -> HandheldResult:
    """Start our own Mosquitto and Redis, bench, stop them."""
    console = Console(width=140)
    logging.getLogger("floorwalker.mqtt").setLevel(logging.WARNING)  # our clients' connect lines
    with tempfile.TemporaryDirectory(prefix="floorwalker-hbench-") as tmp:
        services = Services(Path(tmp))
        try:
            ep = services.up()
            return run_on(ep, Path(tmp), prompts=prompts, rate=rate, pages=pages, out=out, console=console)
        finally:
            services.down()
