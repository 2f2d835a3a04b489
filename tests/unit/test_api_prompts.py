"""Stream ids, the live fan-out (bounded: a slow page is made to resume), and the customer card."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker_config.contract import PromptKind
from handheld.prompts import QUEUE_SIZE, HandheldPrompt, LiveFeed, LivePrompt, parse_sid
from handheld.routes import card_from_profile


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("1700000000000-0", (1700000000000, 0)),
        ("5-12", (5, 12)),
        (None, None),
        ("", None),
        ("abc", None),
        ("1-2-3", None),
        ("0123456789abcdef0123456789abcdef", None),  # an old-style prompt id
        ("1" * 21 + "-0", None),
    ],
)
def test_parse_sid(raw: str | None, parsed: tuple[int, int] | None) -> None:
    assert parse_sid(raw) == parsed


@given(
    st.tuples(st.integers(0, 2**63), st.integers(0, 2**63)),
    st.tuples(st.integers(0, 2**63), st.integers(0, 2**63)),
)
def test_parsed_sids_order_like_redis(a: tuple[int, int], b: tuple[int, int]) -> None:
    pa, pb = parse_sid(f"{a[0]}-{a[1]}"), parse_sid(f"{b[0]}-{b[1]}")
    assert pa is not None and pb is not None
    assert (pa < pb) == (a < b)


NUMBER = st.integers(0, 2**66) | st.integers(2**64 - 2, 2**64 + 1)


@given(
    st.text(max_size=80)
    | st.from_regex(r"[0-9]{1,22}-[0-9]{1,22}", fullmatch=True)
    | st.tuples(NUMBER, NUMBER).map(lambda pair: f"{pair[0]}-{pair[1]}")
)
def test_a_sid_is_two_numbers_each_below_2_to_the_64_or_none(raw: str) -> None:
    """Any text: a stream id is ``ms-seq``, each part at most 20 digits and below 2**64
    (what Redis accepts); anything else is None, never an exception."""
    parsed = parse_sid(raw)
    parts = raw.split("-")
    well_formed = (
        len(parts) == 2
        and all(0 < len(part) <= 20 and part.isdecimal() for part in parts)
        and all(int(part) < 2**64 for part in parts)
    )
    assert (parsed is not None) == well_formed
    if parsed is not None:
        assert parsed == (int(parts[0]), int(parts[1]))
        assert parse_sid(f"{parsed[0]}-{parsed[1]}") == parsed


def prompt(associate: str, n: int) -> HandheldPrompt:
    return HandheldPrompt(
        prompt_id=f"{n:032x}",
        associate=associate,
        kind=PromptKind.GREET_VIP,
        customer_name="Mrs Chen",
        member="m_702cc64d",
        tier="gold",
        points=None,
        zone="pantry",
        lane=None,
        headline="h",
        suggestion="s",
        why="w",
        ts=1.7e9,
        since=1.7e9,
        expires_at=1.7e9 + 300,
        sid=f"{n}-0",
    )


def test_live_feed_reaches_only_that_associates_pages() -> None:
    async def run() -> None:
        feed = LiveFeed()
        ben1, ben2, amy = feed.subscribe("a-ben"), feed.subscribe("a-ben"), feed.subscribe("a-amy")
        feed.publish(prompt("a-ben", 1))
        got1, got2 = ben1.queue.get_nowait(), ben2.queue.get_nowait()
        assert isinstance(got1, LivePrompt) and got1 is got2  # encoded once for both pages
        assert got1.view == prompt("a-ben", 1)
        assert amy.queue.empty()
        feed.unsubscribe(ben1)
        feed.publish(prompt("a-ben", 2))
        assert ben1.queue.empty() and ben2.queue.qsize() == 1
        assert feed.open_streams == 2

    asyncio.run(run())


def test_a_page_that_falls_behind_is_ended_to_resume_not_silently_dropped() -> None:
    async def run() -> None:
        feed = LiveFeed()
        slow = feed.subscribe("a-ben")
        for n in range(QUEUE_SIZE + 5):
            feed.publish(prompt("a-ben", n))
        # Everything queued was dropped for one end marker: the browser reconnects with
        # Last-Event-ID and reads the rest from the Redis stream.
        assert slow.queue.qsize() == 1 and slow.queue.get_nowait() is None
        assert feed.overflows == 1 and slow.ended

    asyncio.run(run())


def test_end_streams_ends_every_page() -> None:
    async def run() -> None:
        feed = LiveFeed()
        subs = [feed.subscribe("a-ben"), feed.subscribe("a-amy")]
        feed.end_streams()
        assert [s.queue.get_nowait() for s in subs] == [None, None]

    asyncio.run(run())


def test_customer_card_from_profile() -> None:
    now = 1.8e9
    profile = {
        "name": "Mrs Chen",
        "tier": "gold",
        "points": "1840",
        "last:sauces": str(now - 32 * 86_400),
        "label:sauces": "Kikkoman soy sauce",
        "last:milk": str(now - 2 * 86_400),
        "last:tea": "garbage",
        "interval:sauces": "2678400",
    }
    card = card_from_profile("m_702cc64d", profile, now)
    assert (card.name, card.tier, card.points, card.open_complaint) == ("Mrs Chen", "gold", 1840, None)
    assert [(r.category, r.label, r.days_ago) for r in card.recent] == [
        ("milk", "milk", 2),
        ("sauces", "Kikkoman soy sauce", 32),
    ]
    assert card_from_profile("m_x000001", {}, now).name == "Member"
