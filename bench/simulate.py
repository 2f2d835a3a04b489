"""``floorwalker bench simulate``: how fast a full simulated day is generated, and how fast the
whole system (broker, recommender, Redis) takes it when replayed at max speed.

Generates the day for the 20-zone store (target: under 30 s for 5 000 visitors), writes
trace and truth, starts our own Mosquitto and Redis and a recommender process, replays the
trace at max speed while capturing prompts, and measures publish rate, the time until the
recommender had handled every consumed event (end-to-end completion) and prompt latency.
Prints a table and writes ``bench/out/simulate.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.e2e import machine_info, percentile
from broker_config.contract import ContractError, Prompt, Topics, decode
from floorwalker.config import load_store_config, write_without_handhelds
from floorwalker.services import Services
from recommender.crm import read_fixture
from simulators.day import simulate_day
from simulators.harness import RecommenderProcess, replay_and_capture
from simulators.replay import ReplayOptions
from simulators.trace import TraceReader

TARGET_GENERATE_S = 30.0


def run_simulate_bench(layout: Path, visitors: int, hours: float, out: Path, seed: int = 1) -> dict[str, Any]:
    console = Console()
    config = load_store_config(layout)
    work = Path(tempfile.mkdtemp(prefix="floorwalker-bench-simulate-"))

    started = time.perf_counter()
    day = simulate_day(
        config, read_fixture(config.crm) if config.crm else None, hours=hours, visitors=visitors, seed=seed,
        source=str(layout),
    )  # fmt: skip
    generate_s = time.perf_counter() - started
    trace_path, _ = day.write(work / "day")
    generate_and_write_s = time.perf_counter() - started
    console.print(f"generated {len(day.shoppers)} shoppers, {len(day.lines)} messages in {generate_s:.1f} s")

    services = Services(work / "services")
    ep = services.up()
    prefix = f"bsim{uuid.uuid4().hex[:8]}/"
    # A bench of the decision path: no handhelds, so every associate counts as on the floor.
    config = config.model_copy(update={"rules": config.rules.model_copy(update={"require_handheld": False})})
    rec = RecommenderProcess(config, write_without_handhelds(layout, work), ep, prefix, work)
    try:
        rec.start()
        console.print("replaying at max speed through broker, recommender and Redis ...")
        outputs, result, done_s = replay_and_capture(
            TraceReader(trace_path), config, (ep.mqtt_host, ep.mqtt_port),
            ReplayOptions(speed=None, topic_prefix=prefix), recommender=rec, settle_s=1.0,
        )  # fmt: skip
    finally:
        rec.stop()
        services.down()

    topics = Topics(prefix)
    latencies: list[float] = []
    deadletters = 0
    for o in outputs:
        try:
            msg = decode(topics, o.topic, o.payload)
        except ContractError:
            continue
        if isinstance(msg.payload, Prompt) and o.received is not None:
            latencies.append(1000.0 * (o.received - msg.payload.cause_ts))
        elif o.topic.endswith("/deadletter"):
            deadletters += 1
    consumed = result.by_kind.get("presence", 0) + result.by_kind.get("checkout", 0)
    report: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "layout": str(layout),
        "zones": len(config.zones),
        "visitors_expected": visitors,
        "shoppers": len(day.shoppers),
        "hours": hours,
        "messages": len(day.lines),
        "messages_by_kind": result.by_kind,
        "generate_s": round(generate_s, 3),
        "generate_and_write_s": round(generate_and_write_s, 3),
        "generate_target_s": TARGET_GENERATE_S,
        "generate_target_met": generate_s < TARGET_GENERATE_S,
        "replay_wall_s": round(result.wall_s, 3),
        "replay_msgs_per_s": round(result.rate, 1),
        "recommender_events": consumed,
        "end_to_end_completion_s": None if done_s is None else round(done_s, 3),
        "end_to_end_events_per_s": None if not done_s else round(consumed / done_s, 1),
        "prompts": len(latencies),
        "deadletters": deadletters,
        "prompt_latency_ms": {
            "p50": percentile(latencies, 50),
            "p90": percentile(latencies, 90),
            "p99": percentile(latencies, 99),
            "max": max(latencies) if latencies else None,
        },
        "note": "2-core machine shared with other work; figures are noisy. Latency at max speed includes "
        "queueing behind the whole backlog (the replay publishes far faster than the recommender decides).",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))

    table = Table(
        title=f"floorwalker bench simulate ({len(config.zones)} zones, {len(day.shoppers)} shoppers)"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    rows = [
        ("generate a day (s)", f"{generate_s:.2f} (target < {TARGET_GENERATE_S:.0f})"),
        ("messages in trace", str(len(day.lines))),
        ("replay at max (msgs/s)", f"{result.rate:.0f}"),
        ("recommender handled every event after (s)", "timed out" if done_s is None else f"{done_s:.1f}"),
        ("end-to-end events/s", "-" if not done_s else f"{consumed / done_s:.0f}"),
        ("prompts", str(len(latencies))),
        ("dead letters", str(deadletters)),
        ("prompt latency p50 / p99 (ms)", " / ".join("-" if v is None else f"{v:.0f}" for v in (p50, p99))),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    console.print(f"wrote {out}")
    return report
