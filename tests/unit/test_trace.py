"""The trace format: corrupt lines are skipped and named by file, line and key."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulators.trace import Header, TraceError, TraceLine, TraceReader, load_truth, parse_line, write_trace

GOOD = TraceLine(1.7e9, "fw/v1/s/zone/z/footfall", b'{"x":1}', 1, False, {"entered": 1})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"topic": "a/b", "payload": "x"}', "key 't'"),
        ('{"t": true, "topic": "a/b", "payload": "x"}', "key 't'"),
        ('{"t": 1.0, "payload": "x"}', "key 'topic'"),
        ('{"t": 1.0, "topic": "a/#", "payload": "x"}', "key 'topic'"),
        ('{"t": 1.0, "topic": "a/b"}', "key 'payload'"),
        ('{"t": 1.0, "topic": "a/b", "payload_b64": "***"}', "key 'payload_b64'"),
        ('{"t": 1.0, "topic": "a/b", "payload": "x", "qos": 3}', "key 'qos'"),
        ('{"t": 1.0, "topic": "a/b", "payload": "x", "retain": "yes"}', "key 'retain'"),
    ],
)
def test_bad_lines_name_the_problem(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_line(text)


@given(st.text(max_size=200))
def test_parse_line_never_fails_otherwise(text: str) -> None:
    with contextlib.suppress(ValueError):
        parse_line(text)


def test_binary_payloads_survive(tmp_path: Path) -> None:
    raw = TraceLine(1.7e9, "fw/v1/s/zone/z/presence", b"\xff\xfe not utf-8")
    path = tmp_path / "t.jsonl"
    write_trace(path, Header("s", "record", 1.7e9), [GOOD, raw])
    assert [x.payload for x in TraceReader(path)] == [GOOD.payload, raw.payload]


def test_reader_skips_and_counts_corrupt_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    write_trace(path, Header("s", "simulate", 1.7e9), [GOOD, GOOD])
    lines = path.read_text().splitlines()
    lines.insert(2, '{"t": 1.7e9, "topic": "a/b"')  # cut short
    lines.append("garbage")
    path.write_text("\n".join(lines) + "\n")
    reader = TraceReader(path)
    assert len(list(reader)) == 2
    assert [b.number for b in reader.bad] == [3, 5]
    assert reader.describe_bad() == f"skipped 2 corrupt line(s), first {path}:3: " + reader.bad[0].problem


@pytest.mark.parametrize(
    ("first", "needle"),
    [
        ("hello", ":1: not a Floorwalker trace"),
        (json.dumps({"trace": 1}), "expected key 'floorwalker_trace'"),
        (json.dumps({"floorwalker_trace": 1}), "needs keys 'store' and 'start'"),
    ],
)
def test_bad_headers(tmp_path: Path, first: str, needle: str) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(first + "\n")
    with pytest.raises(TraceError, match=needle):
        TraceReader(path)


def test_missing_files_and_bad_truth(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="no such trace file"):
        TraceReader(tmp_path / "nope.jsonl")
    bad = tmp_path / "truth.json"
    bad.write_text('{"floorwalker_truth": 1, "store": "s"}')
    with pytest.raises(TraceError, match="key 'start'"):
        load_truth(bad)
