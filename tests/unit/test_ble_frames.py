"""BLE frame parsing from real byte layouts: iBeacon, Eddystone (UID, URL, TLM, EID), the
member app's frame; truncated and malformed input raises FrameError, never anything else."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.ble.frames import (
    AdFields,
    EddystoneEid,
    EddystoneTlm,
    EddystoneUid,
    EddystoneUrl,
    FrameError,
    FrameProblem,
    IBeacon,
    MemberAdvert,
    classify,
    encode_eddystone,
    encode_ibeacon,
    encode_member_advert,
    parse,
    parse_ad,
)

AIRLOCATE = "e2c56db5-dffb-48d2-b060-d0f5a71096e0"

# Advertising data exactly as it goes over the air (flags first, then the frame).
IBEACON_HEX = "0201061aff4c000215e2c56db5dffb48d2b060d0f5a71096e000010002c5"
EDDY_UID_HEX = "0201060303aafe1716aafe00e7000102030405060708090a0b0c0d0e0f0000"
EDDY_URL_HEX = "0201060303aafe0d16aafe10eb03676f6f676c6507"  # https://google.com
EDDY_TLM_HEX = "0201060303aafe1116aafe20000bb819000000001000000064"
EDDY_EID_HEX = "0201060303aafe0d16aafe30e71122334455667788"
MEMBER_HEX = "0201060fffffff4657010102030405060708c5"


@pytest.mark.parametrize(
    ("hexdata", "expected"),
    [
        (IBEACON_HEX, IBeacon(uuid.UUID(AIRLOCATE), 1, 2, -59)),
        (EDDY_UID_HEX, EddystoneUid(bytes(range(10)), bytes(range(10, 16)), -25)),
        (EDDY_URL_HEX, EddystoneUrl("https://google.com", -21)),
        (EDDY_TLM_HEX, EddystoneTlm(0, 3000, 25.0, 16, 10.0)),
        (EDDY_EID_HEX, EddystoneEid(bytes.fromhex("1122334455667788"), -25)),
        (MEMBER_HEX, MemberAdvert(bytes(range(1, 9)), -59)),
        ("02010609ff0600010920024d4f", None),  # Microsoft (0x0006) CDP beacon: not ours
        ("0201060709466f6f626172", None),  # flags + a local name only
        ("", None),
        ("02010600ffff", None),  # zero length: the rest is padding
    ],
    ids=[
        "ibeacon",
        "eddystone-uid",
        "eddystone-url",
        "eddystone-tlm",
        "eddystone-eid",
        "member",
        "microsoft",
        "name-only",
        "empty",
        "padding",
    ],
)
def test_real_layouts(hexdata: str, expected: object) -> None:
    assert parse(bytes.fromhex(hexdata)) == expected


@pytest.mark.parametrize(
    ("hexdata", "problem"),
    [
        (IBEACON_HEX[:-2], FrameProblem.TRUNCATED),  # AD length says one byte more than there is
        ("02010619ff4c000215e2c56db5dffb48d2b060d0f5a71096e000010002", FrameProblem.TRUNCATED),
        ("0201060dffffff46570101020304050607", FrameProblem.TRUNCATED),  # member eid 7 bytes
        ("0201060fffffff4657020102030405060708c5", FrameProblem.MALFORMED),  # version 2
        ("0201060303aafe0616aafe30e70102", FrameProblem.TRUNCATED),  # EID 2 of 8 bytes
        ("0201060303aafe0416aafe40", FrameProblem.MALFORMED),  # unknown Eddystone frame
        ("0201060303aafe0716aafe10eb0961", FrameProblem.MALFORMED),  # URL scheme 9
        ("02010602ff4c", FrameProblem.TRUNCATED),  # manufacturer data without company id
        ("020106030a0102", FrameProblem.MALFORMED),  # TX power of two bytes
    ],
)
def test_broken_frames_raise_a_reason(hexdata: str, problem: FrameProblem) -> None:
    with pytest.raises(FrameError) as err:
        parse(bytes.fromhex(hexdata))
    assert err.value.reason is problem


def test_encoders_produce_the_real_layouts() -> None:
    assert encode_ibeacon(uuid.UUID(AIRLOCATE), 1, 2, -59).hex() == IBEACON_HEX
    assert encode_member_advert(bytes(range(1, 9)), -59).hex() == MEMBER_HEX
    assert encode_eddystone(bytes.fromhex("30e71122334455667788")).hex() == EDDY_EID_HEX


def test_bleak_fields_classify_like_raw_bytes() -> None:
    """bleak hands over dicts (service data keyed by 128-bit UUID strings), not raw bytes."""
    fields = AdFields.from_bleak(
        {0xFFFF: bytes.fromhex("4657010102030405060708c5")},
        {"0000feaa-0000-1000-8000-00805f9b34fb": bytes.fromhex("30e71122334455667788")},
        None,
    )
    assert classify(fields) == MemberAdvert(bytes(range(1, 9)), -59)
    eddy = AdFields.from_bleak(
        {}, {"0000FEAA-0000-1000-8000-00805F9B34FB": bytes.fromhex("30e71122334455667788")}, 4
    )
    assert classify(eddy) == EddystoneEid(bytes.fromhex("1122334455667788"), -25)


@given(st.binary(max_size=62), st.binary(max_size=20))
def test_any_bytes_parse_or_raise_frame_error_and_padding_ends_the_data(data: bytes, junk: bytes) -> None:
    """Any bytes: a frame, None or a FrameError (nothing else); once they parse, a zero
    length after them ends the data, so whatever follows it changes nothing."""
    try:
        frame = parse(data)
    except FrameError as exc:
        assert exc.reason in FrameProblem
        return
    assert parse(data + b"\x00" + junk) == frame
    assert parse_ad(data + b"\x00" + junk) == parse_ad(data)


@given(st.binary(min_size=8, max_size=8), st.binary(max_size=20), st.sampled_from([0x08, 0x09, 0x19, 0x03]))
def test_other_ad_structures_around_a_frame_change_nothing(eid: bytes, other: bytes, ad_type: int) -> None:
    """A local name, an appearance or a UUID list before or after the member's frame."""
    advert = encode_member_advert(eid, -59)
    extra = bytes([len(other) + 1, ad_type]) + other
    expected = MemberAdvert(eid, -59)
    assert parse(extra + advert) == parse(advert + extra) == expected


@given(st.binary(min_size=8, max_size=8), st.integers(-100, 20), st.sampled_from([None, True, False]))
def test_member_advert_round_trips(eid: bytes, tx: int, moving: bool | None) -> None:
    assert parse(encode_member_advert(eid, tx, moving)) == MemberAdvert(eid, tx, moving)


@pytest.mark.parametrize(
    ("hexdata", "moving"),
    [
        (MEMBER_HEX, None),  # an app without the motion hint: 12 bytes, no flags byte
        ("02010610ffffff4657010102030405060708c501", True),
        ("02010610ffffff4657010102030405060708c500", False),
        ("02010610ffffff4657010102030405060708c5fe", False),  # only bit 0 means walking
    ],
    ids=["no-hint", "walking", "still", "other-bits"],
)
def test_the_member_frames_motion_hint(hexdata: str, moving: bool | None) -> None:
    assert parse(bytes.fromhex(hexdata)) == MemberAdvert(bytes(range(1, 9)), -59, moving)


@given(st.binary(min_size=3, max_size=40))
def test_a_cut_member_advert_is_never_misread(data: bytes) -> None:
    whole = encode_member_advert(b"\x01" * 8, -59)
    cut = whole[: len(data) % len(whole)]
    try:
        frame = parse(cut)
    except FrameError:
        return
    assert frame is None  # cut before the frame began
    assert parse_ad(cut).manufacturer == {}


@given(
    st.dictionaries(st.integers(0, 0xFFFF), st.binary(max_size=20), max_size=3),
    st.dictionaries(st.integers(0, 0xFFFF), st.binary(max_size=20), max_size=3),
    st.none() | st.integers(-128, 127),
)
def test_bleak_fields_survive_a_recording(
    manufacturer: dict[int, bytes], service: dict[int, bytes], tx: int | None
) -> None:
    """A recording of bleak's fields (to_bytes) parses back to the same fields."""
    fields = AdFields(manufacturer, service, tx)
    assert parse_ad(fields.to_bytes()) == fields
