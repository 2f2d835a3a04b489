"""Finding 1 (the broker): ``provision revoke`` acts on the broker that serves the given
secrets — found from ``--run-dir`` — or refuses in one line naming where it looked; and a
revoked gateway's open connection is dropped and cannot come back."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from broker_config.acl import DeviceKind
from floorwalker.config import StoreConfig
from floorwalker.provision import CredentialStore
from floorwalker.services import Services

pytestmark = pytest.mark.integration


def _revoke(secrets: Path, run_dir: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, "-m", "floorwalker", "provision", "revoke", "gateway", "gw-pantry",
            "--secrets", str(secrets), "--run-dir", str(run_dir),
        ],
        capture_output=True, text=True, timeout=60, cwd=cwd,
    )  # fmt: skip


class Gateway:
    """A gateway's raw MQTT session that records when the broker drops it."""

    def __init__(self, port: int, username: str, password: str) -> None:
        self.connected = threading.Event()
        self.dropped = threading.Event()
        self.refused: list[str] = []
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"gw-{uuid.uuid4().hex[:6]}")
        self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_a: self.dropped.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_connect(self, _c: object, _u: object, _f: object, reason: ReasonCode, _p: object) -> None:
        if reason.is_failure:
            self.refused.append(str(reason))
        self.connected.set()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_f1_revoke_refuses_a_run_dir_whose_broker_does_not_serve_the_secrets_and_cuts_off_the_gateway(
    tmp_path: Path, store_config: StoreConfig
) -> None:
    secrets, store_run, other_run = tmp_path / "secrets", tmp_path / "store-run", tmp_path / "other-run"
    creds = CredentialStore(secrets, store_config).provision(DeviceKind.GATEWAY, "gw-pantry")
    CredentialStore(secrets, store_config).provision(DeviceKind.SERVICE, "recommender")
    store, other = Services(store_run, secrets_dir=secrets), Services(other_run)
    store.up()
    other.up()  # another broker, without these secrets (e.g. a developer's in .run)
    port = store.recorded()["mosquitto"].port
    gateway = Gateway(port, creds.username, creds.password)
    try:
        assert gateway.connected.wait(10) and not gateway.refused

        # The wrong run directory: refused in one line that names where it looked; nothing changes.
        wrong = _revoke(secrets, other_run, tmp_path)
        lines = wrong.stderr.strip().splitlines()
        assert wrong.returncode == 2 and len(lines) == 1, wrong.stdout + wrong.stderr
        assert str(other_run.resolve()) in lines[0] and "reloaded" not in wrong.stdout
        assert creds.username in (secrets / "passwd").read_text()  # not revoked

        # The right one: the open session is dropped at once ...
        right = _revoke(secrets, store_run, tmp_path)
        assert right.returncode == 0, right.stderr
        assert gateway.dropped.wait(10), "the revoked gateway's open connection was not dropped"
        # ... and its reconnect is refused.
        again = Gateway(port, creds.username, creds.password)
        assert again.connected.wait(10) and again.refused, "the revoked gateway reconnected"
        again.close()
    finally:
        gateway.close()
        store.down()
        other.down()
