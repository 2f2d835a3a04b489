"""Server-Sent Events on the wire: events encoded once, written in batches.

A live prompt is encoded to its SSE event once, whatever the number of pages open for its
associate (:func:`event`), and a page's stream writes every event queued for it since its
last write as one HTTP chunk (:class:`EventStream`): at a thousand prompts a second a page
that was busy for a moment catches up in one write, not one write (and one trip through the
ASGI stack) per event.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any, Final

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

#: A comment line every this many idle seconds keeps proxies from closing the stream.
PING_S: Final = 15.0
PING: Final = b": ping\n\n"
#: One event in OpenAPI 3.2's terms (``itemSchema`` of ``text/event-stream``), as FastAPI
#: describes the streams it encodes itself.
SSE_EVENT_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "data": {"type": "string"},
        "event": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer", "minimum": 0},
    },
}


def event(name: str, data: str | bytes, id: str | None = None, retry: int | None = None) -> bytes:
    """One SSE event; ``data`` is JSON already (one line: JSON from pydantic or
    :func:`json.dumps` never holds a raw newline)."""
    body = data.encode() if isinstance(data, str) else data
    if b"\n" in body or b"\r" in body:
        raise ValueError("SSE data must be one line")
    out = b"event: " + name.encode() + b"\ndata: " + body + b"\n"
    if id is not None:
        out += b"id: " + id.encode() + b"\n"
    if retry is not None:
        out += b"retry: " + str(retry).encode() + b"\n"
    return out + b"\n"


def json_event(name: str, data: object, retry: int | None = None) -> bytes:
    """An event whose data is ``data`` as JSON."""
    return event(name, json.dumps(data), retry=retry)


class EventStream(StreamingResponse):
    """A ``text/event-stream`` response of pre-encoded chunks, each sent as it comes.

    Whatever ends it (the client went away, the server shut down, the stream finished), its
    iterator is closed before the response is done, so that the stream's clean-up (leaving
    the live feed, the open-streams gauge, who is on the floor) runs at once, not whenever
    the generator is collected."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncGenerator[bytes, None]) -> None:
        # For Nginx and other proxies: neither cache nor buffer the stream.
        super().__init__(content, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._events = content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._events.aclose()
