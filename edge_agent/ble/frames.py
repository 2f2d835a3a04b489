"""BLE advertisement frames, from the bytes on the air.

An advertisement's data is a sequence of AD structures ``[length][type][value...]``
(Bluetooth Core Spec, Vol 3 Part C §11), ``length`` counting the type byte. We read:

* ``0xFF`` manufacturer-specific data: 2-byte company id (little-endian), then the value.
  - **iBeacon** (Apple, company ``0x004C``): ``02 15`` + proximity UUID (16) + major (2,
    big-endian) + minor (2, big-endian) + measured power at 1 m (1, signed).
  - **Member app** (company ``0xFFFF``, the id reserved for tests and unassigned use):
    ``"FW"`` + version ``0x01`` + ephemeral id (8) + measured power at 1 m (1, signed).
* ``0x16`` service data with a 16-bit UUID: **Eddystone** (UUID ``0xFEAA``), first byte
  the frame type: ``0x00`` UID (tx power, namespace 10, instance 6, 2 reserved optional),
  ``0x10`` URL (tx power, scheme, encoded URL), ``0x20`` TLM (version, ...), ``0x30`` EID
  (tx power, ephemeral id 8).
* ``0x0A`` TX power level (1, signed).

:func:`parse_ad` turns raw bytes into :class:`AdFields` (the same shape bleak reports), and
:func:`classify` turns those into a frame. A truncated or malformed structure raises
:class:`FrameError` with a reason code; an advertisement that is none of ours is ``None``.
Pure code over bytes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from floorwalker.errors import PermanentError

APPLE: Final = 0x004C
MEMBER_APP_COMPANY: Final = 0xFFFF
MEMBER_APP_MAGIC: Final = b"FW\x01"
#: The member frame's optional flags byte: the phone's step detector says it is walking.
MEMBER_FLAG_MOVING: Final = 0x01
EDDYSTONE_UUID: Final = 0xFEAA

AD_FLAGS: Final = 0x01
AD_TX_POWER: Final = 0x0A
AD_SERVICE_DATA_16: Final = 0x16
AD_MANUFACTURER: Final = 0xFF

_BT_BASE_SUFFIX: Final = "-0000-1000-8000-00805f9b34fb"
_URL_SCHEMES: Final = ("http://www.", "https://www.", "http://", "https://")
_URL_EXPANSIONS: Final = (
    ".com/", ".org/", ".edu/", ".net/", ".info/", ".biz/", ".gov/",
    ".com", ".org", ".edu", ".net", ".info", ".biz", ".gov",
)  # fmt: skip


class FrameProblem(StrEnum):
    TRUNCATED = "truncated"
    MALFORMED = "malformed"


class FrameError(PermanentError):
    """An advertisement that cannot be read; ``reason`` is the counter it goes to."""

    def __init__(self, reason: FrameProblem, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AdFields:
    """What an advertisement says, keyed like bleak's ``AdvertisementData``."""

    manufacturer: dict[int, bytes] = field(default_factory=dict)
    service_data: dict[int, bytes] = field(default_factory=dict)
    tx_power: int | None = None

    @classmethod
    def from_bleak(
        cls, manufacturer_data: dict[int, bytes], service_data: dict[str, bytes], tx_power: int | None
    ) -> AdFields:
        """From bleak's fields (service data keyed by 128-bit UUID strings)."""
        short: dict[int, bytes] = {}
        for key, value in service_data.items():
            k = key.lower()
            if k.endswith(_BT_BASE_SUFFIX) and k.startswith("0000"):
                short[int(k[4:8], 16)] = bytes(value)
        return cls({int(c): bytes(v) for c, v in manufacturer_data.items()}, short, tx_power)

    def to_bytes(self) -> bytes:
        """Back to advertising data (what a recording of bleak's fields stores).

        Raises :class:`FrameError` when a value does not fit one AD structure.
        """
        out = bytearray()
        for company, value in sorted(self.manufacturer.items()):
            out += _ad(AD_MANUFACTURER, company.to_bytes(2, "little") + value)
        for uuid16, value in sorted(self.service_data.items()):
            out += _ad(AD_SERVICE_DATA_16, uuid16.to_bytes(2, "little") + value)
        if self.tx_power is not None:
            out += _ad(AD_TX_POWER, bytes([self.tx_power & 0xFF]))
        return bytes(out)


def _ad(ad_type: int, value: bytes) -> bytes:
    if len(value) > 254:
        raise FrameError(FrameProblem.MALFORMED, f"AD structure of {len(value)} bytes (at most 254)")
    return bytes([len(value) + 1, ad_type]) + value


@dataclass(frozen=True, slots=True)
class MemberAdvert:
    """The member app's advertisement: a rotating ephemeral id, and the phone's motion hint
    (its step detector says the member is walking) when the app sends one."""

    eid: bytes
    tx_power: int
    moving: bool | None = None


@dataclass(frozen=True, slots=True)
class EddystoneEid:
    eid: bytes
    tx_power: int


@dataclass(frozen=True, slots=True)
class IBeacon:
    uuid: uuid.UUID
    major: int
    minor: int
    tx_power: int


@dataclass(frozen=True, slots=True)
class EddystoneUid:
    namespace: bytes
    instance: bytes
    tx_power: int


@dataclass(frozen=True, slots=True)
class EddystoneUrl:
    url: str
    tx_power: int


@dataclass(frozen=True, slots=True)
class EddystoneTlm:
    version: int
    battery_mv: int | None
    temperature_c: float | None
    adv_count: int | None
    uptime_s: float | None


Frame = MemberAdvert | EddystoneEid | IBeacon | EddystoneUid | EddystoneUrl | EddystoneTlm


def _signed(b: int) -> int:
    return b - 256 if b > 127 else b


def parse_ad(data: bytes) -> AdFields:
    """Split raw advertising data into its AD structures (zero length = padding, stops)."""
    manufacturer: dict[int, bytes] = {}
    service_data: dict[int, bytes] = {}
    tx_power: int | None = None
    i, n = 0, len(data)
    while i < n:
        length = data[i]
        if length == 0:
            break  # the rest is padding
        end = i + 1 + length
        if end > n:
            raise FrameError(
                FrameProblem.TRUNCATED, f"AD structure at byte {i} needs {length} bytes, {n - i - 1} left"
            )
        ad_type = data[i + 1]
        value = data[i + 2 : end]
        if ad_type == AD_MANUFACTURER:
            if len(value) < 2:
                raise FrameError(FrameProblem.TRUNCATED, "manufacturer data without a company id")
            manufacturer[value[0] | value[1] << 8] = value[2:]
        elif ad_type == AD_SERVICE_DATA_16:
            if len(value) < 2:
                raise FrameError(FrameProblem.TRUNCATED, "service data without a UUID")
            service_data[value[0] | value[1] << 8] = value[2:]
        elif ad_type == AD_TX_POWER:
            if len(value) != 1:
                raise FrameError(FrameProblem.MALFORMED, f"TX power level of {len(value)} bytes")
            tx_power = _signed(value[0])
        i = end
    return AdFields(manufacturer, service_data, tx_power)


def classify(fields: AdFields) -> Frame | None:
    """The frame this advertisement carries, or None when it is none we know."""
    member = fields.manufacturer.get(MEMBER_APP_COMPANY)
    if member is not None and member[:2] == MEMBER_APP_MAGIC[:2]:
        if len(member) < 12:
            raise FrameError(FrameProblem.TRUNCATED, f"member advert of {len(member)} bytes, need 12")
        if member[2] != MEMBER_APP_MAGIC[2]:
            raise FrameError(FrameProblem.MALFORMED, f"member advert version {member[2]}, expected 1")
        # Byte 12, optional (older apps stop at 12 bytes): flags, bit 0 = walking now.
        moving = bool(member[12] & MEMBER_FLAG_MOVING) if len(member) > 12 else None
        return MemberAdvert(member[3:11], _signed(member[11]), moving)
    apple = fields.manufacturer.get(APPLE)
    if apple is not None and apple[:1] == b"\x02":
        if len(apple) < 23 or apple[1] != 0x15:
            raise FrameError(FrameProblem.TRUNCATED, f"iBeacon of {len(apple)} bytes, need 23")
        return IBeacon(
            uuid.UUID(bytes=apple[2:18]),
            apple[18] << 8 | apple[19],
            apple[20] << 8 | apple[21],
            _signed(apple[22]),
        )
    eddy = fields.service_data.get(EDDYSTONE_UUID)
    if eddy is not None:
        return _eddystone(eddy)
    return None


def _eddystone(value: bytes) -> Frame:
    if not value:
        raise FrameError(FrameProblem.TRUNCATED, "empty Eddystone frame")
    kind = value[0]
    if kind == 0x00:
        if len(value) < 18:
            raise FrameError(FrameProblem.TRUNCATED, f"Eddystone-UID of {len(value)} bytes, need 18")
        return EddystoneUid(value[2:12], value[12:18], _signed(value[1]))
    if kind == 0x10:
        if len(value) < 3:
            raise FrameError(FrameProblem.TRUNCATED, "Eddystone-URL without a scheme")
        if value[2] >= len(_URL_SCHEMES):
            raise FrameError(FrameProblem.MALFORMED, f"Eddystone-URL scheme {value[2]}")
        parts = [_URL_SCHEMES[value[2]]]
        for b in value[3:]:
            if b < len(_URL_EXPANSIONS):
                parts.append(_URL_EXPANSIONS[b])
            elif 0x20 < b < 0x7F:
                parts.append(chr(b))
            else:
                raise FrameError(FrameProblem.MALFORMED, f"Eddystone-URL byte 0x{b:02x} is reserved")
        return EddystoneUrl("".join(parts), _signed(value[1]))
    if kind == 0x20:
        if len(value) < 2:
            raise FrameError(FrameProblem.TRUNCATED, "Eddystone-TLM without a version")
        if value[1] == 0x00:  # unencrypted TLM: battery, temperature (8.8 fixed), counts
            if len(value) < 14:
                raise FrameError(FrameProblem.TRUNCATED, f"Eddystone-TLM of {len(value)} bytes, need 14")
            temp = int.from_bytes(value[4:6], "big", signed=True) / 256.0
            return EddystoneTlm(
                0,
                int.from_bytes(value[2:4], "big"),
                temp,
                int.from_bytes(value[6:10], "big"),
                int.from_bytes(value[10:14], "big") / 10.0,
            )
        return EddystoneTlm(value[1], None, None, None, None)  # encrypted TLM: opaque
    if kind == 0x30:
        if len(value) < 10:
            raise FrameError(FrameProblem.TRUNCATED, f"Eddystone-EID of {len(value)} bytes, need 10")
        return EddystoneEid(value[2:10], _signed(value[1]))
    raise FrameError(FrameProblem.MALFORMED, f"unknown Eddystone frame type 0x{kind:02x}")


def parse(data: bytes) -> Frame | None:
    """Raw advertising data to a frame (``None`` when it is none we know)."""
    return classify(parse_ad(data))


# -- encoders (the app side, beacons in tests and the RF model) ----------------------------

_FLAGS: Final = bytes([2, AD_FLAGS, 0x06])  # LE general discoverable, BR/EDR not supported


def encode_member_advert(eid: bytes, tx_power: int, moving: bool | None = None) -> bytes:
    """The member app's advertising data: flags + manufacturer data (company 0xFFFF);
    with ``moving`` (True/False), the motion-hint flags byte too."""
    if len(eid) != 8:
        raise ValueError("an ephemeral id is 8 bytes")
    value = MEMBER_APP_COMPANY.to_bytes(2, "little") + MEMBER_APP_MAGIC + eid + bytes([tx_power & 0xFF])
    if moving is not None:
        value += bytes([MEMBER_FLAG_MOVING if moving else 0])
    return _FLAGS + bytes([len(value) + 1, AD_MANUFACTURER]) + value


def encode_ibeacon(beacon_uuid: uuid.UUID, major: int, minor: int, tx_power: int) -> bytes:
    value = (
        APPLE.to_bytes(2, "little")
        + b"\x02\x15"
        + beacon_uuid.bytes
        + major.to_bytes(2, "big")
        + minor.to_bytes(2, "big")
        + bytes([tx_power & 0xFF])
    )
    return _FLAGS + bytes([len(value) + 1, AD_MANUFACTURER]) + value


def encode_eddystone(frame: bytes) -> bytes:
    """Flags + complete list of 16-bit UUIDs (0xFEAA) + service data (0xFEAA, ``frame``)."""
    uuid16 = EDDYSTONE_UUID.to_bytes(2, "little")
    value = uuid16 + frame
    return _FLAGS + bytes([3, 0x03]) + uuid16 + bytes([len(value) + 1, AD_SERVICE_DATA_16]) + value
