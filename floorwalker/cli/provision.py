"""``floorwalker provision``: broker accounts per device, the store CA and TLS, bridges."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from floorwalker.cli.options import (
    DEFAULT_RUN_DIR,
    RunDir,
    StoreOpt,
    TopicPrefix,
    friendly,
    load_store,
)
from floorwalker.errors import ConfigError

app = typer.Typer(
    help="Broker accounts per device (gateway, pos, handheld, service), the store CA and TLS, bridges.",
    no_args_is_help=True,
)


SecretsDir = Annotated[
    Path, typer.Option("--secrets", help="Secrets directory: broker passwords, ACL, certificates.")
]


DeviceId = Annotated[str, typer.Argument(help="The device's id in the store config (or the service name).")]
Offline = Annotated[
    bool,
    typer.Option(
        "--offline",
        help="Change the files only: no broker runs with these secrets now (it reads them when it starts).",
    ),
]


def _serving(secrets: Path, run_dir: Path, offline: bool, *, running_only: bool = False) -> bool:
    """True when the broker of ``run_dir`` serves ``secrets`` (it must reload); refuses in one
    line when it does not, unless ``offline``: never "reload" a broker that uses other files.
    With ``running_only`` (a new or rotated login) only a running broker that serves other
    files is refused; with none running the files change and it reads them when it starts."""
    from floorwalker.services import Services

    svc = Services(run_dir)
    found, instead = svc.broker_serving(secrets)
    if found is not None:
        return True
    if offline or (running_only and not svc.broker_running()):
        return False
    raise ConfigError(
        f"no running broker serves the secrets in {secrets.resolve()}: looked in "
        f"{run_dir.resolve()} ({instead}); pass the --run-dir that `services up --secrets` used, "
        "or --offline to change the files only"
    )


def _reload(run_dir: Path) -> str:
    """Make the broker and Redis of ``run_dir`` apply the changed accounts at once."""
    from floorwalker.services import Services

    svc = Services(run_dir)
    svc.reload_broker()
    svc.reload_redis_users()
    return f"; the broker in {run_dir.resolve()} applied it (open sessions of removed logins are closed)"


def _provision(
    kind: str, ident: str, secrets: Path, store_config: Path | None, run_dir: Path, prefix: str, offline: bool
) -> None:
    from broker_config.acl import DeviceKind
    from floorwalker.provision import CredentialStore
    from floorwalker.tls import CA_CERT

    serving = _serving(secrets, run_dir, offline, running_only=True)
    ca = secrets / CA_CERT
    creds = CredentialStore(secrets, load_store(store_config), topic_prefix=prefix).provision(
        DeviceKind(kind), ident, ca_file=ca.resolve() if ca.exists() else None
    )
    typer.echo(
        f"{kind} {ident}: login {creds.username!r}; credentials in "
        f"{secrets / 'devices' / (creds.username + '.json')} (copy it to the device, mode 0600)"
        + (_reload(run_dir) if serving else f"; no broker serves these secrets in {run_dir} now")
    )


def _provision_command(kind: str, doc: str) -> None:
    @app.command(kind, help=doc)
    @friendly
    def command(
        ident: DeviceId,
        secrets: SecretsDir = Path(".run/secrets"),
        store_config: StoreOpt = None,
        run_dir: RunDir = DEFAULT_RUN_DIR,
        topic_prefix: TopicPrefix = "",
        offline: Offline = False,
    ) -> None:
        _provision(kind, ident, secrets, store_config, run_dir, topic_prefix, offline)


_provision_command("gateway", "A gateway's login: publishes only its own status/BLE and its zones' topics.")


_provision_command("pos", "A POS adapter's login: publishes only its lanes' checkouts.")


_provision_command(
    "handheld", "An associate's handheld: reads only its own prompts; writes its feedback/status."
)


_provision_command("service", "A store-server process: recommender, api, fuser, recorder or replay.")


@app.command("revoke")
@friendly
def provision_revoke(
    kind: Annotated[str, typer.Argument(help="gateway, pos, handheld or service")],
    ident: DeviceId,
    secrets: SecretsDir = Path(".run/secrets"),
    store_config: StoreOpt = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    topic_prefix: TopicPrefix = "",
    offline: Offline = False,
) -> None:
    """Remove a device's login and its ACL rules; the broker serving --secrets in --run-dir
    applies it at once and closes the device's open session (refused if none does)."""
    from broker_config.acl import DeviceKind
    from floorwalker.provision import CredentialStore

    try:
        device_kind = DeviceKind(kind)
    except ValueError:
        raise ConfigError(
            f"kind {kind!r}: expected one of {', '.join(k.value for k in DeviceKind)}"
        ) from None
    store = CredentialStore(secrets, load_store(store_config), topic_prefix=topic_prefix)
    serving = _serving(secrets, run_dir, offline)
    if not store.revoke(device_kind, ident):
        raise ConfigError(f"no {kind} {ident!r} in {secrets}: nothing to revoke")
    typer.echo(f"revoked {kind} {ident}" + (_reload(run_dir) if serving else "; files only (--offline)"))


@app.command("tls")
@friendly
def provision_tls(
    hostname: Annotated[list[str], typer.Option("--hostname", help="Broker host name (repeatable).")],
    secrets: SecretsDir = Path(".run/secrets"),
    store_config: StoreOpt = None,
    days: Annotated[int, typer.Option("--days", help="Validity of the broker certificate.")] = 825,
) -> None:
    """Make the store CA (once) and a broker certificate signed by it for --hostname."""
    import datetime as dt

    from floorwalker.tls import CA_CERT, issue_server_cert, make_store_ca

    now = dt.datetime.now(dt.UTC)
    if not (secrets / CA_CERT).exists():
        make_store_ca(secrets, load_store(store_config).store, now=now)
        typer.echo(f"store CA: {secrets / CA_CERT} (give this file to every device)")
    cert = issue_server_cert(secrets, hostname, now=now, days=days)
    typer.echo(f"broker certificate: {cert} for {', '.join(hostname)} and 127.0.0.1, {days} days")


@app.command("bridge")
@friendly
def provision_bridge(
    central: Annotated[str, typer.Option("--central", help="host:port of the chain's central broker.")],
    credentials: Annotated[
        Path, typer.Option("--credentials", help="This store's login on the central broker (JSON).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Where to write the bridge config.")],
    store_config: StoreOpt = None,
    topic_prefix: TopicPrefix = "",
) -> None:
    """Write the Mosquitto bridge config that forwards this store's events to the central broker."""
    from floorwalker.bridge import render_bridge
    from floorwalker.provision import load_credentials

    host, _, port = central.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--central {central!r}: expected host:port")
    login = load_credentials(credentials)
    ca_file = login.ca_file
    if login.ca_pem is not None:  # Mosquitto reads its CA from a file: one next to the config
        ca_file = out.with_name(f"{out.stem}-ca.crt").resolve()
        ca_file.write_text(login.ca_pem)
    text = render_bridge(load_store(store_config), login, host, int(port), topic_prefix, ca_file)
    out.write_text(text)
    out.chmod(0o600)
    typer.echo(f"bridge config: {out} (include it in the store broker's config with include_dir)")
