"""``floorwalker token``: sign-in tokens for handhelds and the dashboard."""

from __future__ import annotations

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

app = typer.Typer(help="Sign-in tokens for handhelds and the dashboard.", no_args_is_help=True)


@app.command("issue")
@friendly
def token_issue(
    associate: Annotated[str, typer.Option("--associate", "-a", help="Associate id in the store config.")],
    store_config: StoreOpt = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    redis_url: RedisUrl = None,
    key_prefix: KeyPrefix = "",
    redis_credentials: RedisCredentials = None,
    role: Annotated[
        str | None, typer.Option("--role", help="associate or manager (default: the associate's role).")
    ] = None,
    ttl_hours: Annotated[float, typer.Option("--ttl-hours", help="Hours until the token expires.")] = 12.0,
    base_url: Annotated[
        str, typer.Option("--base-url", help="Where `floorwalker api` serves, for the sign-in link.")
    ] = "http://127.0.0.1:8080",
) -> None:
    """Issue a sign-in link (works once; Redis keeps only its token's hash) and print it."""
    from handheld.auth import issue_token
    from recommender.keys import Keys
    from recommender.service import connect_redis

    if role not in (None, "associate", "manager"):
        raise ConfigError(f"--role {role!r}: expected associate or manager")
    config = load_store(store_config)
    client = connect_redis(redis_address(run_dir, redis_url, redis_credentials))
    try:
        issued = issue_token(
            client,
            Keys(config.store, key_prefix),
            config,
            associate,
            role="manager" if role == "manager" else "associate" if role else None,
            ttl_s=ttl_hours * 3600,
        )
    finally:
        client.close()
    typer.echo(f"token   {issued.token}")
    typer.echo(f"role    {issued.role} of store {issued.store}, for {issued.associate}")
    typer.echo(f"signin  {base_url.rstrip('/')}/signin?token={issued.token}")


@app.command("revoke")
@friendly
def token_revoke(
    associate: Annotated[str, typer.Option("--associate", "-a", help="Associate id in the store config.")],
    store_config: StoreOpt = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    redis_url: RedisUrl = None,
    key_prefix: KeyPrefix = "",
    redis_credentials: RedisCredentials = None,
) -> None:
    """Revoke every link and end every session of an associate at once (open pages within a second)."""
    from handheld.auth import revoke_tokens
    from recommender.keys import Keys
    from recommender.service import connect_redis

    config = load_store(store_config)
    client = connect_redis(redis_address(run_dir, redis_url, redis_credentials))
    try:
        revoked = revoke_tokens(client, Keys(config.store, key_prefix), associate)
    finally:
        client.close()
    typer.echo(f"revoked {revoked.tokens} link(s) and ended {revoked.sessions} session(s) of {associate}")
