"""``floorwalker services``: our own Mosquitto and Redis."""

from __future__ import annotations

from typing import Annotated

import typer

from floorwalker.cli.options import DEFAULT_RUN_DIR, RunDir, SecretsOpt, friendly

app = typer.Typer(help="Our own Mosquitto and Redis (up / down / status).", no_args_is_help=True)


@app.command("up")
@friendly
def services_up(
    run_dir: RunDir = DEFAULT_RUN_DIR,
    mqtt_port: Annotated[int | None, typer.Option("--mqtt-port", help="Default: a free port.")] = None,
    redis_port: Annotated[int | None, typer.Option("--redis-port", help="Default: a free port.")] = None,
    secrets: SecretsOpt = None,
    tls_port: Annotated[
        int | None, typer.Option("--tls-port", help="TLS listener port (with certificates in --secrets).")
    ] = None,
    tls_bind: Annotated[str, typer.Option("--tls-bind", help="Address of the TLS listener.")] = "0.0.0.0",
) -> None:
    """Start Mosquitto and Redis from broker_config/ on loopback; print their URLs.

    With --secrets the broker requires a login per device and applies the ACL made by
    `floorwalker provision`; with certificates there (`provision tls`) it adds a TLS listener.
    """
    from floorwalker.services import Services

    svc = Services(
        run_dir,
        mqtt_port=mqtt_port,
        redis_port=redis_port,
        secrets_dir=secrets,
        tls_port=tls_port,
        tls_bind=tls_bind,
    )
    ep = svc.up()
    typer.echo(f"mqtt   {ep.mqtt_url}\nredis  {ep.redis_url}\n(recorded in {run_dir / 'services.json'})")
    tls = svc.recorded()["mosquitto"].tls_port
    if tls is not None:
        typer.echo(f"mqtts  {tls_bind}:{tls} (store CA: {secrets / 'ca.crt' if secrets else ''})")


@app.command("down")
@friendly
def services_down(run_dir: RunDir = DEFAULT_RUN_DIR) -> None:
    """Stop exactly the Mosquitto and Redis that `services up` started in this run directory."""
    from floorwalker.services import Services

    stopped = Services(run_dir).down()
    typer.echo("\n".join(f"stopped {s}" for s in stopped) or "nothing was running")


@app.command("status")
@friendly
def services_status(run_dir: RunDir = DEFAULT_RUN_DIR) -> None:
    """Say whether our Mosquitto and Redis are up and answering."""
    from floorwalker.services import Services

    for name, line in Services(run_dir).status().items():
        typer.echo(f"{name:<10} {line}")
