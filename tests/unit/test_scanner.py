"""Scanner backends: the replay plays one gateway's lines and names a bad line; the bleak
backend reports a dead or missing adapter as a clear status and keeps retrying, no crash."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from edge_agent.ble.frames import encode_member_advert
from edge_agent.ble.scanner import BleakRadioScanner, ReplayScanner, make_scanner, record
from edge_agent.ble.sightings import Advert
from floorwalker.config import BleakScannerConfig, ReplayScannerConfig

ADV = encode_member_advert(bytes(8), -59).hex()


def test_replay_plays_its_own_gateway_and_skips_bad_lines(tmp_path: Path) -> None:
    now = time.time()
    lines = [
        json.dumps({"ts": now, "gateway": "gw-a", "rssi": -60, "adv": ADV}),
        json.dumps({"ts": now + 0.05, "gateway": "gw-b", "rssi": -61, "adv": ADV}),
        '{"ts": "soon", "gateway": "gw-a"}',
        json.dumps({"ts": now + 0.1, "gateway": "gw-a", "rssi": -62, "adv": "zz"}),
        json.dumps({"ts": now + 0.2, "gateway": "gw-a", "rssi": -63, "adv": ADV}),
    ]
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    scanner = make_scanner(ReplayScannerConfig(path=tmp_path / "t.jsonl", speed=10), "gw-a")
    assert isinstance(scanner, ReplayScanner)
    got: list[Advert] = []
    scanner.run(got.append, threading.Event())
    assert [a.rssi for a in got] == [-60, -63]
    assert [a.ts for a in got] == [now, now + 0.2]  # the recording's own time
    assert scanner.bad_lines == 2
    assert "t.jsonl:4: bad line" in scanner.status


def test_replay_of_a_missing_file_says_so(tmp_path: Path) -> None:
    scanner = ReplayScanner(ReplayScannerConfig(path=tmp_path / "nope.jsonl"), "gw-a")
    scanner.run(lambda a: None, threading.Event())
    assert "nope.jsonl: cannot read" in scanner.status


def test_bleak_with_a_missing_adapter_reports_and_retries() -> None:
    scanner = make_scanner(BleakScannerConfig(adapter="hci9", restart_min_s=0.1, restart_max_s=0.2), "gw-a")
    assert isinstance(scanner, BleakRadioScanner)
    stop = threading.Event()
    thread = threading.Thread(target=scanner.run, args=(lambda a: None, stop))
    thread.start()
    deadline = time.monotonic() + 20
    while scanner.restarts < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    assert scanner.restarts >= 2
    assert scanner.status.startswith("ble: adapter hci9 unavailable (")
    assert "retrying in" in scanner.status


def test_replay_jumps_over_a_long_silence(tmp_path: Path) -> None:
    now = time.time()
    lines = [json.dumps({"ts": t, "gateway": "gw-a", "rssi": -60, "adv": ADV}) for t in (1.0, now, now + 0.1)]
    (tmp_path / "t.jsonl").write_text("\n".join(lines) + "\n")
    got: list[Advert] = []
    started = time.monotonic()
    ReplayScanner(ReplayScannerConfig(path=tmp_path / "t.jsonl"), "gw-a").run(got.append, threading.Event())
    assert len(got) == 3 and time.monotonic() - started < 5


def test_record_writes_the_replay_format(tmp_path: Path) -> None:
    now = time.time()
    lines = [
        json.dumps({"ts": now + k * 0.01, "gateway": "gw-a", "rssi": -60 - k, "adv": ADV}) for k in range(3)
    ]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    source = ReplayScanner(ReplayScannerConfig(path=tmp_path / "in.jsonl"), "gw-a")
    assert record(source, "gw-a", tmp_path / "out.jsonl", threading.Event()) == 3
    got = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(r["rssi"], r["adv"], r["gateway"]) for r in got] == [
        (-60, ADV, "gw-a"),
        (-61, ADV, "gw-a"),
        (-62, ADV, "gw-a"),
    ]
    assert set(got[0]) == {"ts", "gateway", "rssi", "adv"}  # no address, nothing else
