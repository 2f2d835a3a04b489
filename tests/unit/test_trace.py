"""The trace format: corrupt lines are skipped and named by file, line and key."""

from __future__ import annotations

import base64
import json
import math
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


JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
KEYS = ["t", "topic", "payload", "payload_b64", "qos", "retain", "truth"]
#: A good line ...
GOOD_ROW = st.fixed_dictionaries(
    {
        "t": st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**70), 2**70),
        "topic": st.sampled_from(["fw/v1/s/zone/z/presence", "a", "fw/v1/s/handheld/a-ben/prompt"]),
        "payload": st.text(max_size=20),
    },
    optional={
        "payload_b64": st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode()),
        "qos": st.sampled_from([0, 1, 2]),
        "retain": st.booleans(),
        "truth": st.dictionaries(st.text(max_size=6), JSON_VALUE, max_size=3),
    },
)
#: ... with up to two keys dropped or given any JSON value (each check is reached).
ROW = st.tuples(
    GOOD_ROW,
    st.dictionaries(
        st.sampled_from(KEYS), JSON_VALUE | st.sampled_from(["a/#", "***", 3, float("inf")]), max_size=2
    ),
    st.sets(st.sampled_from(KEYS), max_size=2),
).map(lambda r: {k: v for k, v in {**r[0], **r[1]}.items() if k not in r[2]})


@given(st.text(max_size=200) | ROW.map(json.dumps))
def test_a_line_parses_to_exactly_what_it_says_or_names_its_problem(text: str) -> None:
    """Any text: a ValueError naming the problem, or a line holding the row's values that
    writes back to itself."""
    try:
        line = parse_line(text)
    except ValueError as exc:
        assert str(exc)
        return
    row = json.loads(text)
    assert line.t == float(row["t"]) and math.isfinite(line.t)
    assert line.topic == row["topic"] and line.topic and not {"+", "#"} & set(line.topic)
    if isinstance(row.get("payload"), str):
        assert line.payload == row["payload"].encode()
    else:
        assert line.payload == base64.b64decode(row["payload_b64"])
    assert line.qos == row.get("qos", 1) and line.qos in (0, 1, 2)
    assert line.retain is row.get("retain", False)
    assert line.truth == (row["truth"] if isinstance(row.get("truth"), dict) else None)
    assert parse_line(line.to_json()) == line


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
