"""``floorwalker bench ble``: advertisements per second through the whole BLE presence path
on one core — parse, smooth and rate-limit (gateway), resolve and fuse (store server).

The input is made first (not timed): demo walks of every consenting member of the store's
CRM through the RF model, as raw advertisement bytes. Then :class:`PresencePipeline`
processes them as fast as it can, ``repeats`` times; the best run counts (the machine is
shared, so the slowest runs say more about the neighbours than about the code).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.e2e import machine_info
from bench.presence_eval import demo_walks
from edge_agent.ble.sightings import Advert
from floorwalker.ble_keys import read_key_file
from floorwalker.config import StoreConfig
from presence.fuser import resolver_for
from presence.pipeline import PresencePipeline
from recommender.crm import read_fixture
from simulators.ble_radio import RadioModel

TARGET_ADVERTS_PER_S = 50_000


def make_input(config: StoreConfig, rounds: int, seed: int = 1) -> list[tuple[str, Advert]]:
    assert config.crm is not None and config.ble_presence.secrets is not None
    members = [m.member for m in read_fixture(config.crm).members if m.consent.recognition]
    key = bytes.fromhex(read_key_file(config.ble_presence.secrets).store_key)
    records: list[tuple[str, Advert]] = []
    for r in range(rounds):
        walks = demo_walks(config, members, start=1_800_000_000.0 + r * 3600, seed=seed + r, stagger_s=5)
        for rec in RadioModel(config, key, seed=seed + r).hear(walks):
            records.append((rec["gateway"], Advert(rec["ts"], rec["rssi"], bytes.fromhex(rec["adv"]))))
    return records


def run_ble_bench(config: StoreConfig, out: Path, *, rounds: int = 2, repeats: int = 3) -> dict[str, Any]:
    records = make_input(config, rounds)
    runs: list[dict[str, float]] = []
    for _ in range(repeats):
        pipeline = PresencePipeline(config, resolver_for(config))
        start = time.process_time()
        changes = sum(1 for _ in pipeline.run(records))
        cpu = time.process_time() - start
        runs.append(
            {
                "cpu_s": round(cpu, 4),
                "adverts_per_s": round(len(records) / cpu, 1),
                "reports": pipeline.reports,
                "sightings": pipeline.sightings,
                "zone_changes": changes,
            }
        )
    best = max(runs, key=lambda r: r["adverts_per_s"])
    doc: dict[str, Any] = {
        "benchmark": "ble",
        "adverts": len(records),
        "adverts_per_s": best["adverts_per_s"],
        "target_adverts_per_s": TARGET_ADVERTS_PER_S,
        "runs": runs,
        "machine": machine_info(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def print_ble(doc: dict[str, Any], console: Console) -> None:
    table = Table(title="BLE presence: parse + smooth + resolve + fuse, one core (CPU time)")
    for col in ("run", "adverts", "CPU s", "adverts/s", "reports", "sightings", "zone changes"):
        table.add_column(col, justify="right")
    for i, r in enumerate(doc["runs"], 1):
        table.add_row(
            str(i),
            str(doc["adverts"]),
            f"{r['cpu_s']:.2f}",
            f"{r['adverts_per_s']:,.0f}",
            str(r["reports"]),
            str(r["sightings"]),
            str(r["zone_changes"]),
        )
    console.print(table)
    console.print(f"best {doc['adverts_per_s']:,.0f} adverts/s (target {doc['target_adverts_per_s']:,})")
