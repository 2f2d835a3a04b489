"""Rotating member ids: they change at every window boundary, only the store server's
secrets resolve them, clock skew is tolerated up to the configured bound and no further,
and members without consent or with a revoked secret resolve to nothing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.ble.eid import MemberBeacon, eid_for, member_secret, window_index
from edge_agent.ble.frames import MemberAdvert, parse
from floorwalker.ble_keys import BleKeyFile
from presence.eid_resolver import EidResolver
from recommender.crm import Consent, CrmFixture, Member

KEY = bytes(range(32))
W = 300  # window, s
T0 = 1_800_000_100.0 - (1_800_000_100.0 % W)  # a window boundary


def beacon(member: str) -> MemberBeacon:
    return MemberBeacon(member_secret(KEY, member), W)


def resolver(members: list[str], skew: float = 90.0) -> EidResolver:
    return EidResolver(KEY, members, window_s=W, skew_s=skew)


def test_id_is_stable_within_a_window_and_changes_at_its_boundary() -> None:
    b = beacon("m_702cc64d")
    assert b.eid(T0) == b.eid(T0 + W - 0.001)
    assert b.eid(T0 + W) != b.eid(T0 + W - 0.001)
    assert len({b.eid(T0 + k * W) for k in range(50)}) == 50


def test_advert_carries_the_current_id_in_the_member_frame() -> None:
    b = beacon("m_702cc64d")
    frame = parse(b.advert(T0 + 10))
    assert frame == MemberAdvert(b.eid(T0 + 10), -59)


def test_members_ids_differ_and_the_secret_depends_on_the_store_key() -> None:
    assert beacon("m_702cc64d").eid(T0) != beacon("m_1d54fa96").eid(T0)
    assert member_secret(KEY, "m_702cc64d") != member_secret(bytes(32), "m_702cc64d")


@pytest.mark.parametrize(
    ("heard_s", "phone_offset_s", "resolves"),
    [
        (-10.0, 0.0, True),  # same window
        (-10.0, 60.0, True),  # phone ahead, already in the next window
        (10.0, -60.0, True),  # phone behind, still in the previous window
        (-5.0, 89.0, True),
        (-100.0, 120.0, False),  # 120 s ahead: beyond the 90 s tolerance
        (100.0, -120.0, False),
        (150.0, 300.0, False),  # a whole window off
    ],
)
def test_skew_is_tolerated_up_to_the_bound_across_a_boundary(
    heard_s: float, phone_offset_s: float, resolves: bool
) -> None:
    """``heard_s``: when the gateway heard the phone, relative to a window boundary."""
    heard_at = T0 + heard_s
    eid = beacon("m_702cc64d").eid(heard_at + phone_offset_s).hex()
    crosses = window_index(heard_at + phone_offset_s, W) != window_index(heard_at, W)
    assert crosses or phone_offset_s == 0
    assert resolver(["m_702cc64d"]).resolve(eid, heard_at) == ("m_702cc64d" if resolves else None)


def test_unknown_id_resolves_to_nothing_and_is_counted() -> None:
    r = resolver(["m_702cc64d"])
    assert r.resolve("0011223344556677", T0) is None
    assert r.counters["unknown"] == 1


def test_consent_and_revocation_decide_who_can_resolve() -> None:
    fixture = CrmFixture(
        members=[
            Member(
                member="m_yes00001",
                display_name="Y",
                tier="gold",
                points=0,
                consent=Consent(recognition=True),
            ),
            Member(member="m_no000002", display_name="N", tier="gold", points=0),
            Member(
                member="m_gone0003",
                display_name="G",
                tier="gold",
                points=0,
                consent=Consent(recognition=True),
            ),
        ]
    )
    r = EidResolver.from_fixture(
        BleKeyFile(store_key=KEY.hex(), revoked=["m_gone0003"]), fixture, window_s=W, skew_s=0
    )
    for member, expected in (("m_yes00001", "m_yes00001"), ("m_no000002", None), ("m_gone0003", None)):
        assert r.resolve(beacon(member).eid(T0).hex(), T0) == expected
    r.revoke("m_yes00001")  # opt-out or erasure: at once, even inside a cached window
    assert r.resolve(beacon("m_yes00001").eid(T0).hex(), T0) is None


def test_window_of_at_most_15_minutes() -> None:
    with pytest.raises(ValueError, match="window_s"):
        MemberBeacon(member_secret(KEY, "m_702cc64d"), 901)


@given(st.integers(min_value=0, max_value=10**9), st.text(min_size=1, max_size=20))
def test_eid_is_8_bytes_and_deterministic(window: int, member: str) -> None:
    secret = member_secret(KEY, member)
    assert eid_for(secret, window) == eid_for(secret, window)
    assert len(eid_for(secret, window)) == 8
