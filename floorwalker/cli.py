"""The ``floorwalker`` command line.

Every command reports a problem a person can fix (broken config, busy port, a broker or
Redis that does not answer) as one ``error:`` line and exit code 2, without a traceback.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, ParamSpec, TypeVar
from urllib.parse import urlsplit

import typer

from floorwalker import __version__
from floorwalker.config import Endpoints, StoreConfig, load_store_config
from floorwalker.errors import ConfigError, FloorwalkerError
from floorwalker.mqtt import MqttAuth
from floorwalker.services import Services
from simulators.stores import BIG_STORE, DEMO_STORE

if TYPE_CHECKING:
    from simulators.evaluate import Output
    from simulators.replay import ReplayResult
    from simulators.trace import TraceReader

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    help="Floorwalker: in-store sensing and next-best-action prompts for floor associates.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
services_app = typer.Typer(help="Our own Mosquitto and Redis (up / down / status).", no_args_is_help=True)
app.add_typer(services_app, name="services")
bench_app = typer.Typer(help="Benchmarks of the hot paths; each prints a table and writes bench/out/*.json.")
app.add_typer(bench_app, name="bench")
eval_app = typer.Typer(help="Run a pipeline on recorded input and compare with ground truth.")
app.add_typer(eval_app, name="eval")
provision_app = typer.Typer(
    help="Broker accounts per device (gateway, pos, handheld, service), the store CA and TLS, bridges.",
    no_args_is_help=True,
)
app.add_typer(provision_app, name="provision")

DEFAULT_RUN_DIR = Path(os.environ.get("FLOORWALKER_RUN_DIR", ".run"))


# -- shared options ----------------------------------------------------------------------

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


def _store(path: Path | None) -> StoreConfig:
    return load_store_config(path or DEMO_STORE)


def _mqtt(run_dir: Path, mqtt_url: str | None) -> tuple[str, int]:
    if mqtt_url is None:
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


def _redis(run_dir: Path, redis_url: str | None) -> str:
    if redis_url is None:
        return Services(run_dir).endpoints().redis_url
    if urlsplit(redis_url).scheme not in ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster"):
        raise ConfigError(
            f"--redis-url {redis_url!r}: expected redis://host:port/db "
            "(or redis+cluster://host:port for Redis Cluster)"
        )
    return redis_url


def _store_files(paths: list[Path], exclude: Path | None) -> list[Path]:
    """Store YAMLs named, a directory standing for its ``*.yaml``; each once, ``exclude`` left out."""
    seen = {exclude.resolve()} if exclude is not None else set()
    out = []
    for path in paths:
        for file in sorted(path.glob("*.yaml")) if path.is_dir() else [path]:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                out.append(file)
    return out


def _endpoints(run_dir: Path, mqtt_url: str | None, redis_url: str | None) -> Endpoints:
    host, port = _mqtt(run_dir, mqtt_url)
    return Endpoints(host, port, _redis(run_dir, redis_url))


def _auth(credentials: Path | None, expected_id: str | None = None) -> MqttAuth | None:
    """The broker login from a credentials file, checked to be this device's own."""
    if credentials is None:
        return None
    from floorwalker.provision import load_credentials

    creds = load_credentials(credentials)
    if expected_id is not None and creds.id != expected_id:
        raise ConfigError(f"{credentials}: these are the credentials of {creds.id!r}, not of {expected_id!r}")
    return creds.auth()


def _setup_logging(level: str, log_file: Path | None = None) -> None:
    handlers: list[logging.Handler] = [logging.FileHandler(log_file) if log_file else logging.StreamHandler()]
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(_sig: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


@app.callback()
def main(
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
    log_file: Annotated[Path | None, typer.Option("--log-file", help="Log here instead of stderr.")] = None,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()
    _setup_logging(log_level, log_file)


# -- services ----------------------------------------------------------------------------


@services_app.command("up")
@friendly
def services_up(
    run_dir: RunDir = DEFAULT_RUN_DIR,
    mqtt_port: Annotated[int | None, typer.Option("--mqtt-port", help="Default: a free port.")] = None,
    redis_port: Annotated[int | None, typer.Option("--redis-port", help="Default: a free port.")] = None,
    secrets: SecretsOpt = None,
    tls_port: Annotated[
        int | None, typer.Option("--tls-port", help="TLS listener port (with certificates in --secrets).")
    ] = None,
    tls_bind: Annotated[str, typer.Option("--tls-bind", help="Address of the TLS listener.")] = "0.0.0.0",
) -> None:
    """Start Mosquitto and Redis from broker_config/ on loopback; print their URLs.

    With --secrets the broker requires a login per device and applies the ACL made by
    `floorwalker provision`; with certificates there (`provision tls`) it adds a TLS listener.
    """
    svc = Services(
        run_dir,
        mqtt_port=mqtt_port,
        redis_port=redis_port,
        secrets_dir=secrets,
        tls_port=tls_port,
        tls_bind=tls_bind,
    )
    ep = svc.up()
    typer.echo(f"mqtt   {ep.mqtt_url}\nredis  {ep.redis_url}\n(recorded in {run_dir / 'services.json'})")
    tls = svc.recorded()["mosquitto"].tls_port
    if tls is not None:
        typer.echo(f"mqtts  {tls_bind}:{tls} (store CA: {secrets / 'ca.crt' if secrets else ''})")


@services_app.command("down")
@friendly
def services_down(run_dir: RunDir = DEFAULT_RUN_DIR) -> None:
    """Stop exactly the Mosquitto and Redis that `services up` started in this run directory."""
    stopped = Services(run_dir).down()
    typer.echo("\n".join(f"stopped {s}" for s in stopped) or "nothing was running")


@services_app.command("status")
@friendly
def services_status(run_dir: RunDir = DEFAULT_RUN_DIR) -> None:
    """Say whether our Mosquitto and Redis are up and answering."""
    for name, line in Services(run_dir).status().items():
        typer.echo(f"{name:<10} {line}")


# -- components --------------------------------------------------------------------------


@app.command()
@friendly
def recommender(
    store_config: StoreOpt = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    mqtt_url: MqttUrl = None,
    redis_url: RedisUrl = None,
    topic_prefix: TopicPrefix = "",
    key_prefix: KeyPrefix = "",
    client_id: Annotated[
        str, typer.Option("--client-id", help="MQTT client id (one per replica).")
    ] = "recommender",
    load_crm: Annotated[
        bool, typer.Option("--load-crm/--no-load-crm", help="Load the store's CRM fixture.")
    ] = True,
    also_store: Annotated[
        list[Path] | None,
        typer.Option(
            "--also-store",
            help="Another store YAML this process serves, or a directory of them (repeatable).",
        ),
    ] = None,
    share_group: Annotated[
        str | None,
        typer.Option(
            "--share-group",
            envvar="FLOORWALKER_SHARE_GROUP",
            help="Run as one replica of this group behind an MQTT v5 shared subscription ($share/GROUP/...).",
        ),
    ] = None,
    replica: Annotated[
        str | None,
        typer.Option(
            "--replica", envvar="FLOORWALKER_REPLICA", help="This replica's stable id (with --share-group)."
        ),
    ] = None,
    mqtt_credentials: MqttCredentials = None,
) -> None:
    """Consume presence and checkout events; publish prompts to associates' handhelds.

    --redis-url redis+cluster://host:port selects Redis Cluster (README: Deploy and scale out)."""
    from recommender.service import RecommenderService, Share

    if (share_group is None) != (replica is None):
        raise ConfigError("--share-group and --replica go together: name the group and this replica's id")
    configs = [_store(store_config)]
    for path in _store_files(also_store or [], exclude=store_config):
        configs.append(_store(path))
    ep = _endpoints(run_dir, mqtt_url, redis_url)
    auth = _auth(mqtt_credentials, "recommender")
    service = RecommenderService(
        configs,
        ep,
        topic_prefix=topic_prefix,
        key_prefix=key_prefix,
        client_id=client_id,
        load_crm=load_crm,
        share=Share(share_group, replica) if share_group and replica else None,
        auth=auth,
    )
    stop = _stop_on_signals()

    def stop_when_signalled() -> None:
        stop.wait()
        service.stop()

    threading.Thread(target=stop_when_signalled, daemon=True).start()
    service.run()


@app.command()
@friendly
def edge(
    gateway: Annotated[
        str | None, typer.Option("--gateway", "-g", help="This gateway's id in the store config.")
    ] = None,
    gateway_config: Annotated[
        Path | None,
        typer.Option(
            "--gateway-config", help="Gateway YAML: store, gateway id, cameras (README: Camera footfall)."
        ),
    ] = None,
    store_config: StoreOpt = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    mqtt_url: MqttUrl = None,
    topic_prefix: TopicPrefix = "",
    heartbeat_s: Annotated[
        float | None, typer.Option("--heartbeat", help="Seconds between status heartbeats (default 30).")
    ] = None,
    ble_replay: Annotated[
        Path | None,
        typer.Option("--ble-replay", help="Scan BLE from this recorded trace (JSONL) instead of the radio."),
    ] = None,
    ble_speed: Annotated[float, typer.Option("--ble-speed", help="Replay speed (1 = as recorded).")] = 1.0,
    mqtt_credentials: MqttCredentials = None,
    outbox: Annotated[
        Path | None,
        typer.Option(
            "--outbox", help="Store-and-forward outbox (SQLite); default RUN_DIR/outbox-GATEWAY.db."
        ),
    ] = None,
) -> None:
    """Run a gateway: retained online status, last will offline, heartbeats, its cameras and BLE."""
    from edge_agent.agent import run_gateway
    from floorwalker.config import ReplayScannerConfig

    cameras = []
    if gateway_config is not None:
        from edge_agent.gateway_config import check_against_store, load_gateway_config

        gw = load_gateway_config(gateway_config)
        config = _store(store_config or gw.store_config)
        check_against_store(gw, config, gateway_config)
        if gateway is not None and gateway != gw.gateway:
            raise ConfigError(f"--gateway {gateway!r} but {gateway_config} is for gateway {gw.gateway!r}")
        gateway, cameras = gw.gateway, list(gw.cameras)
        heartbeat_s = heartbeat_s if heartbeat_s is not None else gw.heartbeat_s
    elif gateway is None:
        raise ConfigError("give --gateway ID or --gateway-config FILE")
    else:
        config = _store(store_config)
    host, port = _mqtt(run_dir, mqtt_url)
    scanner = None
    if ble_replay is not None:
        if not ble_replay.is_file():
            raise ConfigError(f"--ble-replay {ble_replay}: no such trace file")
        if ble_speed <= 0:
            raise ConfigError(f"--ble-speed {ble_speed}: must be greater than 0")
        scanner = ReplayScannerConfig(path=ble_replay, speed=ble_speed)
    run_gateway(
        config,
        gateway,
        host,
        port,
        _stop_on_signals(),
        topic_prefix=topic_prefix,
        heartbeat_s=heartbeat_s if heartbeat_s is not None else 30.0,
        cameras=cameras,
        scanner=scanner,
        auth=_auth(mqtt_credentials, gateway),
        outbox_path=outbox or run_dir / f"outbox-{gateway}.db",
    )


@app.command()
@friendly
def api(
    store_config: StoreOpt = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    mqtt_url: MqttUrl = None,
    redis_url: RedisUrl = None,
    host: Annotated[str, typer.Option("--host", help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to serve on.")] = 8080,
    topic_prefix: TopicPrefix = "",
    key_prefix: KeyPrefix = "",
    mqtt_credentials: MqttCredentials = None,
) -> None:
    """Serve the handheld pages (live prompts over SSE), the manager's dashboard and /metrics."""
    from handheld import run_api

    config = _store(store_config)
    ep = _endpoints(run_dir, mqtt_url, redis_url)
    run_api(
        config,
        ep,
        host=host,
        port=port,
        topic_prefix=topic_prefix,
        key_prefix=key_prefix,
        auth=_auth(mqtt_credentials, "api"),
    )


@app.command()
@friendly
def simulate(
    store_config: Annotated[
        Path | None,
        typer.Option("--layout", "--store-config", "-c", help="Store layout YAML (default: the demo store)."),
    ] = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    mqtt_url: MqttUrl = None,
    topic_prefix: TopicPrefix = "",
    seed: Annotated[int, typer.Option("--seed", help="Scenario seed.")] = 1,
    speed: Annotated[float, typer.Option("--speed", help="1 = real time, 10 = ten times faster.")] = 1.0,
    non_members: Annotated[int, typer.Option("--non-members", help="Non-member shoppers per round.")] = 4,
    rounds: Annotated[int, typer.Option("--rounds", help="Rounds to play; 0 = until stopped.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write a simulated day as DIR/trace.jsonl + DIR/truth.json (no broker)."),
    ] = None,
    hours: Annotated[float, typer.Option("--hours", help="With --out: hours from opening.")] = 13.0,
    visitors: Annotated[int, typer.Option("--visitors", help="With --out: expected visitors.")] = 1000,
    start: Annotated[
        str | None,
        typer.Option("--start", help="With --out: start time, ISO (2026-03-02T08:00+00:00) or 'now'."),
    ] = None,
    presence: Annotated[
        str | None,
        typer.Option(
            "--presence",
            help="'ble' (phones through the RF model -> gateways' BLE reports -> the fuser's "
            "presence; live, run `floorwalker fuser` beside it, as `make demo` does) or 'model' "
            "(presence events from the gateways themselves; with --out from a simple error model of "
            "the fuser). Default: ble when the store has ble_presence.secrets.",
        ),
    ] = None,
    camera_gateway: Annotated[
        list[str],
        typer.Option(
            "--camera-gateway",
            help="Live mode: this gateway runs for real with its cameras (`floorwalker edge "
            "--gateway-config`); the simulator leaves its status and its zones' footfall to it.",
        ),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
) -> None:
    """With --out: write a simulated day's trace and ground truth (deterministic for --seed).
    Without: play scripted shoppers live onto the broker as the store's gateways and tills."""
    if out is not None:
        _simulate_to(
            store_config or DEMO_STORE, out, hours=hours, visitors=visitors, seed=seed, start=start,
            presence=presence,
        )  # fmt: skip
        return
    from recommender.crm import read_fixture
    from simulators.floorplan import build_floorplan
    from simulators.live import MAX_BLE_SPEED, LiveStore, shoppers_from
    from simulators.scenario import build

    config = _store(store_config)
    if config.crm is None:
        raise ConfigError("the store config has no `crm` fixture, so there are no members to simulate")
    if speed <= 0:
        raise ConfigError(f"--speed {speed}: must be greater than 0")
    host, port = _mqtt(run_dir, mqtt_url)
    shoppers = shoppers_from(read_fixture(config.crm), non_members)
    unknown = sorted(set(camera_gateway) - {g.id for g in config.gateways})
    if unknown:
        raise ConfigError(f"--camera-gateway {unknown[0]!r}: not a gateway of store {config.store!r}")
    mode = _presence_mode(presence, config)
    if mode == "ble":
        build_floorplan(config, str(store_config or DEMO_STORE))  # members walk the floor plan
        typer.echo(
            "members' presence: gateways' BLE reports; `floorwalker fuser` turns them into presence", err=True
        )
        if speed > MAX_BLE_SPEED:
            typer.echo(
                f"warning: at --speed {speed:g} zone visits last too few wall-clock seconds for the fuser "
                f"(use at most {MAX_BLE_SPEED:g}, or --presence model)",
                err=True,
            )
    live = LiveStore(
        config,
        host,
        port,
        topic_prefix=topic_prefix,
        camera_gateways=frozenset(camera_gateway),
        presence=mode,
    )
    stop = _stop_on_signals()
    live.start()
    try:
        n = 0
        while not stop.is_set() and (rounds == 0 or n < rounds):
            live.play(build(config, shoppers, seed + n), stop, speed=speed, seed=seed + n)
            n += 1
    finally:
        live.stop()
    typer.echo(json.dumps(dict(live.sent)))


@app.command()
@friendly
def contract(
    schema: Annotated[bool, typer.Option("--schema", help="Print every payload's JSON Schema.")] = False,
) -> None:
    """Print the wire contract: topics, QoS, retain, payload types (and JSON Schemas)."""
    from broker_config.contract import MAX_PAYLOAD_BYTES, SPECS, Topics

    topics = Topics()
    if schema:
        typer.echo(
            json.dumps({s.model.__name__: s.model.model_json_schema() for s in SPECS.values()}, indent=2)
        )
        return
    typer.echo(f"payload limit: {MAX_PAYLOAD_BYTES} bytes")
    for spec in SPECS.values():
        subject = "{id}" if None in spec.levels else None
        topic = topics.build(spec.kind, "{store}", subject)
        typer.echo(
            f"{topic:<45} {spec.model.__name__:<14} qos {spec.qos}{'  retained' if spec.retain else ''}"
        )


# -- demo and bench ----------------------------------------------------------------------


@app.command()
@friendly
def demo(
    store_config: StoreOpt = None,
    run_dir: Annotated[Path, typer.Option("--run-dir", help="Run directory of the demo.")] = DEFAULT_RUN_DIR
    / "demo",
    port: Annotated[int, typer.Option("--port", help="Port of the handheld pages (0 = any free).")] = 8080,
    speed: Annotated[float, typer.Option("--speed", help="Simulation speed.")] = 1.0,
) -> None:
    """Run a simulated store end to end: services, recommender, handheld pages, simulator."""
    from simulators.demo import run_demo

    run_demo(store_config or DEMO_STORE, run_dir, port=port, speed=speed)


@bench_app.command("e2e")
@friendly
def bench_e2e(
    rates: Annotated[
        str, typer.Option("--rates", help="Comma-separated event rates (events/s).")
    ] = "500,2000",
    duration_s: Annotated[float, typer.Option("--duration", help="Seconds per rate.")] = 20.0,
    out: Annotated[Path, typer.Option("--out", help="Where to write the JSON results.")] = Path(
        "bench/out/e2e.json"
    ),
) -> None:
    """Event -> prompt latency through the real broker, recommender and Redis, next to the floor."""
    from bench.e2e import run_bench

    run_bench(_comma_list(rates, "--rates", float, "numbers like 500,2000"), duration_s, out)


_N = TypeVar("_N", int, float)


def _comma_list(text: str, flag: str, convert: Callable[[str], _N], expected: str) -> list[_N]:
    """A comma-separated option's values, or one line naming the option and what it takes."""
    try:
        return [convert(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected {expected}") from None


# -- provisioning (broker accounts, TLS, bridge) -----------------------------------------

SecretsDir = Annotated[
    Path, typer.Option("--secrets", help="Secrets directory: broker passwords, ACL, certificates.")
]
DeviceId = Annotated[str, typer.Argument(help="The device's id in the store config (or the service name).")]


def _provision(
    kind: str, ident: str, secrets: Path, store_config: Path | None, run_dir: Path, prefix: str
) -> None:
    from broker_config.acl import DeviceKind
    from floorwalker.provision import CredentialStore
    from floorwalker.tls import CA_CERT

    ca = secrets / CA_CERT
    creds = CredentialStore(secrets, _store(store_config), topic_prefix=prefix).provision(
        DeviceKind(kind), ident, ca_file=ca.resolve() if ca.exists() else None
    )
    reloaded = Services(run_dir).reload_broker()
    typer.echo(
        f"{kind} {ident}: login {creds.username!r}; credentials in "
        f"{secrets / 'devices' / (creds.username + '.json')} (copy it to the device, mode 0600)"
        + ("; the running broker reloaded its accounts" if reloaded else "")
    )


def _provision_command(kind: str, doc: str) -> None:
    @provision_app.command(kind, help=doc)
    @friendly
    def command(
        ident: DeviceId,
        secrets: SecretsDir = Path(".run/secrets"),
        store_config: StoreOpt = None,
        run_dir: RunDir = DEFAULT_RUN_DIR,
        topic_prefix: TopicPrefix = "",
    ) -> None:
        _provision(kind, ident, secrets, store_config, run_dir, topic_prefix)


_provision_command("gateway", "A gateway's login: publishes only its own status/BLE and its zones' topics.")
_provision_command("pos", "A POS adapter's login: publishes only its lanes' checkouts.")
_provision_command(
    "handheld", "An associate's handheld: reads only its own prompts; writes its feedback/status."
)
_provision_command("service", "A store-server process: recommender, api, fuser, recorder or replay.")


@provision_app.command("revoke")
@friendly
def provision_revoke(
    kind: Annotated[str, typer.Argument(help="gateway, pos, handheld or service")],
    ident: DeviceId,
    secrets: SecretsDir = Path(".run/secrets"),
    store_config: StoreOpt = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    topic_prefix: TopicPrefix = "",
) -> None:
    """Remove a device's login and its ACL rules (the running broker reloads at once)."""
    from broker_config.acl import DeviceKind
    from floorwalker.provision import CredentialStore

    try:
        device_kind = DeviceKind(kind)
    except ValueError:
        raise ConfigError(
            f"kind {kind!r}: expected one of {', '.join(k.value for k in DeviceKind)}"
        ) from None
    store = CredentialStore(secrets, _store(store_config), topic_prefix=topic_prefix)
    if not store.revoke(device_kind, ident):
        raise ConfigError(f"no {kind} {ident!r} in {secrets}: nothing to revoke")
    reloaded = Services(run_dir).reload_broker()
    typer.echo(f"revoked {kind} {ident}" + ("; the running broker reloaded its accounts" if reloaded else ""))


@provision_app.command("tls")
@friendly
def provision_tls(
    hostname: Annotated[list[str], typer.Option("--hostname", help="Broker host name (repeatable).")],
    secrets: SecretsDir = Path(".run/secrets"),
    store_config: StoreOpt = None,
    days: Annotated[int, typer.Option("--days", help="Validity of the broker certificate.")] = 825,
) -> None:
    """Make the store CA (once) and a broker certificate signed by it for --hostname."""
    import datetime as dt

    from floorwalker.tls import CA_CERT, issue_server_cert, make_store_ca

    now = dt.datetime.now(dt.UTC)
    if not (secrets / CA_CERT).exists():
        make_store_ca(secrets, _store(store_config).store, now=now)
        typer.echo(f"store CA: {secrets / CA_CERT} (give this file to every device)")
    cert = issue_server_cert(secrets, hostname, now=now, days=days)
    typer.echo(f"broker certificate: {cert} for {', '.join(hostname)} and 127.0.0.1, {days} days")


@provision_app.command("bridge")
@friendly
def provision_bridge(
    central: Annotated[str, typer.Option("--central", help="host:port of the chain's central broker.")],
    credentials: Annotated[
        Path, typer.Option("--credentials", help="This store's login on the central broker (JSON).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Where to write the bridge config.")],
    store_config: StoreOpt = None,
    topic_prefix: TopicPrefix = "",
) -> None:
    """Write the Mosquitto bridge config that forwards this store's events to the central broker."""
    from floorwalker.bridge import render_bridge
    from floorwalker.provision import load_credentials

    host, _, port = central.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--central {central!r}: expected host:port")
    login = load_credentials(credentials)
    ca_file = login.ca_file
    if login.ca_pem is not None:  # Mosquitto reads its CA from a file: one next to the config
        ca_file = out.with_name(f"{out.stem}-ca.crt").resolve()
        ca_file.write_text(login.ca_pem)
    text = render_bridge(_store(store_config), login, host, int(port), topic_prefix, ca_file)
    out.write_text(text)
    out.chmod(0o600)
    typer.echo(f"bridge config: {out} (include it in the store broker's config with include_dir)")


# -- camera footfall (issue 5) ----------------------------------------------------------


@eval_app.command("footfall")
@friendly
def eval_footfall(
    video: Annotated[Path, typer.Argument(help="The video file, e.g. vtest.avi from Debian's opencv-doc.")],
    gt: Annotated[Path, typer.Option("--gt", help="Hand-counted line crossings (YAML).")],
    first: Annotated[int, typer.Option("--first-frame", help="Start at this frame.")] = 0,
    last: Annotated[int | None, typer.Option("--last-frame", help="Stop after this frame.")] = None,
    tolerance: Annotated[
        int, typer.Option("--tolerance", help="Frames a counted crossing may be off and still match.")
    ] = 15,
    threads: Annotated[int, typer.Option("--threads", help="onnxruntime threads.")] = 1,
    mot: Annotated[
        Path | None, typer.Option("--mot", help="Boxed people in some frames (MOT format): detector P/R.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the result as JSON here.")] = None,
    region: Annotated[
        list[str] | None,
        typer.Option("--region", help="x0,y0,x1,y1: a detect region (camera detect_regions); repeatable."),
    ] = None,
) -> None:
    """Run the camera pipeline on a video; compare line counts (and boxes) with ground truth."""
    from rich.console import Console
    from rich.table import Table

    from bench.footfall_eval import evaluate, load_mot, load_truth

    truth = load_truth(gt)
    boxes = load_mot(mot) if mot is not None else None
    regions = [_pixel_rect(r) for r in region or []]
    result = evaluate(
        video,
        truth,
        threads=threads,
        first_frame=first,
        last_frame=last,
        tolerance_frames=tolerance,
        mot=boxes,
        regions=regions,
    )
    table = Table(
        title=f"line {truth.line.id!r}: frames {first}..{first + result.frames - 1} of {video.name}"
    )
    for col in ("direction", "truth", "counted", "count error", "matched"):
        table.add_column(col, justify="right")
    for d in result.directions:
        table.add_row(d.direction, str(d.truth), str(d.counted), f"{d.count_error:+d}", str(d.matched))
    console = Console()
    console.print(table)
    console.print(
        f"count accuracy {result.count_accuracy:.1%}  crossing precision {result.precision:.1%}  "
        f"recall {result.recall:.1%}  (matched within {tolerance} frames)\n"
        f"pipeline {result.ms_per_frame:.1f} ms/frame ({1000 / max(result.ms_per_frame, 1e-9):.1f} fps, "
        f"{threads} thread(s), decoding not included)"
    )
    det = result.detection
    if det is not None:
        console.print(
            f"detector: precision {det.precision:.1%}  recall {det.recall:.1%}  (IoU >= 0.5; "
            f"{det.matched} of {det.truth} boxed people found, {det.detected} boxes, {det.frames} frames)"
        )
    for g in result.missed:
        console.print(f"  missed  frame {g.frame:>4} {g.direction:<3} {g.who}")
    for c in result.extra:
        console.print(f"  extra   frame {c.frame:>4} {c.direction:<3} track {c.track}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps(
                {
                    "video": result.video,
                    "frames": result.frames,
                    "directions": [
                        {
                            "direction": d.direction,
                            "truth": d.truth,
                            "counted": d.counted,
                            "matched": d.matched,
                        }
                        for d in result.directions
                    ],
                    "count_accuracy": result.count_accuracy,
                    "precision": result.precision,
                    "recall": result.recall,
                    "ms_per_frame": result.ms_per_frame,
                    "detection": None
                    if det is None
                    else {
                        "frames": det.frames,
                        "truth": det.truth,
                        "detected": det.detected,
                        "matched": det.matched,
                        "precision": det.precision,
                        "recall": det.recall,
                    },
                },
                indent=2,
            )
            + "\n"
        )


def _pixel_rect(text: str) -> tuple[int, int, int, int]:
    try:
        x0, y0, x1, y1 = (int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--region {text!r}: expected four whole numbers x0,y0,x1,y1 (pixels)") from None
    if x1 - x0 < 32 or y1 - y0 < 32 or min(x0, y0) < 0:
        raise ConfigError(f"--region {text!r}: needs 0 <= x0 < x1, 0 <= y0 < y1, at least 32 px each way")
    return x0, y0, x1, y1


@bench_app.command("footfall")
@friendly
def bench_footfall(
    video: Annotated[Path, typer.Option("--video", help="Video to run on.")] = Path(
        "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
    ),
    frames: Annotated[int, typer.Option("--frames", help="Frames to time.")] = 300,
    out: Annotated[Path, typer.Option("--out", help="Where to write the JSON results.")] = Path(
        "bench/out/footfall.json"
    ),
    regions: Annotated[
        int,
        typer.Option("--regions", help="Detect regions to run too (0-2; README: Camera footfall)."),
    ] = 1,
) -> None:
    """Frames per second of detector + tracker + counting on one core, and peak RSS."""
    from bench.footfall import run_footfall_bench

    if frames < 1:
        raise ConfigError(f"--frames {frames}: must be at least 1")
    if not 0 <= regions <= 2:
        raise ConfigError(f"--regions {regions}: must be 0, 1 or 2")
    run_footfall_bench(video, frames, out, regions=regions)


@app.command("camera-snapshot")
@friendly
def camera_snapshot(
    gateway_config: Annotated[Path, typer.Option("--gateway-config", help="The gateway YAML.")],
    out: Annotated[Path, typer.Option("--out", help="PNG to write (debug: the frame is stored here).")],
    camera: Annotated[str | None, typer.Option("--camera", help="Camera id (default: the first).")] = None,
) -> None:
    """Debug aid: grab one frame, draw the configured lines, zones and queues, write a PNG."""
    from edge_agent.camera.overlay import snapshot
    from edge_agent.gateway_config import load_gateway_config

    gw = load_gateway_config(gateway_config)
    cams = [c for c in gw.cameras if camera is None or c.id == camera]
    if not cams:
        raise ConfigError(
            f"{gateway_config}: no camera {camera!r} (have: {', '.join(c.id for c in gw.cameras)})"
        )
    snapshot(cams[0], out)
    typer.echo(f"wrote {out} (a camera frame: keep it on the gateway, delete it when done)")


# -- handheld sign-in tokens (issue 8) ---------------------------------------------------

token_app = typer.Typer(help="Sign-in tokens for handhelds and the dashboard.", no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("issue")
@friendly
def token_issue(
    associate: Annotated[str, typer.Option("--associate", "-a", help="Associate id in the store config.")],
    store_config: StoreOpt = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    redis_url: RedisUrl = None,
    key_prefix: KeyPrefix = "",
    role: Annotated[
        str | None, typer.Option("--role", help="associate or manager (default: the associate's role).")
    ] = None,
    ttl_hours: Annotated[float, typer.Option("--ttl-hours", help="Hours until the token expires.")] = 12.0,
    base_url: Annotated[
        str, typer.Option("--base-url", help="Where `floorwalker api` serves, for the sign-in link.")
    ] = "http://127.0.0.1:8080",
) -> None:
    """Issue a sign-in token (shown once; Redis keeps only its hash) and print the sign-in link."""
    from handheld.auth import issue_token
    from recommender.keys import Keys
    from recommender.service import connect_redis

    if role not in (None, "associate", "manager"):
        raise ConfigError(f"--role {role!r}: expected associate or manager")
    config = _store(store_config)
    client = connect_redis(_redis(run_dir, redis_url))
    try:
        issued = issue_token(
            client,
            Keys(config.store, key_prefix),
            config,
            associate,
            role="manager" if role == "manager" else "associate" if role else None,
            ttl_s=ttl_hours * 3600,
        )
    finally:
        client.close()
    typer.echo(f"token   {issued.token}")
    typer.echo(f"role    {issued.role} of store {issued.store}, for {issued.associate}")
    typer.echo(f"signin  {base_url.rstrip('/')}/signin?token={issued.token}")


@token_app.command("revoke")
@friendly
def token_revoke(
    associate: Annotated[str, typer.Option("--associate", "-a", help="Associate id in the store config.")],
    store_config: StoreOpt = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    redis_url: RedisUrl = None,
    key_prefix: KeyPrefix = "",
) -> None:
    """Revoke every token of an associate at once (their open pages get 401 on the next call)."""
    from handheld.auth import revoke_tokens
    from recommender.keys import Keys
    from recommender.service import connect_redis

    config = _store(store_config)
    client = connect_redis(_redis(run_dir, redis_url))
    try:
        n = revoke_tokens(client, Keys(config.store, key_prefix), associate)
    finally:
        client.close()
    typer.echo(f"revoked {n} token(s) of {associate}")


@bench_app.command("handheld")
@friendly
def bench_handheld(
    prompts: Annotated[int, typer.Option("--prompts", help="Prompts to send.")] = 2000,
    rate: Annotated[float, typer.Option("--rate", help="Prompts per second.")] = 200.0,
    pages: Annotated[int, typer.Option("--pages", help="Open handheld streams of the associate.")] = 3,
    out: Annotated[Path, typer.Option("--out", help="Where to write the JSON result.")] = Path(
        "bench/out/handheld.json"
    ),
) -> None:
    """Prompt on the broker -> SSE event on every open handheld page, next to a raw MQTT hop."""
    from bench.handheld import run_bench

    run_bench(prompts, rate, pages, out)


# -- next-best-action engine: outcome report, CRM check, decision benchmark --------------

report_app = typer.Typer(help="Reports from the store's Redis (outcomes of prompts).", no_args_is_help=True)
app.add_typer(report_app, name="report")
crm_app = typer.Typer(help="CRM data: check an import and see the derived segments.", no_args_is_help=True)
app.add_typer(crm_app, name="crm")


def _pct(v: tuple[float, float, float] | None) -> str:
    if v is None:
        return "-"
    return f"{v[0] * 100:5.1f}% [{v[1] * 100:.1f}, {v[2] * 100:.1f}]"


@report_app.command("outcomes")
@friendly
def report_outcomes(
    store_config: StoreOpt = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    redis_url: RedisUrl = None,
    key_prefix: KeyPrefix = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Acceptance, conversion and uplift against the holdout, per prompt kind (95% CIs)."""
    import redis as redis_lib
    from rich.console import Console
    from rich.table import Table

    from recommender.keys import Keys
    from recommender.outcomes import decode_stats, outcome_rows
    from recommender.service import connect_redis

    config = _store(store_config)
    client = connect_redis(_redis(run_dir, redis_url))
    try:
        raw: dict[bytes, bytes] = client.hgetall(Keys(config.store, key_prefix).stats)  # type: ignore[assignment]
    except redis_lib.RedisError as exc:
        raise ConfigError(f"cannot read the stats from Redis ({exc})") from None
    finally:
        client.close()
    rows = outcome_rows(decode_stats(raw))
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in rows], indent=2))
        return
    table = Table(title=f"Prompt outcomes, {config.name} (95% confidence intervals)")
    for col in (
        "kind",
        "prompted",
        "accepted",
        "dismissed",
        "acceptance",
        "converted",
        "conversion",
        "holdout",
        "holdout conv.",
        "uplift",
    ):
        table.add_column(col, justify="left" if col == "kind" else "right")
    for r in rows:
        table.add_row(
            r.kind,
            str(r.prompted),
            str(r.accepted),
            str(r.dismissed),
            _pct(r.acceptance),
            str(r.converted),
            _pct(r.conversion),
            str(r.holdout),
            _pct(r.holdout_conversion),
            _pct(r.uplift),
        )
    Console(width=160).print(table)


@crm_app.command("check")
@friendly
def crm_check(
    path: Annotated[
        Path, typer.Argument(help="A CRM JSON file or a directory with members.csv, purchases.csv.")
    ],
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Analyse as of this date (YYYY-MM-DD); default: now.")
    ] = None,
) -> None:
    """Import CRM data without loading it: rows skipped, CLV model, segments and lifecycle."""
    import time
    from collections import Counter
    from datetime import UTC, datetime

    from recommender.crm import derive_profiles, read_crm
    from recommender.profile import parse_profile
    from recommender.rfm import segment

    try:
        now = datetime.fromisoformat(as_of).replace(tzinfo=UTC).timestamp() if as_of else time.time()
    except ValueError:
        raise ConfigError(f"--as-of {as_of!r}: expected a date like 2026-01-31") from None
    imported = read_crm(path)
    for problem in imported.errors:
        typer.echo(f"skipped: {problem}")
    profiles, model = derive_profiles(imported.members, now)
    c = model.clv
    typer.echo(f"{len(imported.members)} members imported, {len(imported.errors)} rows skipped")
    typer.echo(
        f"BG/NBD r={c.r:.3f} alpha={c.alpha:.3f} a={c.a:.3f} b={c.b:.3f}; "
        f"Gamma-Gamma p={c.p:.2f} q={c.q:.2f} v={c.v:.2f} "
        f"({'fitted on this data' if c.fitted else 'the published CDNOW prior: too few repeat buyers'})"
    )
    stages: Counter[str] = Counter()
    segments: Counter[str] = Counter()
    clvs = []
    for member, raw in profiles.items():
        p = parse_profile(member, raw)
        if p is None:
            continue
        stages[p.lifecycle(now).value] += 1
        r, f, _ = p.rfm(model.rfm, now)
        segments[segment(r, f)] += 1
        clvs.append(p.clv)
    typer.echo("lifecycle: " + ", ".join(f"{k} {v}" for k, v in stages.most_common()))
    typer.echo("segments:  " + ", ".join(f"{k} {v}" for k, v in segments.most_common()))
    if clvs:
        clvs.sort()
        typer.echo(f"CLV (52 weeks): median {clvs[len(clvs) // 2]:.2f}, top {clvs[-1]:.2f}")


@bench_app.command("decide")
@friendly
def bench_decide(
    seconds: Annotated[float, typer.Option("--seconds", help="How long to measure.")] = 3.0,
    out: Annotated[Path, typer.Option("--out", help="Where to write the JSON results.")] = Path(
        "bench/out/decide.json"
    ),
) -> None:
    """Decisions/s of the pure decision core (eligibility, scoring, arbitration, wording) on one core."""
    from bench.decide import run_decide_bench

    run_decide_bench(seconds, out)


# -- simulators, traces and replay (issue 4) ---------------------------------------------


def _presence_mode(presence: str | None, config: StoreConfig) -> Literal["ble", "model"]:
    """``--presence``, by default ble when the store has the BLE key file."""
    mode = presence or ("ble" if config.ble_presence.secrets is not None else "model")
    if mode == "ble":
        if config.ble_presence.secrets is None:
            raise ConfigError(
                "--presence ble: the store config has no ble_presence.secrets (use --presence model)"
            )
        return "ble"
    if mode == "model":
        return "model"
    raise ConfigError(f"--presence {presence!r}: expected ble or model")


def _simulate_to(
    layout: Path,
    out: Path,
    *,
    hours: float,
    visitors: int,
    seed: int,
    start: str | None,
    presence: str | None,
) -> None:
    import datetime as dt
    import time

    from recommender.crm import read_fixture
    from simulators.day import simulate_day

    config = load_store_config(layout)
    t0: float | None = None
    if start == "now":
        t0 = time.time()
    elif start is not None:
        try:
            when = dt.datetime.fromisoformat(start)
        except ValueError:
            raise ConfigError(
                f"--start {start!r}: expected an ISO time like 2026-03-02T08:00+00:00, or now"
            ) from None
        t0 = (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()
    mode = _presence_mode(presence, config)
    started = time.perf_counter()
    day = simulate_day(
        config,
        read_fixture(config.crm) if config.crm else None,
        hours=hours,
        visitors=visitors,
        seed=seed,
        source=str(layout),
        start=t0,
        presence=mode,
    )
    trace, truth = day.write(out)
    typer.echo(
        f"{len(day.shoppers)} shoppers, {len(day.lines)} messages in {time.perf_counter() - started:.1f} s\n"
        f"trace  {trace}\ntruth  {truth}"
    )


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise ConfigError(f"--speed {text!r}: expected a factor like 1 or 10, or max")
    return value


@app.command()
@friendly
def replay(
    trace: Annotated[Path, typer.Argument(help="A trace file (from `simulate --out` or `record`).")],
    speed: Annotated[str, typer.Option("--speed", help="1 = as recorded, 10 = ten times faster, max.")] = "1",
    from_s: Annotated[
        float | None, typer.Option("--from", help="Start this many seconds after the first message.")
    ] = None,
    to_s: Annotated[
        float | None, typer.Option("--to", help="Stop this many seconds after the first message.")
    ] = None,
    topic: Annotated[
        str | None, typer.Option("--topic", help="Only topics matching this MQTT filter (+ and # allowed).")
    ] = None,
    keep_time: Annotated[
        bool, typer.Option("--keep-time", help="Send the recorded bytes as they are (default: ts = now).")
    ] = False,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    mqtt_url: MqttUrl = None,
    topic_prefix: TopicPrefix = "",
    mqtt_credentials: MqttCredentials = None,
) -> None:
    """Publish a trace onto the broker with its timing scaled, so the system reacts as if live."""
    import uuid

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from floorwalker.mqtt import MqttLink
    from simulators.replay import ReplayOptions
    from simulators.replay import replay as run_replay
    from simulators.trace import TraceReader

    options = ReplayOptions(_speed(speed), from_s, to_s, topic, topic_prefix, retime=not keep_time)
    auth = _auth(mqtt_credentials, "replay")
    reader = TraceReader(trace)
    with trace.open("rb") as f:
        total = max(0, sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b"")) - 1)
    host, port = _mqtt(run_dir, mqtt_url)
    link = MqttLink(host, port, client_id=f"replay-{uuid.uuid4().hex[:8]}", auth=auth)
    link.connect()
    stop = _stop_on_signals()
    columns = (TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, transient=False) as progress:
            task = progress.add_task("replay", total=total)
            result = run_replay(reader, link, options, stop=stop, on_sent=lambda _l: progress.advance(task))
            progress.update(task, completed=total)
    finally:
        link.close()
    typer.echo(
        f"sent {result.sent} messages ({', '.join(f'{k} {n}' for k, n in sorted(result.by_kind.items()))})"
        f" in {result.wall_s:.1f} s ({result.rate:.0f}/s) covering {result.trace_s:.0f} s of trace;"
        f" {result.filtered_out} outside --from/--to/--topic" + ("; stopped early" if result.stopped else "")
    )
    if reader.bad:
        typer.secho(f"warning: {reader.describe_bad()}", fg=typer.colors.YELLOW, err=True)


@app.command()
@friendly
def record(
    out: Annotated[Path, typer.Option("--out", help="Trace file to write.")],
    store_config: StoreOpt = None,
    duration: Annotated[
        float, typer.Option("--duration", help="Stop after this many seconds (0 = until Ctrl-C).")
    ] = 0.0,
    topic: Annotated[
        list[str] | None, typer.Option("--topic", help="MQTT filter(s) (default: the whole store).")
    ] = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    mqtt_url: MqttUrl = None,
    topic_prefix: TopicPrefix = "",
    mqtt_credentials: MqttCredentials = None,
) -> None:
    """Capture a store's live MQTT traffic into the trace format (Ctrl-C to stop)."""
    from simulators.record import Recorder

    config = _store(store_config)
    host, port = _mqtt(run_dir, mqtt_url)
    recorder = Recorder(
        out,
        config.store,
        host,
        port,
        topic_prefix=topic_prefix,
        filters=topic or (),
        auth=_auth(mqtt_credentials, "recorder"),
    )
    stop = _stop_on_signals()
    recorder.start()
    typer.echo(f"recording {', '.join(recorder.filters)} into {out} (Ctrl-C to stop)")
    try:
        stop.wait(duration if duration > 0 else None)
    finally:
        recorder.stop()
    typer.echo(f"recorded {recorder.count} messages into {out}")


@app.command()
@friendly
def evaluate(
    trace: Annotated[Path, typer.Argument(help="The input trace that was (or is to be) replayed.")],
    truth: Annotated[Path, typer.Option("--truth", help="Its ground truth (truth.json from `simulate`).")],
    outputs: Annotated[
        Path | None,
        typer.Option(
            "--outputs", help="A recorded trace of the system's prompts (default: replay and listen)."
        ),
    ] = None,
    report_dir: Annotated[Path, typer.Option("--report", help="Where to write report.md and PNGs.")] = Path(
        "eval-report"
    ),
    start_system: Annotated[
        bool,
        typer.Option("--start-system", help="Start our own services and a recommender for the replay."),
    ] = False,
    speed: Annotated[str, typer.Option("--speed", help="Replay speed when replaying (1, 10, max).")] = "max",
    store_config: StoreOpt = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    mqtt_url: MqttUrl = None,
    topic_prefix: TopicPrefix = "",
) -> None:
    """Replay a trace (or read recorded outputs), compare with ground truth, write a report."""
    from simulators.evaluate import Output, score, summary, write_report
    from simulators.trace import TraceReader, load_truth

    reader = TraceReader(trace)
    truth_data = load_truth(truth)
    captured: list[Output]
    clock = None
    if outputs is not None:
        out_reader = TraceReader(outputs)
        captured = [Output(None, line.topic, line.payload) for line in out_reader]
    else:
        captured, result = _replay_and_capture(
            reader, store_config, run_dir, mqtt_url, topic_prefix, _speed(speed), start_system
        )
        clock = result.to_trace_time
    report = score(reader, truth_data, captured, bad_lines=len(reader.bad), to_trace_time=clock)
    if outputs is None and speed == "max":
        report.note = (
            "Replayed at max speed: latency includes queueing behind the replay's backlog; "
            "replay at --speed 1 for live-like latency."
        )
    path = write_report(report, report_dir)
    typer.echo(json.dumps(summary(report)))
    typer.echo(f"report {path}")
    if reader.bad:
        typer.secho(f"warning: {reader.describe_bad()}", fg=typer.colors.YELLOW, err=True)


def _replay_and_capture(
    reader: TraceReader,
    store_config: Path | None,
    run_dir: Path,
    mqtt_url: str | None,
    topic_prefix: str,
    speed: float | None,
    start_system: bool,
) -> tuple[list[Output], ReplayResult]:
    """Replay ``reader`` onto a broker (ours, started here, or a running one) and capture outputs."""
    import shutil
    import tempfile
    import uuid

    from simulators.harness import RecommenderProcess, replay_and_capture
    from simulators.replay import ReplayOptions

    layout = store_config or DEMO_STORE
    config = load_store_config(layout)
    if not start_system:
        options = ReplayOptions(speed=speed, topic_prefix=topic_prefix)
        outputs, result, _ = replay_and_capture(reader, config, _mqtt(run_dir, mqtt_url), options)
        typer.echo(f"replayed {result.sent} messages, captured {len(outputs)} outputs")
        return outputs, result
    work = Path(tempfile.mkdtemp(prefix="floorwalker-evaluate-"))
    services = Services(work / "services")
    ep = services.up()
    prefix = f"eval{uuid.uuid4().hex[:8]}/"
    rec = RecommenderProcess(config, layout, ep, prefix, work)
    try:
        rec.start()
        options = ReplayOptions(speed=speed, topic_prefix=prefix)
        outputs, result, done = replay_and_capture(
            reader, config, (ep.mqtt_host, ep.mqtt_port), options, recommender=rec
        )
    finally:
        rec.stop()
        services.down()
    typer.echo(
        f"replayed {result.sent} messages in {result.wall_s:.1f} s; the recommender handled them all "
        + (f"after {done:.1f} s" if done is not None else f"NOT within the timeout (logs in {work})")
        + f"; captured {len(outputs)} outputs"
    )
    if done is not None:
        shutil.rmtree(work, ignore_errors=True)
    return outputs, result


@bench_app.command("simulate")
@friendly
def bench_simulate(
    visitors: Annotated[int, typer.Option("--visitors", help="Expected visitors in the day.")] = 5000,
    hours: Annotated[float, typer.Option("--hours", help="Hours from opening.")] = 13.0,
    layout: Annotated[
        Path | None, typer.Option("--layout", help="Store layout (default: the 20-zone big store).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Where to write the JSON results.")] = Path(
        "bench/out/simulate.json"
    ),
) -> None:
    """Generate a full day (20 zones, 5 000 visitors) and replay it at max speed through the system."""
    from bench.simulate import run_simulate_bench

    run_simulate_bench(layout or BIG_STORE, visitors, hours, out)


# -- BLE presence: fuser, evaluation, calibration, benchmark -----------------------------

calibrate_app = typer.Typer(
    help="Calibrate sensors from recordings at known positions.", no_args_is_help=True
)
app.add_typer(calibrate_app, name="calibrate")


@app.command()
@friendly
def fuser(
    store_config: StoreOpt = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    mqtt_url: MqttUrl = None,
    topic_prefix: TopicPrefix = "",
    mqtt_credentials: MqttCredentials = None,
) -> None:
    """Resolve gateways' rotating BLE ids and fuse them into zone enter/leave presence events."""
    from presence.fuser import FuserService

    config = _store(store_config)
    host, port = _mqtt(run_dir, mqtt_url)
    service = FuserService(
        config, Endpoints(host, port, ""), topic_prefix=topic_prefix, auth=_auth(mqtt_credentials, "fuser")
    )
    stop = _stop_on_signals()

    def stop_when_signalled() -> None:
        stop.wait()
        service.stop()

    threading.Thread(target=stop_when_signalled, daemon=True).start()
    service.run()


@eval_app.command("presence")
@friendly
def eval_presence(
    trace: Annotated[Path, typer.Argument(help="Advertisements, JSONL (the replay format).")],
    truth: Annotated[Path, typer.Option("--truth", help="Position samples, JSONL (ground truth).")],
    store_config: StoreOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the figures as JSON here.")] = None,
    survey: Annotated[
        Path | None, typer.Option("--survey", help="Site-survey file to use instead of the config's.")
    ] = None,
) -> None:
    """Zone accuracy, neighbour confusion and zone-change delay of BLE presence on a trace."""
    from bench.presence_eval import run_eval
    from presence.fuser import resolver_for

    config = _store(store_config)
    if survey is not None:
        ble = config.ble_presence.model_copy(update={"survey": survey})
        config = config.model_copy(update={"ble_presence": ble})
    report = run_eval(config, resolver_for(config), trace, truth)
    _print_presence(report.as_dict())
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report.as_dict(), indent=2) + "\n")


def _print_presence(r: dict[str, object]) -> None:
    def pct(v: object) -> str:
        return f"{100 * float(str(v)):.1f} %"

    def sec(v: object) -> str:
        return "-" if v is None else f"{float(str(v)):.2f} s"

    typer.echo(f"zone accuracy            {pct(r['accuracy'])}  ({r['samples']} samples; target >= 95 %)")
    typer.echo(f"  near zone boundaries   {pct(r['boundary_accuracy'])}  ({r['boundary_samples']} samples)")
    typer.echo(f"neighbour share of errors {pct(r['neighbour_share_of_errors'])}")
    typer.echo(f"zone-change delay        median {sec(r['median_delay_s'])}, p90 {sec(r['p90_delay_s'])}"
               f"  (target median <= 2 s; {r['missed_stays']} of {r['stays']} stays missed)")  # fmt: skip
    confusion = r["confusion"]
    assert isinstance(confusion, list)
    for truth_zone, guess, count in confusion:
        typer.echo(f"  {truth_zone:>10} taken for {guess:<10} {count}")


@eval_app.command("presence-trace")
@friendly
def eval_presence_trace(
    out_dir: Annotated[Path, typer.Argument(help="Where to write trace.jsonl and truth.jsonl.")],
    store_config: StoreOpt = None,
    seed: Annotated[int, typer.Option("--seed", help="Walks and radio seed.")] = 1,
    rounds: Annotated[int, typer.Option("--rounds", help="Walks per consenting member.")] = 1,
    survey: Annotated[
        bool,
        typer.Option("--survey", help="Also a site-survey walk before opening (survey*.jsonl)."),
    ] = False,
) -> None:
    """Make an evaluation trace: demo walks of the CRM's consenting members through the RF model."""

    from bench.presence_eval import demo_walks, write_trace, write_truth
    from floorwalker.ble_keys import read_key_file
    from recommender.crm import read_fixture
    from simulators.ble_radio import RadioModel

    config = _store(store_config)
    if config.crm is None or config.ble_presence.secrets is None:
        raise ConfigError(
            "the store config needs `crm` and `ble_presence.secrets` to simulate members' phones"
        )
    members = [m.member for m in read_fixture(config.crm).members if m.consent.recognition]
    key = bytes.fromhex(read_key_file(config.ble_presence.secrets).store_key)
    out_dir.mkdir(parents=True, exist_ok=True)
    walks = []
    for r in range(rounds):
        walks += demo_walks(config, members, start=1_800_000_000.0 + r * 3600, seed=seed + r)
    walks.sort(key=lambda s: s.ts)
    radio = RadioModel(config, key, seed=seed)
    if survey:
        from presence.survey import survey_walk

        # Same store, same radio (one model), an hour before the walks: the calibration
        # phone walked up and down the floor.
        path = survey_walk(config, start=1_800_000_000.0 - 3600, member="survey-phone")
        n = write_trace(out_dir / "survey.jsonl", radio.hear(path))
        write_truth(out_dir / "survey-walk.jsonl", path)
        typer.echo(f"{n} survey advertisements -> {out_dir / 'survey.jsonl'} (walk: survey-walk.jsonl)")
    n = write_trace(out_dir / "trace.jsonl", radio.hear(walks))
    write_truth(out_dir / "truth.jsonl", walks)
    typer.echo(
        f"{n} advertisements -> {out_dir / 'trace.jsonl'}\n{len(walks)} samples -> {out_dir / 'truth.jsonl'}"
    )


@calibrate_app.command("survey")
@friendly
def calibrate_survey(
    trace: Annotated[Path, typer.Argument(help="The survey recording (JSONL, replay format).")],
    walk: Annotated[Path, typer.Option("--walk", help="Where the survey phone was when (truth JSONL).")],
    out: Annotated[Path, typer.Option("--out", help="The survey file to write (JSON).")],
    store_config: StoreOpt = None,
) -> None:
    """Learn each gateway's RSSI residual over the floor from a site-survey walk."""
    from bench.presence_eval import read_truth, trace_records
    from presence.survey import build_survey

    config = _store(store_config)
    survey_map = build_survey(config, trace_records(trace), read_truth(walk))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(survey_map.to_json() + "\n")
    gws = ", ".join(sorted(survey_map.residual_db))
    typer.echo(f"{out}: residual maps for {gws}; set `ble_presence: {{survey: {out}}}` in the store config")


@calibrate_app.command("ble")
@friendly
def calibrate_ble(
    trace: Annotated[Path, typer.Argument(help="Recorded advertisements (JSONL, replay format).")],
    points: Annotated[Path, typer.Option("--points", help="YAML: where the phone was when.")],
    store_config: StoreOpt = None,
) -> None:
    """Fit each gateway's measured power and path-loss exponent; print the config's `ble:` lines."""
    from bench.presence_eval import trace_records
    from edge_agent.ble.calibration import as_yaml, calibrate, read_points

    config = _store(store_config)
    fits = calibrate(config, read_points(points), trace_records(trace))
    if not fits:
        raise ConfigError(f"{trace}: no gateway heard the phone at 2 or more points (>= 5 adverts each)")
    typer.echo(as_yaml(fits), nl=False)


@calibrate_app.command("record")
@friendly
def calibrate_record(
    gateway: Annotated[str, typer.Option("--gateway", "-g", help="Which gateway's scanner config to use.")],
    out: Annotated[Path, typer.Option("--out", help="The trace to write (JSONL, replay format).")],
    seconds: Annotated[float, typer.Option("--seconds", help="How long to record.")] = 300.0,
    store_config: StoreOpt = None,
) -> None:
    """Record what this gateway's scanner hears (e.g. while walking the calibration phone round)."""
    from edge_agent.ble.scanner import make_scanner, record
    from floorwalker.config import BleakScannerConfig

    config = _store(store_config)
    gw = next((g for g in config.gateways if g.id == gateway), None)
    if gw is None:
        raise ConfigError(f"gateway {gateway!r} is not in store {config.store!r}")
    scanner = make_scanner(gw.scanner or BleakScannerConfig(), gateway)
    stop = _stop_on_signals()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    try:
        n = record(scanner, gateway, out, stop)
    finally:
        timer.cancel()
    typer.echo(f"{n} advertisements -> {out}" + (f" ({scanner.status})" if scanner.status else ""))


@bench_app.command("ble")
@friendly
def bench_ble(
    store_config: StoreOpt = None,
    rounds: Annotated[int, typer.Option("--rounds", help="Walks per consenting member as input.")] = 2,
    repeats: Annotated[int, typer.Option("--repeats", help="Timed runs (the best counts).")] = 3,
    out: Annotated[Path, typer.Option("--out", help="Where to write the JSON results.")] = Path(
        "bench/out/ble.json"
    ),
) -> None:
    """Adverts/s through parse + smooth + resolve + fuse on one core."""
    from rich.console import Console

    from bench.ble import print_ble, run_ble_bench

    print_ble(run_ble_bench(_store(store_config), out, rounds=rounds, repeats=repeats), Console())


# -- privacy: erasure (issue 9) ---------------------------------------------------------

member_app = typer.Typer(help="A member's data: erasure.", no_args_is_help=True)
app.add_typer(member_app, name="member")


@member_app.command("erase")
@friendly
def member_erase(
    member: Annotated[str, typer.Argument(help="The member's pseudonymous id (m_...).")],
    store_config: StoreOpt = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    mqtt_url: MqttUrl = None,
    redis_url: RedisUrl = None,
    topic_prefix: TopicPrefix = "",
    key_prefix: KeyPrefix = "",
    mqtt_credentials: MqttCredentials = None,
) -> None:
    """Erase a member now: Redis data, prompts, outboxes (retained notice), BLE ids; leave a tombstone.

    On a secured broker it logs in as the recommender service (--mqtt-credentials)."""
    from pydantic import TypeAdapter, ValidationError

    from broker_config.contract import MemberRef, Topics
    from floorwalker.mqtt import MqttLink
    from recommender.erasure import erase_member
    from recommender.keys import Keys
    from recommender.service import connect_redis

    try:
        TypeAdapter(MemberRef).validate_python(member)
    except ValidationError:
        raise ConfigError(
            f"member {member!r}: not a member id (expected m_ and 6 to 40 letters or digits)"
        ) from None
    config = _store(store_config)
    host, port = _mqtt(run_dir, mqtt_url)
    auth = _auth(mqtt_credentials, "recommender")
    client = connect_redis(_redis(run_dir, redis_url))
    link = MqttLink(host, port, client_id=f"{topic_prefix.replace('/', '-')}erase-{member}", auth=auth)
    link.connect()
    t0 = time.perf_counter()
    try:
        done = erase_member(
            client, Keys(config.store, key_prefix), Topics(topic_prefix), config, member, time.time(), link
        )
    finally:
        link.close()
        client.close()
    ms = (time.perf_counter() - t0) * 1000
    typer.echo(
        f"erased {member} in {ms:.0f} ms: {done.keys_deleted} keys, {done.prompts_deleted} prompt records, "
        f"{done.stream_entries_deleted} handheld entries, {done.deadletters_deleted} dead letters; "
        f"BLE ids {'revoked' if done.ble_revoked else 'not configured'}; tombstone left, notice retained"
    )


@bench_app.command("outbox")
@friendly
def bench_outbox(
    events: Annotated[int, typer.Option("--events", help="Events to write and acknowledge.")] = 50_000,
    out: Annotated[Path, typer.Option("--out", help="Where to write the JSON results.")] = Path(
        "bench/out/outbox.json"
    ),
) -> None:
    """The gateway outbox: committed inserts/s, acks/s, bytes per event, 72 h of a busy store."""
    from bench.outbox import run_outbox_bench

    if events < 100:
        raise ConfigError(f"--events {events}: use at least 100")
    run_outbox_bench(events, out)


# -- deploy and scale out (issue 10) ------------------------------------------------------


@bench_app.command("scale")
@friendly
def bench_scale(
    replicas: Annotated[
        str, typer.Option("--replicas", help="Replica counts to run, comma-separated.")
    ] = "1,2,3",
    rate: Annotated[float, typer.Option("--rate", help="Offered presence events per second.")] = 1500.0,
    seconds: Annotated[float, typer.Option("--seconds", help="Length of each trace.")] = 3.0,
    out: Annotated[Path, typer.Option("--out", help="Where to write the JSON results.")] = Path(
        "bench/out/scale.json"
    ),
) -> None:
    """Recommender replicas (1, 2, 3) on a local 3-master Redis Cluster behind one shared subscription."""
    from bench.scale import run_scale_bench

    counts = _comma_list(replicas, "--replicas", int, "counts like 1,2,3")
    if not counts or min(counts) < 1 or rate <= 0 or seconds <= 0:
        raise ConfigError("--replicas needs counts >= 1, --rate and --seconds must be > 0")
    run_scale_bench(counts, rate, seconds, out)


def entrypoint() -> None:  # pragma: no cover - thin wrapper for `python -m floorwalker`
    app(prog_name="floorwalker")


if __name__ == "__main__":  # pragma: no cover
    entrypoint()
