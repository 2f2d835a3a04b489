"""A small run of `bench ble`: no assertion on speed (that depends on the machine), only
that the JSON says what the README promises and counts what it processed."""

from __future__ import annotations

import json
from pathlib import Path

from bench.ble import make_input, run_ble_bench
from floorwalker.config import StoreConfig
from presence.fuser import resolver_for
from presence.pipeline import PresencePipeline


def test_small_ble_bench_run(store_config: StoreConfig, tmp_path: Path) -> None:
    out = tmp_path / "out" / "ble.json"
    run_ble_bench(store_config, out, rounds=1, repeats=2)
    doc = json.loads(out.read_text())  # the file, as written
    assert {"adverts_per_s", "runs", "machine"} <= set(doc)  # what bench/README.md names
    # The same input and the same pipeline, run here: every timed run did all of that work.
    records = make_input(store_config, 1)
    pipeline = PresencePipeline(store_config, resolver_for(store_config))
    changes = sum(1 for _ in pipeline.run(records))
    assert doc["adverts"] == len(records) > 10_000
    assert [(r["reports"], r["sightings"], r["zone_changes"]) for r in doc["runs"]] == 2 * [
        (pipeline.reports, pipeline.sightings, changes)
    ]
    assert 0 < pipeline.reports < len(records) / 3  # rate-limited reports, not one per advert
    assert changes >= 2 * 9  # every consenting member entered and left something
    assert doc["target_adverts_per_s"] == 50_000  # the README's target
    assert all(r["cpu_s"] > 0 for r in doc["runs"])
    assert doc["adverts_per_s"] == max(r["adverts_per_s"] for r in doc["runs"])  # the best run
    assert doc["machine"]["python"]
