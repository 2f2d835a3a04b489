"""Traces: ``replay`` one onto the broker, ``record`` one from it, ``evaluate`` the system on one.

The root module registers these commands on the app (in the order of its help).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from floorwalker.cli.options import (
    DEFAULT_RUN_DIR,
    MqttCredentials,
    MqttUrl,
    RunDir,
    StoreOpt,
    TopicPrefix,
    friendly,
    load_store,
    mqtt_address,
    mqtt_auth,
    stop_on_signals,
)
from floorwalker.config import load_store_config
from floorwalker.errors import ConfigError
from simulators.stores import DEMO_STORE

if TYPE_CHECKING:
    from simulators.evaluate import Output
    from simulators.replay import ReplayResult
    from simulators.service_level import ServiceLevel
    from simulators.trace import TraceLine, TraceReader


def _messages_in(trace: Path) -> int:
    """The lines of a trace after its header (what a progress bar counts to)."""
    with trace.open("rb") as f:
        return max(0, sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b"")) - 1)


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
    auth = mqtt_auth(mqtt_credentials, "replay")
    reader = TraceReader(trace)
    total = _messages_in(trace)
    host, port = mqtt_address(run_dir, mqtt_url)
    link = MqttLink(host, port, client_id=f"replay-{uuid.uuid4().hex[:8]}", auth=auth)
    link.connect()
    stop = stop_on_signals()
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

    config = load_store(store_config)
    host, port = mqtt_address(run_dir, mqtt_url)
    recorder = Recorder(
        out,
        config.store,
        host,
        port,
        topic_prefix=topic_prefix,
        filters=topic or (),
        auth=mqtt_auth(mqtt_credentials, "recorder"),
    )
    stop = stop_on_signals()
    recorder.start()
    typer.echo(f"recording {', '.join(recorder.filters)} into {out} (Ctrl-C to stop)")
    try:
        stop.wait(duration if duration > 0 else None)
    finally:
        recorder.stop()
    typer.echo(f"recorded {recorder.count} messages into {out}")


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
    staffed: Annotated[
        bool,
        typer.Option(
            "--staffed",
            help="Replay with simulated associates answering on their handhelds (starts our own "
            "system, rules.require_handheld on); the report gains the service level.",
        ),
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="The simulated associates' seed (--staffed).")] = 1,
    store_config: StoreOpt = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    mqtt_url: MqttUrl = None,
    topic_prefix: TopicPrefix = "",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as one JSON object (as summary.json).")
    ] = False,
) -> None:
    """Replay a trace (or read recorded outputs), compare with ground truth, write a report."""
    from floorwalker.cli.progress import stages
    from simulators.evaluate import Output, score, summary, write_report
    from simulators.trace import TraceReader, load_truth

    if staffed and outputs is not None:
        raise ConfigError("--staffed replays the trace: it cannot read recorded --outputs")
    reader = TraceReader(trace)
    truth_data = load_truth(truth)
    captured: list[Output]
    clock = None
    service: ServiceLevel | None = None
    with stages(*(("replay",) if outputs is None else ()), "scoring", "report") as progress:
        if outputs is not None:
            out_reader = TraceReader(outputs)
            captured = [Output(None, line.topic, line.payload) for line in out_reader]
        else:
            total = max(1, _messages_in(trace))
            sent = 0

            def on_sent(_line: object) -> None:
                nonlocal sent
                sent += 1
                progress("replay", sent / total)

            if staffed:
                captured, result, service = _replay_staffed(
                    reader, store_config, _speed(speed), seed, on_sent
                )
            else:
                captured, result = _replay_and_capture(
                    reader,
                    store_config,
                    run_dir,
                    mqtt_url,
                    topic_prefix,
                    _speed(speed),
                    start_system,
                    on_sent,
                )
            progress("replay", 1.0)
            clock = result.to_trace_time
        report = score(reader, truth_data, captured, bad_lines=len(reader.bad), to_trace_time=clock)
        report.service = service
        progress("scoring", 1.0)
        if outputs is None and speed == "max":
            report.note = (
                "Replayed at max speed: latency includes queueing behind the replay's backlog; "
                "replay at --speed 1 for live-like latency."
            )
        path = write_report(report, report_dir)
        progress("report", 1.0)
    if as_json:
        typer.echo(json.dumps(summary(report)))
    else:
        typer.echo(readable_summary(summary(report)))
        typer.echo(f"report {path}")
    if reader.bad:
        typer.secho(f"warning: {reader.describe_bad()}", fg=typer.colors.YELLOW, err=True)


def readable_summary(s: dict[str, Any]) -> str:
    """``evaluate``'s closing lines: the measures of its summary, one per line."""

    def vs_truth(reported: int, true: int) -> str:
        error = f" ({100 * (reported - true) / true:+.1f}%)" if true else ""
        return f"{reported} reported, {true} true{error}"

    def ms(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.0f} ms"

    accuracy = s["member_zone_accuracy"]
    kinds: dict[str, int] = s["prompt_kinds"]
    by_kind = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
    rows = [
        ("entries", vs_truth(s["entries_reported"], s["entries_true"])),
        ("checkouts", vs_truth(s["checkouts_reported"], s["checkouts_true"])),
        ("member zones", "n/a" if accuracy is None else f"{100 * accuracy:.1f}% right"),
        ("prompts", f"{s['prompts']}" + (f" ({by_kind})" if by_kind else "")),
        ("dead letters", str(s["deadletters"])),
        ("latency p50", f"decision {ms(s['decision_p50_ms'])}, event to prompt {ms(s['arrival_p50_ms'])}"),
    ]
    if s["bad_lines"]:
        rows.append(("bad lines", f"{s['bad_lines']} trace lines skipped"))
    return "\n".join(f"{name:<13} {value}" for name, value in rows)


def _replay_staffed(
    reader: TraceReader,
    store_config: Path | None,
    speed: float | None,
    seed: int,
    on_sent: Callable[[TraceLine], None],
) -> tuple[list[Output], ReplayResult, ServiceLevel]:
    """Replay ``reader`` through our own services and a recommender, with simulated associates
    on shift for the trace's span (:func:`simulators.harness.replay_staffed`)."""
    import shutil
    import tempfile
    import uuid

    from floorwalker.services import Services
    from simulators.associates import AssociateSimulator, Behaviour, plan_shifts
    from simulators.harness import RecommenderProcess, replay_staffed, staffed_config
    from simulators.replay import ReplayOptions

    work = Path(tempfile.mkdtemp(prefix="floorwalker-evaluate-"))
    config, config_path = staffed_config(store_config or DEMO_STORE, work)
    times = [line.t for line in reader]
    hours = max(1.0, (max(times) - min(times)) if times else 0.0) / 3600
    shifts = plan_shifts(config, hours, seed)
    services = Services(work / "services")
    ep = services.up()
    prefix = f"eval{uuid.uuid4().hex[:8]}/"
    rec = RecommenderProcess(config, config_path, ep, prefix, work)
    try:
        rec.start()
        outputs, result, run = replay_staffed(
            reader,
            config,
            (ep.mqtt_host, ep.mqtt_port),
            ReplayOptions(speed=speed, topic_prefix=prefix),
            rec,
            lambda origin: AssociateSimulator(config, shifts, origin, behaviour=Behaviour(), seed=seed),
            on_sent=on_sent,
        )
    finally:
        rec.stop()
        services.down()
    shutil.rmtree(work, ignore_errors=True)
    typer.echo(
        f"replayed {result.sent} messages in {result.wall_s:.1f} s with {len(shifts)} simulated associates "
        f"({len(run.associates.answers)} answers, {run.syncs} syncs); captured {len(outputs)} outputs"
    )
    return outputs, result, run.service_level()


def _replay_and_capture(
    reader: TraceReader,
    store_config: Path | None,
    run_dir: Path,
    mqtt_url: str | None,
    topic_prefix: str,
    speed: float | None,
    start_system: bool,
    on_sent: Callable[[TraceLine], None],
) -> tuple[list[Output], ReplayResult]:
    """Replay ``reader`` onto a broker (ours, started here, or a running one) and capture outputs."""
    import shutil
    import tempfile
    import uuid

    from floorwalker.config import write_without_handhelds
    from floorwalker.services import Services
    from simulators.harness import RecommenderProcess, replay_and_capture
    from simulators.replay import ReplayOptions

    layout = store_config or DEMO_STORE
    config = load_store_config(layout)
    if not start_system:
        options = ReplayOptions(speed=speed, topic_prefix=topic_prefix)
        outputs, result, _ = replay_and_capture(
            reader, config, mqtt_address(run_dir, mqtt_url), options, on_sent=on_sent
        )
        typer.echo(f"replayed {result.sent} messages, captured {len(outputs)} outputs")
        return outputs, result
    work = Path(tempfile.mkdtemp(prefix="floorwalker-evaluate-"))
    # Nobody is on shift in this replay: the decisions are judged without who is on the floor
    # (--staffed plays associates and keeps rules.require_handheld on).
    layout = write_without_handhelds(layout, work)
    config = load_store_config(layout)
    typer.echo("no associates on shift: routing ignores who is on the floor (--staffed plays them)")
    services = Services(work / "services")
    ep = services.up()
    prefix = f"eval{uuid.uuid4().hex[:8]}/"
    rec = RecommenderProcess(config, layout, ep, prefix, work)
    try:
        rec.start()
        options = ReplayOptions(speed=speed, topic_prefix=prefix)
        outputs, result, done = replay_and_capture(
            reader, config, (ep.mqtt_host, ep.mqtt_port), options, recommender=rec, on_sent=on_sent
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
