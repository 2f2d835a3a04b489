"""A page's live stream (issue 25): events encoded once and written in batches, the session
checked with the store step rather than per page, and an ended session cut off before the
next prompt. The stream's body is driven step by step here, without a server: each step is
one HTTP chunk."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any

import pytest

from broker_config.contract import PromptKind
from floorwalker.config import Endpoints, load_store_config
from handheld import sse
from handheld.auth import Principal
from handheld.hub import StoreHub
from handheld.prompts import QUEUE_SIZE, HandheldPrompt, LiveFeed, LivePrompt, Subscription, prompt_event
from handheld.routes import stream_events
from handheld.server import bind_port
from tests.conftest import DEMO_STORE

BEN = "a-ben"
SESSION = "a" * 64
OTHER = "b" * 64


def view(n: int, associate: str = BEN) -> HandheldPrompt:
    return HandheldPrompt(
        prompt_id=f"{n:032x}",
        associate=associate,
        kind=PromptKind.GREET_VIP,
        customer_name="Mrs Chen",
        member="m_702cc64d",
        tier="gold",
        points=None,
        zone="pantry",
        lane=None,
        headline=f"prompt {n}",
        suggestion="s",
        why="w",
        ts=1.7e9,
        since=1.7e9,
        expires_at=1.7e9 + 300,
        sid=f"{1000 + n}-0",
    )


def events(chunk: bytes) -> list[dict[str, str]]:
    """The SSE events in one chunk, as a browser parses them (comments left out)."""
    out = []
    for block in chunk.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if fields:
            out.append(fields)
    return out


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


# -- the wire ----------------------------------------------------------------------------


def test_a_prompt_event_is_what_a_browser_reads_as_the_prompt() -> None:
    v = view(1)
    [e] = events(prompt_event(v))
    assert (e["event"], e["id"]) == ("prompt", v.sid)
    assert HandheldPrompt.model_validate_json(e["data"]) == v
    assert events(sse.json_event("ready", {"backlog": 2}, retry=1000)) == [
        {"event": "ready", "data": '{"backlog": 2}', "retry": "1000"}
    ]
    with pytest.raises(ValueError, match="one line"):
        sse.event("prompt", '{"a":\n1}')


# -- the feed ----------------------------------------------------------------------------


def test_a_prompt_is_encoded_once_for_every_page() -> None:
    async def test() -> None:
        feed = LiveFeed()
        pages = [feed.subscribe(BEN, SESSION), feed.subscribe(BEN, SESSION), feed.subscribe(BEN, OTHER)]
        feed.publish(view(1), {SESSION, OTHER}, {SESSION, OTHER})
        items = [p.queue.get_nowait() for p in pages]
        assert all(isinstance(i, LivePrompt) and i is items[0] for i in items)
        assert isinstance(items[0], LivePrompt) and items[0].frame == prompt_event(view(1))

    run(test)


def test_open_sessions_follow_the_pages_for_the_mqtt_thread() -> None:
    async def test() -> None:
        feed = LiveFeed()
        assert feed.open_sessions(BEN) == ()
        one, two = feed.subscribe(BEN, SESSION), feed.subscribe(BEN, OTHER)
        feed.subscribe("a-amy", "c" * 64)
        assert feed.open_sessions(BEN) == (SESSION, OTHER)
        feed.unsubscribe(one)
        assert feed.open_sessions(BEN) == (OTHER,)
        feed.unsubscribe(two)
        assert feed.open_sessions(BEN) == ()
        assert feed.open_sessions("a-amy") == ("c" * 64,)

    run(test)


def test_a_page_whose_session_ended_is_cut_off_before_the_prompt_others_get_it() -> None:
    async def test() -> None:
        feed = LiveFeed()
        revoked, kept = feed.subscribe(BEN, SESSION), feed.subscribe(BEN, OTHER)
        feed.publish(view(1), {SESSION, OTHER}, {SESSION, OTHER})
        # The store step found SESSION gone (signed out, revoked, expired) for the next one.
        feed.publish(view(2), {SESSION, OTHER}, {OTHER})
        # What was still queued for the ended session is dropped too: only the end marker.
        assert revoked.drain() == [None] and revoked.ended
        got = kept.drain()
        assert [i.view.prompt_id for i in got if isinstance(i, LivePrompt)] == [
            view(1).prompt_id,
            view(2).prompt_id,
        ]
        feed.publish(view(3), {OTHER}, {OTHER})
        assert revoked.queue.empty()

    run(test)


def test_ending_sessions_drops_what_was_queued_for_them() -> None:
    async def test() -> None:
        feed = LiveFeed()
        page = feed.subscribe(BEN, SESSION)
        for n in range(3):
            feed.publish(view(n), {SESSION}, {SESSION})
        assert feed.end_sessions({SESSION}) == 1
        assert page.drain() == [None]

    run(test)


def test_a_batch_is_everything_queued_in_order_up_to_the_end() -> None:
    async def test() -> None:
        sub = Subscription(BEN, SESSION)
        assert await sub.next_batch(0) == []  # nothing came: time for a ping
        items = [LivePrompt(view(n), prompt_event(view(n))) for n in range(5)]
        for item in items:
            sub.queue.put_nowait(item)
        sub.queue.put_nowait(None)
        sub.queue.put_nowait(items[0])  # after the end: never taken
        assert await sub.next_batch(0) == [*items, None]
        sub2 = Subscription(BEN, SESSION)
        sub2.queue.put_nowait(None)
        assert await sub2.next_batch(0) == [None]

    run(test)


# -- the stream's body -------------------------------------------------------------------


class Prompts:
    """The Redis side of a stream, as far as the stream reads it."""

    def __init__(self, stored: list[HandheldPrompt]) -> None:
        self.stored = stored

    def backlog(self, associate: str, after: tuple[int, int] | None) -> list[HandheldPrompt]:
        return [p for p in self.stored if p.associate == associate]


class Hub(StoreHub):
    """A hub that is not connected: its prompts and session checks are the test's."""

    def __init__(self, backlog: list[HandheldPrompt], alive: bool = True) -> None:
        super().__init__(load_store_config(DEMO_STORE), Endpoints("127.0.0.1", 1, "redis://127.0.0.1:1"))
        self._prompts = Prompts(backlog)  # type: ignore[assignment]
        self.alive = alive
        self.checked: list[str] = []

    def session_alive(self, session: str) -> bool:
        self.checked.append(session)
        return self.alive

    def stream_opened(self, associate: str) -> None:  # no broker: nobody to tell
        pass


def principal(session: str = SESSION) -> Principal:
    return Principal("demo-store", BEN, "associate", 2e9, session)


async def opened(
    hub: Hub, session: str = SESSION
) -> tuple[AsyncGenerator[bytes, None], list[dict[str, str]]]:
    body = stream_events(hub, principal(session), None, ping_s=60)
    return body, events(await body.__anext__())


def test_the_stream_opens_with_the_backlog_then_ready_in_one_chunk() -> None:
    async def test() -> None:
        hub = Hub([view(1), view(2)])
        body, first = await opened(hub)
        assert [e["event"] for e in first] == ["prompt", "prompt", "ready"]
        assert [e["id"] for e in first[:2]] == [view(1).sid, view(2).sid]
        assert json.loads(first[2]["data"]) == {"backlog": 2}
        assert hub.feed.open_streams == 1
        await body.aclose()
        # Closed (the client went away): the page left the feed at once.
        assert hub.feed.open_streams == 0 and hub.feed.open_sessions(BEN) == ()

    run(test)


def test_prompts_queued_while_the_writer_was_busy_arrive_in_order_once_in_one_write() -> None:
    async def test() -> None:
        hub = Hub([view(1)])
        body, _ = await opened(hub)
        # The writer is busy (not awaiting): a burst queues up, including one already in the
        # backlog, a withdrawal and a re-route among them.
        hub.feed.publish(view(1), {SESSION}, {SESSION})  # already sent from the backlog
        for n in (2, 3):
            hub.feed.publish(view(n), {SESSION}, {SESSION})
        hub.feed.withdraw("m_erased01")
        hub.feed.moved(BEN, view(2).prompt_id)
        hub.feed.publish(view(4), {SESSION}, {SESSION})
        chunk = events(await body.__anext__())
        assert [(e["event"], e.get("id")) for e in chunk] == [
            ("prompt", view(2).sid),
            ("prompt", view(3).sid),
            ("withdraw", None),
            ("withdraw", None),
            ("prompt", view(4).sid),
        ]
        assert [json.loads(e["data"]) for e in chunk[2:4]] == [
            {"member": "m_erased01"},
            {"prompt_id": view(2).prompt_id},
        ]
        assert hub.checked == []  # checked with the store step: no Redis round trip per page
        await body.aclose()

    run(test)


def test_a_revoked_session_gets_no_further_prompt_and_its_stream_ends() -> None:
    async def test() -> None:
        hub = Hub([])
        body, _ = await opened(hub)
        hub.feed.publish(view(1), {SESSION}, {SESSION})
        assert [e["id"] for e in events(await body.__anext__())] == [view(1).sid]
        # Revoked (floorwalker token revoke) before the next prompt was stored.
        hub.feed.publish(view(2), {SESSION}, frozenset())
        with pytest.raises(StopAsyncIteration):
            await body.__anext__()
        assert hub.feed.open_streams == 0

    run(test)


@pytest.mark.parametrize("alive", [True, False])
def test_a_page_opened_after_the_store_step_checks_its_own_session_first(alive: bool) -> None:
    async def test() -> None:
        hub = Hub([], alive=alive)
        body, _ = await opened(hub)
        hub.feed.publish(view(1), {OTHER}, {OTHER})  # stored before this page was seen
        hub.feed.publish(view(2), {SESSION}, {SESSION})
        if alive:
            assert [e["id"] for e in events(await body.__anext__())] == [view(1).sid, view(2).sid]
            await body.aclose()
        else:
            with pytest.raises(StopAsyncIteration):
                await body.__anext__()
        assert hub.checked == [SESSION]

    run(test)


def test_a_page_that_falls_behind_is_still_ended_to_resume() -> None:
    async def test() -> None:
        hub = Hub([])
        body, _ = await opened(hub)
        for n in range(QUEUE_SIZE + 1):
            hub.feed.publish(view(n), {SESSION}, {SESSION})
        with pytest.raises(StopAsyncIteration):  # ended, nothing written: it resumes from Redis
            await body.__anext__()
        assert hub.feed.overflows == 1

    run(test)


def test_an_idle_stream_pings() -> None:
    async def test() -> None:
        hub = Hub([])
        body = stream_events(hub, principal(), None, ping_s=0)
        await body.__anext__()
        assert await body.__anext__() == sse.PING
        await body.aclose()

    run(test)


# -- the connection ----------------------------------------------------------------------


def test_pages_connections_have_nagle_off() -> None:
    """The API's listening socket says TCP, so asyncio sets TCP_NODELAY on every page's
    connection: with Nagle on, an event written while the previous one is unacknowledged
    waits for the page's delayed ACK (~40 ms), which the bench saw as p99."""

    async def test() -> None:
        listener = bind_port("127.0.0.1", 0)
        listener.setblocking(False)
        nodelay: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def accepted(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            nodelay.set_result(w.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            w.close()

        server = await asyncio.start_server(accepted, sock=listener)
        _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        assert await nodelay != 0
        writer.close()
        server.close()
        await server.wait_closed()

    run(test)
