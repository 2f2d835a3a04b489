"""The handheld bench's summary: latencies per page, lost and repeated deliveries."""

from __future__ import annotations

import pytest

from bench.e2e import BenchError
from bench.handheld import _Stream, summarize


def test_summary_counts_lost_and_repeated_per_page() -> None:
    sent = {"a": 10.0, "b": 11.0}
    page1 = {"a": [10.002], "b": [11.004, 11.5]}  # b repeated
    page2 = {"a": [10.001]}  # b lost
    r = summarize(100.0, sent, [page1, page2], floor_p50=0.5)
    assert (r.pages, r.deliveries_expected, r.deliveries, r.lost, r.repeated) == (2, 4, 3, 1, 1)
    assert r.max_ms == pytest.approx(4.0)
    assert r.p50_ms == pytest.approx(2.0)
    assert r.p50_over_floor == pytest.approx(4.0)


def test_summary_without_deliveries_has_no_latency() -> None:
    r = summarize(10.0, {"a": 1.0}, [{}], floor_p50=None)
    assert (r.lost, r.p50_ms, r.p50_over_floor) == (1, None, None)


def _wire(events: list[bytes]) -> bytes:
    """An SSE response as uvicorn sends it: the head, one HTTP chunk per write, the end."""
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events)
    return head + chunks + b"0\r\n\r\n"


PID = "0123456789abcdef0123456789abcdef"
WRITES = [
    b'event: prompt\ndata: {"prompt_id":"' + PID.encode() + b'","kind":"greet_vip"}\nid: 1-0\n\n'
    b'event: ready\ndata: {"backlog": 1}\nretry: 1000\n\n',
    b": ping\n\n",
    b'event: withdraw\ndata: {"member": "m_1"}\n\n',
    b'event: prompt\ndata: {"prompt_id":"' + PID[::-1].encode() + b'"}\nid: 2-0\n\n'
    b'event: prompt\ndata: {"prompt_id":"' + PID.encode() + b'"}\nid: 3-0\n\n',
]
EXPECTED = [(b"prompt", PID), (b"ready", None), (b"withdraw", None), (b"prompt", PID[::-1]), (b"prompt", PID)]


@pytest.mark.parametrize("piece", [1, 7, 64, 10_000])
def test_the_page_reader_finds_every_event_however_the_bytes_are_split(piece: int) -> None:
    """TCP hands the reader any split of the bytes: chunk sizes, CRLFs and events cut
    anywhere still give each event once, in order."""
    wire = _wire(WRITES)
    stream = _Stream(0)
    got = []
    for at in range(0, len(wire), piece):
        got += stream.feed(wire[at : at + piece])
    assert got == EXPECTED


def test_the_page_reader_refuses_a_refused_stream() -> None:
    with pytest.raises(BenchError, match="401"):
        _Stream(0).feed(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n")
