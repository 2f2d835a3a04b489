"""Recommender replicas on Redis Cluster, driven by a multi-store trace (scale test, ``bench scale``).

A small chain is written to a directory: ``stores`` copies of the demo store, each with its
own generated CRM of consenting members. :class:`Replicas` starts ``floorwalker
recommender`` processes serving every store, all in one MQTT v5 shared-subscription group
on Redis Cluster. :func:`drive` publishes a paced trace of presence events (each member
walks from zone to zone, one event a member per ``member_gap_s``), collects the prompts,
and can SIGKILL one replica part-way. :func:`verify` reads what Redis holds afterwards
and counts lost events, duplicate or unrecorded prompts and customers whose state is not
that of their latest event.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from broker_config.contract import EnvelopeSource, PresenceEvent, Prompt, TopicKind, Topics, decode, encode
from floorwalker.config import Endpoints, StoreConfig, load_store_config
from floorwalker.mqtt import MqttLink, Received
from floorwalker.procs import Process, check_alive, spawn, stop_all, wait_until
from recommender import cluster
from recommender.catalog import DEFAULT_CATALOG, CatalogWatcher
from recommender.holdout import in_holdout
from recommender.keys import Keys, ReplicaKeys
from simulators import stores

REPO = Path(__file__).resolve().parent.parent
DEMO_STORE = stores.DEMO_STORE
#: The zones a member walks through (the demo store's shopping zones).
WALK = ("produce", "pantry", "dairy", "beauty")
#: Members per generated store at most.
MAX_MEMBERS = 5_000
CATEGORIES = ("sauces", "milk", "tea", "skincare", "fruit", "cheese")


def write_chain(directory: Path, stores: int, members: int) -> list[Path]:
    """Store YAMLs ``s1..sN`` (the demo store's layout) with generated CRMs; their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    demo = DEMO_STORE.read_text()
    keys = (DEMO_STORE.parent / "demo_ble_keys.json").resolve()
    paths = []
    for s in range(1, stores + 1):
        crm = directory / f"s{s}_crm.json"
        crm.write_text(json.dumps({"members": [_member(s, i) for i in range(members)]}))
        # Members held out (never prompted, by design) are left out of the generated chain
        # (see member_id), so every prompt a script claims must be published.
        text = demo.replace("store: demo-store", f"store: s{s}")
        text = text.replace("crm: demo_crm.json", f"crm: {crm}").replace("demo_ble_keys.json", str(keys))
        # A bench of the decision path: no handhelds, so every associate counts as on the floor.
        text = text.replace("\nrules:\n", "\nrules:\n  require_handheld: false\n")
        path = directory / f"s{s}.yaml"
        path.write_text(text)
        paths.append(path)
    return paths


def _member(store: int, i: int) -> dict[str, Any]:
    category = CATEGORIES[i % len(CATEGORIES)]
    return {
        "member": member_id(store, i),
        "display_name": f"Member {i}",
        "tier": ("gold", "silver", "bronze")[i % 3],
        "points": 100 * i,
        "consent": {"recognition": True, "marketing": True},
        "purchases": [
            {
                "days_ago": d,
                "category": category,
                "sku": f"sku-{category}",
                "label": category,
                "amount_cents": 900,
            }
            for d in (95, 64, 33)
        ],
    }


def member_id(store: int, i: int) -> str:
    """The ``i``-th member of store ``store`` outside the persistent holdout."""
    return _members(store, MAX_MEMBERS)[i]


@functools.cache
def _policy() -> tuple[float, str]:
    policy = CatalogWatcher.open(DEFAULT_CATALOG).current.policy
    return policy.holdout_pct, policy.holdout_salt


@functools.cache
def _members(store: int, n: int) -> list[str]:
    pct, salt = _policy()
    found: list[str] = []
    k = 0
    while len(found) < n:
        candidate = f"m_s{store}x{k:05d}"
        if not in_holdout(candidate, pct, salt):
            found.append(candidate)
        k += 1
    return found


@dataclass
class Replicas:
    """``floorwalker recommender`` processes in one shared-subscription group."""

    stores: list[Path]
    endpoints: Endpoints
    redis_url: str
    prefix: str
    group: str = "rec"
    log_dir: Path | None = None
    procs: dict[str, Process] = field(default_factory=dict)

    def start(self, replicas: list[str], timeout: float = 60.0) -> None:
        for name in replicas:
            argv = [sys.executable, "-m", "floorwalker", "recommender", "--store-config", str(self.stores[0])]
            for more in self.stores[1:]:
                argv += ["--also-store", str(more)]
            argv += [
                "--mqtt-url", self.endpoints.mqtt_url, "--redis-url", self.redis_url,
                "--topic-prefix", self.prefix, "--key-prefix", self.prefix,
                "--share-group", self.group, "--replica", name,
            ]  # fmt: skip
            log = (self.log_dir or Path(os.devnull)) / f"{name}.log" if self.log_dir else Path(os.devnull)
            self.procs[name] = spawn(argv, log, cwd=REPO)
        client = cluster.connect(self.redis_url)
        members = ReplicaKeys(self.group, self.prefix).members

        def serving() -> bool:
            if not {m.decode() for m in client.smembers(members)} < set(replicas):  # type: ignore[union-attr]
                return True
            for name, proc in self.procs.items():
                check_alive(
                    proc,
                    f"replica {name}",
                    error=RuntimeError,
                    message=lambda replica, code, _tail: f"{replica} exited at start (code {code})",
                )
            return False

        try:
            if not wait_until(serving, timeout, 0.1):
                raise RuntimeError(f"replicas {replicas} not all serving within {timeout:.0f} s")
        finally:
            client.close()

    def kill(self, name: str) -> None:
        """SIGKILL: no clean disconnect, no session ended, nothing flushed."""
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait()

    def stop(self) -> None:
        stop_all(self.procs.values(), 15)


@dataclass
class Sent:
    store: str
    member: str
    zone: str
    ts: float
    event_id: str


@dataclass
class Run:
    sent: list[Sent]
    prompts: list[Prompt]
    killed_at: float | None
    elapsed_s: float
    collector: MqttLink


def drive(
    configs: list[StoreConfig],
    endpoints: Endpoints,
    prefix: str,
    *,
    members: int,
    steps: int,
    member_gap_s: float,
    kill: tuple[Replicas, str] | None = None,
) -> Run:
    """Publish ``steps`` enter events per member (every member of every store), one a
    member per ``member_gap_s``, spread evenly; SIGKILL ``kill`` half-way. Returns what was
    sent and every prompt received until the end (the caller waits for the rest)."""
    topics = Topics(prefix)
    prompts: list[Prompt] = []
    lock = threading.Lock()

    def on_prompt(message: Received) -> bool:
        decoded = decode(topics, message.topic, message.payload).payload
        if isinstance(decoded, Prompt):
            with lock:
                prompts.append(decoded)
        return True

    tag = uuid.uuid4().hex[:8]
    collector = MqttLink(
        endpoints.mqtt_host,
        endpoints.mqtt_port,
        client_id=f"scale-prompts-{tag}",
        subscriptions=[(topics.subscription(TopicKind.PROMPT), 1)],
        on_message=on_prompt,
    )
    producer = MqttLink(endpoints.mqtt_host, endpoints.mqtt_port, client_id=f"scale-trace-{tag}")
    collector.connect()
    producer.connect()
    sources = {c.store: EnvelopeSource(c.ble_presence.fuser) for c in configs}
    walkers = [(c, i) for i in range(members) for c in configs]
    per_event = member_gap_s / len(walkers)
    sent: list[Sent] = []
    killed_at = None
    start = time.monotonic()
    total = steps * len(walkers)
    for n in range(total):
        due = start + n * per_event
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if kill is not None and killed_at is None and n >= total // 2:
            kill[0].kill(kill[1])
            killed_at = time.time()
        step, w = divmod(n, len(walkers))
        config, i = walkers[w]
        zone = WALK[(step + i) % len(WALK)]
        store_no = int(config.store[1:])
        event = sources[config.store].make(
            PresenceEvent, time.time(), member=member_id(store_no, i), action="enter"
        )
        producer.publish(topics.presence(config.store, zone), encode(event), qos=1)
        sent.append(Sent(config.store, event.member, zone, event.ts, event.event_id))
    elapsed = time.monotonic() - start
    producer.close()
    return Run(sent, prompts, killed_at, elapsed, collector)


def finish(run: Run, redis_url: str, prefix: str, timeout: float) -> dict[str, Any]:
    """Wait until every sent event is in Redis (or ``timeout``), then :func:`verify`."""
    deadline = time.monotonic() + timeout
    client = cluster.connect(redis_url)
    try:
        while True:
            report = verify(run, client, prefix)
            if report["lost_events"] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        time.sleep(0.5)  # prompts published just before the last ack are still on their way
        report = verify(run, client, prefix)
    finally:
        client.close()
        run.collector.close()
    return report


def verify(run: Run, client: cluster.RedisClient, prefix: str) -> dict[str, Any]:
    """What Redis Cluster holds after the run, against what was sent and received.

    - lost: an event id not in its member's dedupe set (no replica ever applied it);
    - duplicate prompts: a prompt id, or a cause event, published more than once;
    - unpublished/unrecorded: a prompt claimed in Redis (contact history) but never
      published, or published but never claimed;
    - order violations: a member whose visit is not at the zone and time of their
      latest event (an older event applied after a newer one).
    """
    latest: dict[tuple[str, str], Sent] = {}
    by_member: dict[tuple[str, str], list[Sent]] = {}
    for s in run.sent:
        by_member.setdefault((s.store, s.member), []).append(s)
        if (s.store, s.member) not in latest or s.ts >= latest[(s.store, s.member)].ts:
            latest[(s.store, s.member)] = s
    lost = 0
    claimed: set[str] = set()
    order_violations = 0
    for (store, member), events in by_member.items():
        keys = Keys(store, prefix)
        # One member's keys share a slot: these commands go to one node.
        seen_key, visit_key, contacts_key = (
            keys.member_seen(member),
            keys.visit(member),
            keys.contacts(member),
        )
        scores = cast(list[float | None], client.zmscore(seen_key, [e.event_id for e in events]))
        zone, last_ts = cast(list[bytes | None], client.hmget(visit_key, ["zone", "last_ts"]))
        contacts = cast(list[bytes], client.zrange(contacts_key, 0, -1))
        lost += sum(1 for s in scores if s is None)
        last = latest[(store, member)]
        if zone is None or last_ts is None or zone.decode() != last.zone or float(last_ts) != last.ts:
            order_violations += 1
        for entry in contacts:
            if entry.startswith(b"p|"):  # p|<action>|<prompt id>: a prompt the script claimed
                claimed.add(entry.decode().rsplit("|", 1)[1])
    ids = Counter(p.event_id for p in run.prompts)
    causes = Counter(p.cause_event_id for p in run.prompts)
    published = set(ids)
    return {
        "events": len(run.sent),
        "members": len(by_member),
        "stores": len({s.store for s in run.sent}),
        "prompts": len(run.prompts),
        "claimed": len(claimed),
        "lost_events": lost,
        "duplicate_prompts": sum(n - 1 for n in ids.values()) + sum(n - 1 for n in causes.values()),
        "claimed_not_published": len(claimed - published),
        "published_not_claimed": len(published - claimed),
        "order_violations": order_violations,
        "producers": dict(Counter(p.producer for p in run.prompts)),
        "producers_after_kill": dict(
            Counter(p.producer for p in run.prompts if run.killed_at and p.cause_ts > run.killed_at)
        ),
    }


def load_chain(paths: list[Path]) -> list[StoreConfig]:
    return [load_store_config(p) for p in paths]


# -- bench scale -----------------------------------------------------------------------------


def member_memory(
    client: cluster.RedisClient, configs: list[StoreConfig], prefix: str, sample: int
) -> dict[str, float]:
    """Mean ``MEMORY USAGE`` (bytes) of one member's keys after a run, over ``sample`` members a store."""
    totals: Counter[str] = Counter()
    n = 0
    for c in configs:
        keys = Keys(c.store, prefix)
        store_no = int(c.store[1:])
        for i in range(sample):
            m = member_id(store_no, i)
            for name, key in (
                ("profile", keys.profile(m)),
                ("visit", keys.visit(m)),
                ("seen", keys.member_seen(m)),
                ("contacts", keys.contacts(m)),
                ("suggested", keys.suggested(m)),
            ):
                totals[name] += int(client.memory_usage(key) or 0)  # type: ignore[arg-type]
            n += 1
    per = {name: round(total / n, 1) for name, total in totals.items()}
    per["total"] = round(sum(per.values()), 1)
    return per


def _rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MiB (Linux /proc; 0 elsewhere)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_scale_bench(replica_counts: list[int], rate_eps: float, seconds: float, out: Path) -> dict[str, Any]:
    """For each replica count: a fresh group on one local 3-master Redis Cluster, a paced
    two-store trace at ``rate_eps`` for ``seconds``; throughput, CPU per event, memory."""
    import tempfile

    from rich.console import Console
    from rich.table import Table

    from bench.e2e import machine_info, process_cpu_s
    from bench.local_cluster import LocalCluster
    from floorwalker.services import Services

    stores, steps = 2, 5
    members = max(1, round(rate_eps * seconds / (stores * steps)))
    gap = stores * members / rate_eps
    rows: list[dict[str, Any]] = []
    base = Path(tempfile.mkdtemp(prefix="fw-scale-"))
    clean = False
    try:
        (base / "services").mkdir()
        services = Services(base / "services")
        endpoints = services.up()
        local = LocalCluster(base / "cluster")
        try:
            url = local.up()
            paths = write_chain(base / "chain", stores, members)
            configs = load_chain(paths)
            for n in replica_counts:
                prefix = f"b{uuid.uuid4().hex[:8]}/"
                logs = base / f"replicas-{n}"
                logs.mkdir(exist_ok=True)
                reps = Replicas(paths, endpoints, url, prefix, log_dir=logs)
                try:
                    reps.start([f"r{i}" for i in range(n)])
                    redis_pids = [p.pid for p in local._procs]
                    pids = [p.pid for p in reps.procs.values()]
                    cpu0 = [process_cpu_s(p) or 0.0 for p in pids + redis_pids]
                    t0 = time.monotonic()
                    run = drive(configs, endpoints, prefix, members=members, steps=steps, member_gap_s=gap)
                    report = finish(run, url, prefix, timeout=120)
                    wall = time.monotonic() - t0
                    cpu1 = [process_cpu_s(p) or 0.0 for p in pids + redis_pids]
                    rec_cpu = sum(cpu1[: len(pids)]) - sum(cpu0[: len(pids)])
                    redis_cpu = sum(cpu1[len(pids) :]) - sum(cpu0[len(pids) :])
                    rss = [_rss_mb(p) for p in pids]
                finally:
                    reps.stop()  # a stopping replica writes its last counters
                client = cluster.connect(url)
                try:
                    memory = member_memory(client, configs, prefix, sample=min(members, 50))
                    stats = [
                        cast(dict[bytes, bytes], client.hgetall(Keys(c.store, prefix).stats)) for c in configs
                    ]
                    # Prompts moved off an associate another replica held in the same instant.
                    collisions = sum(int(st.get(b"routing:collisions", 0)) for st in stats)
                    # Events dead-lettered (a lost event that was rejected, not undelivered).
                    rejected = sum(
                        int(v) for st in stats for k, v in st.items() if k.startswith(b"rejected:")
                    )
                finally:
                    client.close()
                events = report["events"]
                rows.append(
                    {
                        "replicas": n,
                        "events": events,
                        "offered_eps": round(rate_eps, 1),
                        "publish_s": round(run.elapsed_s, 2),
                        "done_s": round(wall, 2),
                        "throughput_eps": round(events / wall, 1),
                        "recommender_cpu_ms_per_event": round(1000 * rec_cpu / events, 3),
                        "redis_cpu_ms_per_event": round(1000 * redis_cpu / events, 3),
                        "prompts": report["prompts"],
                        "lost_events": report["lost_events"],
                        "duplicate_prompts": report["duplicate_prompts"],
                        "order_violations": report["order_violations"],
                        "routing_collisions": collisions,
                        "rejected_events": rejected,
                        "member_bytes": memory,
                        "replica_rss_mb": round(sum(rss) / len(rss), 1),
                    }
                )
        finally:
            local.down()
            services.down()
        clean = all(
            r["lost_events"] == 0 and r["duplicate_prompts"] == 0 and r["order_violations"] == 0 for r in rows
        )
    finally:
        if clean:
            shutil.rmtree(base, ignore_errors=True)
        else:  # the replicas' logs say what happened to a lost or repeated event
            Console().print(f"[red]a run lost or repeated something[/]: replicas' logs kept in {base}")
    result = {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        "note": "every replica, the 3 Redis masters, Mosquitto and the trace share this machine's cores",
        "stores": stores,
        "members_per_store": members,
        "redis_masters": 3,
        "runs": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    table = Table(
        title=f"bench scale: {stores} stores, {members} members each, offered {rate_eps:.0f} events/s"
    )
    for col in (
        "replicas",
        "events",
        "done s",
        "events/s",
        "rec CPU ms/ev",
        "redis CPU ms/ev",
        "lost",
        "dup",
        "B/member",
    ):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            str(r["replicas"]), str(r["events"]), f"{r['done_s']:.1f}", f"{r['throughput_eps']:.0f}",
            f"{r['recommender_cpu_ms_per_event']:.2f}", f"{r['redis_cpu_ms_per_event']:.2f}",
            str(r["lost_events"]), str(r["duplicate_prompts"]), f"{r['member_bytes']['total']:.0f}",
        )  # fmt: skip
    Console().print(table)
    Console().print(f"written to {out} (machine: {machine_info()['cpu_count']} cores, shared)")
    return result
