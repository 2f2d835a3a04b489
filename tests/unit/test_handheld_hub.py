"""The API's MQTT side (issue 25): prompts that queued up on the socket are stored in one
round trip and handed to the pages in one wake-up, each acknowledged once stored and only
then; anything else that arrives lets the held prompts go first. No broker, no Redis: the
link, the store and the loop are stand-ins that record what the hub asks of them."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import redis

from broker_config.contract import (
    AssociateStatus,
    EnvelopeSource,
    Prompt,
    PromptKind,
    Topics,
    encode,
    new_event_id,
)
from floorwalker.config import Endpoints, load_store_config
from floorwalker.mqtt import Received
from handheld.hub import MAX_BATCH, StoreHub
from handheld.prompts import HandheldPrompt, LivePrompt, Stored
from tests.conftest import DEMO_STORE

STORE = "demo-store"
TOPICS = Topics("")
SOURCE = EnvelopeSource("recommender")


class Link:
    """The MQTT link: what waits on the socket is the test's to say; acks are recorded."""

    def __init__(self, disconnected: Callable[[], None] | None = None) -> None:
        self.waiting: list[bool] = []
        self.acked: list[int] = []
        #: What the hub asked the real link to call when the connection drops.
        self.disconnected = disconnected

    def publish_waiting(self) -> bool:
        return self.waiting.pop(0) if self.waiting else False

    def ack(self, message: Received) -> None:
        self.acked.append(message.mid)


class Store:
    """The prompt store: records each round trip; ``fail`` makes the next one a Redis error."""

    def __init__(self) -> None:
        self.trips: list[list[str]] = []
        self.fail = False

    def store_prompts(
        self, prompts: Sequence[tuple[str, Prompt, float | None, Sequence[str]]]
    ) -> list[Stored | Literal["erased", "redelivered"]]:
        if self.fail:
            raise redis.ConnectionError("Redis went away")
        self.trips.append([p.event_id for _, p, _, _ in prompts])
        out: list[Stored | Literal["erased", "redelivered"]] = []
        for associate, prompt, _, sessions in prompts:
            view = HandheldPrompt.from_prompt(associate, prompt, None)
            view = view.model_copy(update={"sid": f"{len(out) + 1}-0"})
            out.append(Stored(view, frozenset(sessions), frozenset(sessions)))
        return out


class Loop:
    """The event loop, as the MQTT thread sees it: hand-offs are recorded, run on demand."""

    def __init__(self) -> None:
        self.calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> None:
        self.calls.append((callback, args))

    def run(self) -> None:
        calls, self.calls = self.calls, []
        for callback, args in calls:
            callback(*args)


def connected_hub() -> tuple[StoreHub, Link, Store, Loop]:
    hub = StoreHub(load_store_config(DEMO_STORE), Endpoints("127.0.0.1", 1, "redis://127.0.0.1:1"))
    link, store, loop = Link(hub.link._disconnect_hook), Store(), Loop()
    hub.link, hub._prompts, hub._loop = link, store, loop  # type: ignore[assignment]
    return hub, link, store, loop


def prompt_message(mid: int, associate: str = "a-ben") -> tuple[Received, Prompt]:
    now = time.time()
    prompt = SOURCE.make(
        Prompt,
        now,
        kind=PromptKind.GREET_VIP,
        customer={"member": "m_702cc64d", "tier": "gold"},
        zone="pantry",
        headline="Gold member in Pantry",
        suggestion="Greet them by name.",
        why="Gold member, just walked into Pantry.",
        cause_event_id=new_event_id(),
        cause_ts=now,
        expires_at=now + 300,
    )
    return Received(TOPICS.prompt(STORE, associate), encode(prompt), mid, 1), prompt


def test_prompts_waiting_on_the_socket_are_stored_in_one_round_trip_and_acked_in_order() -> None:
    hub, link, store, loop = connected_hub()
    page = hub.feed.subscribe("a-ben")
    messages = [prompt_message(mid) for mid in (1, 2, 3)]
    link.waiting = [True, True, False]  # the second and third were already on the socket
    assert hub._on_message(messages[0][0]) is False
    assert hub._on_message(messages[1][0]) is False
    assert (store.trips, link.acked, loop.calls) == ([], [], [])  # held: not stored, not acked
    assert hub._on_message(messages[2][0]) is False  # acknowledged by the hub itself
    assert store.trips == [[p.event_id for _, p in messages]]
    assert link.acked == [1, 2, 3]
    assert len(loop.calls) == 1  # one wake-up of the loop for the three
    loop.run()
    got = page.drain()
    assert [i.view.prompt_id for i in got if isinstance(i, LivePrompt)] == [p.event_id for _, p in messages]


def test_a_lone_prompt_is_stored_at_once() -> None:
    hub, link, store, loop = connected_hub()
    received, prompt = prompt_message(7)
    hub._on_message(received)
    assert (store.trips, link.acked, len(loop.calls)) == ([[prompt.event_id]], [7], 1)


def test_a_batch_is_capped() -> None:
    hub, link, store, _ = connected_hub()
    link.waiting = [True] * (MAX_BATCH + 5)
    for mid in range(MAX_BATCH):
        hub._on_message(prompt_message(mid)[0])
    assert [len(t) for t in store.trips] == [MAX_BATCH]
    assert link.acked == list(range(MAX_BATCH))


def test_held_prompts_go_before_the_next_message_of_another_kind() -> None:
    hub, link, store, loop = connected_hub()
    received, prompt = prompt_message(1)
    link.waiting = [True]
    hub._on_message(received)
    status = EnvelopeSource("handheld-a-ben").make(AssociateStatus, time.time(), state="busy", zone=None)
    assert hub._on_message(Received(TOPICS.associate_status(STORE, "a-ben"), encode(status), 2, 1)) is True
    assert (store.trips, link.acked, len(loop.calls)) == ([[prompt.event_id]], [1], 1)
    assert hub.status_of("a-ben") == "busy"


def test_prompts_redis_could_not_store_are_not_acknowledged() -> None:
    """The persistent session redelivers them after a reconnect; nothing reaches a page."""
    hub, link, store, loop = connected_hub()
    store.fail = True
    link.waiting = [True, False]
    hub._on_message(prompt_message(1)[0])
    assert hub._on_message(prompt_message(2)[0]) is False
    assert (link.acked, loop.calls, hub._held) == ([], [], [])
    store.fail = False
    received, prompt = prompt_message(3)
    hub._on_message(received)
    assert (store.trips, link.acked) == ([[prompt.event_id]], [3])


def test_a_prompt_for_someone_else_is_acknowledged_and_dropped() -> None:
    hub, link, store, loop = connected_hub()
    assert hub._on_message(prompt_message(1, associate="a-nobody")[0]) is True
    assert (store.trips, link.acked, loop.calls) == ([], [], [])


def test_a_disconnect_forgets_held_prompts_they_come_again_with_the_session() -> None:
    """Their packet ids mean nothing on the next connection: never acknowledged there."""
    hub, link, store, _ = connected_hub()
    first, stored = prompt_message(0)
    hub._on_message(first)  # stored at once
    link.waiting = [True]
    hub._on_message(prompt_message(1)[0])  # held
    assert link.disconnected is not None
    link.disconnected()  # paho lost the broker
    received, prompt = prompt_message(2)
    hub._on_message(received)
    assert (store.trips, link.acked) == ([[stored.event_id], [prompt.event_id]], [0, 2])
