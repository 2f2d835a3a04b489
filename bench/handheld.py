"""``floorwalker bench handheld``: prompt on the broker -> prompt on the associates' open pages.

Starts ``floorwalker api`` as its own process on a fresh topic/key prefix, opens
``pages`` Server-Sent Event streams for one associate (as that many phones would), then
publishes contract prompts at ``rate`` per second onto the associate's prompt topic, as
the recommender does. Latency per prompt and page is the arrival of its SSE event minus
the moment it was handed to the MQTT client (``perf_counter``, same process): broker,
the API's decode, its one Redis script (erasure, owner record, name, stream, the open
pages' sessions), fan-out and HTTP. The floor next to it is one raw QoS 1 MQTT hop
measured in the same run. Every prompt must arrive exactly once on every page: lost and
repeated deliveries are counted. The prompts are made and encoded before the clock starts,
and one thread reads every page's raw socket, so that the bench's own work is not what it
measures.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import selectors
import socket
import struct
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import redis
from rich.console import Console
from rich.table import Table

from bench.e2e import BenchError, machine_info, measure_mqtt_hop, paced, percentile, process_cpu_s
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
    #: CPU time of the API process (all its threads) per prompt, from the first prompt sent
    #: until every page had every prompt (and 0.2 s more): a cost that a crowded machine
    #: blurs less than it blurs latency.
    api_cpu_ms_per_prompt: float | None = None


class _Pages:
    """The open handheld streams of one associate, read on one thread over raw sockets:
    per page, prompt id -> arrival times.

    The reader must not be what falls behind: one thread waits on every page's socket at
    once, reads whatever has arrived in one ``recv`` and stamps it once (``perf_counter``,
    before parsing), then decodes HTTP chunking and SSE events with byte searches only;
    only a ``prompt`` event's id is looked at, never its JSON."""

    def __init__(self, host: str, port: int, path: str, token: str, count: int) -> None:
        self.arrivals: list[dict[str, list[float]]] = [{} for _ in range(count)]
        self.ready = [threading.Event() for _ in range(count)]
        self._stop = threading.Event()
        self._selector = selectors.DefaultSelector()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        ).encode()
        for n in range(count):
            sock = socket.create_connection((host, port), timeout=READY_TIMEOUT_S)
            with contextlib.suppress(OSError):  # Linux: the kernel stamps what arrives
                sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            sock.sendall(request)
            sock.setblocking(False)
            self._selector.register(sock, selectors.EVENT_READ, _Stream(n))
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        for key in list(self._selector.get_map().values()):
            self._selector.unregister(key.fileobj)
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()

    def _read(self) -> None:
        while not self._stop.is_set() and self._selector.get_map():
            for key, _ in self._selector.select(0.2):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                stream: _Stream = key.data
                try:
                    data, ancillary, _, _ = sock.recvmsg(1 << 16, _STAMP_SPACE)
                except BlockingIOError:
                    continue
                except OSError:
                    data, ancillary = b"", []
                now = arrival(ancillary)
                if not data:  # the API ended the stream (or stopped)
                    self._selector.unregister(sock)
                    sock.close()
                    continue
                for event, pid in stream.feed(data):
                    if event == b"prompt" and pid is not None:
                        self.arrivals[stream.page].setdefault(pid, []).append(now)
                    elif event == b"ready":
                        self.ready[stream.page].set()


#: Linux's SO_TIMESTAMPNS (and SCM_TIMESTAMPNS): each read carries the kernel's receive
#: time of its data (CLOCK_REALTIME, a struct timespec).
_SO_TIMESTAMPNS = 35
_STAMP_SPACE = socket.CMSG_SPACE(16)


def arrival(ancillary: list[tuple[int, int, bytes]]) -> float:
    """When a read's data reached the page's socket, on the ``perf_counter`` clock: the
    kernel's receive stamp where there is one (so that the reader thread waiting for a core
    on a busy machine is not counted as the product's latency), else now."""
    now = time.perf_counter()
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            # The wall clock read next to perf_counter: no drift between the two to correct.
            return min(now, float(sec + nsec / 1e9 - (time.time() - time.perf_counter())))
    return now


_PROMPT_ID = re.compile(rb'^data: \{"prompt_id":"([0-9a-f]{32})"', re.M)


class _Stream:
    """One page's bytes as they come: the HTTP head, then chunks, then SSE events (pure)."""

    def __init__(self, page: int) -> None:
        self.page = page
        self._raw = b""
        self._body = b""
        self._head_done = False

    def feed(self, data: bytes) -> list[tuple[bytes, str | None]]:
        """The events completed by ``data``: (event name, prompt id or None), in order."""
        self._raw += data
        if not self._head_done:
            head, sep, rest = self._raw.partition(b"\r\n\r\n")
            if not sep:
                return []
            if not head.startswith(b"HTTP/1.1 200"):
                raise BenchError(
                    f"a handheld stream was refused: {head.splitlines()[0].decode(errors='replace')}"
                )
            self._head_done, self._raw = True, rest
        raw, at, body = self._raw, 0, [self._body]
        while True:  # HTTP/1.1 chunked: hex size, CRLF, data, CRLF
            eol = raw.find(b"\r\n", at)
            if eol < 0:
                break
            size = int(raw[at:eol].split(b";")[0], 16)
            if len(raw) < eol + 2 + size + 2:
                break
            body.append(raw[eol + 2 : eol + 2 + size])
            at = eol + 4 + size
        self._raw, self._body = raw[at:], b"".join(body)
        events: list[tuple[bytes, str | None]] = []
        *complete, self._body = self._body.split(b"\n\n")
        for block in complete:
            if not block.startswith(b"event: "):
                continue  # a comment (": ping")
            name = block[7 : block.find(b"\n")] if b"\n" in block else block[7:]
            m = _PROMPT_ID.search(block) if name == b"prompt" else None
            events.append((name, m.group(1).decode() if m else None))
        return events


def summarize(
    rate: float,
    sent: dict[str, float],
    pages: list[dict[str, list[float]]],
    floor_p50: float | None,
    api_cpu_s: float | None = None,
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
        api_cpu_ms_per_prompt=(api_cpu_s * 1000.0 / len(sent)) if api_cpu_s is not None and sent else None,
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
    open_pages: _Pages | None = None
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
        open_pages = _Pages("127.0.0.1", port, "/api/stream", token, pages)
        for ready in open_pages.ready:
            if not ready.wait(READY_TIMEOUT_S):
                raise BenchError(f"a handheld stream on {base} never became ready")
        console.print(f"floor: {min(prompts, 500)} raw MQTT hops ...")
        hops = measure_mqtt_hop(ep, prefix, min(prompts, 500), rate)
        floor_p50 = percentile(hops, 50)
        link.connect()
        topic = Topics(prefix).prompt(config.store, ASSOCIATE)
        source = EnvelopeSource("recommender")
        sent: dict[str, float] = {}
        # Made and encoded before the clock starts: the bench's own work stays off the path.
        outgoing = [(p.event_id, encode(p)) for p in (_prompt(source) for _ in range(prompts))]
        console.print(f"{prompts} prompts at {rate:g}/s to {pages} open page(s) ...")
        cpu_before = process_cpu_s(api.pid)
        for i, _lag in paced(prompts, rate):
            pid, payload = outgoing[i]
            sent[pid] = time.perf_counter()
            link.publish(topic, payload, qos=1)
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline and not all(len(a) >= prompts for a in open_pages.arrivals):
            time.sleep(0.05)
        time.sleep(0.2)  # a late repeat would show up now
        cpu_after = process_cpu_s(api.pid)
        api_cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
        result = summarize(rate, sent, open_pages.arrivals, floor_p50, api_cpu)
    finally:
        if open_pages is not None:
            open_pages.close()
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
                "MQTT hop p50 ms", "p50 / hop", "API CPU ms/prompt"):  # fmt: skip
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
        _ms(r.api_cpu_ms_per_prompt),
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
