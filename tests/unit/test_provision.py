"""Broker accounts on disk: Mosquitto's password format, rotation, revocation, file modes."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest

from broker_config.acl import DeviceKind
from floorwalker.config import StoreConfig
from floorwalker.errors import ConfigError
from floorwalker.provision import CredentialStore, hash_password, load_credentials

# Made by `mosquitto_passwd -b pw alice secret` (mosquitto 2.0): our hash must match its format.
MOSQUITTO_LINE = (
    "alice:$7$101$3AMwLvRus+SY9nh7$SHLOs8dGBCLyfhUUvDsvE1gGb0YbmTQQIehXgoSN71KKHt9wiBwHVjOWQ0ioiq"
    "eQ2kDHvjdbGa/xqSSkFMFOCQ=="
)


def test_hash_matches_mosquitto_passwd_for_the_same_salt() -> None:
    _, hashed = MOSQUITTO_LINE.split(":", 1)
    _, kind, iterations, salt, _ = hashed.split("$")
    assert hash_password("secret", salt=base64.b64decode(salt), iterations=int(iterations)) == hashed
    assert kind == "7"


def test_hash_is_salted_pbkdf2_sha512() -> None:
    a, b = hash_password("pw"), hash_password("pw")
    assert a != b  # fresh salt each time
    _, _, iterations, salt, digest = a.split("$")
    expected = hashlib.pbkdf2_hmac("sha512", b"pw", base64.b64decode(salt), int(iterations))
    assert base64.b64decode(digest) == expected


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_provision_rotate_and_revoke(tmp_path: Path, store_config: StoreConfig) -> None:
    store = CredentialStore(tmp_path / "secrets", store_config)
    first = store.provision(DeviceKind.GATEWAY, "gw-fresh")
    store.provision(DeviceKind.HANDHELD, "a-ben")
    assert _mode(store.dir) == 0o700
    assert _mode(store.passwd_file) == 0o600 and _mode(store.acl_file) == 0o600
    device_file = store.dir / "devices" / "gw-fresh.json"
    assert _mode(device_file) == 0o600 and load_credentials(device_file) == first
    passwd = store.passwd_file.read_text()
    assert first.password not in passwd  # only the hash is kept for the broker
    assert {line.split(":")[0] for line in passwd.splitlines()} == {"gw-fresh", "a-ben"}

    second = store.provision(DeviceKind.GATEWAY, "gw-fresh")
    assert second.password != first.password
    assert store.passwd_file.read_text().count("gw-fresh:") == 1

    assert store.revoke(DeviceKind.GATEWAY, "gw-fresh")
    assert not store.revoke(DeviceKind.GATEWAY, "gw-fresh")
    assert "gw-fresh" not in store.passwd_file.read_text()
    assert "user gw-fresh" not in store.acl_file.read_text()
    assert not device_file.exists()
    assert [a.id for a in store.accounts()] == ["a-ben"]


def test_provisioning_an_unknown_device_is_refused(tmp_path: Path, store_config: StoreConfig) -> None:
    store = CredentialStore(tmp_path, store_config)
    with pytest.raises(ConfigError, match="cannot provision: gateway 'gw-attic'"):
        store.provision(DeviceKind.GATEWAY, "gw-attic")
    assert store.accounts() == []


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "no such credentials file"),
        ('{"kind": "gateway"}', "id: Field required"),
        ("not json", "Invalid JSON"),
    ],
)
def test_bad_credentials_files_name_the_problem(tmp_path: Path, content: str | None, problem: str) -> None:
    path = tmp_path / "creds.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=problem) as err:
        load_credentials(path)
    assert str(err.value).startswith(str(path))
