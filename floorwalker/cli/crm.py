"""``floorwalker crm``: check a CRM import."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from floorwalker.cli.options import friendly
from floorwalker.errors import ConfigError

app = typer.Typer(help="CRM data: check an import and see the derived segments.", no_args_is_help=True)


@app.command("check")
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
