"""Sensor models: what the store's devices would publish about the simulated shoppers.

* Camera counts (a gateway's counter): per zone per window the entries, exits, occupancy
  and, in the checkout zone, the queue length, each real count thinned by a miss rate and
  padded with Poisson false positives.
* Presence (what the store-level fuser publishes from members' phones): a consenting
  member's zone visit as ``enter``/``leave`` after a detection delay; short visits are
  smoothed away and some visits are missed.
* POS: one checkout per paid basket, with the member id when the card was shown.

The models return :class:`Emission` s; :meth:`Devices.stamp` turns them, in time order,
into contract messages with the contract's :class:`EnvelopeSource` (so each producer's
``seq`` rises with time) and :func:`encode`, the same path real devices use. Each trace line
carries its ground truth beside the message.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from broker_config.contract import (
    CheckoutEvent,
    Envelope,
    EnvelopeSource,
    FootfallEvent,
    GatewayStatus,
    PresenceEvent,
    Topics,
    encode,
)
from floorwalker import __version__
from floorwalker.config import StoreConfig
from simulators.shoppers import Shopper
from simulators.trace import TraceLine


def id_maker(rng: random.Random) -> Callable[[], str]:
    """Deterministic 128-bit event ids from a seeded generator."""
    return lambda: f"{rng.getrandbits(128):032x}"


@dataclass(frozen=True, slots=True)
class Emission:
    """A message a device will send: who, when, where, what, and the truth behind it."""

    ts: float
    producer: str
    topic: str
    model: type[Envelope]
    fields: dict[str, Any]
    truth: dict[str, Any] | None = None
    retain: bool = False


class Devices:
    """One :class:`EnvelopeSource` per producer (gateway or POS), with deterministic ids."""

    def __init__(self, config: StoreConfig, rng: random.Random, topics: Topics) -> None:
        self.config = config
        self.topics = topics
        new_id = id_maker(rng)
        producers = [g.id for g in config.gateways] + [lane.pos for lane in config.lanes]
        producers.append(config.ble_presence.fuser)  # the store-level fuser's presence events
        self.sources = {p: EnvelopeSource(p, new_id=new_id) for p in producers}
        self.gateway_of: dict[str, str] = {}
        for g in config.gateways:
            for z in g.zones:
                self.gateway_of.setdefault(z, g.id)
        self.zones_of = {g.id: tuple(g.zones) for g in config.gateways}

    def status(self, ts: float) -> list[Emission]:
        """Each gateway's retained ``online`` status as it starts."""
        fields: dict[str, Any] = {"state": "online", "software": __version__}
        return [
            Emission(
                ts, g.id, self.topics.status(self.config.store, g.id), GatewayStatus, fields, retain=True
            )
            for g in self.config.gateways
        ]

    def stamp(self, emissions: list[Emission]) -> list[TraceLine]:
        """Contract messages in time order (stable), each producer's ``seq`` rising."""
        out = []
        for e in sorted(emissions, key=lambda e: e.ts):
            event = self.sources[e.producer].make(e.model, e.ts, **e.fields)
            out.append(TraceLine(e.ts, e.topic, encode(event), 1, e.retain, e.truth))
        return out


@dataclass(frozen=True, slots=True)
class Windows:
    start: float
    window_s: float
    count: int

    def edges(self) -> np.ndarray[Any, np.dtype[Any]]:
        return self.start + self.window_s * np.arange(self.count + 1, dtype=np.float64)


def true_counts(
    shoppers: Sequence[Shopper], windows: Windows, zones: Sequence[str], queue_zone: str | None
) -> dict[str, list[list[int | None]]]:
    """Per zone per window: [entered, exited, occupancy at the window's end, queue or None]."""
    enters: dict[str, list[float]] = {z: [] for z in zones}
    leaves: dict[str, list[float]] = {z: [] for z in zones}
    for s in shoppers:
        for v in s.visits():
            enters[v.zone].append(v.enter)
            leaves[v.zone].append(v.leave)
    edges = windows.edges()
    queued = np.array([s.lane.queued for s in shoppers if s.lane], dtype=float)
    served = np.array([s.lane.served for s in shoppers if s.lane], dtype=float)
    ends = edges[1:]
    waiting = (np.searchsorted(np.sort(queued), ends, side="right")
               - np.searchsorted(np.sort(served), ends, side="right"))  # fmt: skip
    out: dict[str, list[list[int | None]]] = {}
    for z in zones:
        e = np.histogram(enters[z], bins=edges)[0]
        x = np.histogram(leaves[z], bins=edges)[0]
        occ = np.searchsorted(np.sort(enters[z]), ends, side="right") - np.searchsorted(
            np.sort(leaves[z]), ends, side="right"
        )
        out[z] = [
            [int(e[i]), int(x[i]), int(occ[i]), int(waiting[i]) if z == queue_zone else None]
            for i in range(windows.count)
        ]
    return out


def camera(
    devices: Devices,
    counts: dict[str, list[list[int | None]]],
    windows: Windows,
    rng: np.random.Generator,
) -> list[Emission]:
    """Footfall messages as the covering gateway's camera counter reports them."""
    model = devices.config.simulation.camera
    keep = 1.0 - model.miss_rate
    store = devices.config.store
    out: list[Emission] = []
    for zone, rows in counts.items():
        gateway = devices.gateway_of.get(zone)
        if gateway is None:
            continue  # no camera covers this zone
        topic = devices.topics.footfall(store, zone)
        true = np.array([[v if v is not None else 0 for v in r] for r in rows], dtype=np.int64)
        seen = rng.binomial(true, keep) + rng.poisson(true * model.false_positive_rate)
        for i, row in enumerate(rows):
            ts = float(windows.start + (i + 1) * windows.window_s)
            queue = int(seen[i, 3]) if row[3] is not None else None
            fields = {"window_s": windows.window_s, "entered": int(seen[i, 0]), "exited": int(seen[i, 1]),
                      "occupancy": int(seen[i, 2]), "queue_length": queue}  # fmt: skip
            truth = {"entered": row[0], "exited": row[1], "occupancy": row[2], "queue_length": row[3]}
            out.append(Emission(ts, gateway, topic, FootfallEvent, fields, truth))
    return out


def presence(devices: Devices, shoppers: Sequence[Shopper], rng: random.Random) -> list[Emission]:
    """Enter/leave of consenting members' zone visits, as the presence fuser publishes them."""
    model = devices.config.simulation.presence
    store = devices.config.store
    lo, hi = model.delay_s
    out: list[Emission] = []
    for s in shoppers:
        if s.member is None or not s.recognizable:
            continue
        for v in s.visits():
            gateway = devices.gateway_of.get(v.zone)
            if gateway is None or v.leave - v.enter < model.min_visit_s or rng.random() < model.miss_rate:
                continue
            topic = devices.topics.presence(store, v.zone)
            truth = {"shopper": s.id, "zone": v.zone, "enter": round(v.enter, 3), "leave": round(v.leave, 3)}
            for action, at in (("enter", v.enter), ("leave", v.leave)):
                ts = at + rng.uniform(lo, hi)
                fields = {"member": s.member, "action": action, "confidence": round(rng.uniform(0.7, 1.0), 2)}
                out.append(Emission(ts, gateway, topic, PresenceEvent, fields, truth))
    return out


def pos(devices: Devices, shoppers: Sequence[Shopper]) -> list[Emission]:
    """One checkout per basket paid, from the lane's POS adapter."""
    store = devices.config.store
    pos_of = {lane.id: lane.pos for lane in devices.config.lanes}
    out: list[Emission] = []
    for s in shoppers:
        if s.lane is None:
            continue
        items = [
            {"sku": i.sku, "category": i.category, "qty": i.qty, "amount_cents": i.amount_cents}
            for i in s.basket
        ]
        total = sum(i.amount_cents for i in s.basket)
        fields = {"member": s.member if s.card else None, "items": items, "total_cents": total}
        truth = {"shopper": s.id, "member": s.member, "total_cents": total}
        topic = devices.topics.checkout(store, s.lane.lane)
        out.append(Emission(s.lane.paid, pos_of[s.lane.lane], topic, CheckoutEvent, fields, truth))
    return out
