"""Bridges to the store's own tools: ``floorwalker homeassistant`` (MQTT discovery) and
``floorwalker espresense`` (ESPresense receivers as gateways).

The root module registers these commands on the app (in the order of its help).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from floorwalker.cli.options import (
    DEFAULT_RUN_DIR,
    MqttCredentials,
    MqttUrl,
    RunDir,
    StoreOpt,
    TopicPrefix,
    friendly,
    load_store,
    mqtt_address,
    mqtt_auth,
    stop_on_signals,
)
from floorwalker.errors import ConfigError
from floorwalker.mqtt import MqttAuth


@friendly
def homeassistant(
    store_config: StoreOpt = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    mqtt_url: MqttUrl = None,
    topic_prefix: TopicPrefix = "",
    mqtt_credentials: MqttCredentials = None,
) -> None:
    """Announce the floor to Home Assistant (MQTT discovery) and keep its entities current."""
    from integrations.homeassistant import PRODUCER, HomeAssistantBridge

    config = load_store(store_config)
    if not config.home_assistant.enabled:
        raise ConfigError(
            "home_assistant.enabled is false in the store config: add `home_assistant: {enabled: true}`"
        )
    host, port = mqtt_address(run_dir, mqtt_url)
    bridge = HomeAssistantBridge(
        config, host, port, topic_prefix=topic_prefix, auth=mqtt_auth(mqtt_credentials, PRODUCER)
    )
    bridge.run(stop_on_signals())


@friendly
def espresense(
    rooms: Annotated[
        Path,
        typer.Option(
            "--rooms", help="YAML mapping ESPresense rooms to the store's gateway ids (docs/espresense.md)."
        ),
    ],
    store_config: StoreOpt = None,
    run_dir: RunDir = DEFAULT_RUN_DIR,
    mqtt_url: MqttUrl = None,
    source_url: Annotated[
        str | None,
        typer.Option(
            "--source-url", help="The broker the ESPresense nodes publish to (default: ours, --mqtt-url)."
        ),
    ] = None,
    topic_prefix: TopicPrefix = "",
    credentials_dir: Annotated[
        Path | None,
        typer.Option(
            "--credentials-dir",
            help="Folder of the gateways' broker logins (`floorwalker provision gateway` writes them).",
        ),
    ] = None,
) -> None:
    """Publish ESPresense receivers' sightings of member phones as our gateways' BLE reports."""
    from integrations.espresense import EspresenseBridge, load_espresense_config

    config = load_store(store_config)
    bridge_config = load_espresense_config(rooms, config)
    host, port = mqtt_address(run_dir, mqtt_url)
    source = mqtt_address(run_dir, source_url) if source_url is not None else None
    auth: dict[str, MqttAuth] = {}
    if credentials_dir is not None:
        from floorwalker.provision import load_credentials

        wanted = set(bridge_config.rooms.values())
        for path in sorted(credentials_dir.glob("*.json")):
            creds = load_credentials(path)
            if creds.id in wanted:
                auth[creds.id] = creds.auth()
        missing = sorted(wanted - set(auth))
        if missing:
            raise ConfigError(f"{credentials_dir}: no credentials for gateway(s) {', '.join(missing)}")
    bridge = EspresenseBridge(
        config, bridge_config, host, port, source=source, topic_prefix=topic_prefix, auth=auth
    )
    bridge.run(stop_on_signals())
