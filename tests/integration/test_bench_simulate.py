"""A short run of ``bench simulate``: a small day of the 20-zone store through the whole system.

No assertion on speed (machine-dependent); what must hold is that every consumed event was
handled, nothing was rejected, and the JSON has its figures."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bench.simulate import run_simulate_bench
from floorwalker.config import load_store_config
from recommender.crm import read_fixture
from simulators.day import simulate_day
from tests.bench_readme import documented_fields
from tests.conftest import DEMO_STORE

pytestmark = pytest.mark.integration


def test_short_simulate_bench(tmp_path: Path) -> None:
    out = tmp_path / "simulate.json"
    layout = DEMO_STORE.parent / "big_store.yaml"
    run_simulate_bench(layout, 300, 1.0, out)
    doc = json.loads(out.read_text())  # the file, as written
    [documented] = documented_fields("## bench simulate: a simulated day through the system")
    assert documented <= set(doc), f"documented in bench/README.md, missing: {documented - set(doc)}"
    # The same day (same seed), generated here: the bench replayed all of it, by kind.
    config = load_store_config(layout)
    assert config.crm is not None
    day = simulate_day(config, read_fixture(config.crm), hours=1.0, visitors=300, seed=1, source=str(layout))
    kinds = Counter(line.topic.rsplit("/", 1)[-1] for line in day.lines)
    assert doc["zones"] == len(config.zones) == 20
    assert doc["shoppers"] == len(day.shoppers) > 200
    assert doc["messages"] == len(day.lines) and doc["messages_by_kind"] == dict(kinds)
    assert doc["recommender_events"] == kinds["presence"] + kinds["checkout"]
    assert doc["end_to_end_completion_s"] is not None and doc["end_to_end_completion_s"] > 0
    assert doc["replay_msgs_per_s"] > 0 and doc["generate_s"] > 0
    assert doc["deadletters"] == 0 and doc["prompts"] > 0
    assert doc["prompt_latency_ms"]["p50"] is not None
