"""The members' states kept in memory (recommender/member_cache.py): bounded by size and
age, never used for a contact history bound it cannot answer, and digested the way the
presence script digests the state it finds (tests/integration/test_member_cache.py checks
the two agree on a real Redis)."""

from __future__ import annotations

import hashlib

import pytest

from recommender.decide import Outcome, member_state, parse_reply
from recommender.member_cache import MemberCache, Raw, digest

PROFILE = ["tier", "gold", "consent", "1"]
VISIT = ["zone", "entrance", "last_ts", "1800000000"]
CONTACTS = ["p|greet_vip|a1", "1799990000", "p|birthday|b2", "1799999000"]
RAW: Raw = (PROFILE, VISIT, CONTACTS)


def test_the_digest_is_sha1_of_the_parts_joined_as_the_script_joins_them() -> None:
    text = (
        "4\1tier\0gold\0consent\x001\1"
        "4\1zone\0entrance\0last_ts\x001800000000\1"
        "4\1" + "\0".join(CONTACTS) + "\1"
    )
    assert digest(*RAW) == hashlib.sha1(text.encode()).hexdigest()
    # Any change of a value, of the order or of which part a value is in changes it.
    assert digest(["tier", "silver", "consent", "1"], VISIT, CONTACTS) != digest(*RAW)
    assert digest(PROFILE, [], VISIT + CONTACTS) != digest(PROFILE, VISIT, CONTACTS)
    assert digest([], [], []) != digest([""], [], [])


def test_a_kept_state_comes_back_with_its_digest_until_it_is_too_old() -> None:
    cache = MemberCache(size=10, ttl_s=60)
    cache.put("m1", RAW, since=1_799_000_000, mono=100.0)
    assert cache.get("m1", 1_799_000_000, 159.9) == (tuple(map(tuple, RAW)), digest(*RAW))
    assert cache.get("m1", 1_799_000_000, 160.0) is None  # ttl_s after it was kept
    assert "m1" not in cache
    assert (cache.hits, cache.misses) == (1, 1)


def test_a_later_bound_filters_the_contact_history_and_an_earlier_one_is_a_miss() -> None:
    cache = MemberCache()
    cache.put("m1", RAW, since=1_799_000_000, mono=0.0)
    # Later than one contact: that one is left out, and the digest is of what is left.
    kept = cache.get("m1", 1_799_995_000, 1.0)
    assert kept is not None
    raw, d = kept
    assert raw == (tuple(PROFILE), tuple(VISIT), ("p|birthday|b2", "1799999000"))
    assert d == digest(*raw)
    # Earlier than the bound it was read with: contacts may be missing, so not used.
    assert cache.get("m1", 1_798_000_000, 1.0) is None
    assert "m1" not in cache


def test_the_least_recently_used_member_goes_first_when_full() -> None:
    cache = MemberCache(size=2)
    cache.put("a", RAW, 0.0, 0.0)
    cache.put("b", RAW, 0.0, 0.0)
    assert cache.get("a", 0.0, 1.0) is not None  # a used: b is now the oldest
    cache.put("c", RAW, 0.0, 0.0)
    assert ("a" in cache, "b" in cache, "c" in cache) == (True, False, True)
    assert len(cache) == 2


def test_drop_clear_and_a_zero_size_cache() -> None:
    cache = MemberCache()
    cache.put("a", RAW, 0.0, 0.0)
    cache.put("b", RAW, 0.0, 0.0)
    cache.drop("a")
    cache.drop("nobody")
    assert "a" not in cache and "b" in cache
    cache.clear()
    assert len(cache) == 0
    off = MemberCache(size=0)
    off.put("a", RAW, 0.0, 0.0)
    assert len(off) == 0 and off.get("a", 0.0, 0.0) is None
    with pytest.raises(ValueError):
        MemberCache(size=-1)


def test_a_presence_reply_with_the_state_parses_into_outcome_and_state() -> None:
    flat = parse_reply(["ok", "claimed"])
    assert (flat.outcome, flat.rest, flat.state) == (Outcome.OK, ("claimed",), None)
    nested = parse_reply([["changed"], [PROFILE, VISIT, CONTACTS]])
    assert (nested.outcome, nested.rest, nested.state) == (Outcome.CHANGED, (), RAW)
    # Without the profile when the caller has it (the script checked it was unchanged).
    claimed = parse_reply([["ok", "claimed"], [VISIT, CONTACTS]])
    assert (claimed.outcome, claimed.rest, claimed.state) == (Outcome.OK, ("claimed",), (VISIT, CONTACTS))
    also_bytes = parse_reply([[b"ok", b"moved"], [[b"tier", b"gold"], [], []]])
    assert (also_bytes.outcome, also_bytes.rest, also_bytes.state) == (
        Outcome.OK,
        ("moved",),
        (["tier", "gold"], [], []),
    )
    state = member_state(RAW)
    assert state.profile == {"tier": "gold", "consent": "1"}
    assert state.visit == {"zone": "entrance", "last_ts": "1800000000"}
    assert state.contacts == [("p|greet_vip|a1", 1_799_990_000.0), ("p|birthday|b2", 1_799_999_000.0)]
    assert state.raw == RAW
