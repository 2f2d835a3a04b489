"""The handheld API's in-memory board and its start-up errors, without MQTT or Redis."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from broker_config.contract import PromptKind, new_event_id
from floorwalker.api import (
    HISTORY,
    QUEUE_SIZE,
    HandheldPrompt,
    PromptBoard,
    bind_port,
    feedback_producer,
    run_api,
)
from floorwalker.config import Endpoints, StoreConfig
from floorwalker.errors import ServiceStartError, ServiceUnavailable


def prompt(associate: str = "a-ben", n: int = 0) -> HandheldPrompt:
    return HandheldPrompt(
        prompt_id=new_event_id(),
        associate=associate,
        kind=PromptKind.GREET_VIP,
        customer_name="Mrs Chen",
        member="m_chen0001",
        tier="gold",
        points=None,
        zone="pantry",
        lane=None,
        headline=f"prompt {n}",
        suggestion="Say hello",
        why="A regular",
        ts=1.7e9 + n,
        expires_at=1.7e9 + n + 300,
    )


def test_slow_subscriber_loses_its_oldest_prompts_not_the_newest() -> None:
    board = PromptBoard(["a-ben"])
    sub, backlog = board.subscribe("a-ben")
    assert backlog == []
    sent = [prompt(n=i) for i in range(QUEUE_SIZE + 5)]
    for p in sent:
        assert board.add(p)

    assert sub.dropped == 5 and board.dropped == 5
    queued = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
    assert queued == sent[5:]


def test_history_dedupe_outcome_and_isolation() -> None:
    board = PromptBoard(["a-ben", "a-amy"])
    amy, _ = board.subscribe("a-amy")
    sent = [prompt(n=i) for i in range(HISTORY + 3)]
    for p in sent:
        board.add(p)
    assert not board.add(sent[-1])  # redelivery
    assert not board.add(prompt("a-zed"))  # unknown associate

    assert board.recent("a-ben") == sent[3:]
    assert amy.queue.empty() and board.recent("a-amy") == []
    board.record_outcome("a-ben", sent[-1].prompt_id, "done")
    assert board.recent("a-ben")[-1].outcome == "done"

    _, backlog = board.subscribe("a-ben")
    assert [p.prompt_id for p in backlog] == [p.prompt_id for p in sent[3:]]
    assert backlog[-1].outcome == "done"


def test_unsubscribed_stream_gets_nothing_more() -> None:
    board = PromptBoard(["a-ben"])
    sub, _ = board.subscribe("a-ben")
    board.unsubscribe(sub)
    board.add(prompt())
    assert sub.queue.empty()


def test_feedback_producer_fits_the_contract_ident() -> None:
    assert feedback_producer("a-ben") == "handheld-a-ben"
    long_id = "a" * 48
    assert len(feedback_producer(long_id)) <= 48
    assert feedback_producer(long_id) != feedback_producer("a" * 47 + "b")


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield s.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_busy_port_is_one_clear_line(busy_port: int) -> None:
    with pytest.raises(ServiceStartError) as err:
        bind_port("127.0.0.1", busy_port)
    msg = str(err.value)
    assert f"port {busy_port}" in msg and "--port" in msg and "\n" not in msg


def test_run_api_checks_the_port_before_the_services(store_config: StoreConfig, busy_port: int) -> None:
    # Nothing listens on these: had run_api connected first, it would raise ServiceUnavailable.
    dead = closed_port()
    with pytest.raises(ServiceStartError, match=f"port {busy_port}"):
        run_api(store_config, Endpoints("127.0.0.1", dead, f"redis://127.0.0.1:{dead}/0"), port=busy_port)


def test_run_api_reports_unreachable_redis_and_frees_its_port(store_config: StoreConfig) -> None:
    dead, port = closed_port(), closed_port()
    with pytest.raises(ServiceUnavailable, match="Redis"):
        run_api(store_config, Endpoints("127.0.0.1", dead, f"redis://127.0.0.1:{dead}/0"), port=port)
    bind_port("127.0.0.1", port).close()  # released again


def test_end_streams_wakes_every_subscriber_even_a_full_one() -> None:
    board = PromptBoard(["a-ben", "a-amy"])
    full, _ = board.subscribe("a-ben")
    idle, _ = board.subscribe("a-amy")
    for i in range(QUEUE_SIZE):
        board.add(prompt(n=i))
    board.end_streams()
    assert idle.queue.get_nowait() is None
    items = [full.queue.get_nowait() for _ in range(full.queue.qsize())]
    assert items[-1] is None and len(items) == QUEUE_SIZE
