"""The simulated store: ``simulate`` (live onto the broker, or a day's trace to files) and ``demo``.

The root module registers these commands on the app (in the order of its help).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from floorwalker.cli.options import (
    DEFAULT_RUN_DIR,
    MqttUrl,
    RunDir,
    StoreOpt,
    TopicPrefix,
    friendly,
    load_store,
    mqtt_address,
    stop_on_signals,
)
from floorwalker.config import StoreConfig, load_store_config
from floorwalker.errors import ConfigError
from simulators.stores import DEMO_STORE


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
    from simulators.scenario import rounds as crowds

    config = load_store(store_config)
    if config.crm is None:
        raise ConfigError("the store config has no `crm` fixture, so there are no members to simulate")
    if speed <= 0:
        raise ConfigError(f"--speed {speed}: must be greater than 0")
    host, port = mqtt_address(run_dir, mqtt_url)
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
    stop = stop_on_signals()
    live.start()
    try:
        # A few members a round, never the same two rounds running (scenario.rounds).
        for n, crowd in enumerate(crowds(shoppers, seed)):
            if stop.is_set() or (rounds != 0 and n >= rounds):
                break
            live.play(build(config, crowd, seed + n), stop, speed=speed, seed=seed + n)
    finally:
        live.stop()
    typer.echo(json.dumps(dict(live.sent)))


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

    from floorwalker.cli.progress import stages
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
    with stages("shoppers", "sensors", "writing") as progress:
        day = simulate_day(
            config,
            read_fixture(config.crm) if config.crm else None,
            hours=hours,
            visitors=visitors,
            seed=seed,
            source=str(layout),
            start=t0,
            presence=mode,
            on_progress=progress,
        )
        trace, truth = day.write(out)
        progress("writing", 1.0)
    typer.echo(
        f"{len(day.shoppers)} shoppers, {len(day.lines)} messages in {time.perf_counter() - started:.1f} s\n"
        f"trace  {trace}\ntruth  {truth}"
    )
