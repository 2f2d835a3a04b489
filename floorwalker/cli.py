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
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, ParamSpec, TypeVar
from urllib.parse import urlsplit

import typer

from floorwalker import __version__
from floorwalker.config import Endpoints, StoreConfig, load_store_config
from floorwalker.errors import ConfigError, FloorwalkerError
from floorwalker.services import Services

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

DEFAULT_RUN_DIR = Path(os.environ.get("FLOORWALKER_RUN_DIR", ".run"))


def demo_store_path() -> Path:
    import simulators

    return Path(simulators.__file__).resolve().parent / "data" / "demo_store.yaml"


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
    return load_store_config(path or demo_store_path())


def _mqtt(run_dir: Path, mqtt_url: str | None) -> tuple[str, int]:
    if mqtt_url is None:
        ep = Services(run_dir).endpoints()
        return ep.mqtt_host, ep.mqtt_port
    parts = urlsplit(mqtt_url)
    try:
        port = parts.port or 1883
    except ValueError:
        port = 0
    if parts.scheme != "mqtt" or not parts.hostname or not port:
        raise ConfigError(f"--mqtt-url {mqtt_url!r}: expected mqtt://host:port")
    return parts.hostname, port


def _redis(run_dir: Path, redis_url: str | None) -> str:
    if redis_url is None:
        return Services(run_dir).endpoints().redis_url
    if urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"--redis-url {redis_url!r}: expected redis://host:port/db")
    return redis_url


def _endpoints(run_dir: Path, mqtt_url: str | None, redis_url: str | None) -> Endpoints:
    host, port = _mqtt(run_dir, mqtt_url)
    return Endpoints(host, port, _redis(run_dir, redis_url))


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
) -> None:
    """Start Mosquitto and Redis from broker_config/ on loopback; print their URLs."""
    ep = Services(run_dir, mqtt_port=mqtt_port, redis_port=redis_port).up()
    typer.echo(f"mqtt   {ep.mqtt_url}\nredis  {ep.redis_url}\n(recorded in {run_dir / 'services.json'})")


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
) -> None:
    """Consume presence and checkout events; publish prompts to associates' handhelds."""
    from recommender.service import RecommenderService

    config = _store(store_config)
    ep = _endpoints(run_dir, mqtt_url, redis_url)
    service = RecommenderService(
        config,
        ep,
        topic_prefix=topic_prefix,
        key_prefix=key_prefix,
        client_id=client_id,
        load_crm=load_crm,
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
    gateway: Annotated[str, typer.Option("--gateway", "-g", help="This gateway's id in the store config.")],
    store_config: StoreOpt = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    mqtt_url: MqttUrl = None,
    topic_prefix: TopicPrefix = "",
    heartbeat_s: Annotated[
        float, typer.Option("--heartbeat", help="Seconds between status heartbeats.")
    ] = 30.0,
) -> None:
    """Run a gateway: retained online status, last will offline, heartbeats."""
    from edge_agent.agent import run_gateway

    config = _store(store_config)
    host, port = _mqtt(run_dir, mqtt_url)
    run_gateway(
        config, gateway, host, port, _stop_on_signals(), topic_prefix=topic_prefix, heartbeat_s=heartbeat_s
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
) -> None:
    """Serve the associates' handheld pages (live prompts over Server-Sent Events)."""
    from floorwalker.api import run_api

    config = _store(store_config)
    ep = _endpoints(run_dir, mqtt_url, redis_url)
    run_api(
        config,
        ep,
        host=host,
        port=port,
        topic_prefix=topic_prefix,
        key_prefix=key_prefix,
    )


@app.command()
@friendly
def simulate(
    store_config: StoreOpt = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    mqtt_url: MqttUrl = None,
    topic_prefix: TopicPrefix = "",
    seed: Annotated[int, typer.Option("--seed", help="Scenario seed.")] = 1,
    speed: Annotated[float, typer.Option("--speed", help="1 = real time, 10 = ten times faster.")] = 1.0,
    non_members: Annotated[int, typer.Option("--non-members", help="Non-member shoppers per round.")] = 4,
    rounds: Annotated[int, typer.Option("--rounds", help="Rounds to play; 0 = until stopped.")] = 0,
) -> None:
    """Play simulated shoppers onto the broker as the store's gateways and POS lanes."""
    from recommender.crm import read_fixture
    from simulators.live import LiveStore, shoppers_from
    from simulators.scenario import build

    config = _store(store_config)
    if config.crm is None:
        raise ConfigError("the store config has no `crm` fixture, so there are no members to simulate")
    if speed <= 0:
        raise ConfigError(f"--speed {speed}: must be greater than 0")
    host, port = _mqtt(run_dir, mqtt_url)
    shoppers = shoppers_from(read_fixture(config.crm), non_members)
    live = LiveStore(config, host, port, topic_prefix=topic_prefix)
    stop = _stop_on_signals()
    live.start()
    try:
        n = 0
        while not stop.is_set() and (rounds == 0 or n < rounds):
            live.play(build(config, shoppers, seed + n), stop, speed=speed)
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
    from floorwalker.demo import run_demo

    run_demo(store_config or demo_store_path(), run_dir, port=port, speed=speed)


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
    from floorwalker.bench import run_bench

    try:
        parsed = [float(r) for r in rates.split(",") if r.strip()]
    except ValueError:
        raise ConfigError(f"--rates {rates!r}: expected numbers like 500,2000") from None
    run_bench(parsed, duration_s, out)


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
    from floorwalker.bench_decide import run_decide_bench

    run_decide_bench(seconds, out)


def entrypoint() -> None:  # pragma: no cover - thin wrapper for `python -m floorwalker`
    app(prog_name="floorwalker")


if __name__ == "__main__":  # pragma: no cover
    entrypoint()
