"""Rotating ephemeral ids (EIDs) for the member app, Eddystone-EID style.

A consenting member's app holds a 16-byte secret issued by the store server. In each time
window of ``window_s`` seconds (at most 15 minutes) it advertises::

    eid = HMAC-SHA256(secret, b"fw-eid/v1" || window_index as 8 bytes big-endian)[:8]

with ``window_index = floor(t / window_s)``. Without the secret a bystander sees an
unrelated 8-byte value each window (and the phone's random address rotates too), so a
phone cannot be followed across windows; the store server, which holds the secrets,
precomputes the table ``eid -> member`` per window and resolves in one lookup.

This module is the shared definition: the app side (:class:`MemberBeacon`, used by the
simulators and tests), and the derivation the resolver uses. Pure; time is passed in.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from typing import Final

from edge_agent.ble.frames import encode_member_advert

EID_BYTES: Final = 8
SECRET_BYTES: Final = 16
MAX_WINDOW_S: Final = 900
_EID_LABEL: Final = b"fw-eid/v1"
_SECRET_LABEL: Final = b"fw-member-secret/v1/"


def window_index(ts: float, window_s: int) -> int:
    """The EID window ``ts`` falls in."""
    return math.floor(ts / window_s)


def eid_for(secret: bytes, window: int) -> bytes:
    """The 8-byte ephemeral id of ``secret`` in ``window``."""
    return hmac.digest(secret, _EID_LABEL + window.to_bytes(8, "big", signed=True), hashlib.sha256)[
        :EID_BYTES
    ]


def member_secret(store_key: bytes, member: str) -> bytes:
    """A member's BLE secret, derived on the store server from the store key (never on the wire)."""
    return hmac.digest(store_key, _SECRET_LABEL + member.encode(), hashlib.sha256)[:SECRET_BYTES]


class MemberBeacon:
    """The member app's side: what the phone advertises at time ``ts`` by its own clock."""

    def __init__(self, secret: bytes, window_s: int, *, tx_power_dbm: int = -59) -> None:
        if len(secret) != SECRET_BYTES:
            raise ValueError(f"a member secret is {SECRET_BYTES} bytes, got {len(secret)}")
        if not 0 < window_s <= MAX_WINDOW_S:
            raise ValueError(f"window_s must be in (0, {MAX_WINDOW_S}], got {window_s}")
        self.secret = secret
        self.window_s = window_s
        self.tx_power_dbm = tx_power_dbm
        self._cache: tuple[int, bytes] | None = None

    def eid(self, ts: float) -> bytes:
        w = window_index(ts, self.window_s)
        if self._cache is None or self._cache[0] != w:
            self._cache = (w, eid_for(self.secret, w))
        return self._cache[1]

    def advert(self, ts: float, moving: bool | None = None) -> bytes:
        """The raw advertising data (AD structures) the phone sends at ``ts``; ``moving``:
        the phone's step detector's verdict (None: the app has no motion permission)."""
        return encode_member_advert(self.eid(ts), self.tx_power_dbm, moving)
