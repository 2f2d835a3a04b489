"""A scripted store visit for the demo and tests. Pure: seed and layout in, steps out.

Members who consented walk from the entrance through a few zones (their phones are heard
by the gateway covering each zone) and pay at a lane; non-members only show up at the
till. Times are offsets in seconds from the scenario's start. The live simulator plays
round after round (:func:`rounds`): a few members each, never the same member two rounds
running, so a member is not back (and greeted again) every minute.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from floorwalker.config import StoreConfig


@dataclass(frozen=True, slots=True)
class Presence:
    at: float
    gateway: str
    zone: str
    member: str
    action: Literal["enter", "leave"]


@dataclass(frozen=True, slots=True)
class Checkout:
    at: float
    pos: str
    lane: str
    member: str | None
    items: list[dict[str, object]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Footfall:
    """The checkout gateway's count: how many people queue at the tills right now."""

    at: float
    gateway: str
    zone: str
    queue: int
    window_s: float


Step = Presence | Checkout | Footfall

#: Chance that a recognizable shopper lingers in one zone long enough for an offer of help.
LINGER_P = 0.25
LINGER_S = (130.0, 180.0)
#: The checkout gateway reports the queue this often; a shopper queues this long before paying.
QUEUE_EVERY_S = 15.0
QUEUE_WAIT_S = 45.0
#: Members who come in one round of the live scenario (the others stay away that round).
MEMBERS_PER_ROUND = 3


@dataclass(frozen=True, slots=True)
class Shopper:
    member: str | None  # None: not a member
    recognizable: bool  # a member whose app may be heard (consent to recognition)


def _basket(rng: random.Random, categories: list[str]) -> list[dict[str, object]]:
    picks = rng.sample(categories, k=min(len(categories), rng.randint(1, 4))) or ["groceries"]
    return [
        {"sku": f"{c}-{rng.randint(100, 999)}", "category": c, "qty": rng.randint(1, 3),
         "amount_cents": rng.randint(150, 2500)}
        for c in picks
    ]  # fmt: skip


def visit(config: StoreConfig, shopper: Shopper, start: float, rng: random.Random) -> list[Step]:
    """One shopper's steps: zones walked (if recognizable), then a checkout."""
    gateway_of = {z: g.id for g in config.gateways for z in g.zones}
    shop_zones = [z for z in config.zones if z.categories]
    entrance = next((z.id for z in config.zones if not z.categories and z.id in gateway_of), None)
    steps: list[Step] = []
    t = start
    route = rng.sample(shop_zones, k=min(len(shop_zones), rng.randint(1, 3)))
    if shopper.member is not None and shopper.recognizable:
        path = ([entrance] if entrance else []) + [z.id for z in route]
        previous: str | None = None
        linger = rng.randrange(len(path)) if path and rng.random() < LINGER_P else -1
        for i, zone in enumerate(path):
            if previous is not None:
                steps.append(Presence(t, gateway_of[previous], previous, shopper.member, "leave"))
            steps.append(Presence(t, gateway_of[zone], zone, shopper.member, "enter"))
            previous = zone
            t += rng.uniform(*LINGER_S) if i == linger else rng.uniform(6.0, 18.0)
        if previous is not None:
            steps.append(Presence(t, gateway_of[previous], previous, shopper.member, "leave"))
    else:
        t += rng.uniform(20.0, 60.0)
    if config.lanes:
        lane = rng.choice(config.lanes)
        categories = [c for z in route for c in z.categories]
        steps.append(
            Checkout(t + rng.uniform(2.0, 8.0), lane.pos, lane.id, shopper.member, _basket(rng, categories))
        )
    return steps


def rounds(shoppers: list[Shopper], seed: int, per_round: int = MEMBERS_PER_ROUND) -> Iterator[list[Shopper]]:
    """The shoppers of each round, endlessly: ``per_round`` members dealt from the members
    shuffled anew at each pass (so each comes once a pass), never one who came the round
    before (while there are enough members for that), and every non-member; in a shuffled
    arrival order. With ``per_round`` members or fewer, all of them every round."""
    rng = random.Random(seed)
    members = [s for s in shoppers if s.member is not None]
    others = [s for s in shoppers if s.member is None]
    deck: list[Shopper] = []
    previous: list[Shopper] = []
    while True:
        if len(members) <= per_round:
            chosen = list(members)
        else:
            chosen = []
            while len(chosen) < per_round:
                if not deck:
                    deck = rng.sample(members, k=len(members))
                fresh = [s for s in deck if s not in previous and s not in chosen]
                pick = fresh[0] if fresh else next((s for s in deck if s not in chosen), deck[0])
                deck.remove(pick)
                if pick not in chosen:
                    chosen.append(pick)
        previous = chosen
        crowd = chosen + others
        yield rng.sample(crowd, k=len(crowd))


def build(config: StoreConfig, shoppers: list[Shopper], seed: int, spacing_s: float = 3.0) -> list[Step]:
    """All shoppers' steps, arrivals ``spacing_s`` apart on average, in time order."""
    rng = random.Random(seed)
    steps: list[Step] = []
    t = 0.0
    for shopper in shoppers:
        steps.extend(visit(config, shopper, t, rng))
        t += rng.uniform(0.5, 1.5) * spacing_s
    steps.extend(queue_counts(config, steps))
    return sorted(steps, key=lambda s: s.at)


def queue_counts(config: StoreConfig, steps: list[Step]) -> list[Footfall]:
    """The checkout queue over time: shoppers who pay within the next QUEUE_WAIT_S wait now."""
    gateway_of = {z: g.id for g in config.gateways for z in g.zones}
    zone = next((lane.zone for lane in config.lanes if lane.zone in gateway_of), None)
    pays = sorted(s.at for s in steps if isinstance(s, Checkout))
    if zone is None or not pays:
        return []
    out = []
    t = 0.0
    while t <= pays[-1]:
        queue = sum(1 for p in pays if t <= p < t + QUEUE_WAIT_S)
        out.append(Footfall(t, gateway_of[zone], zone, queue, QUEUE_EVERY_S))
        t += QUEUE_EVERY_S
    return out
