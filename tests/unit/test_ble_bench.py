"""A small run of `bench ble`: no assertion on speed (that depends on the machine), only
that the JSON says what the README promises and counts what it processed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.ble import TARGET_ADVERTS_PER_S, run_ble_bench
from floorwalker.config import StoreConfig


def test_small_ble_bench_run(store_config: StoreConfig, tmp_path: Path) -> None:
    out = tmp_path / "out" / "ble.json"
    doc = run_ble_bench(store_config, out, rounds=1, repeats=2)
    assert json.loads(out.read_text()) == json.loads(json.dumps(doc))
    assert doc["adverts"] > 10_000 and doc["target_adverts_per_s"] == TARGET_ADVERTS_PER_S
    assert len(doc["runs"]) == 2
    assert doc["adverts_per_s"] == max(r["adverts_per_s"] for r in doc["runs"])
    for r in doc["runs"]:
        assert r["cpu_s"] > 0 and r["adverts_per_s"] == pytest.approx(doc["adverts"] / r["cpu_s"], rel=1e-3)
        assert 0 < r["reports"] < doc["adverts"] / 3  # rate-limited reports, not one per advert
        assert r["zone_changes"] >= 2 * 9  # every consenting member entered and left something
    assert doc["machine"]["python"]
