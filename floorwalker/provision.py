"""Per-device broker accounts: ``floorwalker provision gateway|pos|handheld|service ID``.

A secrets directory (mode 0700) holds what the store's Mosquitto reads and what each
device is handed:

=====================  ==================================================================
``passwd``             Mosquitto password file, PBKDF2-SHA512 (``$7$``), no plaintext
``acl``                the ACL rendered by :mod:`broker_config.acl` for every account
``accounts.json``      which accounts exist (kind and id)
``devices/{user}.json`` the device's own credentials (mode 0600): copy it to the device
=====================  ==================================================================

Provisioning again rotates the password; revoking removes the login and its ACL block.
A service that uses Redis (``recommender``, ``api``) also gets its Redis user and password
in the same file (:mod:`floorwalker.redis_accounts`).
A running broker started by ``floorwalker services up --secrets`` re-reads both files on
SIGHUP, which :func:`reload_broker` sends, so a change takes effect at once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict

from broker_config.acl import Account, DeviceKind, UnknownDevice, render
from floorwalker.config import StoreConfig, load_model
from floorwalker.errors import ConfigError
from floorwalker.mqtt import MqttAuth
from floorwalker.redis_accounts import RIGHTS, RedisAccounts, RedisLogin

#: Mosquitto's own default; the passwords are 256-bit random tokens, so the hash only has to
#: keep the file from being a list of passwords.
PBKDF2_ITERATIONS: Final = 1000
PASSWD: Final = "passwd"
ACL: Final = "acl"
ACCOUNTS: Final = "accounts.json"
DEVICES: Final = "devices"


class DeviceCredentials(BaseModel):
    """What a device needs to log in to its store's broker (``--mqtt-credentials FILE``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: DeviceKind
    id: str
    store: str
    username: str
    password: str
    #: The store CA certificate (PEM), when the broker has a TLS listener: the file is all a
    #: device needs, wherever it is copied to.
    ca_pem: str | None = None
    #: The store CA as a path instead (files provisioned before ``ca_pem``).
    ca_file: Path | None = None
    #: The service's Redis user (``recommender``, ``api``): Redis has no anonymous user
    #: in a store run with ``--secrets`` (see :mod:`floorwalker.redis_accounts`).
    redis: RedisLogin | None = None

    def auth(self) -> MqttAuth:
        return MqttAuth(self.username, self.password, self.ca_file, self.ca_pem)


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """A Mosquitto ``$7$`` password hash (PBKDF2-HMAC-SHA512, 12-byte salt)."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def load_credentials(path: Path) -> DeviceCredentials:
    """Read a device credentials file; a :class:`ConfigError` says what is wrong with it."""
    return load_model(
        path, DeviceCredentials, "credentials", hint="make one with `floorwalker provision`", syntax="json"
    )


class CredentialStore:
    """The accounts of one store's broker, kept in ``secrets_dir``."""

    def __init__(self, secrets_dir: Path, store: StoreConfig, *, topic_prefix: str = "") -> None:
        self.dir = secrets_dir
        self.store = store
        self.prefix = topic_prefix

    @property
    def passwd_file(self) -> Path:
        return self.dir / PASSWD

    @property
    def acl_file(self) -> Path:
        return self.dir / ACL

    def accounts(self) -> list[Account]:
        try:
            raw = json.loads((self.dir / ACCOUNTS).read_text())
            return [Account(DeviceKind(a["kind"]), str(a["id"])) for a in raw]
        except FileNotFoundError:
            return []
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{self.dir / ACCOUNTS}: unreadable ({exc}); provision the devices again"
            ) from None

    def provision(self, kind: DeviceKind, ident: str, *, ca_file: Path | None = None) -> DeviceCredentials:
        """Create (or rotate) the account and write the device's credentials file (with the
        certificate of ``ca_file``, the store CA, in it)."""
        account = Account(kind, ident)
        self._check(account)
        password = secrets.token_urlsafe(32)
        accounts = [a for a in self.accounts() if a.username != account.username] + [account]
        hashes = self._hashes()
        hashes[account.username] = hash_password(password)
        creds = DeviceCredentials(
            kind=kind,
            id=ident,
            store=self.store.store,
            username=account.username,
            password=password,
            ca_pem=ca_file.read_text() if ca_file is not None else None,
            redis=self._redis_login(kind, ident),
        )
        self._write(accounts, hashes)
        _write_private(self.dir / DEVICES / f"{account.username}.json", creds.model_dump_json(indent=2))
        return creds

    def revoke(self, kind: DeviceKind, ident: str) -> bool:
        """Remove the account; True if it existed."""
        username = Account(kind, ident).username
        accounts = self.accounts()
        if not any(a.username == username for a in accounts):
            return False
        hashes = self._hashes()
        hashes.pop(username, None)
        self._write([a for a in accounts if a.username != username], hashes)
        (self.dir / DEVICES / f"{username}.json").unlink(missing_ok=True)
        if kind is DeviceKind.SERVICE:
            RedisAccounts(self.dir).remove(ident)
        return True

    def ensure_files(self) -> None:
        """Make sure the broker has a (possibly empty) password and ACL file to read."""
        self._write(self.accounts(), self._hashes())

    # -- internals ---------------------------------------------------------------------

    def _redis_login(self, kind: DeviceKind, ident: str) -> RedisLogin | None:
        if kind is not DeviceKind.SERVICE or ident not in RIGHTS:
            return None  # devices, the fuser, recorder and replay never talk to Redis
        return RedisAccounts(self.dir).rotate(ident)

    def _check(self, account: Account) -> None:
        try:
            render([account], self.store, self.prefix)
        except UnknownDevice as exc:
            raise ConfigError(f"cannot provision: {exc}") from None

    def _hashes(self) -> dict[str, str]:
        try:
            lines = self.passwd_file.read_text().splitlines()
        except FileNotFoundError:
            return {}
        return dict(line.split(":", 1) for line in lines if ":" in line)

    def _write(self, accounts: list[Account], hashes: dict[str, str]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        keep = {a.username for a in accounts}
        _write_private(self.passwd_file, "".join(f"{u}:{h}\n" for u, h in hashes.items() if u in keep))
        _write_private(self.acl_file, render(accounts, self.store, self.prefix))
        _write_private(
            self.dir / ACCOUNTS, json.dumps([{"kind": a.kind.value, "id": a.id} for a in accounts], indent=2)
        )


#: The Prometheus scrape token for the API's ``/metrics``, in the secrets directory.
METRICS_TOKEN: Final = "metrics-token"


def scrape_token(secrets_dir: Path) -> Path:
    """The file holding the store's ``/metrics`` scrape token, made (mode 0600) when absent.

    Give the same file to Prometheus: ``authorization: {credentials_file: PATH}``."""
    path = secrets_dir / METRICS_TOKEN
    if not path.is_file():
        secrets_dir.mkdir(parents=True, exist_ok=True)
        _write_private(path, secrets.token_urlsafe(32) + "\n")
    return path


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(path)
