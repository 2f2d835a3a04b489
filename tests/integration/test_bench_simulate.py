"""A short run of ``bench simulate``: a small day of the 20-zone store through the whole system.

No assertion on speed (machine-dependent); what must hold is that every consumed event was
handled, nothing was rejected, and the JSON has its figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.simulate import run_simulate_bench
from tests.conftest import DEMO_STORE

pytestmark = pytest.mark.integration


def test_short_simulate_bench(tmp_path: Path) -> None:
    out = tmp_path / "simulate.json"
    returned = run_simulate_bench(DEMO_STORE.parent / "big_store.yaml", 300, 1.0, out)
    doc = json.loads(out.read_text())
    assert doc == json.loads(json.dumps(returned))
    assert doc["zones"] == 20 and doc["shoppers"] > 200
    kinds = doc["messages_by_kind"]
    assert sum(kinds.values()) == doc["messages"]
    assert doc["recommender_events"] == kinds["presence"] + kinds["checkout"]
    assert doc["end_to_end_completion_s"] is not None and doc["end_to_end_completion_s"] > 0
    assert doc["replay_msgs_per_s"] > 0 and doc["generate_s"] > 0
    assert doc["deadletters"] == 0 and doc["prompts"] > 0
    assert doc["prompt_latency_ms"]["p50"] is not None
