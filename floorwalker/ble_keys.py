"""The store's BLE key file: the key every consenting member's rotating id derives from,
and the members whose secrets are revoked (opt-out, erasure). It lives on the store server
(``ble_presence.secrets`` in the store config); the fuser reads it, erasure writes it.

Key file (JSON)::

    {"store_key": "<64 hex digits>", "revoked": ["m_0096e0d4"]}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from broker_config.contract import MemberRef
from floorwalker.config import load_model


class BleKeyFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    store_key: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32,128}$")]
    revoked: list[MemberRef] = []


def read_key_file(path: Path) -> BleKeyFile:
    return load_model(
        path, BleKeyFile, "BLE key", hint="check the store config's `ble_presence.secrets` key", syntax="json"
    )


def write_key_file(path: Path, key: BleKeyFile) -> None:
    path.write_text(json.dumps(key.model_dump(), indent=2) + "\n")
