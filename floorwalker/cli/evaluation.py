"""``floorwalker eval``: a pipeline on recorded input against ground truth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from floorwalker.cli.options import StoreOpt, friendly, load_store
from floorwalker.errors import ConfigError

if TYPE_CHECKING:
    from floorwalker.config import StoreConfig
    from presence.eid_resolver import EidResolver

app = typer.Typer(help="Run a pipeline on recorded input and compare with ground truth.")


@app.command("footfall")
@friendly
def eval_footfall(
    video: Annotated[
        Path,
        typer.Argument(
            help="The video file (e.g. vtest.avi from Debian's opencv-doc) or an image sequence "
            "as a printf pattern, e.g. frames/frame_%04d.jpg."
        ),
    ],
    gt: Annotated[
        list[Path], typer.Option("--gt", help="Hand-counted crossings of one line (YAML); repeatable.")
    ],
    gateway_config: Annotated[
        Path | None,
        typer.Option("--gateway-config", help="Run this gateway YAML's camera (default: default settings)."),
    ] = None,
    camera: Annotated[str | None, typer.Option("--camera", help="Camera id in --gateway-config.")] = None,
    first: Annotated[int, typer.Option("--first-frame", help="Start at this frame.")] = 0,
    last: Annotated[int | None, typer.Option("--last-frame", help="Stop after this frame.")] = None,
    tolerance_s: Annotated[
        float, typer.Option("--tolerance-s", help="Seconds a counted crossing may be off and still match.")
    ] = 1.5,
    fps: Annotated[
        float | None, typer.Option("--fps", help="Replay at this frame rate (frames dropped, times kept).")
    ] = None,
    scale: Annotated[
        float,
        typer.Option("--scale", help="Replay shrunk by this factor inside a frame of the same size (0.1-1)."),
    ] = 1.0,
    source_fps: Annotated[
        float | None,
        typer.Option("--source-fps", help="Frame rate of an image sequence (default: the truth file's)."),
    ] = None,
    threads: Annotated[
        int, typer.Option("--threads", help="onnxruntime threads (default settings only).")
    ] = 1,
    mot: Annotated[
        Path | None, typer.Option("--mot", help="Boxed people in some frames (MOT format): detector P/R.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the result as JSON here.")] = None,
) -> None:
    """Run the camera pipeline on a video; per line and direction: precision and recall of crossings."""
    from rich.console import Console
    from rich.table import Table

    from bench.footfall_eval import Condition, evaluate, load_mot, load_truth
    from edge_agent.gateway_config import pick_camera

    truths = [(p, load_truth(p)) for p in gt]
    boxes = load_mot(mot) if mot is not None else None
    cam = pick_camera(gateway_config, camera)
    parts = [f"{fps:g}fps"] if fps else []
    parts += [f"scale{scale:g}"] if scale != 1.0 else []
    condition = Condition("-".join(parts) or "original", fps=fps, scale=scale)
    result = evaluate(
        video,
        truths,
        camera=cam,
        gateway=gateway_config,
        condition=condition,
        threads=threads,
        first_frame=first,
        last_frame=last,
        tolerance_s=tolerance_s,
        source_fps=source_fps,
        mot=boxes,
    )
    console = Console()
    for w in result.warnings:
        typer.secho(f"warning: {w}", fg=typer.colors.YELLOW, err=True)
    table = Table(
        title=f"{video.name}, {condition.name}: {result.frames} frames at {result.fps:g} fps from "
        f"frame {first}, matched within {tolerance_s:g} s"
    )
    cols = ("line", "direction", "truth", "counted", "matched", "false", "missed", "precision", "recall")
    for col in cols:
        table.add_column(col, justify="right")
    for r in result.lines:
        for d in r.directions:
            table.add_row(
                r.line, d.direction, str(d.truth), str(d.counted), str(d.matched), str(d.false),
                str(d.missed), f"{d.precision:.1%}", f"{d.recall:.1%}",
            )  # fmt: skip
    console.print(table)
    console.print(f"pipeline {result.ms_per_frame:.1f} ms/frame (decoding not included)")
    det = result.detection
    if det is not None:
        console.print(
            f"detector: precision {det.precision:.1%}  recall {det.recall:.1%}  (IoU >= 0.5; "
            f"{det.matched} of {det.truth} boxed people found, {det.detected} boxes, {det.frames} frames)"
        )
    for r in result.lines:
        for g in r.missed:
            console.print(f"  {r.line}: missed {g.t:7.2f} s (frame {g.frame:>4}) {g.direction:<3} {g.who}")
        for c in r.false:
            console.print(
                f"  {r.line}: false  {c.t:7.2f} s (frame {c.frame:>4}) {c.direction:<3} track {c.track}"
            )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result.as_dict(), indent=2) + "\n")


@app.command("presence")
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

    config = load_store(store_config)
    if survey is not None:
        ble = config.ble_presence.model_copy(update={"survey": survey})
        config = config.model_copy(update={"ble_presence": ble})
    result = run_eval(config, _resolver(config), trace, truth)
    _print_presence(result.report.as_dict(), result.baseline.as_dict())
    if result.beacons:
        typer.echo("beacons scored as members: " + ", ".join(f"{b} = {m}" for b, m in result.beacons.items()))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result.as_dict(), indent=2) + "\n")


def _resolver(config: StoreConfig) -> EidResolver:
    """The store's resolver; without secrets and CRM, one that resolves nothing (beacons only)."""
    from presence.eid_resolver import EidResolver
    from presence.fuser import resolver_for

    if config.ble_presence.secrets is None or config.crm is None:
        p = config.ble_presence
        return EidResolver(bytes(32), [], window_s=p.eid_window_s, skew_s=p.skew_tolerance_s)
    return resolver_for(config)


def _print_presence(r: dict[str, Any], b: dict[str, Any]) -> None:
    def pct(v: object) -> str:
        return "n/a" if v is None else f"{100 * float(str(v)):.1f} %"

    def sec(v: object) -> str:
        return "-" if v is None else f"{float(str(v)):.2f} s"

    typer.echo(f"{'':26}{'fuser':>10}{'strongest receiver':>22}")
    typer.echo(
        f"{'zone accuracy':26}{pct(r['accuracy']):>10}{pct(b['accuracy']):>22}  ({r['samples']} samples)"
    )
    typer.echo(
        f"{'  near zone borders':26}{pct(r['boundary_accuracy']):>10}{pct(b['boundary_accuracy']):>22}"
        f"  ({r['boundary_samples']} samples within 1.5 m)"
    )
    typer.echo(f"{'median zone-change delay':26}{sec(r['median_delay_s']):>10}{sec(b['median_delay_s']):>22}")
    typer.echo(
        f"{'latency errors':26}{r['latency_errors']:>10}{b['latency_errors']:>22}"
        "  (wrong, but just left that zone)"
    )
    typer.echo(f"p90 delay {sec(r['p90_delay_s'])}; {r['missed_stays']} of {r['stays']} stays missed; "
               f"neighbour share of errors {pct(r['neighbour_share_of_errors'])}")  # fmt: skip
    typer.echo("per zone: precision / recall, fuser | strongest receiver")
    for zone, z in r["per_zone"].items():
        bz = b["per_zone"].get(zone, {"precision": None, "recall": None})
        typer.echo(
            f"  {zone:>12} {pct(z['precision'])} / {pct(z['recall'])}"
            f" | {pct(bz['precision'])} / {pct(bz['recall'])}"
        )
    for truth_zone, guess, count in r["confusion"]:
        typer.echo(f"  {truth_zone:>12} taken for {guess:<10} {count}")


@app.command("presence-trace")
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

    config = load_store(store_config)
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
