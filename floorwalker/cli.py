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
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar
from urllib.parse import urlsplit

import typer

from floorwalker import __version__
from floorwalker.config import Endpoints, StoreConfig, load_store_config
from floorwalker.errors import ConfigError, FloorwalkerError
from floorwalker.services import Services

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
    ble_replay: Annotated[
        Path | None,
        typer.Option("--ble-replay", help="Scan BLE from this recorded trace (JSONL) instead of the radio."),
    ] = None,
    ble_speed: Annotated[float, typer.Option("--ble-speed", help="Replay speed (1 = as recorded).")] = 1.0,
) -> None:
    """Run a gateway: retained online status, last will offline, heartbeats (and BLE scanning)."""
    from edge_agent.agent import run_gateway
    from floorwalker.config import ReplayScannerConfig

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
        heartbeat_s=heartbeat_s,
        scanner=scanner,
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
            help="With --out: 'ble' (RF model -> gateways' BLE reports -> the fuser's presence) or "
            "'model' (presence events from a simple error model). Default: ble when the store "
            "has ble_presence.secrets.",
        ),
    ] = None,
) -> None:
    """With --out: write a simulated day's trace and ground truth (deterministic for --seed).
    Without: play scripted shoppers live onto the broker as the store's gateways and tills."""
    if out is not None:
        _simulate_to(
            store_config or demo_store_path(), out, hours=hours, visitors=visitors, seed=seed, start=start,
            presence=presence,
        )  # fmt: skip
        return
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


# -- simulators, traces and replay (issue 4) ---------------------------------------------


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
    mode = presence or ("ble" if config.ble_presence.secrets is not None else "model")
    if mode not in ("ble", "model"):
        raise ConfigError(f"--presence {presence!r}: expected ble or model")
    started = time.perf_counter()
    day = simulate_day(
        config,
        read_fixture(config.crm) if config.crm else None,
        hours=hours,
        visitors=visitors,
        seed=seed,
        source=str(layout),
        start=t0,
        presence="ble" if mode == "ble" else "model",
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
) -> None:
    """Publish a trace onto the broker with its timing scaled, so the system reacts as if live."""
    import uuid

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from floorwalker.mqtt import MqttLink
    from simulators.replay import ReplayOptions
    from simulators.replay import replay as run_replay
    from simulators.trace import TraceReader

    options = ReplayOptions(_speed(speed), from_s, to_s, topic, topic_prefix, retime=not keep_time)
    reader = TraceReader(trace)
    with trace.open("rb") as f:
        total = max(0, sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b"")) - 1)
    host, port = _mqtt(run_dir, mqtt_url)
    link = MqttLink(host, port, client_id=f"replay-{uuid.uuid4().hex[:8]}")
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
) -> None:
    """Capture a store's live MQTT traffic into the trace format (Ctrl-C to stop)."""
    from simulators.record import Recorder

    config = _store(store_config)
    host, port = _mqtt(run_dir, mqtt_url)
    recorder = Recorder(out, config.store, host, port, topic_prefix=topic_prefix, filters=topic or ())
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

    layout = store_config or demo_store_path()
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
    from simulators.bench import run_simulate_bench

    run_simulate_bench(layout or big_store_path(), visitors, hours, out)


def big_store_path() -> Path:
    import simulators

    return Path(simulators.__file__).resolve().parent / "data" / "big_store.yaml"


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
) -> None:
    """Resolve gateways' rotating BLE ids and fuse them into zone enter/leave presence events."""
    from recommender.fuser import FuserService

    config = _store(store_config)
    host, port = _mqtt(run_dir, mqtt_url)
    service = FuserService(config, Endpoints(host, port, ""), topic_prefix=topic_prefix)
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
) -> None:
    """Zone accuracy, neighbour confusion and zone-change delay of BLE presence on a trace."""
    from recommender.fuser import resolver_for
    from recommender.presence_eval import run_eval

    config = _store(store_config)
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
) -> None:
    """Make an evaluation trace: demo walks of the CRM's consenting members through the RF model."""

    from recommender.crm import read_fixture
    from recommender.eid_resolver import read_key_file
    from recommender.presence_eval import demo_walks, write_trace, write_truth
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
    n = write_trace(out_dir / "trace.jsonl", RadioModel(config, key, seed=seed).hear(walks))
    write_truth(out_dir / "truth.jsonl", walks)
    typer.echo(
        f"{n} advertisements -> {out_dir / 'trace.jsonl'}\n{len(walks)} samples -> {out_dir / 'truth.jsonl'}"
    )


@calibrate_app.command("ble")
@friendly
def calibrate_ble(
    trace: Annotated[Path, typer.Argument(help="Recorded advertisements (JSONL, replay format).")],
    points: Annotated[Path, typer.Option("--points", help="YAML: where the phone was when.")],
    store_config: StoreOpt = None,
) -> None:
    """Fit each gateway's measured power and path-loss exponent; print the config's `ble:` lines."""
    from edge_agent.ble_calibration import as_yaml, calibrate, read_points
    from recommender.presence_eval import trace_records

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
    from edge_agent.scanner import make_scanner, record
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

    from recommender.ble_bench import print_ble, run_ble_bench

    print_ble(run_ble_bench(_store(store_config), out, rounds=rounds, repeats=repeats), Console())


def entrypoint() -> None:  # pragma: no cover - thin wrapper for `python -m floorwalker`
    app(prog_name="floorwalker")


if __name__ == "__main__":  # pragma: no cover
    entrypoint()
