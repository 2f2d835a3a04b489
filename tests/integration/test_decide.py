"""The decision connection on a real Redis (it speaks RESP through hiredis itself): replies
in order with a command's error in its place, scripts that reload when Redis lost its
script cache, and a connection Redis dropped is one clear error, then connected again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from floorwalker.config import Endpoints
from recommender.decide import Decider, Outcome, ScriptCall, args
from recommender.keys import Keys

pytestmark = pytest.mark.integration


@pytest.fixture
def decider(redis_client: redis.Redis, prefix: str) -> Iterator[Decider]:
    d = Decider(redis_client, Keys("s1", prefix))
    yield d
    d.close()


def test_replies_come_in_order_with_errors_in_place(decider: Decider, prefix: str) -> None:
    key = f"{prefix}n"
    replies = decider.raw([("SET", key, "1"), ("INCR", key), ("HGET", key, "x"), ("GET", key)])
    assert replies[:2] == ["OK", 2] and replies[3] == "2"
    assert isinstance(replies[2], redis.ResponseError)  # WRONGTYPE, for that command only


def test_a_script_runs_and_a_lost_script_cache_is_reloaded(
    decider: Decider, redis_client: redis.Redis, prefix: str
) -> None:
    record = Keys("s1", prefix).prompt("p1")
    redis_client.hset(
        record, mapping={"kind": "greet_vip", "action": "greet_vip", "member": "m1", "associate": "a1"}
    )
    redis_client.script_flush()  # as after a Redis restart without persistence
    # outcome, ts, sender (the holder), not a manager, the feedback's event id
    call = ScriptCall("feedback", [record], args("accepted", 1.0, "a1", "0", "fb-1"))
    [reply] = decider.run([call])
    assert not isinstance(reply, redis.ResponseError)
    assert reply.outcome is Outcome.OK and reply.rest[:3] == ("greet_vip", "greet_vip", "m1")
    [again] = decider.run([call])
    assert not isinstance(again, redis.ResponseError) and again.outcome is Outcome.DUPLICATE


def test_commands_after_the_scripts_answer_in_the_same_round_trip(
    decider: Decider, redis_client: redis.Redis, prefix: str
) -> None:
    record = Keys("s1", prefix).prompt("p2")
    redis_client.hset(
        record, mapping={"kind": "greet_vip", "action": "greet_vip", "member": "m1", "associate": "a1"}
    )
    hold = f"{prefix}hold"
    then = [("SET", hold, "p2", "NX", "PX", 2000), ("SET", hold, "p3", "NX", "PX", 2000), ("HGET", hold, "x")]
    [reply], after = decider.run_then(
        [ScriptCall("feedback", [record], args("done", 1.0, "a1", "0", "fb-2"))], None, then
    )
    assert not isinstance(reply, redis.ResponseError) and reply.outcome is Outcome.OK
    assert after[:2] == ["OK", None]  # the second SET NX found the first one's value
    assert isinstance(after[2], redis.ResponseError)  # WRONGTYPE, for that command only
    assert redis_client.get(hold) == b"p2"


def test_a_dropped_connection_is_one_error_then_a_new_connection(
    decider: Decider, services: Endpoints, prefix: str
) -> None:
    key = f"{prefix}k"
    [ident] = decider.raw([("CLIENT", "ID")])
    assert decider.raw([("SET", key, "v")]) == ["OK"]
    admin = redis.Redis.from_url(services.redis_url)
    try:
        assert admin.client_kill_filter(_id=ident) == 1
    finally:
        admin.close()
    with pytest.raises(redis.ConnectionError):
        decider.raw([("GET", key)])
    assert decider.raw([("GET", key)]) == ["v"]
