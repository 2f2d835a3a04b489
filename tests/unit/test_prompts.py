"""Prompt wording and routing: specific, with a reason, and never a name on the wire."""

from __future__ import annotations

import pytest

from broker_config.contract import EnvelopeSource, PromptKind, encode
from floorwalker.config import StoreConfig
from recommender.crm import DAY, read_fixture
from recommender.decide import Decision, Outcome, parse_reply
from recommender.prompts import Cause, build_prompt, word
from recommender.routing import Router

T = 1_800_000_000.0


def test_replenishment_says_what_how_often_and_since_when(store_config: StoreConfig) -> None:
    decision = Decision(
        Outcome.OK,
        PromptKind.REPLENISHMENT_DUE,
        "sauces",
        "gold",
        1840,
        T - 32 * DAY,
        30.6 * DAY,
        "Kikkoman 500 ml",
    )
    w = word(decision, Cause("0" * 32, T, "m_chen0001", zone="pantry"), store_config)
    assert w.headline == "Kikkoman 500 ml due"
    assert w.why == "Buys Kikkoman 500 ml about every 31 days; last bought 32 days ago."
    assert "Pantry" in w.suggestion and "5% off" in w.suggestion


def test_greeting_and_invite(store_config: StoreConfig) -> None:
    greet = word(Decision(Outcome.OK, PromptKind.GREET_VIP, tier="platinum", points=5210),
                 Cause("0" * 32, T, "m_okafor02", zone="entrance"), store_config)  # fmt: skip
    assert "Platinum member" in greet.why and "Entrance" in greet.why and "5,210 points" in greet.suggestion
    invite = word(
        Decision(Outcome.OK, PromptKind.JOIN_INVITE), Cause("0" * 32, T, None, lane="lane-1"), store_config
    )
    assert "without a member card" in invite.why


def test_prompt_on_the_wire_carries_no_name(store_config: StoreConfig) -> None:
    assert store_config.crm is not None
    names = [m.display_name for m in read_fixture(store_config.crm).members]
    decision = Decision(Outcome.OK, PromptKind.GREET_VIP, tier="gold", points=1840)
    prompt = build_prompt(decision, Cause("0" * 32, T, "m_chen0001", zone="entrance"), store_config,
                          EnvelopeSource("recommender"), T)  # fmt: skip
    wire = encode(prompt).decode()
    assert "m_chen0001" in wire
    assert not any(name in wire for name in names)
    assert prompt.expires_at == T + store_config.rules.prompt_ttl_s


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ([b"duplicate"], Decision(Outcome.DUPLICATE)),
        ([b"ok"], Decision(Outcome.OK)),
        (
            [b"ok", b"greet_vip", b"", b"gold", b"10"],
            Decision(Outcome.OK, PromptKind.GREET_VIP, "", "gold", 10),
        ),
        (
            [b"ok", b"replenishment_due", b"tea", b"", b"", b"1700000000", b"86400", b"Sencha"],
            Decision(Outcome.OK, PromptKind.REPLENISHMENT_DUE, "tea", "", None, 1.7e9, 86400.0, "Sencha"),
        ),
        ([b"ok", b"join_invite"], Decision(Outcome.OK, PromptKind.JOIN_INVITE)),
    ],
)
def test_parse_reply(reply: list[bytes], expected: Decision) -> None:
    assert parse_reply(list(reply)) == expected


@pytest.mark.parametrize(
    ("zone", "associate"),
    [("entrance", "a-amy"), ("pantry", "a-ben"), ("beauty", "a-cara"), ("nowhere", "a-amy")],
)
def test_routing_by_zone(store_config: StoreConfig, zone: str, associate: str) -> None:
    assert Router(store_config).for_zone(zone) == associate


def test_routing_by_lane(store_config: StoreConfig) -> None:
    router = Router(store_config)
    assert (router.for_lane("lane-2"), router.for_lane("lane-9")) == ("a-dan", "a-amy")
