"""The hardened broker, for real: per-device logins, the ACL, TLS, revocation and a bridge.

A Mosquitto is started from ``mosquitto-secure.conf.tmpl`` with accounts made by
:class:`CredentialStore`; devices connect as they would in a store and try what they must
not be able to do.
"""

from __future__ import annotations

import datetime as dt
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from paho.mqtt.reasoncodes import ReasonCode

from broker_config.acl import SERVICE_NAMES, DeviceKind
from broker_config.contract import (
    AssociateStatus,
    CheckoutEvent,
    DeadLetter,
    EnvelopeSource,
    Feedback,
    FuserStatus,
    GatewayStatus,
    PresenceEvent,
    Prompt,
    PromptKind,
    RejectReason,
    Topics,
    decode,
    encode,
)
from floorwalker.bridge import render_bridge
from floorwalker.config import StoreConfig
from floorwalker.errors import ConfigError
from floorwalker.mqtt import MqttAuth, MqttLink, Received
from floorwalker.provision import CredentialStore, DeviceCredentials
from floorwalker.redis_accounts import RedisLogin, with_login
from floorwalker.services import Services
from floorwalker.tls import make_store_ca
from recommender.keys import Keys
from simulators.trace import Header, TraceLine, TraceReader, write_trace

pytestmark = pytest.mark.integration

TOPICS = Topics()
STORE = "demo-store"


@dataclass
class SecureBroker:
    services: Services
    port: int
    tls_port: int
    accounts: dict[str, DeviceCredentials]
    store: CredentialStore
    redis_url: str
    #: The same Redis as the operator's admin user (the tests' own clean-up).
    admin_redis_url: str

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def credentials(self, username: str) -> Path:
        """The device's credentials file, as `floorwalker provision` wrote it."""
        return self.store.dir / "devices" / f"{username}.json"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, store_config: StoreConfig) -> Iterator[SecureBroker]:
    from floorwalker.tls import issue_server_cert

    secrets = tmp_path_factory.mktemp("secrets")
    now = dt.datetime.now(dt.UTC)
    make_store_ca(secrets, STORE, now=now)
    issue_server_cert(secrets, ["localhost"], now=now)
    store = CredentialStore(secrets, store_config)
    ca = secrets / "ca.crt"
    accounts = {
        c.username: c
        for c in (
            store.provision(DeviceKind.GATEWAY, "gw-fresh", ca_file=ca),
            store.provision(DeviceKind.GATEWAY, "gw-chill", ca_file=ca),
            store.provision(DeviceKind.HANDHELD, "a-amy"),
            store.provision(DeviceKind.HANDHELD, "a-ben"),
            store.provision(DeviceKind.HANDHELD, "a-dan"),
            store.provision(DeviceKind.POS, "pos-2"),
            *(store.provision(DeviceKind.SERVICE, name) for name in SERVICE_NAMES),
        )
    }
    svc = Services(tmp_path_factory.mktemp("secure-run"), secrets_dir=secrets, tls_bind="127.0.0.1")
    endpoints = svc.up()
    tls_port = svc.recorded()["mosquitto"].tls_port
    assert tls_port is not None
    admin = RedisLogin.model_validate_json((secrets / "devices" / "redis-admin.json").read_text())
    admin_url = with_login(endpoints.redis_url, admin)
    yield SecureBroker(svc, endpoints.mqtt_port, tls_port, accounts, store, endpoints.redis_url, admin_url)
    svc.down()


class Client:
    """A device's connection that remembers what it received and how its publishes ended."""

    def __init__(self, port: int, auth: MqttAuth, subscriptions: Sequence[str] = ()) -> None:
        self.received: list[str] = []
        self.payloads: list[bytes] = []
        self.acks: dict[int, ReasonCode] = {}
        self._cond = threading.Condition()
        self.link = MqttLink(
            "127.0.0.1",
            port,
            client_id=f"{auth.username}-{time.monotonic_ns()}",
            subscriptions=[(s, 1) for s in subscriptions],
            on_message=self._on_message,
            auth=auth,
        )
        self.link.client.on_publish = self._on_publish
        self.link.connect()

    def _on_message(self, msg: Received) -> bool:
        with self._cond:
            self.received.append(msg.topic)
            self.payloads.append(msg.payload)
            self._cond.notify_all()
        return True

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        with self._cond:
            self.acks[mid] = reason
            self._cond.notify_all()

    def publish(self, topic: str, payload: bytes = b"{}") -> ReasonCode:
        mid = self.link.publish(topic, payload, qos=1).mid
        with self._cond:
            assert self._cond.wait_for(lambda: mid in self.acks, 10), "no PUBACK"
            return self.acks[mid]

    def wait_for(self, topic: str, timeout: float = 5.0, count: int = 1) -> bool:
        """Until ``count`` messages on ``topic`` have arrived. To show that something did
        *not* arrive, wait for a sentinel sent after it on the same connection instead."""
        with self._cond:
            return self._cond.wait_for(lambda: self.received.count(topic) >= count, timeout)

    def close(self) -> None:
        self.link.close()


def plain(creds: DeviceCredentials) -> MqttAuth:
    """The login without TLS, for the store server's loopback listener."""
    return MqttAuth(creds.username, creds.password)


def status_payload(gateway: str) -> bytes:
    return encode(EnvelopeSource(gateway).make(GatewayStatus, time.time(), state="online"))


def test_a_gateway_publishes_only_as_itself(broker: SecureBroker) -> None:
    recorder = Client(broker.port, broker.accounts["svc-recorder"].auth(), [f"fw/v1/{STORE}/#"])
    fresh = Client(broker.port, plain(broker.accounts["gw-fresh"]))
    try:
        own = TOPICS.status(STORE, "gw-fresh")
        assert not fresh.publish(own, status_payload("gw-fresh")).is_failure
        assert recorder.wait_for(own)
        assert not fresh.publish(TOPICS.footfall(STORE, "pantry")).is_failure  # a zone it covers

        # Posing as another gateway, or reporting a zone it does not cover: refused. Each is
        # followed by an allowed sentinel on the same connection: once the recorder has the
        # sentinel, the refused message would have reached it before, had it passed.
        for forbidden, sentinel in (
            (TOPICS.status(STORE, "gw-chill"), TOPICS.presence(STORE, "pantry")),
            (TOPICS.presence(STORE, "dairy"), TOPICS.presence(STORE, "produce")),
        ):
            reason = fresh.publish(forbidden, status_payload("gw-chill"))
            assert reason.is_failure and str(reason) == "Not authorized"
            assert not fresh.publish(sentinel).is_failure
            assert recorder.wait_for(sentinel)
            assert forbidden not in recorder.received
    finally:
        fresh.close()
        recorder.close()


def test_outbox_control_topics_under_the_acl(broker: SecureBroker) -> None:
    """The recommender acknowledges to a gateway and publishes erasure notices; a gateway
    reads its own acks and every notice, never another gateway's acks, and cannot post a
    notice itself (which would erase a member's waiting events elsewhere)."""
    fresh_ack, chill_ack = TOPICS.ack(STORE, "gw-fresh"), TOPICS.ack(STORE, "gw-chill")
    notice = TOPICS.erasure(STORE, "m_702cc64d")
    fresh = Client(broker.port, plain(broker.accounts["gw-fresh"]), [fresh_ack, chill_ack, notice])
    recommender = Client(broker.port, broker.accounts["svc-recommender"].auth())
    try:
        for topic in (fresh_ack, chill_ack, notice, fresh_ack):  # the second ack: a sentinel
            assert not recommender.publish(topic).is_failure
        assert fresh.wait_for(fresh_ack, count=2) and fresh.wait_for(notice)
        assert chill_ack not in fresh.received  # it would have come before the sentinel
        reason = fresh.publish(TOPICS.erasure(STORE, "m_okafor002"))
        assert reason.is_failure and str(reason) == "Not authorized"
    finally:
        fresh.close()
        recommender.close()


def test_a_handheld_reads_only_its_own_prompts(broker: SecureBroker) -> None:
    amy = Client(broker.port, broker.accounts["a-amy"].auth(), [TOPICS.prompt(STORE, "a-amy")])
    # Ben asks for Amy's prompts, and for everything in the store.
    own = TOPICS.prompt(STORE, "a-ben")
    ben = Client(
        broker.port,
        broker.accounts["a-ben"].auth(),
        [TOPICS.prompt(STORE, "a-amy"), f"fw/v1/{STORE}/#", own],
    )
    recommender = Client(broker.port, broker.accounts["svc-recommender"].auth())
    try:
        assert not recommender.publish(TOPICS.prompt(STORE, "a-amy")).is_failure
        assert not recommender.publish(own).is_failure  # a sentinel after Amy's prompt
        assert amy.wait_for(TOPICS.prompt(STORE, "a-amy"))
        assert ben.wait_for(own)
        # Amy's would have come before the sentinel (a copy per matching subscription).
        assert set(ben.received) == {own}
        # And a handheld cannot publish prompts to anyone.
        assert ben.publish(TOPICS.prompt(STORE, "a-amy")).is_failure
    finally:
        for c in (amy, ben, recommender):
            c.close()


def test_only_the_api_asks_the_recommender_to_reassign(broker: SecureBroker) -> None:
    """A manager's Reassign goes API -> recommender; a handheld cannot move a prompt."""
    topic = TOPICS.reassign(STORE, "a-amy")
    recommender = Client(broker.port, broker.accounts["svc-recommender"].auth(), [topic])
    api = Client(broker.port, plain(broker.accounts["svc-api"]))
    ben = Client(broker.port, broker.accounts["a-ben"].auth())
    try:
        reason = ben.publish(topic)
        assert reason.is_failure and str(reason) == "Not authorized"
        assert not api.publish(topic).is_failure  # allowed, and a sentinel after Ben's
        assert recommender.wait_for(topic)
        assert recommender.received == [topic]  # Ben's would have come before
    finally:
        for c in (recommender, api, ben):
            c.close()


@pytest.mark.parametrize("password", ["wrong", ""])
def test_wrong_credentials_are_refused_with_a_clear_error(broker: SecureBroker, password: str) -> None:
    with pytest.raises(ConfigError, match="refused our login as 'gw-fresh'"):
        MqttLink("127.0.0.1", broker.port, "x", auth=MqttAuth("gw-fresh", password)).connect(timeout=5)


def test_anonymous_clients_are_refused(broker: SecureBroker) -> None:
    with pytest.raises(ConfigError, match="without credentials"):
        MqttLink("127.0.0.1", broker.port, "anon").connect(timeout=5)


def test_tls_listener_with_the_store_ca(broker: SecureBroker) -> None:
    creds = broker.accounts["gw-chill"]
    assert creds.ca_pem is not None and creds.ca_file is None  # the CA travels in the file
    gw = Client(broker.tls_port, creds.auth())
    try:
        assert gw.link.url.startswith("mqtts://")
        assert not gw.publish(TOPICS.status(STORE, "gw-chill"), status_payload("gw-chill")).is_failure
    finally:
        gw.close()


def test_an_expired_ca_is_named_before_connecting(broker: SecureBroker, tmp_path: Path) -> None:
    old = make_store_ca(tmp_path, STORE, now=dt.datetime(2020, 1, 1, tzinfo=dt.UTC), days=30)
    creds = broker.accounts["gw-chill"]
    with pytest.raises(ConfigError, match=re.escape(f"{old}: certificate expired on 2020-01-31")):
        MqttLink("127.0.0.1", broker.tls_port, "x", auth=MqttAuth(creds.username, creds.password, old))


def test_revocation_takes_effect_at_once(broker: SecureBroker, store_config: StoreConfig) -> None:
    creds = broker.store.provision(DeviceKind.POS, "pos-1")
    assert broker.services.reload_broker()
    deadline = time.monotonic() + 5
    while True:  # the broker re-reads its files asynchronously after SIGHUP
        try:
            Client(broker.port, creds.auth()).close()
            break
        except ConfigError:
            assert time.monotonic() < deadline, "new account not accepted after reload"
            time.sleep(0.1)
    assert broker.store.revoke(DeviceKind.POS, "pos-1")
    assert broker.services.reload_broker()
    deadline = time.monotonic() + 5
    while True:
        try:
            Client(broker.port, creds.auth()).close()
        except ConfigError as exc:
            assert "refused our login as 'pos-1'" in str(exc)
            break
        assert time.monotonic() < deadline, "revoked account still accepted"
        time.sleep(0.1)


def test_bridge_forwards_store_events_to_the_central_broker(
    tmp_path: Path, store_config: StoreConfig
) -> None:
    central = Services(tmp_path / "central")
    central_ep = central.up()
    include = tmp_path / "store-broker.d"
    include.mkdir()
    login = DeviceCredentials(
        kind=DeviceKind.SERVICE, id="bridge", store=STORE, username="bridge-demo", password="x"
    )
    (include / "bridge.conf").write_text(
        render_bridge(store_config, login, "127.0.0.1", central_ep.mqtt_port)
    )
    store = Services(tmp_path / "store", broker_include=include)
    store_ep = store.up()
    try:
        topic = TOPICS.status(STORE, "gw-fresh")
        got = threading.Event()

        def arrived(_msg: Received) -> bool:
            got.set()
            return True

        watcher = MqttLink(
            "127.0.0.1", central_ep.mqtt_port, "central-watch", subscriptions=[(topic, 1)], on_message=arrived
        )
        watcher.connect()
        gw = MqttLink("127.0.0.1", store_ep.mqtt_port, "gw")
        gw.connect()
        deadline = time.monotonic() + 10
        while not got.is_set() and time.monotonic() < deadline:  # until the bridge is up
            gw.publish(topic, status_payload("gw-fresh"))
            got.wait(0.5)
        assert got.is_set(), "the store's status never reached the central broker"
        gw.close()
        watcher.close()
    finally:
        store.down()
        central.down()


def _edge(port: int, credentials: Path, run_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "floorwalker", "edge", "--gateway", "gw-fresh",
            "--mqtt-url", f"mqtt://127.0.0.1:{port}", "--mqtt-credentials", str(credentials),
            "--run-dir", str(run_dir), "--heartbeat", "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip


def _gateway_reports_status(broker: SecureBroker, port: int, credentials: Path, run_dir: Path) -> None:
    """gw-fresh's agent, started with ``credentials``, gets its status onto the broker."""
    recorder = Client(broker.port, plain(broker.accounts["svc-recorder"]), [f"fw/v1/{STORE}/gw/+/status"])
    gateway = _edge(port, credentials, run_dir)
    try:
        assert recorder.wait_for(TOPICS.status(STORE, "gw-fresh"), timeout=15), gateway.stderr
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(10)
        recorder.close()


def test_the_gateway_process_logs_in_with_its_credentials_file(broker: SecureBroker, tmp_path: Path) -> None:
    devices = broker.store.dir / "devices"
    plain_creds = tmp_path / "gw-fresh.json"  # loopback listener: the same login without the CA
    plain_creds.write_text(broker.accounts["gw-fresh"].model_copy(update={"ca_pem": None}).model_dump_json())
    _gateway_reports_status(broker, broker.port, plain_creds, tmp_path)
    # Another device's credentials file is refused before connecting, in one line.
    wrong = _edge(broker.port, devices / "gw-chill.json", tmp_path)
    _, err = wrong.communicate(timeout=30)
    lines = err.decode().strip().splitlines()
    assert wrong.returncode == 2 and len(lines) == 1
    assert "credentials of 'gw-chill', not of 'gw-fresh'" in lines[0]


def test_a_copied_credentials_file_is_all_a_gateway_needs_for_tls(
    broker: SecureBroker, tmp_path: Path
) -> None:
    """Installed on a gateway, the file lies far from the provisioning machine's secrets:
    the store CA is in it, so the agent verifies the TLS listener with nothing else."""
    copied = tmp_path / "etc" / "credentials.json"
    copied.parent.mkdir()
    copied.write_bytes(broker.credentials("gw-fresh").read_bytes())
    assert str(broker.store.dir) not in copied.read_text()  # no path back to the secrets
    _gateway_reports_status(broker, broker.tls_port, copied, tmp_path)


def test_refused_publishes_are_counted_for_the_status(broker: SecureBroker) -> None:
    link = MqttLink("127.0.0.1", broker.port, "gw-fresh-count", auth=plain(broker.accounts["gw-fresh"]))
    link.connect()
    try:
        assert link.refused_summary() == ""
        link.publish(TOPICS.status(STORE, "gw-fresh"), status_payload("gw-fresh")).wait_for_publish(5)
        for _ in range(3):
            link.publish(TOPICS.status(STORE, "gw-chill"), status_payload("gw-chill")).wait_for_publish(5)
        deadline = time.monotonic() + 5
        while sum(link.refused_publishes.values()) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert dict(link.refused_publishes) == {"Not authorized": 3}
        assert link.refused_summary() == "broker refused publishes: 3 Not authorized"
    finally:
        link.close()


# -- the store server's processes log in with their service accounts ----------------------


def _floorwalker(*args: str, stdout: int | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "floorwalker", *args], stdout=stdout, stderr=subprocess.PIPE
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for_log(proc: subprocess.Popen[bytes], log: Path, text: str, timeout: float = 20.0) -> None:
    """Until ``text`` is in the process's log file; fails at once if the process exits."""
    deadline = time.monotonic() + timeout
    while text not in (log.read_text() if log.exists() else ""):
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"exited with {proc.returncode}: {err.decode()}")
        assert time.monotonic() < deadline, f"no {text!r} in {log} after {timeout:.0f} s"
        time.sleep(0.05)


def _drop_keys(redis_url: str, key_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{key_prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def _non_member_checkout(pos: str) -> CheckoutEvent:
    return EnvelopeSource(pos).make(
        CheckoutEvent,
        time.time(),
        member=None,
        items=[{"sku": "kikkoman-500", "category": "sauces", "qty": 1, "amount_cents": 399}],
        total_cents=399,
    )


def _on_the_floor(handheld: Client, associate: str) -> None:
    """The associate's handheld is open: a retained ``available``, as the handheld API
    publishes it, so routing (which picks only associates on the floor) may choose them."""
    status = EnvelopeSource(f"handheld-{associate}").make(AssociateStatus, time.time(), state="available")
    topic = TOPICS.associate_status(STORE, associate)
    handheld.link.publish(topic, encode(status), qos=1, retain=True).wait_for_publish(5)


@pytest.mark.parametrize(
    "replica",
    [[], ["--share-group", "secured", "--replica", "r1"]],
    ids=["one recommender", "a replica behind a shared subscription"],
)
def test_the_recommender_process_logs_in_and_prompts_the_handheld(
    broker: SecureBroker, tmp_path: Path, replica: list[str]
) -> None:
    """Secured end to end: the POS publishes as pos-2, the recommender consumes and prompts
    as svc-recommender, and Dan's handheld reads the invite with its own login. A replica
    subscribes with $share/...: the ACL must grant it like the plain topic."""
    key_prefix = f"t{uuid.uuid4().hex[:10]}/"
    dan = Client(broker.port, plain(broker.accounts["a-dan"]), [TOPICS.prompt(STORE, "a-dan")])
    _on_the_floor(dan, "a-dan")
    pos = Client(broker.port, plain(broker.accounts["pos-2"]))
    log = tmp_path / "recommender.log"
    rec = _floorwalker(
        "--log-file", str(log), "recommender", "--mqtt-url", broker.mqtt_url,
        "--redis-url", broker.redis_url, "--key-prefix", key_prefix, "--run-dir", str(tmp_path),
        "--mqtt-credentials", str(broker.credentials("svc-recommender")), *replica,
    )  # fmt: skip
    try:
        _wait_for_log(rec, log, "serving on mqtt://")  # logged in, subscriptions confirmed
        checkout = _non_member_checkout("pos-2")
        assert not pos.publish(TOPICS.checkout(STORE, "lane-2"), encode(checkout)).is_failure
        assert dan.wait_for(TOPICS.prompt(STORE, "a-dan"), timeout=10), log.read_text()
        prompt = Prompt.model_validate_json(dan.payloads[-1])
        assert prompt.cause_event_id == checkout.event_id
        assert prompt.kind is PromptKind.JOIN_INVITE
        assert "refused" not in log.read_text()  # no publish or subscription hit the ACL
    finally:
        _stop(rec)
        dan.close()
        pos.close()
        _drop_keys(broker.admin_redis_url, key_prefix)
    assert rec.returncode == 0, rec.stderr.read().decode() if rec.stderr else ""


def _stats(client: redis.Redis, keys: Keys, until: Any, timeout: float = 15.0) -> dict[str, int]:
    """The recommender's stats hash once ``until(stats)`` holds (it writes them each second)."""
    deadline = time.monotonic() + timeout
    while True:
        raw: dict[bytes, bytes] = client.hgetall(keys.stats)  # type: ignore[assignment]
        s = {k.decode(): int(v) for k, v in raw.items()}
        if until(s) or time.monotonic() > deadline:
            return s
        time.sleep(0.05)


def test_a_handheld_cannot_answer_another_associates_prompt(broker: SecureBroker, tmp_path: Path) -> None:
    """Issue 20, finding 4: a-dan's login, publishing a dismissal of a-ben's prompt on its
    own feedback topic (which the ACL allows), wrote a cool-down into the customer's contact
    history. Now it is refused (counted, dead-lettered without the member) and the prompt
    stays a-ben's; of a-ben's own two conflicting answers the first wins."""
    key_prefix = f"t{uuid.uuid4().hex[:10]}/"
    keys = Keys(STORE, key_prefix)
    client = redis.Redis.from_url(broker.admin_redis_url)
    ben = Client(broker.port, plain(broker.accounts["a-ben"]), [TOPICS.prompt(STORE, "a-ben")])
    dan = Client(broker.port, plain(broker.accounts["a-dan"]))
    fresh = Client(broker.port, plain(broker.accounts["gw-fresh"]))
    recorder = Client(broker.port, plain(broker.accounts["svc-recorder"]), [TOPICS.deadletter(STORE)])
    ben_status = TOPICS.associate_status(STORE, "a-ben")
    # Retained, as the handheld API publishes it: the recommender hears it on subscribing.
    status = EnvelopeSource("handheld-a-ben").make(AssociateStatus, time.time(), state="available")
    ben.link.publish(ben_status, encode(status), qos=1, retain=True).wait_for_publish(5)
    log = tmp_path / "recommender.log"
    rec = _floorwalker(
        "--log-file", str(log), "recommender", "--mqtt-url", broker.mqtt_url,
        "--redis-url", broker.redis_url, "--key-prefix", key_prefix, "--run-dir", str(tmp_path),
        "--mqtt-credentials", str(broker.credentials("svc-recommender")),
    )  # fmt: skip

    def answer(who: Client, sender: str, outcome: str) -> None:
        fb = EnvelopeSource(f"handheld-{sender}").make(
            Feedback, time.time(), prompt_id=prompt.event_id, outcome=outcome
        )
        assert not who.publish(TOPICS.feedback(STORE, sender), encode(fb)).is_failure

    try:
        _wait_for_log(rec, log, "serving on mqtt://")
        event = EnvelopeSource("gw-fresh").make(
            PresenceEvent, time.time(), member="m_702cc64d", action="enter"
        )
        assert not fresh.publish(TOPICS.presence(STORE, "pantry"), encode(event)).is_failure
        assert ben.wait_for(TOPICS.prompt(STORE, "a-ben"), timeout=10), log.read_text()
        prompt = Prompt.model_validate_json(ben.payloads[-1])
        record = keys.prompt(prompt.event_id)
        deadline = time.monotonic() + 10
        while not client.hget(record, "associate") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.hget(record, "associate") == b"a-ben"

        answer(dan, "a-dan", "dismissed")  # someone else's prompt
        answer(ben, "a-ben", "done")  # the holder's: it counts (the positive marker)
        s = _stats(client, keys, lambda s: s.get("feedback:done", 0) >= 1)
        assert s.get("feedback:done") == 1 and "feedback:dismissed" not in s, s
        contacts: list[bytes] = client.zrange(keys.contacts("m_702cc64d"), 0, -1)  # type: ignore[assignment]
        assert not [c for c in contacts if c.startswith(b"x|")]  # no cool-down
        assert client.hget(record, "outcome") == b"done"
        assert s.get("feedback_refused:not_holder") == 1, s

        answer(ben, "a-ben", "dismissed")  # a second, conflicting answer: the first won
        s = _stats(client, keys, lambda s: "feedback:dismissed" in s or "feedback_refused:answered" in s)
        assert "feedback:dismissed" not in s and s.get("feedback_refused:answered") == 1, s
        contacts = client.zrange(keys.contacts("m_702cc64d"), 0, -1)  # type: ignore[assignment]
        assert not [c for c in contacts if c.startswith(b"x|")]
        assert client.hget(record, "outcome") == b"done"
        with recorder._cond:
            assert recorder._cond.wait_for(lambda: len(recorder.payloads) >= 2, 10)
        reasons = [DeadLetter.model_validate_json(p).reason for p in recorder.payloads]
        assert reasons == [RejectReason.NOT_HOLDER, RejectReason.ALREADY_ANSWERED]
        assert not any(b"m_chen" in p for p in recorder.payloads)  # no member id on the wire
        assert "m_chen" not in log.read_text()
    finally:
        ben.link.publish(ben_status, b"", qos=1, retain=True).wait_for_publish(5)
        _stop(rec)
        for c in (ben, dan, fresh, recorder):
            c.close()
        _drop_keys(broker.admin_redis_url, key_prefix)
        client.close()


def test_a_replica_adopts_a_dead_peers_session_with_its_own_login(
    broker: SecureBroker, tmp_path: Path
) -> None:
    """r1 is SIGKILLed; what the broker then queues for r1's session still becomes prompts:
    r2 connects as r1's session, logged in with its own service account, and ends it."""
    key_prefix = f"t{uuid.uuid4().hex[:10]}/"
    group = f"adopt{uuid.uuid4().hex[:6]}"
    dan = Client(broker.port, plain(broker.accounts["a-dan"]), [TOPICS.prompt(STORE, "a-dan")])
    _on_the_floor(dan, "a-dan")
    pos = Client(broker.port, plain(broker.accounts["pos-2"]))
    logs = {r: tmp_path / f"{r}.log" for r in ("r1", "r2")}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for r, log in logs.items():
        procs[r] = _floorwalker(
            "--log-file", str(log), "recommender", "--mqtt-url", broker.mqtt_url,
            "--redis-url", broker.redis_url, "--key-prefix", key_prefix, "--run-dir", str(tmp_path / r),
            "--mqtt-credentials", str(broker.credentials("svc-recommender")),
            "--share-group", group, "--replica", r,
        )  # fmt: skip
    try:
        for r, proc in procs.items():
            _wait_for_log(proc, logs[r], "serving on mqtt://")
        procs["r1"].kill()
        procs["r1"].wait()
        checkouts = [_non_member_checkout("pos-2") for _ in range(12)]
        for checkout in checkouts:  # the broker hands r1's share of these to its session
            assert not pos.publish(TOPICS.checkout(STORE, "lane-2"), encode(checkout)).is_failure
        _wait_for_log(procs["r2"], logs["r2"], "adopted replica r1", timeout=30)
        with dan._cond:
            assert dan._cond.wait_for(lambda: len(dan.payloads) >= len(checkouts), 15), logs["r2"].read_text()
        causes = [Prompt.model_validate_json(p).cause_event_id for p in dan.payloads]
        assert sorted(causes) == sorted(c.event_id for c in checkouts)  # each once, none lost
        [handled] = re.findall(r"adopted replica r1: (\d+) message", logs["r2"].read_text())
        assert int(handled) > 0  # not vacuous: some came from r1's session
        assert "refused" not in logs["r2"].read_text()
    finally:
        for proc in procs.values():
            _stop(proc)
        dan.close()
        pos.close()
        _drop_keys(broker.admin_redis_url, key_prefix)


def test_the_recommender_without_credentials_is_refused_in_one_line(
    broker: SecureBroker, tmp_path: Path
) -> None:
    rec = _floorwalker(
        "--log-file", str(tmp_path / "recommender.log"), "recommender", "--mqtt-url", broker.mqtt_url,
        "--redis-url", broker.admin_redis_url, "--key-prefix", f"t{uuid.uuid4().hex[:10]}/", "--no-load-crm",
        "--run-dir", str(tmp_path),
    )  # fmt: skip
    _, err = rec.communicate(timeout=30)
    lines = err.decode().strip().splitlines()
    assert rec.returncode == 2 and len(lines) == 1, err.decode()
    assert f"MQTT broker at {broker.mqtt_url} refused our login without credentials" in lines[0]
    assert "--mqtt-credentials" in lines[0]


def test_the_fuser_process_logs_in_and_handles_gateway_reports(broker: SecureBroker, tmp_path: Path) -> None:
    """The fuser reads a gateway's BLE topic and writes the store's dead letters as svc-fuser."""
    recorder = Client(broker.port, plain(broker.accounts["svc-recorder"]), [TOPICS.deadletter(STORE)])
    fresh = Client(broker.port, plain(broker.accounts["gw-fresh"]))
    log = tmp_path / "fuser.log"
    fuser = _floorwalker(
        "--log-file", str(log), "fuser", "--mqtt-url", broker.mqtt_url, "--run-dir", str(tmp_path),
        "--mqtt-credentials", str(broker.credentials("svc-fuser")),
    )  # fmt: skip
    try:
        _wait_for_log(fuser, log, "serving on mqtt://")
        # A report that breaks the contract: the fuser answers with a dead letter.
        assert not fresh.publish(TOPICS.ble(STORE, "gw-fresh"), b'{"not": "a report"}').is_failure
        assert recorder.wait_for(TOPICS.deadletter(STORE), timeout=10), log.read_text()
    finally:
        _stop(fuser)
        fresh.close()
        recorder.close()
    assert fuser.returncode == 0


def test_the_fuser_publishes_its_status_for_the_api_and_no_gateway_can(
    broker: SecureBroker, tmp_path: Path
) -> None:
    """The fuser's retained counts-only status: written by svc-fuser, read by svc-api; a
    gateway posing as the fuser is refused."""
    own = TOPICS.fuser_status(STORE, "fuser")
    api = Client(broker.port, plain(broker.accounts["svc-api"]), [own, TOPICS.presence(STORE, "+")])
    fresh = Client(broker.port, plain(broker.accounts["gw-fresh"]))
    log, started = tmp_path / "fuser.log", time.time()
    fuser = _floorwalker(
        "--log-file", str(log), "fuser", "--mqtt-url", broker.mqtt_url, "--run-dir", str(tmp_path),
        "--mqtt-credentials", str(broker.credentials("svc-fuser")),
    )  # fmt: skip
    try:
        _wait_for_log(fuser, log, "serving on mqtt://")

        def statuses() -> list[FuserStatus]:
            pairs = zip(api.received, api.payloads, strict=True)
            got = [decode(TOPICS, t, p).payload for t, p in pairs if t == own]
            return [m for m in got if isinstance(m, FuserStatus) and m.ts >= started]

        # This fuser's status (an earlier fuser's retained one may come first).
        n = 1
        while not statuses():
            assert api.wait_for(own, timeout=20, count=n), log.read_text()
            n += 1
        assert statuses()[0].producer == "fuser"
        forged = encode(EnvelopeSource("fuser").make(FuserStatus, time.time(), ble={}))
        reason = fresh.publish(own, forged)
        assert reason.is_failure and str(reason) == "Not authorized"
        # The sentinel, allowed, after it on the same connection: had the forged status
        # passed, the API's client would have it first.
        sentinel = TOPICS.presence(STORE, "pantry")
        assert not fresh.publish(sentinel).is_failure
        assert api.wait_for(sentinel)
        assert forged not in api.payloads
    finally:
        _stop(fuser)
        fresh.close()
        api.close()
    assert fuser.returncode == 0


def test_the_api_process_logs_in_and_is_ready(broker: SecureBroker, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    key_prefix = f"t{uuid.uuid4().hex[:10]}/"
    api = _floorwalker(
        "--log-file", str(tmp_path / "api.log"), "api", "--port", str(port), "--mqtt-url", broker.mqtt_url,
        "--redis-url", broker.redis_url, "--key-prefix", key_prefix, "--run-dir", str(tmp_path),
        "--mqtt-credentials", str(broker.credentials("svc-api")),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        ready: Any = None
        while ready != {"ready": True, "mqtt": True, "redis": True}:
            assert api.poll() is None, api.communicate()[1].decode()
            assert time.monotonic() < deadline, f"/readyz never said ready: {ready}"
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).json()
            except httpx.TransportError:
                time.sleep(0.05)  # not listening yet
    finally:
        _stop(api)
        _drop_keys(broker.admin_redis_url, key_prefix)


def test_record_and_replay_log_in_as_their_services(broker: SecureBroker, tmp_path: Path) -> None:
    """`replay` publishes a trace as svc-replay while `record` captures it as svc-recorder."""
    checkout = _non_member_checkout("pos-2")
    topic = TOPICS.checkout(STORE, "lane-2")
    trace, recorded = tmp_path / "in.jsonl", tmp_path / "recorded.jsonl"
    write_trace(trace, Header(STORE, "test", time.time()), [TraceLine(time.time(), topic, encode(checkout))])
    witness = Client(broker.port, plain(broker.accounts["svc-recorder"]), [topic])
    record = _floorwalker(
        "record", "--out", str(recorded), "--mqtt-url", broker.mqtt_url, "--run-dir", str(tmp_path),
        "--mqtt-credentials", str(broker.credentials("svc-recorder")), stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert record.stdout is not None
        ready, _, _ = select.select([record.stdout], [], [], 20)
        assert ready, "`record` did not start within 20 s"
        assert record.stdout.readline().startswith(b"recording "), record.communicate()[1].decode()
        done = subprocess.run(
            [
                sys.executable, "-m", "floorwalker", "replay", str(trace), "--speed", "max",
                "--mqtt-url", broker.mqtt_url, "--run-dir", str(tmp_path),
                "--mqtt-credentials", str(broker.credentials("svc-replay")),
            ],
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        assert done.returncode == 0 and b"sent 1 messages" in done.stdout, done.stderr.decode()
        assert witness.wait_for(topic, timeout=10)  # delivered to every subscriber
    finally:
        _stop(record)
        witness.close()
    assert record.returncode == 0
    lines = list(TraceReader(recorded))
    assert [line.topic for line in lines if checkout.event_id.encode() in line.payload] == [topic]


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["recommender", "--redis-url", "redis://127.0.0.1:1/0"], "recommender"),
        (["api", "--redis-url", "redis://127.0.0.1:1/0"], "api"),
        (["fuser"], "fuser"),
        (["record", "--out", "never-written.jsonl"], "recorder"),
        (["replay", "no-such-trace.jsonl"], "replay"),
        (["member", "erase", "m_abcdef1", "--redis-url", "redis://127.0.0.1:1/0"], "recommender"),
    ],
)
def test_each_service_takes_only_its_own_credentials(
    broker: SecureBroker, tmp_path: Path, command: list[str], expected: str
) -> None:
    """Another account's file is refused before anything connects, in one line."""
    other = "svc-recommender" if expected != "recommender" else "svc-api"
    result = subprocess.run(
        [
            sys.executable, "-m", "floorwalker", *command, "--mqtt-url", broker.mqtt_url,
            "--run-dir", str(tmp_path), "--mqtt-credentials", str(broker.credentials(other)),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    theirs = other.removeprefix("svc-")
    assert f"credentials of {theirs!r}, not of {expected!r}" in lines[0]
    assert not (tmp_path / "never-written.jsonl").exists()
