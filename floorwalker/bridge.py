"""The Mosquitto bridge from a store's broker to the chain's central broker."""

from __future__ import annotations

from pathlib import Path
from string import Template

from broker_config import BRIDGE_TEMPLATE
from broker_config.contract import TOPIC_ROOT
from floorwalker.config import StoreConfig
from floorwalker.provision import DeviceCredentials


def render_bridge(
    store: StoreConfig,
    login: DeviceCredentials,
    central_host: str,
    central_port: int,
    prefix: str = "",
    ca_file: Path | None = None,
) -> str:
    """Bridge config text: this store's events go up to ``central_host:central_port``;
    over TLS when ``ca_file`` (the central broker's CA, as a file Mosquitto reads) is given."""
    tls = f"bridge_cafile {ca_file}" if ca_file is not None else "# plain MQTT (no CA)"
    return Template(BRIDGE_TEMPLATE.read_text()).substitute(
        name=f"bridge-{store.store}",
        central_host=central_host,
        central_port=central_port,
        remote_username=login.username,
        remote_password=login.password,
        bridge_tls=tls,
        root=f"{prefix}{TOPIC_ROOT}",
        store=store.store,
    )
