"""Finding 2: with ``--secrets`` Redis has a user per service and no ``default`` user, so a
local user who finds its loopback port cannot read the CRM or forge a token record."""

from __future__ import annotations

import hashlib
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from broker_config.acl import DeviceKind
from floorwalker.config import Endpoints, StoreConfig
from floorwalker.provision import CredentialStore, DeviceCredentials
from floorwalker.services import Services

pytestmark = pytest.mark.integration


@dataclass
class Secured:
    services: Services
    endpoints: Endpoints
    secrets: Path
    creds: dict[str, DeviceCredentials]

    @property
    def redis_port(self) -> int:
        return self.services.recorded()["redis"].port


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, store_config: StoreConfig) -> Iterator[Secured]:
    secrets = tmp_path_factory.mktemp("secrets")
    store = CredentialStore(secrets, store_config)
    creds = {name: store.provision(DeviceKind.SERVICE, name) for name in ("recommender", "api", "fuser")}
    svc = Services(tmp_path_factory.mktemp("run"), secrets_dir=secrets)
    endpoints = svc.up()
    yield Secured(svc, endpoints, secrets, creds)
    svc.down()


def test_f2_anonymous_clients_are_refused_and_cannot_forge_a_token(secured: Secured) -> None:
    # retry=None: redis-py retries a refused login with back-off (7 s a command) by default.
    anon = redis.Redis(host="127.0.0.1", port=secured.redis_port, socket_timeout=5, retry=None)
    with pytest.raises(redis.AuthenticationError):
        anon.ping()
    forged = f"fw:demo-store:token:{hashlib.sha256(b'T').hexdigest()}"
    with pytest.raises(redis.AuthenticationError):
        anon.hset(forged, mapping={"associate": "a-amy", "role": "manager", "expires_at": 9999999999})
    with pytest.raises(redis.AuthenticationError):
        anon.hgetall("fw:demo-store:cust:m_a1b2c3:profile")
    anon.close()
    # The Unix socket is the owner's alone, and it asks for a login too.
    sock = secured.services.run_dir / "redis" / "redis.sock"
    if sock.exists():
        assert stat.S_IMODE(sock.stat().st_mode) & 0o077 == 0
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(unix_socket_path=str(sock), socket_timeout=5, retry=None).ping()


def test_f2_each_service_logs_in_as_its_own_redis_user_with_only_what_it_needs(secured: Secured) -> None:
    from floorwalker.redis_accounts import with_login
    from recommender.service import connect_redis

    for name in ("recommender", "api"):
        login = secured.creds[name].redis
        assert login is not None and login.username == name
        client = connect_redis(with_login(secured.endpoints.redis_url, login))
        assert client.acl_whoami() == name
        client.set(f"t-f2/{name}", "1")  # it may work with data ...
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.config_get("requirepass")  # ... but not administer Redis
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.flushall()
        client.delete(f"t-f2/{name}")
        client.close()
    # The fuser never talks to Redis, so it has no Redis login at all.
    assert secured.creds["fuser"].redis is None


def test_f2_a_store_server_command_without_a_redis_login_is_refused_in_one_line(
    secured: Secured, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "floorwalker", "token", "revoke", "--associate", "a-amy",
            "--run-dir", str(secured.services.run_dir),
        ],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "--redis-credentials" in lines[0]
