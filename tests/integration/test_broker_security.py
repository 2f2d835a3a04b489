"""The hardened broker, for real: per-device logins, the ACL, TLS, revocation and a bridge.

A Mosquitto is started from ``mosquitto-secure.conf.tmpl`` with accounts made by
:class:`CredentialStore`; devices connect as they would in a store and try what they must
not be able to do.
"""

from __future__ import annotations

import datetime as dt
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.reasoncodes import ReasonCode

from broker_config.acl import DeviceKind
from broker_config.contract import EnvelopeSource, GatewayStatus, Topics, encode
from floorwalker.bridge import render_bridge
from floorwalker.config import StoreConfig
from floorwalker.errors import ConfigError
from floorwalker.mqtt import MqttAuth, MqttLink, Received
from floorwalker.provision import CredentialStore, DeviceCredentials
from floorwalker.services import Services
from floorwalker.tls import make_store_ca

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
            store.provision(DeviceKind.SERVICE, "recommender"),
            store.provision(DeviceKind.SERVICE, "recorder"),
        )
    }
    svc = Services(tmp_path_factory.mktemp("secure-run"), secrets_dir=secrets, tls_bind="127.0.0.1")
    endpoints = svc.up()
    tls_port = svc.recorded()["mosquitto"].tls_port
    assert tls_port is not None
    yield SecureBroker(svc, endpoints.mqtt_port, tls_port, accounts, store)
    svc.down()


class Client:
    """A device's connection that remembers what it received and how its publishes ended."""

    def __init__(self, port: int, auth: MqttAuth, subscriptions: Sequence[str] = ()) -> None:
        self.received: list[str] = []
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

    def wait_for(self, topic: str, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: topic in self.received, timeout)

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

        # Posing as another gateway, or reporting a zone it does not cover: refused.
        for forbidden in (TOPICS.status(STORE, "gw-chill"), TOPICS.presence(STORE, "dairy")):
            reason = fresh.publish(forbidden, status_payload("gw-chill"))
            assert reason.is_failure and str(reason) == "Not authorized"
            assert not recorder.wait_for(forbidden, timeout=0.5)
    finally:
        fresh.close()
        recorder.close()


def test_outbox_control_topics_under_the_acl(broker: SecureBroker) -> None:
    """The recommender acknowledges to a gateway and publishes erasure notices; a gateway
    reads its own acks and every notice, never another gateway's acks, and cannot post a
    notice itself (which would erase a member's waiting events elsewhere)."""
    fresh_ack, chill_ack = TOPICS.ack(STORE, "gw-fresh"), TOPICS.ack(STORE, "gw-chill")
    notice = TOPICS.erasure(STORE, "m_chen0001")
    fresh = Client(broker.port, plain(broker.accounts["gw-fresh"]), [fresh_ack, chill_ack, notice])
    recommender = Client(broker.port, broker.accounts["svc-recommender"].auth())
    try:
        for topic in (fresh_ack, chill_ack, notice):
            assert not recommender.publish(topic).is_failure
        assert fresh.wait_for(fresh_ack) and fresh.wait_for(notice)
        assert not fresh.wait_for(chill_ack, timeout=0.5)
        reason = fresh.publish(TOPICS.erasure(STORE, "m_okafor002"))
        assert reason.is_failure and str(reason) == "Not authorized"
    finally:
        fresh.close()
        recommender.close()


def test_a_handheld_reads_only_its_own_prompts(broker: SecureBroker) -> None:
    amy = Client(broker.port, broker.accounts["a-amy"].auth(), [TOPICS.prompt(STORE, "a-amy")])
    # Ben asks for Amy's prompts, and for everything in the store.
    ben = Client(
        broker.port, broker.accounts["a-ben"].auth(), [TOPICS.prompt(STORE, "a-amy"), f"fw/v1/{STORE}/#"]
    )
    recommender = Client(broker.port, broker.accounts["svc-recommender"].auth())
    try:
        assert not recommender.publish(TOPICS.prompt(STORE, "a-amy")).is_failure
        assert amy.wait_for(TOPICS.prompt(STORE, "a-amy"))
        assert not ben.wait_for(TOPICS.prompt(STORE, "a-amy"), timeout=1.0)
        assert ben.received == []
        # And a handheld cannot publish prompts to anyone.
        assert ben.publish(TOPICS.prompt(STORE, "a-amy")).is_failure
    finally:
        for c in (amy, ben, recommender):
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
    assert creds.ca_file is not None
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


def test_the_gateway_process_logs_in_with_its_credentials_file(broker: SecureBroker, tmp_path: Path) -> None:
    devices = broker.store.dir / "devices"
    plain_creds = tmp_path / "gw-fresh.json"  # loopback listener: the same login without the CA
    plain_creds.write_text(broker.accounts["gw-fresh"].model_copy(update={"ca_file": None}).model_dump_json())
    recorder = Client(broker.port, plain(broker.accounts["svc-recorder"]), [f"fw/v1/{STORE}/gw/+/status"])
    gateway = _edge(broker.port, plain_creds, tmp_path)
    try:
        assert recorder.wait_for(TOPICS.status(STORE, "gw-fresh"), timeout=15), gateway.stderr
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(10)
        recorder.close()
    # Another device's credentials file is refused before connecting, in one line.
    wrong = _edge(broker.port, devices / "gw-chill.json", tmp_path)
    _, err = wrong.communicate(timeout=30)
    lines = err.decode().strip().splitlines()
    assert wrong.returncode == 2 and len(lines) == 1
    assert "credentials of 'gw-chill', not of 'gw-fresh'" in lines[0]


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
