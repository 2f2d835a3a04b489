"""Finding 6 (the disk): after ``member erase`` the member's name is gone from Redis's
append-only file on disk (not only from memory), and the demo's pseudonymous ids carry no
names."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from floorwalker.services import Services
from recommender.keys import Keys

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NAME = b"Zephyrine Quatermass"
MEMBER = "m_9d2c41e7"


def _aof_bytes(run_dir: Path) -> bytes:
    files = [p for p in (run_dir / "redis").rglob("*") if p.is_file() and "appendonly" in p.name]
    assert files, "no append-only file on disk"
    return b"".join(p.read_bytes() for p in files)


def test_f6_member_erase_rewrites_the_append_only_file(tmp_path: Path) -> None:
    # A copy of the demo store: erasure lists the member in the store's BLE key file.
    data = REPO / "simulators" / "data"
    for name in ("demo_store.yaml", "demo_crm.json", "demo_ble_keys.json"):
        shutil.copy(data / name, tmp_path / name)
    run = tmp_path / "run"
    svc = Services(run)
    endpoints = svc.up()
    try:
        client = redis.Redis.from_url(endpoints.redis_url)
        client.hset(Keys("demo-store").profile(MEMBER), mapping={"name": NAME, "tier": "gold"})
        client.close()
        # appendfsync everysec: the write reaches the file within about a second.
        deadline = time.monotonic() + 10
        while NAME not in _aof_bytes(run):
            assert time.monotonic() < deadline, "the name never reached the append-only file"
            time.sleep(0.1)

        result = subprocess.run(
            [sys.executable, "-m", "floorwalker", "member", "erase", MEMBER, "--run-dir", str(run),
             "--store-config", str(tmp_path / "demo_store.yaml")],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        # When the command returns, the file on disk no longer holds the name.
        assert NAME not in _aof_bytes(run)
    finally:
        svc.down()


def test_f6_demo_member_ids_carry_no_names() -> None:
    for crm in ("demo_crm.json", "big_crm.json"):
        members = json.loads((REPO / "simulators" / "data" / crm).read_text())["members"]
        for m in members:
            words = {w.lower() for w in re.findall(r"[A-Za-z]{3,}", m.get("display_name", ""))}
            words -= {"mrs", "mr", "ms", "dr", "member", "miss"}
            leaked = [w for w in words if w in m["member"].lower()]
            assert not leaked, f"{crm}: {m['member']} carries {leaked}"
            if crm == "demo_crm.json":  # the big store's ids are numbered, never named
                assert re.fullmatch(r"m_[0-9a-f]{6,}", m["member"]), f"{crm}: {m['member']} is not opaque"
