"""BLE scanner backends behind one interface: the real radio (bleak) or a recorded trace.

A :class:`Scanner` calls ``sink(advert)`` for every advertisement it hears until ``stop``
is set, keeps a one-line ``status`` ("" while healthy) for the gateway's status topic,
and tells the time its adverts are stamped in (``now()``): the wall clock for the radio,
the trace's own clock for a replay.

Replay trace format (JSONL, one advertisement per line, as recorded or simulated)::

    {"ts": 1800000000.125, "gateway": "gw-fresh", "rssi": -71, "adv": "020106 0fffff..."}

``ts`` Unix seconds, ``gateway`` the gateway that heard it (a gateway replays only its
own lines), ``rssi`` dBm, ``adv`` the raw advertising data as hex. No device address is
recorded. A bad line is counted, named in ``status`` and skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from edge_agent.ble.frames import AdFields
from edge_agent.ble.sightings import Advert
from floorwalker.config import BleakScannerConfig, BleScannerConfig, ReplayScannerConfig

log = logging.getLogger(__name__)

Sink = Callable[[Advert], None]
#: A replay jumps over silences longer than this (trace time), rather than wait them out.
MAX_REPLAY_GAP_S = 30.0


class Scanner(Protocol):
    status: str

    def run(self, sink: Sink, stop: threading.Event) -> None: ...

    def now(self) -> float: ...


def make_scanner(config: BleScannerConfig, gateway: str) -> Scanner:
    if isinstance(config, ReplayScannerConfig):
        return ReplayScanner(config, gateway)
    return BleakRadioScanner(config)


def read_trace(path: Path, gateway: str | None = None) -> Iterator[tuple[int, str, Advert | str]]:
    """Yield ``(line number, gateway, advert)`` per line, or ``(line, "", problem)`` for a bad one."""
    with path.open() as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                gw = rec["gateway"]
                if gateway is not None and gw != gateway:
                    continue
                advert = Advert(float(rec["ts"]), float(rec["rssi"]), bytes.fromhex(rec["adv"]))
            except (ValueError, KeyError, TypeError) as exc:
                yield n, "", f"{type(exc).__name__}: {exc}"
                continue
            yield n, str(gw), advert


def record(scanner: Scanner, gateway: str, out: Path, stop: threading.Event) -> int:
    """Write every advertisement ``scanner`` hears to ``out`` in the replay format, until
    ``stop``; return how many. Nothing but time, RSSI and the advertising data is kept."""
    lock = threading.Lock()
    count = 0
    with out.open("w") as fh:

        def write(advert: Advert) -> None:
            nonlocal count
            data = advert.data if isinstance(advert.data, bytes) else advert.data.to_bytes()
            line = {"ts": round(advert.ts, 4), "gateway": gateway, "rssi": advert.rssi, "adv": data.hex()}
            with lock:
                fh.write(json.dumps(line) + "\n")
                count += 1

        scanner.run(write, stop)
    return count


class ReplayScanner:
    """Plays a trace's lines for one gateway, paced by their timestamps (``speed`` times faster)."""

    def __init__(self, config: ReplayScannerConfig, gateway: str) -> None:
        self.config = config
        self.gateway = gateway
        self.status = ""
        self.bad_lines = 0
        self.finished = threading.Event()
        self._origin: tuple[float, float] | None = None  # (wall, trace) at the first advert

    def now(self) -> float:
        if self._origin is None:
            return time.time()
        wall0, trace0 = self._origin
        return trace0 + (time.time() - wall0) * self.config.speed

    def run(self, sink: Sink, stop: threading.Event) -> None:
        path = self.config.path
        try:
            for n, _gw, item in read_trace(path, self.gateway):
                if stop.is_set():
                    return
                if isinstance(item, str):
                    self.bad_lines += 1
                    self.status = f"ble replay {path}:{n}: bad line ({item[:80]}); {self.bad_lines} skipped"
                    log.warning("%s", self.status)
                    continue
                if self._origin is None:
                    self._origin = (time.time(), item.ts)
                wait = (item.ts - self.now()) / self.config.speed
                if wait * self.config.speed > MAX_REPLAY_GAP_S:
                    # A long silence in the recording (or a bogus first time): skip it.
                    self._origin, wait = (time.time(), item.ts), 0.0
                if wait > 0 and stop.wait(wait):
                    return
                sink(item)
        except OSError as exc:
            self.status = f"ble replay {path}: cannot read ({exc.strerror or exc})"
            log.error("%s", self.status)
        finally:
            self.finished.set()


class BleakRadioScanner:
    """The real radio through bleak; restarts with back-off when the adapter fails.

    Passive scanning (no scan requests, nothing sent) on BlueZ needs an advertisement
    monitor with patterns: ours match the member app's company id and Eddystone's UUID.
    The device address bleak reports is never read.
    """

    def __init__(self, config: BleakScannerConfig) -> None:
        self.config = config
        self.status = "ble: starting"
        self.restarts = 0

    def now(self) -> float:
        return time.time()

    def run(self, sink: Sink, stop: threading.Event) -> None:
        asyncio.run(self._scan(sink, stop))

    def _scanner_kwargs(self) -> dict[str, object]:
        from bleak.args.bluez import OrPattern
        from bleak.assigned_numbers import AdvertisementDataType

        bluez: dict[str, object] = {}
        if self.config.adapter:
            bluez["adapter"] = self.config.adapter
        if self.config.passive:
            bluez["or_patterns"] = [
                OrPattern(0, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, b"\xff\xff"),
                OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\xaa\xfe"),
            ]
        return {"scanning_mode": "passive" if self.config.passive else "active", "bluez": bluez}

    async def _scan(self, sink: Sink, stop: threading.Event) -> None:
        from bleak import BleakScanner

        def on_advert(_device: object, adv: object) -> None:
            # ``_device`` holds the phone's address: deliberately not used.
            sink(
                Advert(
                    time.time(),
                    float(getattr(adv, "rssi", -127)),
                    AdFields.from_bleak(adv.manufacturer_data, adv.service_data, adv.tx_power),  # type: ignore[attr-defined]
                )
            )

        adapter = self.config.adapter or "default adapter"
        delay = self.config.restart_min_s
        while not stop.is_set():
            try:
                async with BleakScanner(on_advert, **self._scanner_kwargs()):  # type: ignore[arg-type]
                    self.status = ""
                    delay = self.config.restart_min_s
                    while not stop.is_set():
                        await asyncio.sleep(0.2)
                return
            except Exception as exc:  # bleak, D-Bus and OS errors all mean: no usable adapter now
                self.restarts += 1
                why = (
                    "no D-Bus system bus: is bluetoothd running?"
                    if isinstance(exc, FileNotFoundError)
                    else f"{type(exc).__name__}: {str(exc)[:120]}"
                )
                self.status = f"ble: adapter {adapter} unavailable ({why}); retrying in {delay:.1f} s"
                log.warning("%s", self.status)
            end = time.monotonic() + delay
            while not stop.is_set() and time.monotonic() < end:
                await asyncio.sleep(0.1)
            delay = min(delay * 2, self.config.restart_max_s)
