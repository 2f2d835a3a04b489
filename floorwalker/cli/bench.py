"""``floorwalker bench``: benchmarks of the hot paths."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from floorwalker.cli.options import StoreOpt, friendly, load_store
from floorwalker.errors import ConfigError
from simulators.stores import BIG_STORE

app = typer.Typer(help="Benchmarks of the hot paths; each prints a table and writes bench/out/*.json.")


@app.command("e2e")
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


@app.command("footfall")
@friendly
def bench_footfall(
    video: Annotated[Path, typer.Option("--video", help="Video to run on.")] = Path(
        "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
    ),
    frames: Annotated[int, typer.Option("--frames", help="Frames to time.")] = 300,
    out: Annotated[Path, typer.Option("--out", help="Where to write the JSON results.")] = Path(
        "bench/out/footfall.json"
    ),
    gateway_config: Annotated[
        Path | None,
        typer.Option(
            "--gateway-config", help="Time this gateway YAML's camera (default: a line across the middle)."
        ),
    ] = None,
    camera: Annotated[str | None, typer.Option("--camera", help="Camera id in --gateway-config.")] = None,
) -> None:
    """Frames per second of the whole camera pipeline beside the bare model, on one core; peak RSS."""
    from bench.footfall import run_footfall_bench
    from edge_agent.gateway_config import pick_camera

    if frames < 1:
        raise ConfigError(f"--frames {frames}: must be at least 1")
    cam = pick_camera(gateway_config, camera)
    run_footfall_bench(video, frames, out, camera=cam)


@app.command("footfall-accuracy")
@friendly
def bench_footfall_accuracy(
    out: Annotated[Path, typer.Option("--out", help="Where to write the table.")] = Path(
        "bench/out/footfall_accuracy.json"
    ),
    video: Annotated[Path, typer.Option("--video", help="vtest.avi (Debian's opencv-doc).")] = Path(
        "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
    ),
    baseline: Annotated[
        bool, typer.Option("--baseline/--no-baseline", help="Also the full-frame-only pipeline.")
    ] = True,
) -> None:
    """Precision and recall per line, direction and condition on the development set."""
    from bench.footfall_accuracy import run_accuracy

    run_accuracy(video, out, baseline=baseline)


@app.command("handheld")
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


@app.command("decide")
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


@app.command("simulate")
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


@app.command("service")
@friendly
def bench_service(
    hours: Annotated[float, typer.Option("--hours", help="Hours from opening, per store.")] = 2.0,
    demo_visitors: Annotated[
        int, typer.Option("--demo-visitors", help="Expected visitors at the demo store.")
    ] = 300,
    big_visitors: Annotated[
        int, typer.Option("--big-visitors", help="Expected visitors at the 20-zone store.")
    ] = 800,
    stores: Annotated[
        str, typer.Option("--stores", help="Which stores: demo, big or demo,big.")
    ] = "demo,big",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the shoppers and the associates.")] = 1,
    out: Annotated[Path, typer.Option("--out", help="Where to write the JSON results.")] = Path(
        "bench/out/service.json"
    ),
) -> None:
    """The service-level figure: a staffed simulated day at the demo and the 20-zone store."""
    from bench.service import run_service_bench
    from simulators.stores import DEMO_STORE

    known = {"demo": ("demo", DEMO_STORE, demo_visitors), "big": ("big", BIG_STORE, big_visitors)}
    names = [n.strip() for n in stores.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ConfigError(f"--stores {stores!r}: expected demo, big or demo,big")
    run_service_bench([known[n] for n in names], hours, out, seed)


@app.command("presence-real")
@friendly
def bench_presence_real(
    data: Annotated[
        Path | None,
        typer.Option("--data", help="The Kolakowski 2021 BLE RSS data set (default ../shared/devdata/...)."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Where to write the figures.")] = Path(
        "bench/out/presence_real.json"
    ),
) -> None:
    """BLE zone presence on real radio data: calibrate on its calibration run, score its test run."""
    from bench.presence_real import DATA_DIR, print_presence_real, run_presence_real

    print_presence_real(run_presence_real(data or DATA_DIR, out))


@app.command("ble")
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

    print_ble(run_ble_bench(load_store(store_config), out, rounds=rounds, repeats=repeats), Console())


@app.command("outbox")
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


@app.command("scale")
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
