"""The ``floorwalker`` command line.

Every command reports a problem a person can fix (broken config, busy port, a broker or
Redis that does not answer) as one ``error:`` line and exit code 2, without a traceback.

This module makes ``app`` and adds the commands of each group module to it, in the order
``floorwalker --help`` lists them; :mod:`floorwalker.cli.options` holds what they share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from floorwalker import __version__

# Commands import heavy or optional deps when they run: --help stays fast, `edge` runs on a base install.
from floorwalker.cli import (
    bench,
    calibrate,
    camera,
    config,
    contract,
    crm,
    evaluation,
    integrations,
    member,
    processes,
    provision,
    report,
    services,
    sim,
    tokens,
    traces,
)
from floorwalker.cli.flags import hide_flag_types
from floorwalker.cli.options import setup_logging

__all__ = ["app"]

app = typer.Typer(
    help="Floorwalker: in-store sensing and next-best-action prompts for floor associates.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
hide_flag_types()


@app.callback(invoke_without_command=True)
def main(
    ctx: typer.Context,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
    log_file: Annotated[Path | None, typer.Option("--log-file", help="Log here instead of stderr.")] = None,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()
    if ctx.invoked_subcommand is None:  # options but no command: `floorwalker --log-level debug`
        typer.echo(ctx.get_help())
        typer.secho("error: missing command (see the list above)", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    setup_logging(log_level, log_file)


app.command()(processes.recommender)
app.command()(processes.edge)
app.command()(processes.api)
app.command()(sim.simulate)
app.command()(contract.contract)
app.command()(sim.demo)
app.command("camera-snapshot")(camera.camera_snapshot)
app.command()(traces.replay)
app.command()(traces.record)
app.command()(traces.evaluate)
app.command()(processes.fuser)
app.command()(integrations.homeassistant)
app.command()(integrations.espresense)

app.add_typer(services.app, name="services")
app.add_typer(bench.app, name="bench")
app.add_typer(evaluation.app, name="eval")
app.add_typer(provision.app, name="provision")
app.add_typer(tokens.app, name="token")
app.add_typer(report.app, name="report")
app.add_typer(crm.app, name="crm")
app.add_typer(calibrate.app, name="calibrate")
app.add_typer(member.app, name="member")
app.add_typer(config.app, name="config")


def entrypoint() -> None:  # pragma: no cover - thin wrapper for `python -m floorwalker`
    app(prog_name="floorwalker")
