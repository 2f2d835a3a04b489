"""The store's BLE key file: the key every consenting member's rotating id derives from,
and the members whose secrets are revoked (opt-out, erasure). It lives on the store server
(``ble_presence.secrets`` in the store config); the fuser reads it, erasure writes it.

Key file (JSON)::

    {"store_key": "<64 hex digits>", "revoked": ["m_obrien011"]}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from broker_config.contract import MemberRef
from floorwalker.config import describe
from floorwalker.errors import ConfigError


class BleKeyFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    store_key: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32,128}$")]
    revoked: list[MemberRef] = []


def read_key_file(path: Path) -> BleKeyFile:
    try:
        return BleKeyFile.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: BLE key file not found (check the store config's `ble_presence.secrets` key)"
        ) from None
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe(exc)}") from None


def write_key_file(path: Path, key: BleKeyFile) -> None:
    path.write_text(json.dumps(key.model_dump(), indent=2) + "\n")
