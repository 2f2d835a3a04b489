"""``floorwalker calibrate``: sensors from recordings at known positions."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer

from floorwalker.cli.options import StoreOpt, friendly, load_store, stop_on_signals
from floorwalker.errors import ConfigError

app = typer.Typer(help="Calibrate sensors from recordings at known positions.", no_args_is_help=True)


@app.command("survey")
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

    config = load_store(store_config)
    survey_map = build_survey(config, trace_records(trace), read_truth(walk))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(survey_map.to_json() + "\n")
    gws = ", ".join(sorted(survey_map.residual_db))
    typer.echo(f"{out}: residual maps for {gws}; set `ble_presence: {{survey: {out}}}` in the store config")
    if survey_map.fingerprints is not None:
        typer.echo(
            f"  and {len(survey_map.fingerprints)} fingerprints of the walk "
            "(opt-in: `ble_presence: {fingerprints: true}`)"
        )


@app.command("ble")
@friendly
def calibrate_ble(
    trace: Annotated[Path, typer.Argument(help="Recorded advertisements (JSONL, replay format).")],
    points: Annotated[Path | None, typer.Option("--points", help="YAML: where the phone was when.")] = None,
    walk: Annotated[
        Path | None, typer.Option("--walk", help="Or: the phone's path (truth JSONL, e.g. a survey walk).")
    ] = None,
    store_config: StoreOpt = None,
) -> None:
    """Fit each gateway's power, path-loss exponent and sensitivity, checked on held-out points;
    print the config's `ble:` lines (a gateway whose fit does not validate keeps its own)."""
    from bench.presence_eval import read_truth, trace_records
    from edge_agent.ble.calibration import as_yaml, calibrate, calibrate_walk, read_points

    if (points is None) == (walk is None):
        raise ConfigError(
            "give the phone's positions as exactly one of --points (YAML) or --walk (truth JSONL)"
        )
    config = load_store(store_config)
    if points is not None:
        fits = calibrate(config, read_points(points), trace_records(trace))
    else:
        assert walk is not None
        path = [(s.ts, s.x, s.y) for s in read_truth(walk)]
        fits = calibrate_walk(config, trace_records(trace), path)
    if not any(f.points for f in fits):
        raise ConfigError(f"{trace}: no gateway heard the phone at any point (>= 5 adverts each)")
    typer.echo(as_yaml(fits), nl=False)
    if not any(f.use for f in fits):
        raise ConfigError("no gateway's fit validated on its held-out points: keep the configured models")


@app.command("record")
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

    config = load_store(store_config)
    gw = next((g for g in config.gateways if g.id == gateway), None)
    if gw is None:
        raise ConfigError(f"gateway {gateway!r} is not in store {config.store!r}")
    scanner = make_scanner(gw.scanner or BleakScannerConfig(), gateway)
    stop = stop_on_signals()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    try:
        n = record(scanner, gateway, out, stop)
    finally:
        timer.cancel()
    typer.echo(f"{n} advertisements -> {out}" + (f" ({scanner.status})" if scanner.status else ""))
