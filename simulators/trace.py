"""The trace format: one JSON object per line.

The first line is a header::

    {"floorwalker_trace": 1, "store": "demo-store", "source": "simulate", "start": ..., ...}

then one line per MQTT message, in time order::

    {"t": 1767600000.0, "topic": "fw/v1/demo-store/zone/produce/footfall", "qos": 1,
     "retain": false, "payload": "{\"schema_version\":1,...}", "truth": {...}}

``t`` is when the message was sent (Unix seconds), ``payload`` the exact bytes on the wire
as UTF-8 text (``payload_b64`` instead for bytes that are not UTF-8, which a recorder may
capture), and ``truth`` (simulated traces only) what really happened behind the message.
Simulated and recorded traces share the format, so either can be replayed.

A simulated trace comes with a ground-truth file (``truth.json``, :class:`Truth`): each
shopper's zone visits, lane and basket, and the true per-zone counts per window.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from floorwalker.errors import PermanentError

TRACE_VERSION = 1
TRUTH_VERSION = 1


class TraceError(PermanentError):
    """A trace or truth file (or one of its lines) is unusable; names the file and line."""


@dataclass(frozen=True, slots=True)
class TraceLine:
    t: float
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    truth: dict[str, Any] | None = None

    def to_json(self) -> str:
        row: dict[str, Any] = {
            "t": self.t,
            "topic": self.topic,
            "qos": self.qos,
            "retain": self.retain,
        }
        try:
            row["payload"] = self.payload.decode("utf-8")
        except UnicodeDecodeError:
            row["payload_b64"] = base64.b64encode(self.payload).decode("ascii")
        if self.truth is not None:
            row["truth"] = self.truth
        return json.dumps(row, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Header:
    store: str
    source: str
    start: float
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {"floorwalker_trace": TRACE_VERSION, "store": self.store, "source": self.source,
             "start": self.start, **self.meta},
            separators=(",", ":"),
        )  # fmt: skip


class TraceWriter:
    """Appends lines to a trace file (header first)."""

    def __init__(self, path: Path, header: Header) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._f: IO[str] = path.open("w", encoding="utf-8")
        self._f.write(header.to_json() + "\n")
        self.count = 0

    def write(self, line: TraceLine) -> None:
        self._f.write(line.to_json() + "\n")
        self.count += 1

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def write_trace(path: Path, header: Header, lines: list[TraceLine]) -> None:
    writer = TraceWriter(path, header)
    try:
        for line in lines:
            writer.write(line)
    finally:
        writer.close()


@dataclass(frozen=True, slots=True)
class BadLine:
    """A trace line that was skipped, and why (``file:line: problem``)."""

    number: int
    problem: str


def parse_line(text: str) -> TraceLine:
    """One message line; raises ``ValueError`` naming the key that is missing or wrong."""
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(row, dict):
        raise ValueError("expected a JSON object")
    t = row.get("t")
    if isinstance(t, bool) or not isinstance(t, int | float):
        raise ValueError("key 't': expected the send time in Unix seconds")
    try:
        t = float(t)  # an integer past a float's range overflows (found by the fuzzer)
    except OverflowError:
        raise ValueError("key 't': expected the send time in Unix seconds") from None
    if not math.isfinite(t):
        raise ValueError("key 't': expected the send time in Unix seconds")
    topic = row.get("topic")
    if not isinstance(topic, str) or not topic or any(c in topic for c in "+#"):
        raise ValueError("key 'topic': expected an MQTT topic name")
    if isinstance(row.get("payload"), str):
        payload = row["payload"].encode("utf-8")
    elif isinstance(row.get("payload_b64"), str):
        try:
            payload = base64.b64decode(row["payload_b64"], validate=True)
        except ValueError:
            raise ValueError("key 'payload_b64': not valid base64") from None
    else:
        raise ValueError("key 'payload': expected the message as a string")
    qos = row.get("qos", 1)
    if qos not in (0, 1, 2):
        raise ValueError("key 'qos': expected 0, 1 or 2")
    retain = row.get("retain", False)
    if not isinstance(retain, bool):
        raise ValueError("key 'retain': expected true or false")
    truth = row.get("truth")
    return TraceLine(float(t), topic, payload, int(qos), retain, truth if isinstance(truth, dict) else None)


class TraceReader:
    """Reads a trace lazily; corrupt lines are skipped and kept in :attr:`bad`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bad: list[BadLine] = []
        try:
            with path.open("r", encoding="utf-8", errors="replace") as f:
                first = f.readline()
        except FileNotFoundError:
            raise TraceError(f"{path}: no such trace file") from None
        except OSError as exc:
            raise TraceError(f"{path}: cannot read ({exc.strerror})") from None
        try:
            head = json.loads(first)
        except json.JSONDecodeError:
            raise TraceError(
                f"{path}:1: not a Floorwalker trace (the first line is not a JSON header)"
            ) from None
        if not isinstance(head, dict) or head.get("floorwalker_trace") != TRACE_VERSION:
            raise TraceError(
                f"{path}:1: not a Floorwalker trace header "
                f"(expected key 'floorwalker_trace': {TRACE_VERSION})"
            )
        if not isinstance(head.get("store"), str) or not isinstance(head.get("start"), int | float):
            raise TraceError(f"{path}:1: the header needs keys 'store' and 'start'")
        meta = {k: v for k, v in head.items() if k not in ("floorwalker_trace", "store", "source", "start")}
        self.header = Header(head["store"], str(head.get("source", "")), float(head["start"]), meta)

    def __iter__(self) -> Iterator[TraceLine]:
        self.bad = []
        with self.path.open("r", encoding="utf-8", errors="replace") as f:
            f.readline()
            for number, text in enumerate(f, start=2):
                if not text.strip():
                    continue
                try:
                    yield parse_line(text)
                except ValueError as exc:
                    self.bad.append(BadLine(number, str(exc)))

    def describe_bad(self, limit: int = 1) -> str:
        """``file:line: problem`` of the first skipped line(s), and how many were skipped."""
        if not self.bad:
            return ""
        first = "; ".join(f"{self.path}:{b.number}: {b.problem}" for b in self.bad[:limit])
        return f"skipped {len(self.bad)} corrupt line(s), first {first}"


# -- ground truth ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Truth:
    """What really happened in a simulated trace."""

    store: str
    start: float
    end: float
    window_s: float
    #: One dict per shopper: id, member, recognizable, arrival, left, visits
    #: ([zone, enter, leave] triples), lane, queued, paid, basket.
    shoppers: list[dict[str, Any]]
    #: Per zone, per window (ending at ``start + (i + 1) * window_s``): true
    #: [entered, exited, occupancy, queue_length or null].
    counts: dict[str, list[list[int | None]]]
    meta: dict[str, Any] = field(default_factory=dict)

    def dump(self, path: Path) -> None:
        data = {
            "floorwalker_truth": TRUTH_VERSION, "store": self.store, "start": self.start, "end": self.end,
            "window_s": self.window_s, "meta": self.meta, "counts": self.counts, "shoppers": self.shoppers,
        }  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, separators=(",", ":")))


def load_truth(path: Path) -> Truth:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise TraceError(f"{path}: no such truth file") from None
    except json.JSONDecodeError as exc:
        raise TraceError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or data.get("floorwalker_truth") != TRUTH_VERSION:
        raise TraceError(f"{path}: not a Floorwalker truth file (expected key 'floorwalker_truth': 1)")
    try:
        return Truth(
            store=str(data["store"]),
            start=float(data["start"]),
            end=float(data["end"]),
            window_s=float(data["window_s"]),
            shoppers=list(data["shoppers"]),
            counts=dict(data["counts"]),
            meta=dict(data.get("meta", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise TraceError(f"{path}: key {exc}: missing or of the wrong type") from None
