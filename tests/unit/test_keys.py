"""Redis key names: one customer's keys share a cluster slot; prefixes isolate runs."""

from __future__ import annotations

from redis.crc import key_slot

from recommender.keys import Keys


def test_one_customers_keys_share_a_slot() -> None:
    k = Keys("s1")
    slots = {
        key_slot(key.encode())
        for key in (
            k.profile("m_a1b2c3d4"),
            k.visit("m_a1b2c3d4"),
            k.member_seen("m_a1b2c3d4"),
            k.contacts("m_a1b2c3d4"),  # the presence script claims across all five
            k.suggested("m_a1b2c3d4"),
        )
    }
    assert len(slots) == 1


def test_prefix_and_store_scope_every_key() -> None:
    k = Keys("s1", "t123/")
    for key in (
        k.profile("m_a1b2c3d4"),
        k.visit("m_a1b2c3d4"),
        k.lane_seen("lane-1"),
        k.zone_seen("checkout"),
        k.store_cooldown("checkout", "open_till"),
        k.prompt("0" * 32),
        k.crm_model,
        k.deadletter,
        k.stats,
    ):
        assert key.startswith("t123/fw:s1:")
    assert k.pattern() == "t123/fw:s1:*"


def test_a_zones_store_prompt_keys_share_a_slot() -> None:
    k = Keys("s1")
    assert key_slot(k.zone_seen("checkout").encode()) == key_slot(
        k.store_cooldown("checkout", "open_till").encode()
    )
