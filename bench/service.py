"""``floorwalker bench service``: the service-level figure for a simulated day.

For each store: simulate a day of shoppers, start our own Mosquitto and Redis and a
recommender (``rules.require_handheld`` on, the events' clock), replay the day as fast as
the system takes it with simulated associates who sign in and out, take a break, ignore
some prompts and answer others after human-like delays (:mod:`simulators.associates`),
and score the run (:mod:`simulators.service_level`). Prints a table and writes
``bench/out/service.json``. The associates' behaviour is assumed, not measured: these are
development figures of our simulator.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.e2e import machine_info
from floorwalker.config import Endpoints, load_store_config
from floorwalker.services import Services
from recommender.crm import read_fixture
from simulators.associates import AssociateSimulator, Behaviour, plan_shifts
from simulators.day import simulate_day
from simulators.harness import RecommenderProcess, StaffedRun, replay_staffed, staffed_config
from simulators.replay import ReplayOptions
from simulators.service_level import ServiceLevel


def simulate_service(
    layout: Path,
    *,
    hours: float,
    visitors: int,
    seed: int = 1,
    speed: float | None = None,
    sign_in_after_s: float = 0.0,
    endpoints: Endpoints | None = None,
) -> tuple[ServiceLevel, StaffedRun]:
    """One staffed day of ``layout`` through the real system (our own Mosquitto and Redis,
    or those at ``endpoints``); its service level. ``sign_in_after_s``: nobody on the
    floor until then."""
    work = Path(tempfile.mkdtemp(prefix="floorwalker-bench-service-"))
    config, config_path = staffed_config(layout, work)
    crm = read_fixture(config.crm) if config.crm else None
    day = simulate_day(config, crm, hours=hours, visitors=visitors, seed=seed, source=str(layout))
    # Shifts over the whole trace (the last shoppers leave after the opening hours end).
    span_h = (max(x.t for x in day.lines) - min(x.t for x in day.lines)) / 3600 if day.lines else hours
    shifts = plan_shifts(config, max(hours, span_h), seed, sign_in_after_s=sign_in_after_s)
    svc = Services(work / "services") if endpoints is None else None
    ep = svc.up() if svc is not None else endpoints
    assert ep is not None
    prefix = f"bsvc{uuid.uuid4().hex[:8]}/"
    rec = RecommenderProcess(config, config_path, ep, prefix, work)
    try:
        rec.start()
        _, _, run = replay_staffed(
            day.lines,
            config,
            (ep.mqtt_host, ep.mqtt_port),
            ReplayOptions(speed=speed, topic_prefix=prefix),
            rec,
            lambda origin: AssociateSimulator(config, shifts, origin, behaviour=Behaviour(), seed=seed),
        )
    finally:
        rec.stop()
        if svc is not None:
            svc.down()
    shutil.rmtree(work, ignore_errors=True)
    return run.service_level(), run


def run_service_bench(
    layouts: list[tuple[str, Path, int]], hours: float, out: Path, seed: int = 1
) -> dict[str, Any]:
    """``layouts``: (name, store config, visitors in the day) each."""
    console = Console()
    stores: dict[str, Any] = {}
    for name, layout, visitors in layouts:
        console.print(f"{name}: a {hours:g} h day, {visitors} visitors expected, staffed ...")
        started = time.perf_counter()
        level, run = simulate_service(layout, hours=hours, visitors=visitors, seed=seed)
        config = load_store_config(layout)
        stores[name] = {
            "layout": str(layout),
            "zones": len(config.zones),
            "associates": len(config.associates),
            "visitors_expected": visitors,
            "hours": hours,
            "wall_s": round(time.perf_counter() - started, 1),
            "syncs": run.syncs,
            "answers_sent": len(run.associates.answers),
            **level.to_json(),
        }
    report: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "seed": seed,
        "stores": stores,
        "note": "Development figures from our simulator: simulated shoppers and simulated associates "
        "(assumed behaviour: 15% of prompts ignored, 10% dismissed, answers after a lognormal delay "
        "with a 12 s median, one 15-minute break each). Replayed as fast as the system takes it, "
        "in lockstep with the recommender (the events' clock), so the decisions are those of a "
        "live day; delivery within 2 s is wall-clock latency on a shared 2-core machine.",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print_service(report)
    console.print(f"wrote {out}")
    return report


def print_service(report: dict[str, Any]) -> None:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}%"

    def sec(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    stores = report["stores"]
    table = Table(title="floorwalker bench service (simulated day, development figures)")
    table.add_column("measure")
    for name in stores:
        table.add_column(name, justify="right")
    rows: list[tuple[str, str]] = [
        ("servable prompts", "servable"),
        ("accepted <= 60 s by an available associate", "accepted_60s_share"),
        ("escalated to the floor lead", "escalated_share"),
        ("unserved", "unserved_share"),
        ("delivered, never accepted", "not_accepted_share"),
        ("lost (decided, never on a handheld)", "lost"),
        ("on an available handheld <= 2 s", "delivered_2s_share"),
        ("time to accept p50 / p90 (s)", "accept"),
        ("unserved reasons", "unserved_by_reason"),
    ]
    for label, key in rows:
        cells = []
        for s in stores.values():
            if key == "accept":
                cells.append(f"{sec(s['accept_p50_s'])} / {sec(s['accept_p90_s'])}")
            elif key == "unserved_by_reason":
                cells.append(", ".join(f"{k} {v}" for k, v in s[key].items()) or "-")
            elif key.endswith("_share"):
                cells.append(pct(s[key]))
            else:
                cells.append(str(s[key]))
        table.add_row(label, *cells)
    Console().print(table)
