"""``floorwalker bench decide``: decisions per second of the pure decision core.

The core (eligibility, scoring, arbitration and, when something is chosen, the wording
and the reason) runs over the demo CRM's profiles as Redis returns them (text), with the
full catalog and the propensity model the recommender would load, on a mix of moments:
zone entries across the store, long-dwell checks, visits that already had prompts, guest
checkouts and queue counts. Measured in CPU time of this one thread, so the figure is
decisions per second per core; target >= 20 000.
"""

from __future__ import annotations

import importlib
import json
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from broker_config.contract import CheckoutEvent, EnvelopeSource, PresenceEvent, Prompt, encode
from floorwalker.config import load_store_config
from recommender.catalog import DEFAULT_CATALOG, load_catalog
from recommender.crm import derive_profiles, read_crm
from recommender.decision import Core
from recommender.eligibility import Moment, Settings
from recommender.prompts import reason, word
from recommender.propensity import DEFAULT_MODEL, Propensity

TARGET_PER_S = 20_000


def build_workload(n: int = 4096, seed: int = 7) -> tuple[Core, list[tuple[str, Any, Any, Any, Moment]]]:
    from simulators.stores import DEMO_STORE

    config = load_store_config(DEMO_STORE)
    assert config.crm is not None
    now = time.time()
    members = read_crm(config.crm).members
    profiles, model = derive_profiles(members, now)
    catalog = load_catalog(config.catalog or DEFAULT_CATALOG)
    propensity = Propensity.load(config.propensity_model or DEFAULT_MODEL)
    r = config.rules
    core = Core(
        catalog, propensity, model, Settings(r.replenish_from, r.replenish_until, r.member_discount_pct)
    )
    rng = random.Random(seed)
    zones = [z for z in config.zones]
    visits = [
        {},
        {"n": "1", "lastp": f"{now - 600:.0f}", "done:greet_vip": "x", "n:greet_vip": "1"},
    ]
    work: list[tuple[str, Any, Any, Any, Moment]] = []
    ids = list(profiles)
    for _ in range(n):
        roll = rng.random()
        zone = rng.choice(zones)
        if roll < 0.75:
            m = rng.choice(ids)
            moment = Moment("enter", now, zone.id, zone.name, tuple(zone.categories))
            work.append((m, dict(profiles[m]), rng.choice(visits), [], moment))
        elif roll < 0.85:
            m = rng.choice(ids)
            moment = Moment(
                "dwell", now, zone.id, zone.name, tuple(zone.categories), dwell_s=rng.uniform(60, 300)
            )
            work.append((m, dict(profiles[m]), {}, [("p|greet_vip|x", now - 3600)], moment))
        elif roll < 0.95:
            work.append(("", None, None, None, Moment("checkout", now, "checkout", "lane-1", ("tea",))))
        else:
            q = rng.randint(0, 8)
            work.append(("", None, None, None, Moment("footfall", now, "checkout", "Checkout", queue=q)))
    return core, work


def _best_us(fn: Callable[[], object], n: int = 5_000, rounds: int = 5) -> float:
    """Best of ``rounds`` of ``n`` calls, µs per call (CPU time of this thread)."""
    for _ in range(200):
        fn()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t0) / n * 1e6)
    return round(best, 2)


def serialisation_costs() -> dict[str, float | None]:
    """µs per call of the hot path's (de)serialisation, and of the alternatives measured
    against it: the event's decode (``model_validate_json`` on the bytes, as the engine does,
    against parsing first), building a prompt (one validation of plain values), and encoding
    it (``encode``: the model's serializer straight to bytes, against ``model_dump_json`` and,
    when installed, orjson over ``model_dump``)."""
    now = time.time()
    source = EnvelopeSource("gw-entrance")
    event = encode(source.make(PresenceEvent, now, member="m_bench0001", action="enter"))
    checkout = encode(
        source.make(
            CheckoutEvent,
            now,
            member=None,
            items=[{"sku": "tea-1", "category": "tea", "qty": 1, "amount_cents": 450}],
            total_cents=450,
        )
    )
    fields: dict[str, Any] = {
        "kind": "greet_vip",
        "customer": {"member": "m_bench0001", "tier": "gold", "points": 1200},
        "zone": "entrance",
        "lane": None,
        "headline": "Gold member at the entrance",
        "suggestion": "Welcome them back and mention the new arrivals",
        "why": "A gold member just came in",
        "cause_event_id": "a" * 32,
        "cause_ts": now,
        "expires_at": now + 120,
        "reason": {"rule": "greet_vip", "facts": {"tier": "gold", "visits": 3}, "scores": {"score": 0.5}},
    }
    prompt = source.make(Prompt, now, **fields)
    costs: dict[str, float | None] = {
        "decode_presence_validate_json_us": _best_us(lambda: PresenceEvent.model_validate_json(event)),
        "decode_presence_json_loads_us": _best_us(lambda: PresenceEvent.model_validate(json.loads(event))),
        "decode_checkout_validate_json_us": _best_us(lambda: CheckoutEvent.model_validate_json(checkout)),
        "build_prompt_us": _best_us(lambda: source.make(Prompt, now, **fields)),
        "encode_prompt_us": _best_us(lambda: encode(prompt)),
        "encode_prompt_model_dump_json_us": _best_us(
            lambda: prompt.model_dump_json(exclude_none=False).encode()
        ),
        "encode_prompt_orjson_us": None,
        "decode_presence_orjson_us": None,
    }
    try:
        orjson = importlib.import_module("orjson")
    except ImportError:
        return costs
    costs["encode_prompt_orjson_us"] = _best_us(lambda: orjson.dumps(prompt.model_dump(mode="json")))
    costs["decode_presence_orjson_us"] = _best_us(lambda: PresenceEvent.model_validate(orjson.loads(event)))
    return costs


def run_decide_bench(seconds: float, out: Path, console: Console | None = None) -> dict[str, Any]:
    console = console or Console(width=120)
    core, work = build_workload()
    decisions = chosen = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    deadline = cpu0 + seconds
    while time.process_time() < deadline:
        for member, profile, visit, contacts, moment in work:
            if moment.trigger == "checkout":
                result = core.decide_guest(moment)
            elif moment.trigger == "footfall":
                result = core.decide_store(moment)
            else:
                result = core.decide_member(member, profile, visit, contacts, moment)
            if result.choice is not None:
                word(result.choice)
                reason(result.choice)
                chosen += 1
        decisions += len(work)
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    per_s = decisions / cpu
    ser_costs = serialisation_costs()
    doc = {
        "decisions": decisions,
        "with_prompt": chosen,
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "decisions_per_s_per_core": round(per_s),
        "us_per_decision": round(1e6 / per_s, 2),
        "target_per_s": TARGET_PER_S,
        "meets_target": per_s >= TARGET_PER_S,
        "catalog_actions": len(core.catalog.actions),
        "propensity": core.propensity.source,
        "serialisation": ser_costs,
        "machine": {"python": platform.python_version(), "machine": platform.machine()},
        "timestamp": time.time(),
    }
    table = Table(title="decision core (one thread, CPU time)")
    for col in ("decisions", "with prompt", "µs/decision", "decisions/s/core", "target", "propensity"):
        table.add_column(col, justify="right")
    table.add_row(
        str(decisions),
        str(chosen),
        f"{doc['us_per_decision']}",
        f"{doc['decisions_per_s_per_core']:,}",
        f"{TARGET_PER_S:,}",
        str(doc["propensity"]),
    )
    console.print(table)
    ser = Table(title="hot path (de)serialisation, µs per call (CPU time; None: orjson not installed)")
    ser.add_column("step")
    ser.add_column("µs", justify="right")
    for name, us in ser_costs.items():
        ser.add_row(name.removesuffix("_us"), "-" if us is None else f"{us}")
    console.print(ser)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    console.print(f"wrote {out}")
    return doc
