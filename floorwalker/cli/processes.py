"""The long-running processes: ``recommender``, ``edge``, ``api`` and ``fuser``.

The root module registers these commands on the app (in the order of its help).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer

from floorwalker.cli.options import (
    DEFAULT_RUN_DIR,
    KeyPrefix,
    MqttCredentials,
    MqttUrl,
    RedisUrl,
    RunDir,
    SecretsOpt,
    StoreOpt,
    TopicPrefix,
    endpoints,
    friendly,
    load_store,
    mqtt_address,
    mqtt_auth,
    stop_on_signals,
)
from floorwalker.config import Endpoints
from floorwalker.errors import ConfigError


def _store_files(paths: list[Path], exclude: Path | None) -> list[Path]:
    """Store YAMLs named, a directory standing for its ``*.yaml``; each once, ``exclude`` left out."""
    seen = {exclude.resolve()} if exclude is not None else set()
    out = []
    for path in paths:
        for file in sorted(path.glob("*.yaml")) if path.is_dir() else [path]:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                out.append(file)
    return out


@friendly
def recommender(
    store_config: StoreOpt = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    mqtt_url: MqttUrl = None,
    redis_url: RedisUrl = None,
    topic_prefix: TopicPrefix = "",
    key_prefix: KeyPrefix = "",
    client_id: Annotated[
        str, typer.Option("--client-id", help="MQTT client id (one per replica).")
    ] = "recommender",
    load_crm: Annotated[
        bool, typer.Option("--load-crm/--no-load-crm", help="Load the store's CRM fixture.")
    ] = True,
    also_store: Annotated[
        list[Path] | None,
        typer.Option(
            "--also-store",
            help="Another store YAML this process serves, or a directory of them (repeatable).",
        ),
    ] = None,
    share_group: Annotated[
        str | None,
        typer.Option(
            "--share-group",
            envvar="FLOORWALKER_SHARE_GROUP",
            help="Run as one replica of this group behind an MQTT v5 shared subscription ($share/GROUP/...).",
        ),
    ] = None,
    replica: Annotated[
        str | None,
        typer.Option(
            "--replica", envvar="FLOORWALKER_REPLICA", help="This replica's stable id (with --share-group)."
        ),
    ] = None,
    mqtt_credentials: MqttCredentials = None,
    clock: Annotated[
        str,
        typer.Option(
            "--clock",
            help="Where 'now' comes from: wall (live) or event (a replay: the latest event time seen).",
        ),
    ] = "wall",
) -> None:
    """Consume presence and checkout events; publish prompts to associates' handhelds.

    --redis-url redis+cluster://host:port selects Redis Cluster (docs/deploy.md)."""
    from recommender.service import RecommenderService, Share

    if (share_group is None) != (replica is None):
        raise ConfigError("--share-group and --replica go together: name the group and this replica's id")
    if clock not in ("wall", "event"):
        raise ConfigError(f"--clock is wall or event, not {clock!r}")
    configs = [load_store(store_config)]
    for path in _store_files(also_store or [], exclude=store_config):
        configs.append(load_store(path))
    ep = endpoints(run_dir, mqtt_url, redis_url, mqtt_credentials)
    auth = mqtt_auth(mqtt_credentials, "recommender")
    service = RecommenderService(
        configs,
        ep,
        topic_prefix=topic_prefix,
        key_prefix=key_prefix,
        client_id=client_id,
        load_crm=load_crm,
        share=Share(share_group, replica) if share_group and replica else None,
        auth=auth,
        clock="event" if clock == "event" else "wall",
    )
    stop = stop_on_signals()

    def stop_when_signalled() -> None:
        stop.wait()
        service.stop()

    threading.Thread(target=stop_when_signalled, daemon=True).start()
    service.run()


@friendly
def edge(
    gateway: Annotated[
        str | None, typer.Option("--gateway", "-g", help="This gateway's id in the store config.")
    ] = None,
    gateway_config: Annotated[
        Path | None,
        typer.Option("--gateway-config", help="Gateway YAML: store, gateway id, cameras (docs/camera.md)."),
    ] = None,
    store_config: StoreOpt = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    mqtt_url: MqttUrl = None,
    topic_prefix: TopicPrefix = "",
    heartbeat_s: Annotated[
        float | None, typer.Option("--heartbeat", help="Seconds between status heartbeats (default 30).")
    ] = None,
    ble_replay: Annotated[
        Path | None,
        typer.Option("--ble-replay", help="Scan BLE from this recorded trace (JSONL) instead of the radio."),
    ] = None,
    ble_speed: Annotated[float, typer.Option("--ble-speed", help="Replay speed (1 = as recorded).")] = 1.0,
    mqtt_credentials: MqttCredentials = None,
    outbox: Annotated[
        Path | None,
        typer.Option(
            "--outbox", help="Store-and-forward outbox (SQLite); default RUN_DIR/outbox-GATEWAY.db."
        ),
    ] = None,
) -> None:
    """Run a gateway: retained online status, last will offline, heartbeats, its cameras and BLE."""
    from edge_agent.agent import run_gateway
    from floorwalker.config import ReplayScannerConfig

    cameras = []
    if gateway_config is not None:
        from edge_agent.gateway_config import check_against_store, load_gateway_config

        gw = load_gateway_config(gateway_config)
        config = load_store(store_config or gw.store_config)
        check_against_store(gw, config, gateway_config)
        if gateway is not None and gateway != gw.gateway:
            raise ConfigError(f"--gateway {gateway!r} but {gateway_config} is for gateway {gw.gateway!r}")
        gateway, cameras = gw.gateway, list(gw.cameras)
        heartbeat_s = heartbeat_s if heartbeat_s is not None else gw.heartbeat_s
    elif gateway is None:
        raise ConfigError("give --gateway ID or --gateway-config FILE")
    else:
        config = load_store(store_config)
    host, port = mqtt_address(run_dir, mqtt_url)
    scanner = None
    if ble_replay is not None:
        if not ble_replay.is_file():
            raise ConfigError(f"--ble-replay {ble_replay}: no such trace file")
        if ble_speed <= 0:
            raise ConfigError(f"--ble-speed {ble_speed}: must be greater than 0")
        scanner = ReplayScannerConfig(path=ble_replay, speed=ble_speed)
    run_gateway(
        config,
        gateway,
        host,
        port,
        stop_on_signals(),
        topic_prefix=topic_prefix,
        heartbeat_s=heartbeat_s if heartbeat_s is not None else 30.0,
        cameras=cameras,
        scanner=scanner,
        auth=mqtt_auth(mqtt_credentials, gateway),
        outbox_path=outbox or run_dir / f"outbox-{gateway}.db",
    )


@friendly
def api(
    store_config: StoreOpt = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    mqtt_url: MqttUrl = None,
    redis_url: RedisUrl = None,
    host: Annotated[str, typer.Option("--host", help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to serve on.")] = 8080,
    topic_prefix: TopicPrefix = "",
    key_prefix: KeyPrefix = "",
    mqtt_credentials: MqttCredentials = None,
    secrets: SecretsOpt = None,
    metrics_token_file: Annotated[
        Path | None,
        typer.Option(
            "--metrics-token-file",
            help="File with the token Prometheus must send to /metrics (default with --secrets: "
            "SECRETS/metrics-token, made if absent). Without either, /metrics is open (local dev).",
        ),
    ] = None,
) -> None:
    """Serve the handheld pages (live prompts over SSE), the manager's dashboard and /metrics."""
    from floorwalker.provision import scrape_token
    from handheld import run_api

    config = load_store(store_config)
    token_file = metrics_token_file or (scrape_token(secrets) if secrets else None)
    metrics_token = None
    if token_file is not None:
        try:
            metrics_token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"--metrics-token-file {token_file}: cannot read it ({exc.strerror})") from None
        if not metrics_token:
            raise ConfigError(f"--metrics-token-file {token_file}: the file is empty; put the token in it")
    ep = endpoints(run_dir, mqtt_url, redis_url, mqtt_credentials)
    run_api(
        config,
        ep,
        host=host,
        port=port,
        topic_prefix=topic_prefix,
        key_prefix=key_prefix,
        auth=mqtt_auth(mqtt_credentials, "api"),
        metrics_token=metrics_token,
    )


@friendly
def fuser(
    store_config: StoreOpt = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    mqtt_url: MqttUrl = None,
    topic_prefix: TopicPrefix = "",
    mqtt_credentials: MqttCredentials = None,
) -> None:
    """Resolve gateways' rotating BLE ids and fuse them into zone enter/leave presence events."""
    from presence.fuser import FuserService

    config = load_store(store_config)
    host, port = mqtt_address(run_dir, mqtt_url)
    service = FuserService(
        config,
        Endpoints(host, port, ""),
        topic_prefix=topic_prefix,
        auth=mqtt_auth(mqtt_credentials, "fuser"),
    )
    stop = stop_on_signals()

    def stop_when_signalled() -> None:
        stop.wait()
        service.stop()

    threading.Thread(target=stop_when_signalled, daemon=True).start()
    service.run()
