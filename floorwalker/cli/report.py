"""``floorwalker report``: reports from the store's Redis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from floorwalker.cli.options import (
    DEFAULT_RUN_DIR,
    KeyPrefix,
    RedisCredentials,
    RedisUrl,
    RunDir,
    StoreOpt,
    friendly,
    load_store,
    redis_address,
)
from floorwalker.errors import ConfigError

app = typer.Typer(help="Reports from the store's Redis (outcomes of prompts).", no_args_is_help=True)


def _pct(v: tuple[float, float, float] | None) -> str:
    if v is None:
        return "-"
    return f"{v[0] * 100:5.1f}% [{v[1] * 100:.1f}, {v[2] * 100:.1f}]"


def _services_dir(run_dir: Path, redis_url: str | None) -> Path:
    """Where the services are: ``run_dir``, or the running demo's (``make demo`` keeps its
    services in DEFAULT_RUN_DIR/demo) when ``--run-dir`` was left at its default."""
    from floorwalker.services import Services

    demo = DEFAULT_RUN_DIR / "demo"
    if redis_url is not None or run_dir != DEFAULT_RUN_DIR or Services(run_dir).recorded():
        return run_dir
    if Services(demo).recorded():
        typer.echo(f"using the services of the running demo (--run-dir {demo})", err=True)
        return demo
    raise ConfigError(
        f"no services recorded in {run_dir} or {demo}: run this while `make demo` (or `floorwalker "
        "services up` and a recommender) runs, or pass --run-dir or --redis-url"
    )


@app.command("outcomes")
@friendly
def report_outcomes(
    store_config: StoreOpt = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    redis_url: RedisUrl = None,
    key_prefix: KeyPrefix = "",
    redis_credentials: RedisCredentials = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    min_sample: Annotated[
        int, typer.Option(min=1, help="The fewest prompts, and holdout members, an uplift is given on.")
    ] = 30,
) -> None:
    """Acceptance, conversion and uplift against the holdout, per prompt kind (95% CIs);
    then late events (older than the member's latest), applied or discarded by reason.
    An uplift below the minimum sample says "not enough data"; the "all" uplift pools
    only kinds that each have their own holdout."""
    import redis as redis_lib
    from rich.console import Console
    from rich.table import Table

    from recommender.keys import Keys
    from recommender.outcomes import decode_stats, late_summary, outcome_rows
    from recommender.service import connect_redis

    config = load_store(store_config)
    client = connect_redis(redis_address(_services_dir(run_dir, redis_url), redis_url, redis_credentials))
    try:
        raw: dict[bytes, bytes] = client.hgetall(Keys(config.store, key_prefix).stats)  # type: ignore[assignment]
    except redis_lib.RedisError as exc:
        raise ConfigError(f"cannot read the stats from Redis ({exc})") from None
    finally:
        client.close()
    stats = decode_stats(raw)
    rows = outcome_rows(stats, min_sample)
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
            _pct(r.uplift) if not r.note else r.note.split(" (")[0].split(":")[0],
        )
    Console(width=160).print(table)
    for r in rows:
        if r.note and r.prompted:
            typer.echo(f"uplift {r.kind}: {r.note}")
    late = late_summary(stats)
    if late is not None:
        typer.echo(late)
