"""Routing: the best associate for a prompt, busy and away associates, the usual associate,
managers for store-wide prompts, hourly caps, and re-routing when not accepted in time."""

from __future__ import annotations

import gc

import pytest

from floorwalker.config import StoreConfig
from recommender.routing import OpenPrompt, Router

T = 1_800_000_000.0


def _open(
    router: Router, pid: str, associate: str, zone: str = "pantry", at: float = T, ttl: float = 300
) -> OpenPrompt:
    return router.sent(OpenPrompt(pid, associate, zone, None, False, at, at + ttl, None, b"{}"))


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("entrance", "a-amy"),
        ("produce", "a-amy"),
        ("pantry", "a-ben"),
        ("dairy", "a-cara"),
        ("checkout", "a-dan"),
    ],
)
def test_zone_goes_to_who_looks_after_it(store_config: StoreConfig, zone: str, expected: str) -> None:
    assert Router(store_config).choose(zone, T) == expected


def test_usual_associate_first(store_config: StoreConfig) -> None:
    assert Router(store_config).choose("pantry", T, usual="a-cara") == "a-cara"


def test_busy_associate_is_passed_over_for_the_nearest_free_one(store_config: StoreConfig) -> None:
    router = Router(store_config)
    _open(router, "p1", "a-ben")
    assert router.busy("a-ben", T + 1)
    # Pantry (10-20 m) is next to produce (Amy) and dairy/beauty (Cara); Amy's produce is nearer.
    assert router.choose("pantry", T + 1) == "a-amy"
    assert not router.busy("a-ben", T + 301)  # the prompt expired
    assert router.choose("pantry", T + 301) == "a-ben"


def test_associates_on_a_break_or_signed_out_get_nothing(store_config: StoreConfig) -> None:
    router = Router(store_config)
    router.set_status("a-ben", "on_break", None)
    router.set_status("a-cara", "signed_out", None)
    assert router.choose("pantry", T) == "a-amy"
    router.set_status("a-ben", "available", "pantry")
    assert router.choose("pantry", T) == "a-ben"


def test_an_associate_standing_in_the_zone_counts_as_home(store_config: StoreConfig) -> None:
    router = Router(store_config)
    router.set_status("a-ben", "on_break", None)
    router.set_status("a-dan", "available", "pantry")  # Dan walked over to the pantry
    assert router.choose("pantry", T) == "a-dan"


def test_store_wide_prompts_go_to_a_manager(store_config: StoreConfig) -> None:
    router = Router(store_config)
    assert router.choose("checkout", T, manager=True) == "a-amy"  # the demo's manager
    router.set_status("a-amy", "on_break", None)
    assert router.choose("checkout", T, manager=True) is None  # no other manager on the floor


def test_hourly_cap_per_associate(store_config: StoreConfig) -> None:
    router = Router(store_config)
    for i in range(3):
        _open(router, f"p{i}", "a-ben", at=T + i, ttl=1)  # answered quickly
    assert router.choose("pantry", T + 10, cap_per_hour=3) != "a-ben"
    assert router.choose("pantry", T + 10, cap_per_hour=4) == "a-ben"
    for other in ("a-amy", "a-cara", "a-dan"):
        for i in range(3):
            _open(router, f"{other}{i}", other, at=T + i, ttl=1)
    assert router.choose("pantry", T + 10, cap_per_hour=3) is None  # nobody may be flooded, lead included
    assert router.choose("pantry", T + 3700, cap_per_hour=3) == "a-ben"  # an hour later


def test_till_prompts_stay_with_the_lane_associate_unless_away(store_config: StoreConfig) -> None:
    router = Router(store_config)
    _open(router, "p1", "a-dan", zone="checkout")
    assert router.for_lane("lane-1", T + 1) == "a-dan"  # serving this customer anyway
    router.set_status("a-dan", "on_break", None)
    assert router.for_lane("lane-1", T + 1) not in (None, "a-dan")


def test_not_accepted_in_time_is_rerouted_once_per_associate(store_config: StoreConfig) -> None:
    router = Router(store_config, reroute_after_s=45)
    prompt = _open(router, "p1", "a-ben")
    assert router.due(T + 30) == []
    [(moved, to)] = router.due(T + 46)
    assert moved.prompt_id == prompt.prompt_id and to == "a-amy" and moved.associate == "a-amy"
    [(again, to2)] = router.due(T + 92)
    assert to2 not in ("a-ben", "a-amy")  # never back to someone who let it pass
    assert again.tried == ("a-ben", "a-amy", to2)


def test_accepted_prompts_stay_and_answered_ones_free_the_associate(store_config: StoreConfig) -> None:
    router = Router(store_config, reroute_after_s=45)
    _open(router, "p1", "a-ben")
    router.answered("p1", "accepted")
    assert router.due(T + 100) == [] and router.busy("a-ben", T + 100)
    router.answered("p1", "done")
    assert not router.busy("a-ben", T + 100)
    assert router.answered("p-unknown", "done") is None


def test_a_withdrawn_prompt_neither_counts_nor_holds_the_associate(store_config: StoreConfig) -> None:
    """Prompts are routed before their claim; one whose claim failed is withdrawn."""
    router = Router(store_config)
    for i in range(2):
        _open(router, f"p{i}", "a-ben", at=T + i, ttl=1)
    held = _open(router, "p-held", "a-ben", at=T + 5, ttl=600)
    assert router.choose("pantry", T + 10) != "a-ben"  # busy with the held prompt
    assert router.choose("pantry", T + 10, cap_per_hour=3) != "a-ben"
    router.withdraw(held)
    assert router.choose("pantry", T + 10, cap_per_hour=3) == "a-ben"
    assert router.due(T + 5000) == []  # nothing left to re-route


def test_re_offered_prompts_wait_their_turn_again_behind_younger_ones(store_config: StoreConfig) -> None:
    router = Router(store_config, reroute_after_s=45)
    _open(router, "p1", "a-ben")
    _open(router, "p2", "a-cara", zone="dairy", at=T + 30)
    [(first, _)] = router.due(T + 46)  # p2 not due: left alone
    assert (first.prompt_id, first.sent_at) == ("p1", T + 46)
    # p2 is now the oldest offer; p1 was offered again at T+46 and is due only at T+91.
    [(second, _)] = router.due(T + 76)
    assert (second.prompt_id, second.sent_at) == ("p2", T + 76)
    assert [p.prompt_id for p, _ in router.due(T + 92)] == ["p1"]


def test_open_prompts_stay_out_of_the_collectors_full_passes(store_config: StoreConfig) -> None:
    """Thousands are open at once; a tracked object each made every full GC pass a stall."""
    router = Router(store_config, reroute_after_s=45)
    _open(router, "p1", "a-ben")
    router.answered("p1", "accepted")
    _open(router, "p2", "a-ben")
    [(moved, _)] = router.due(T + 46)
    gc.collect()
    gc.collect()  # a pass untracks a tuple once what it holds is untracked: the next one does
    assert not any(gc.is_tracked(row) for row in router._open.values())
    assert moved.prompt_id == "p2"


def test_a_peer_replicas_prompts_count_here_once_and_are_not_rerouted_here(store_config: StoreConfig) -> None:
    router = Router(store_config, reroute_after_s=45)
    for _ in range(2):  # a redelivery of the same prompt counts once
        router.observe("peer-1", "a-ben", T, T + 300)
    assert router.busy("a-ben", T + 1) and router.choose("pantry", T + 1) != "a-ben"
    assert router.choose("pantry", T + 1, cap_per_hour=1) != "a-ben"
    assert router.choose("pantry", T + 301, cap_per_hour=2) == "a-ben"  # expired; 1 of 2 this hour
    assert router.due(T + 100) == []  # its sender re-routes it, not us
    router.observe("peer-2", "a-ben", T + 400, T + 700)
    router.answered("peer-2", "accepted")
    assert router.busy("a-ben", T + 401)  # accepted: still on it
    router.answered("peer-2", "done")
    assert not router.busy("a-ben", T + 402)
    router.observe("stranger", "a-nobody", T, T + 300)  # not one of this store's associates
    assert router.choose("pantry", T + 402) == "a-ben"


def test_a_hold_makes_an_associate_busy_until_it_ends(store_config: StoreConfig) -> None:
    router = Router(store_config)
    assert router.free("a-ben", T)
    router.hold("a-ben", T + 2)
    router.hold("a-ben", T + 3)  # a later hold replaces the earlier one
    assert not router.free("a-ben", T + 2.5) and router.choose("pantry", T + 2.5) != "a-ben"
    assert router.free("a-ben", T + 3) and router.choose("pantry", T + 3) == "a-ben"
    router.hold("a-nobody", T + 9)  # not an associate of the store: ignored
    router.set_status("a-ben", "busy", "pantry")
    assert not router.free("a-ben", T + 4)  # said busy on the handheld
