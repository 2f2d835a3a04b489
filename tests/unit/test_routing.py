"""Routing: the best associate for a prompt, busy and away associates, the usual associate,
managers for store-wide prompts, hourly caps, and re-routing when not accepted in time."""

from __future__ import annotations

import gc

import pytest

from floorwalker.config import AssociateConfig, StoreConfig
from recommender.routing import MAX_OPEN, OpenPrompt, Router

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


# -- distances on the floor plan -------------------------------------------------------
# Zone centroids (mean of the corners) in the demo store: entrance (4, 3), produce (5, 13),
# pantry (15, 13), dairy (25, 16), beauty (25, 9), checkout (19, 3).


@pytest.mark.parametrize(
    ("zone", "away", "expected"),
    [
        # Dan away from the checkout: Cara's beauty is 8.5 m off, Ben's pantry 10.8, Amy's entrance 15.
        ("checkout", "a-dan", "a-cara"),
        # Cara away from dairy: Ben's pantry is 10.4 m off, Dan's checkout 14.3, Amy's produce 20.2.
        ("dairy", "a-cara", "a-ben"),
        # Ben away from the pantry: Amy's produce is 10 m off, Cara's dairy 10.4.
        ("pantry", "a-ben", "a-amy"),
    ],
)
def test_with_nobody_at_home_the_nearest_home_zone_wins(
    store_config: StoreConfig, zone: str, away: str, expected: str
) -> None:
    router = Router(store_config)
    router.set_status(away, "on_break", None)
    assert router.choose(zone, T) == expected


def test_where_an_associate_stands_counts_before_their_home_zones(store_config: StoreConfig) -> None:
    router = Router(store_config)
    router.set_status("a-cara", "on_break", None)
    router.set_status("a-amy", "available", "beauty")  # 7 m from dairy; her produce is 20 m off
    assert router.choose("dairy", T) == "a-amy"
    router.set_status("a-amy", "available", "stockroom")  # not on the floor plan: far away
    assert router.choose("dairy", T) == "a-ben"


def test_home_zone_before_distance(store_config: StoreConfig) -> None:
    router = Router(store_config)
    router.set_status("a-ben", "available", "dairy")  # away from his pantry (10.4 m)
    router.set_status("a-dan", "available", "produce")  # nearer to it (10 m), not his zone
    assert router.choose("pantry", T) == "a-ben"


def test_a_zone_off_the_floor_plan_ranks_on_the_hourly_count(store_config: StoreConfig) -> None:
    router = Router(store_config)
    _open(router, "p1", "a-amy", at=T - 10, ttl=1)
    assert router.choose("stockroom", T) == "a-ben"  # no distances: the least prompted, then by id


def test_an_associate_without_home_zones_ranks_after_the_nearest(store_config: StoreConfig) -> None:
    floater = AssociateConfig(id="a-eve", display_name="Eve")
    config = store_config.model_copy(update={"associates": [*store_config.associates, floater]})
    router = Router(config)
    router.set_status("a-ben", "on_break", None)
    assert router.choose("pantry", T) == "a-amy"
    for other in ("a-amy", "a-cara", "a-dan"):
        router.set_status(other, "on_break", None)
    assert router.choose("pantry", T) == "a-eve"


# -- caps, the lead, managers ----------------------------------------------------------


def test_the_hourly_cap_counts_a_full_hour(store_config: StoreConfig) -> None:
    router = Router(store_config)
    _open(router, "p0", "a-ben", at=T, ttl=1)
    assert router.choose("pantry", T + 3600, cap_per_hour=1) != "a-ben"  # exactly an hour: still counts
    assert router.choose("pantry", T + 3600.5, cap_per_hour=1) == "a-ben"


def test_a_capped_associate_is_skipped_not_the_rest_after_them(store_config: StoreConfig) -> None:
    router = Router(store_config)
    _open(router, "p0", "a-amy", zone="produce", at=T, ttl=1)  # Amy is listed first
    assert router.choose("pantry", T + 10, cap_per_hour=1) == "a-ben"


def test_everyone_away_goes_to_the_floor_lead_unless_excluded(store_config: StoreConfig) -> None:
    router = Router(store_config)
    for a in ("a-amy", "a-ben", "a-cara", "a-dan"):
        router.set_status(a, "on_break", None)
    assert router.choose("pantry", T) == "a-amy"  # the floor lead, on a break or not
    assert router.choose("pantry", T, exclude=("a-amy",)) is None
    assert router.choose("pantry", T, manager=True) is None


# -- till prompts ------------------------------------------------------------------------


def test_the_lane_associate_keeps_till_prompts_while_busy_but_not_over_the_cap(
    store_config: StoreConfig,
) -> None:
    router = Router(store_config)
    router.set_status("a-dan", "busy", "checkout")
    assert router.for_lane("lane-1", T) == "a-dan"
    _open(router, "p0", "a-dan", zone="checkout", at=T, ttl=1)
    assert router.for_lane("lane-1", T + 10, cap_per_hour=2) == "a-dan"
    assert router.for_lane("lane-1", T + 10, cap_per_hour=1) == "a-cara"  # the nearest to the checkout
    _open(router, "p1", "a-cara", zone="beauty", at=T, ttl=1)
    assert router.for_lane("lane-1", T + 10, cap_per_hour=1) == "a-ben"  # Cara is capped too


def test_a_till_prompt_with_the_lane_associate_away_goes_to_the_nearest(store_config: StoreConfig) -> None:
    router = Router(store_config)
    _open(router, "p0", "a-ben", at=T - 10, ttl=1)  # an hour's count that ranks after distance
    router.set_status("a-dan", "on_break", None)
    assert router.for_lane("lane-1", T) == "a-cara"


# -- open prompts ------------------------------------------------------------------------


def _tracked(router: Router, pid: str) -> bool:
    """Whether the router still tracks ``pid`` as one of its open prompts."""
    return router.answered(pid, "accepted") is not None


def test_at_most_max_open_prompts_are_tracked_the_oldest_forgotten(store_config: StoreConfig) -> None:
    router = Router(store_config)
    _open(router, "p-first", "a-cara", zone="dairy")
    _open(router, "p-second", "a-dan", zone="checkout")
    for i in range(MAX_OPEN - 1):
        _open(router, f"p{i}", "a-ben")
    assert not _tracked(router, "p-first") and not router.busy("a-cara", T + 1)
    assert _tracked(router, "p-second") and router.busy("a-dan", T + 1)


def test_at_most_max_open_peer_prompts_are_remembered(store_config: StoreConfig) -> None:
    router = Router(store_config)
    router.observe("peer-a", "a-cara", T, T + 1)
    assert not router.busy("a-cara", T + 2)  # expired, and no longer held
    router.observe("peer-b", "a-dan", T, T + 300)
    router.observe("peer-c", "a-amy", T, T + 300)
    for i in range(MAX_OPEN - 1):
        router.observe(f"peer{i}", "a-ben", T, T + 300)
    assert not router.busy("a-dan", T + 3)  # the oldest two are forgotten ...
    assert router.busy("a-amy", T + 3)  # ... not the third


def test_a_peer_prompt_re_routed_by_its_sender_moves_off_the_first_associate(
    store_config: StoreConfig,
) -> None:
    router = Router(store_config)
    router.observe("peer-1", "a-ben", T, T + 300)
    router.observe("peer-1", "a-cara", T + 46, T + 300)
    assert not router.busy("a-ben", T + 47) and router.busy("a-cara", T + 47)
    router.observe("peer-2", "a-dan", T, T + 10)
    assert not router.busy("a-dan", T + 20)  # expired: its hold is gone
    router.observe("peer-2", "a-amy", T + 20, T + 300)  # re-routed late: nothing left to free
    assert router.busy("a-amy", T + 21)
    router.observe("peer-3", "a-dan", T, T + 10)
    assert not router.busy("a-dan", T + 20)  # expired: its hold is gone
    assert router.answered("peer-3", "done") is None  # nothing left to free, and no error


def test_forget_if_drops_the_picked_open_prompts(store_config: StoreConfig) -> None:
    router = Router(store_config, reroute_after_s=45)
    router.sent(OpenPrompt("p1", "a-ben", "pantry", None, False, T, T + 300, None, b'{"m":"m_gone0001"}'))
    router.sent(OpenPrompt("p2", "a-cara", "dairy", None, False, T, T + 300, None, b'{"m":"m_stays002"}'))
    router.forget_if(lambda p: b"m_gone0001" in p.payload)
    assert not router.busy("a-ben", T + 1) and router.busy("a-cara", T + 1)
    assert [p.prompt_id for p, _ in router.due(T + 46)] == ["p2"]


def test_withdrawing_twice_is_harmless(store_config: StoreConfig) -> None:
    router = Router(store_config)
    prompt = _open(router, "p1", "a-ben")
    router.withdraw(prompt)
    router.withdraw(prompt)
    assert not router.busy("a-ben", T + 1)


# -- re-routing --------------------------------------------------------------------------


def test_rerouted_at_exactly_reroute_after_s_by_default(store_config: StoreConfig) -> None:
    router = Router(store_config)
    _open(router, "p1", "a-ben")
    assert router.due(T + 44.9) == []
    [(moved, to)] = router.due(T + 45)
    assert to == "a-amy" and moved.sent_at == T + 45
    assert not router.busy("a-ben", T + 45) and router.busy("a-amy", T + 45)


def test_a_prompt_expiring_now_is_forgotten_and_the_next_due_one_still_moves(
    store_config: StoreConfig,
) -> None:
    router = Router(store_config, reroute_after_s=45)
    _open(router, "p1", "a-ben", ttl=60)
    _open(router, "p2", "a-cara", zone="dairy", at=T + 1)
    [(moved, to)] = router.due(T + 60)  # p1 expires at T+60 exactly
    assert (moved.prompt_id, to) == ("p2", "a-ben")  # the nearest to dairy, now free
    assert not _tracked(router, "p1")


def test_a_reroute_goes_to_the_usual_associate_once_free(store_config: StoreConfig) -> None:
    router = Router(store_config, reroute_after_s=45)
    # The member's usual associate (Dan) was busy when it was sent; now he is free.
    router.sent(OpenPrompt("p1", "a-ben", "pantry", "a-dan", False, T, T + 300, None, b"{}"))
    assert [(p.prompt_id, to) for p, to in router.due(T + 46)] == [("p1", "a-dan")]


def test_a_managers_prompt_is_rerouted_only_to_a_manager(store_config: StoreConfig) -> None:
    router = Router(store_config, reroute_after_s=45)
    # Amy is the only manager: nobody else may take it; it stays, looked at again later.
    router.sent(OpenPrompt("p-manager", "a-amy", "checkout", None, True, T, T + 300, None, b"{}"))
    _open(router, "p-next", "a-ben", at=T + 1)
    assert [(p.prompt_id, to) for p, to in router.due(T + 46)] == [("p-next", "a-cara")]
    assert router.due(T + 60) == [] and _tracked(router, "p-manager")


def test_a_reroute_respects_the_prompts_hourly_cap(store_config: StoreConfig) -> None:
    router = Router(store_config, reroute_after_s=45)
    _open(router, "p-cara", "a-cara", zone="beauty", at=T - 100, ttl=1)  # Cara had one this hour
    router.sent(OpenPrompt("p-capped", "a-dan", "dairy", None, False, T, T + 300, 1, b"{}"))
    # Capped at 1 an hour: not Cara (dairy's own), Ben (the nearest after her).
    assert [(p.prompt_id, to) for p, to in router.due(T + 46)] == [("p-capped", "a-ben")]


# -- presence: only associates whose handheld is connected (rules.require_handheld) -------

GRACE = 90.0  # 3 x the default 30 s heartbeat


def _present(store_config: StoreConfig) -> Router:
    rules = store_config.rules.model_copy(update={"require_handheld": True})
    return Router(store_config.model_copy(update={"rules": rules}))


#: (statuses as (associate, state, heard at offset s), zone, manager, now offset s,
#:  expected associate, expected how)
PRESENCE_CASES = [
    # Finding 1 of issue 20: never heard from is not on the floor; the floor lead, at once.
    pytest.param([("a-amy", "available", 0)], "pantry", False, 1, "a-amy", "routed", id="only-amy-there"),
    pytest.param([], "pantry", False, 1, None, "nobody_on_floor", id="nobody-heard-from"),
    pytest.param([("a-ben", "available", 0)], "pantry", False, 1, "a-ben", "routed", id="ben-connected"),
    pytest.param(
        [("a-ben", "available", 0)], "pantry", False, GRACE + 1, None, "nobody_on_floor", id="ben-gone-quiet"
    ),
    pytest.param(
        [("a-ben", "available", 0), ("a-ben", "available", 60)], "pantry", False, GRACE + 1,
        "a-ben", "routed", id="ben-heartbeat-keeps-him",
    ),
    pytest.param(
        [("a-ben", "signed_out", 0), ("a-amy", "available", 0)], "pantry", False, 1, "a-amy", "routed",
        id="ben-signed-out",
    ),
    pytest.param(
        [("a-cara", "available", 0), ("a-ben", "on_break", 0)], "pantry", False, 1, "a-cara", "routed",
        id="ben-on-break-cara-nearest",
    ),
    pytest.param(
        [("a-ben", "available", 0)], "checkout", True, 1, None, "no_manager_on_floor", id="no-manager"
    ),
    pytest.param(
        [("a-amy", "busy", 0)], "checkout", True, 1, "a-amy", "routed", id="manager-busy-still-gets-it"
    ),
]  # fmt: skip


@pytest.mark.parametrize(("heard", "zone", "manager", "at", "expected", "how"), PRESENCE_CASES)
def test_routing_only_to_associates_on_the_floor(
    store_config: StoreConfig,
    heard: list[tuple[str, str, float]],
    zone: str,
    manager: bool,
    at: float,
    expected: str | None,
    how: str,
) -> None:
    router = _present(store_config)
    for associate, state, when in heard:
        router.set_status(associate, state, None, T + when)
    route = router.route(zone, T + at, manager=manager)
    assert (route.associate, route.how) == (expected, how)


def test_nobody_free_goes_to_the_floor_lead_at_once(store_config: StoreConfig) -> None:
    router = _present(store_config)
    for a in ("a-amy", "a-ben", "a-cara"):
        router.set_status(a, "available", None, T)
    _open(router, "p1", "a-ben")
    assert router.route("pantry", T + 1) == ("a-amy", "routed")  # Amy is free and nearest
    _open(router, "p2", "a-amy", zone="produce")
    assert router.route("pantry", T + 1) == ("a-cara", "routed")
    _open(router, "p3", "a-cara", zone="dairy")
    assert router.route("pantry", T + 1) == ("a-amy", "escalated")  # nobody free: the lead
    assert router.route("pantry", T + 1, exclude=("a-amy",)) == ("a-ben", "routed")


def test_the_lead_is_escalated_to_only_when_on_the_floor(store_config: StoreConfig) -> None:
    router = _present(store_config)
    router.set_status("a-ben", "available", None, T)
    for i in range(3):
        _open(router, f"p{i}", "a-ben", at=T + i, ttl=1)
    assert router.route("pantry", T + 10, cap_per_hour=3) == (None, "all_capped")
    router.set_status("a-amy", "on_break", None, T + 10)
    assert router.route("pantry", T + 11, cap_per_hour=3) == (None, "all_capped")
    router.set_status("a-dan", "available", None, T + 11)
    assert router.route("dairy", T + 12, cap_per_hour=3) == ("a-dan", "routed")


def test_a_till_prompt_needs_the_lane_associate_connected(store_config: StoreConfig) -> None:
    router = _present(store_config)
    assert router.lane_route("lane-1", T) == (None, "nobody_on_floor")
    router.set_status("a-dan", "available", "checkout", T)
    assert router.lane_route("lane-1", T + 1) == ("a-dan", "routed")
    assert router.lane_route("lane-1", T + GRACE + 1) == (None, "nobody_on_floor")


def test_a_manager_reassigns_an_open_prompt(store_config: StoreConfig) -> None:
    """Moved to the named associate (busy now, the first one free), offered afresh (its
    re-route timer restarts); an accepted, expired, unknown or already-theirs prompt stays."""
    router = Router(store_config, reroute_after_s=45)
    _open(router, "p1", "a-ben")
    moved = router.reassign("p1", "a-cara", T + 10)
    assert moved is not None and moved.associate == "a-cara" and moved.tried == ("a-ben", "a-cara")
    assert router.busy("a-cara", T + 10) and not router.busy("a-ben", T + 10)
    assert router.due(T + 50) == []  # 40 s since it was reassigned: not due yet
    assert router.reassign("p1", "a-cara", T + 11) is None  # already hers
    assert router.reassign("p1", "a-zed", T + 11) is None  # not an associate
    assert router.reassign("nope", "a-ben", T + 11) is None
    router.answered("p1", "accepted")
    assert router.reassign("p1", "a-ben", T + 12) is None
    _open(router, "p2", "a-dan", ttl=5)
    assert router.reassign("p2", "a-ben", T + 6) is None  # expired
