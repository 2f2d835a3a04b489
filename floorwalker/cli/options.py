"""What the command groups share: option types, the run directory, error reporting and the
helpers that turn options into a store config, endpoints, a broker login and a stop event.

This module imports no command group, so every group can import it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar
from urllib.parse import urlsplit

import typer

from floorwalker.config import Endpoints, StoreConfig, load_store_config
from floorwalker.errors import ConfigError, FloorwalkerError
from floorwalker.mqtt import MqttAuth

if TYPE_CHECKING:
    from floorwalker.redis_accounts import RedisLogin
from simulators.stores import DEMO_STORE

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_RUN_DIR = Path(os.environ.get("FLOORWALKER_RUN_DIR", ".run"))

RunDir = Annotated[
    Path, typer.Option("--run-dir", help="Where `services up` keeps configs, data, logs and ports.")
]
StoreOpt = Annotated[
    Path | None,
    typer.Option("--store-config", "-c", help="Store YAML (default: the bundled demo store).", exists=False),
]
MqttUrl = Annotated[
    str | None,
    typer.Option(
        "--mqtt-url", envvar="FLOORWALKER_MQTT_URL", help="mqtt://host:port (default: from `services up`)."
    ),
]
RedisUrl = Annotated[
    str | None,
    typer.Option(
        "--redis-url",
        envvar="FLOORWALKER_REDIS_URL",
        help="redis://host:port/db (default: from `services up`).",
    ),
]
TopicPrefix = Annotated[
    str, typer.Option("--topic-prefix", help="Prefix for every topic (tests, benchmarks).")
]
MqttCredentials = Annotated[
    Path | None,
    typer.Option(
        "--mqtt-credentials",
        envvar="FLOORWALKER_MQTT_CREDENTIALS",
        help="This device's broker login (`floorwalker provision` writes it); TLS when it names a CA.",
    ),
]
RedisCredentials = Annotated[
    Path | None,
    typer.Option(
        "--redis-credentials",
        envvar="FLOORWALKER_REDIS_CREDENTIALS",
        help="A Redis login (a service's devices/svc-NAME.json or devices/redis-admin.json) "
        "for a store run with --secrets.",
    ),
]
SecretsOpt = Annotated[
    Path | None,
    typer.Option("--secrets", help="Secrets directory: broker passwords, ACL, certificates."),
]
KeyPrefix = Annotated[
    str, typer.Option("--key-prefix", help="Prefix for every Redis key (tests, benchmarks).")
]


def friendly(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn our own errors into one ``error:`` line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except FloorwalkerError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None

    return wrapper


def load_store(path: Path | None) -> StoreConfig:
    """The store config at ``path``, or the bundled demo store's."""
    return load_store_config(path or DEMO_STORE)


def mqtt_address(run_dir: Path, mqtt_url: str | None) -> tuple[str, int]:
    """The broker's host and port: from ``--mqtt-url``, else from `services up` in ``run_dir``."""
    if mqtt_url is None:
        from floorwalker.services import Services

        ep = Services(run_dir).endpoints()
        return ep.mqtt_host, ep.mqtt_port
    parts = urlsplit(mqtt_url)
    try:
        # mqtts:// says TLS; the CA comes with the device's --mqtt-credentials.
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError:
        port = 0
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or not port:
        raise ConfigError(f"--mqtt-url {mqtt_url!r}: expected mqtt://host:port or mqtts://host:port")
    return parts.hostname, port


def redis_address(run_dir: Path, redis_url: str | None, credentials: Path | None = None) -> str:
    """Redis's URL: ``--redis-url`` checked, else the one `services up` recorded in ``run_dir``;
    with the Redis login in ``credentials`` (else in ``$FLOORWALKER_REDIS_CREDENTIALS``)."""
    return _with_redis_login(_redis_url(run_dir, redis_url), credentials)


def _with_redis_login(url: str, credentials: Path | None) -> str:
    env = os.environ.get("FLOORWALKER_REDIS_CREDENTIALS")
    path = credentials or (Path(env) if env else None)
    if path is None:
        return url
    from floorwalker.redis_accounts import with_login

    return with_login(url, redis_login(path))


def redis_login(path: Path) -> RedisLogin:
    """The Redis login in ``path``: a service's credentials file or ``redis-admin.json``."""
    from floorwalker.config import load_model
    from floorwalker.provision import load_credentials
    from floorwalker.redis_accounts import RedisLogin

    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable Redis login ({exc})") from None
    if isinstance(raw, dict) and "username" in raw and "kind" not in raw:
        return load_model(
            path, RedisLogin, "Redis login", hint="`services up --secrets` writes one", syntax="json"
        )
    login = load_credentials(path).redis
    if login is None:
        raise ConfigError(
            f"{path}: these credentials carry no Redis login (only recommender and api use Redis)"
        )
    return login


def _redis_url(run_dir: Path, redis_url: str | None) -> str:
    if redis_url is None:
        from floorwalker.services import Services

        return Services(run_dir).endpoints().redis_url
    if urlsplit(redis_url).scheme not in ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster"):
        raise ConfigError(
            f"--redis-url {redis_url!r}: expected redis://host:port/db "
            "(or redis+cluster://host:port for Redis Cluster)"
        )
    return redis_url


def endpoints(
    run_dir: Path, mqtt_url: str | None, redis_url: str | None, credentials: Path | None = None
) -> Endpoints:
    """The broker and Redis together (see :func:`mqtt_address` and :func:`redis_address`);
    a service's ``--mqtt-credentials`` file carries its Redis login too."""
    host, port = mqtt_address(run_dir, mqtt_url)
    url = _redis_url(run_dir, redis_url)
    if credentials is not None and os.environ.get("FLOORWALKER_REDIS_CREDENTIALS") is None:
        from floorwalker.provision import load_credentials
        from floorwalker.redis_accounts import with_login

        url = with_login(url, load_credentials(credentials).redis)
    return Endpoints(host, port, _with_redis_login(url, None))


def mqtt_auth(credentials: Path | None, expected_id: str | None = None) -> MqttAuth | None:
    """The broker login from a credentials file, checked to be this device's own."""
    if credentials is None:
        return None
    from floorwalker.provision import load_credentials

    creds = load_credentials(credentials)
    if expected_id is not None and creds.id != expected_id:
        raise ConfigError(f"{credentials}: these are the credentials of {creds.id!r}, not of {expected_id!r}")
    return creds.auth()


def setup_logging(level: str, log_file: Path | None = None) -> None:
    """Log at ``level`` to ``log_file``, or to stderr."""
    handlers: list[logging.Handler] = [logging.FileHandler(log_file) if log_file else logging.StreamHandler()]
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )


def stop_on_signals() -> threading.Event:
    """An event that SIGINT or SIGTERM sets (instead of raising KeyboardInterrupt)."""
    stop = threading.Event()

    def handler(_sig: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop
