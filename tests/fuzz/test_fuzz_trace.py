"""Trace files (issue 4's replay format), fuzzed: any line ends in a parsed message or the
parser's own ``ValueError`` naming the key; any file in a :class:`TraceError` naming the
file or a reader that skips (and counts) what it cannot use, never in anything else."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from simulators.trace import TraceError, TraceReader, parse_line
from tests.fuzz.conftest import FUZZ, FUZZ_SLOW

GOOD = {"t": 1767600000.0, "topic": "fw/v1/demo-store/zone/produce/footfall", "qos": 1, "retain": False,
        "payload": '{"schema_version":1}'}  # fmt: skip
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.integers(10**300, 10**400)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(key=st.sampled_from([*GOOD, "payload_b64", "truth", "extra"]), value=JSON_VALUES, drop=st.booleans())
@example(key="t", value=10**400, drop=False)  # overflowed float() once
@example(key="t", value=float("nan"), drop=False)
def test_mutated_trace_line(key: str, value: object, drop: bool) -> None:
    row = dict(GOOD)
    if drop:
        row.pop(key, None)
    else:
        row[key] = value
    try:
        line = parse_line(json.dumps(row))
    except ValueError as exc:
        assert str(exc)  # a reason, not an empty error
        return
    assert isinstance(line.payload, bytes) and line.qos in (0, 1, 2)
    assert line.t == line.t and abs(line.t) != float("inf")  # a real time, not NaN or infinity


@FUZZ
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_arbitrary_trace_line(text: str) -> None:
    try:
        parse_line(text)
    except ValueError as exc:
        assert str(exc)


@FUZZ_SLOW
@given(content=st.binary(max_size=400), with_header=st.booleans())
def test_arbitrary_trace_file(content: bytes, with_header: bool) -> None:
    header = b'{"floorwalker_trace": 1, "store": "demo-store", "start": 1767600000}\n' if with_header else b""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.jsonl"
        path.write_bytes(header + content)
        try:
            reader = TraceReader(path)
        except TraceError as exc:
            assert str(path) in str(exc)
            return
        lines = list(reader)
        assert all(isinstance(line.payload, bytes) for line in lines)
        assert all(b.problem for b in reader.bad)
