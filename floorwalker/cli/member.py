"""``floorwalker member``: a member's data (erasure)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from floorwalker.cli.options import (
    DEFAULT_RUN_DIR,
    KeyPrefix,
    MqttCredentials,
    MqttUrl,
    RedisCredentials,
    RedisUrl,
    RunDir,
    StoreOpt,
    TopicPrefix,
    friendly,
    load_store,
    mqtt_address,
    mqtt_auth,
    redis_address,
)
from floorwalker.errors import ConfigError

app = typer.Typer(help="A member's data: erasure.", no_args_is_help=True)


@app.command("erase")
@friendly
def member_erase(
    member: Annotated[str, typer.Argument(help="The member's pseudonymous id (m_...).")],
    store_config: StoreOpt = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    mqtt_url: MqttUrl = None,
    redis_url: RedisUrl = None,
    topic_prefix: TopicPrefix = "",
    key_prefix: KeyPrefix = "",
    mqtt_credentials: MqttCredentials = None,
    redis_credentials: RedisCredentials = None,
) -> None:
    """Erase a member now: Redis data, prompts, outboxes (retained notice), BLE ids; leave a tombstone.

    On a secured broker it logs in as the recommender service (--mqtt-credentials)."""
    from pydantic import TypeAdapter, ValidationError

    from broker_config.contract import MemberRef, Topics
    from floorwalker.mqtt import MqttLink
    from recommender.erasure import erase_member
    from recommender.keys import Keys
    from recommender.service import connect_redis

    try:
        TypeAdapter(MemberRef).validate_python(member)
    except ValidationError:
        raise ConfigError(
            f"member {member!r}: not a member id (expected m_ and 6 to 40 letters or digits)"
        ) from None
    config = load_store(store_config)
    host, port = mqtt_address(run_dir, mqtt_url)
    auth = mqtt_auth(mqtt_credentials, "recommender")
    client = connect_redis(redis_address(run_dir, redis_url, redis_credentials or mqtt_credentials))
    link = MqttLink(host, port, client_id=f"{topic_prefix.replace('/', '-')}erase-{member}", auth=auth)
    link.connect()
    t0 = time.perf_counter()
    try:
        done = erase_member(
            client, Keys(config.store, key_prefix), Topics(topic_prefix), config, member, time.time(), link
        )
    finally:
        link.close()
        client.close()
    ms = (time.perf_counter() - t0) * 1000
    typer.echo(
        f"erased {member} in {ms:.0f} ms: {done.keys_deleted} keys, {done.prompts_deleted} prompt records, "
        f"{done.stream_entries_deleted} handheld entries, {done.deadletters_deleted} dead letters; "
        f"BLE ids {'revoked' if done.ble_revoked else 'not configured'}; tombstone left, notice retained"
    )
