"""Bridges to the store's own tools: ``floorwalker homeassistant`` (MQTT discovery).

The root module registers these commands on the app (in the order of its help).
"""

from __future__ import annotations

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
