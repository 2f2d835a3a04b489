"""``floorwalker bench outbox``: what the gateway's store-and-forward costs, and what
72 hours of a busy store take on disk.

Writes realistic events (footfall windows with lane queues, presence of members) into a
fresh outbox on the local disk, one committed insert each as the publisher does, then
acknowledges them in batches of 64 as the recommender's acks arrive. Reports events/s
for both, the bytes on disk per event (SQLite file + WAL, after a checkpoint) and the
72-hour footprint of the store :mod:`edge_agent.outbox` sizes its default cap for.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from broker_config.contract import EnvelopeSource, FootfallEvent, PresenceEvent, Topics, encode
from edge_agent.outbox import Outbox, OutboxPolicy

#: The busy store of the sizing: 12 zones, a footfall window each every 5 s, and presence.
ZONES = 12
WINDOW_S = 5.0
PRESENCE_PER_DAY = 5_000
HOURS = 72


def _events(n: int, start: float) -> list[tuple[str, str, str, bytes, float, str | None]]:
    src, topics = EnvelopeSource("gw-bench"), Topics()
    out: list[tuple[str, str, str, bytes, float, str | None]] = []
    for i in range(n):
        ts = start + i * WINDOW_S / ZONES
        if i % 50 == 49:
            member = f"m_bench{i % 997:05d}"
            e: FootfallEvent | PresenceEvent = src.make(PresenceEvent, ts, member=member, action="enter")
            out.append((e.event_id, "presence", topics.presence("store-1", "pantry"), encode(e), ts, member))
        else:
            e = src.make(
                FootfallEvent,
                ts,
                window_s=WINDOW_S,
                entered=i % 7,
                exited=i % 5,
                occupancy=20 + i % 30,
                queue_length=i % 9,
                dwell_avg_s=95.5,
                lane_queues={"lane-1": i % 4, "lane-2": i % 5},
            )
            out.append(
                (e.event_id, "footfall", topics.footfall("store-1", f"zone-{i % ZONES}"), encode(e), ts, None)
            )
    return out


def run_outbox_bench(events: int, out: Path) -> dict[str, object]:
    work = _events(events, time.time())
    with tempfile.TemporaryDirectory(prefix="fw-outbox-bench-") as tmp:
        path = Path(tmp) / "outbox.db"
        ob = Outbox(path, OutboxPolicy())
        t0 = time.perf_counter()
        for event_id, kind, topic, payload, ts, member in work:
            ob.add(event_id, kind, topic, payload, ts, member)  # type: ignore[arg-type]
        add_s = time.perf_counter() - t0
        ob.checkpoint()  # the file as it settles
        disk = sum(p.stat().st_size for p in Path(tmp).iterdir())
        payload_total = ob.bytes
        ids = [w[0] for w in work]
        t1 = time.perf_counter()
        for i in range(0, len(ids), 64):
            ob.ack(ids[i : i + 64])
        ack_s = time.perf_counter() - t1
        left = ob.pending()
        ob.close()
    per_event = disk / events
    busy = int(HOURS * 3600 / WINDOW_S * ZONES + HOURS / 24 * PRESENCE_PER_DAY)
    result: dict[str, object] = {
        "events": events,
        "add_per_s": round(events / add_s),
        "ack_per_s": round(events / ack_s),
        "disk_bytes_per_event": round(per_event, 1),
        "payload_bytes_per_event": round(payload_total / events, 1),
        "busy_store_72h_events": busy,
        "busy_store_72h_mib": round(busy * per_event / 2**20, 1),
        "busy_store_72h_payload_mib": round(busy * payload_total / events / 2**20, 1),
        "default_cap_mib": OutboxPolicy().max_bytes // 2**20,
        "left_after_acks": left,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title=f"outbox: {events} events on local disk (SQLite WAL, one commit per event)")
    for col in ("add/s", "ack/s", "disk B/ev", "payload B/ev", "72 h busy store", "cap (payload)"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{result['add_per_s']:,}",
        f"{result['ack_per_s']:,}",
        f"{per_event:.0f}",
        f"{payload_total / events:.0f}",
        f"{busy:,} ev, {result['busy_store_72h_mib']} MiB disk",
        f"{result['default_cap_mib']} MiB",
    )
    Console().print(table)
    return result
