"""Each fault on real processes (loopback only), each with its figure: events lost, prompts
repeated, time to drain. ``FLOORWALKER_FAULT_EVENTS`` sizes the runs (``make faults``)."""

from __future__ import annotations

import itertools
import signal
import time

import pytest
import redis

from broker_config.contract import PresenceEvent, TopicKind
from floorwalker.mqtt import MqttLink, Received
from tests.faults.conftest import (
    EVENTS,
    STORE,
    PromptWatch,
    Stack,
    durable_state,
    missing,
    produce,
    record,
    wait_drained,
)


def test_broker_killed_mid_run_loses_nothing_and_repeats_no_decision(stack: Stack) -> None:
    stack.start_recommender()
    watch = PromptWatch(stack)
    pub = stack.gateway()
    events = produce(pub, 0, EVENTS // 2)
    stack.kill("mosquitto")  # kill -9: whatever it had in memory is gone
    events += produce(pub, EVENTS // 2, EVENTS * 3 // 4)  # into the outbox only
    stack.restart()
    events += produce(pub, EVENTS * 3 // 4, EVENTS)
    drain_s = wait_drained(pub)
    client = redis.Redis.from_url(stack.endpoints.redis_url)
    lost = missing(client, stack.keys, events)
    repeated, duplicate_decisions = watch.duplicates()
    record(
        "broker_kill",
        {"lost": lost, "duplicate_decisions": duplicate_decisions, "prompts": len(watch.prompts),
         "prompt_redeliveries": repeated, "drain_s": round(drain_s, 1)},
    )  # fmt: skip
    assert lost == 0
    assert duplicate_decisions == 0
    assert len(watch.prompts) > 0  # the run made decisions worth checking
    pub.stop(time.time())
    watch.close()


def test_recommender_killed_and_restarted_resumes_without_loss(stack: Stack) -> None:
    stack.start_recommender()
    watch = PromptWatch(stack)
    pub = stack.gateway()
    events = produce(pub, 0, EVENTS // 3)
    stack.stop_recommender(signal.SIGKILL)
    events += produce(pub, EVENTS // 3, EVENTS * 2 // 3)  # the broker keeps them for its session
    stack.start_recommender()
    events += produce(pub, EVENTS * 2 // 3, EVENTS)
    drain_s = wait_drained(pub)
    lost = missing(redis.Redis.from_url(stack.endpoints.redis_url), stack.keys, events)
    before_kill = watch.caused_by(events[: EVENTS // 3])
    after_restart = watch.wait_for_invite(stack)  # the restarted recommender decides
    _, duplicate_decisions = watch.duplicates()
    record(
        "recommender_kill",
        {"lost": lost, "duplicate_decisions": duplicate_decisions, "prompts": len(watch.prompts),
         "drain_s": round(drain_s, 1)},
    )  # fmt: skip
    assert lost == 0
    # Decisions were made before the kill (a replay could repeat them) and after the restart.
    assert len(before_kill) > 0 and after_restart.customer.member is None
    assert duplicate_decisions == 0
    pub.stop(time.time())
    watch.close()


@pytest.mark.parametrize("how", ["clean", "kill9"])
def test_redis_restarted_keeps_state_and_repeats_nothing(stack: Stack, how: str) -> None:
    """Redis stops while events flow: cleanly, or killed with ``kill -9`` more than a
    second after its last write (AOF ``everysec`` has fsynced it; a crash within that
    second may lose up to a second of state, see docs/reliability.md)."""
    stack.start_recommender()
    watch = PromptWatch(stack)
    pub = stack.gateway()
    events = produce(pub, 0, EVENTS // 2)
    wait_drained(pub)
    client = redis.Redis.from_url(stack.endpoints.redis_url)
    before = durable_state(client, stack.keys)
    if how == "clean":
        client.shutdown(save=True)
    else:
        time.sleep(1.5)  # past the AOF's once-a-second fsync
        stack.kill("redis")
    client.close()
    events += produce(pub, EVENTS // 2, EVENTS * 3 // 4)  # the recommender holds these, retrying
    stack.restart()
    events += produce(pub, EVENTS * 3 // 4, EVENTS)
    drain_s = wait_drained(pub)
    client = redis.Redis.from_url(stack.endpoints.redis_url)
    lost = missing(client, stack.keys, events)
    after = durable_state(client, stack.keys)
    changed = sum(
        1
        for key, value in before.items()
        if not (value <= after.get(key, set()) if isinstance(value, set) else value == after.get(key))
    )
    before_restart = watch.caused_by(events[: EVENTS // 2])
    after_restart = watch.wait_for_invite(stack)  # decisions on the restarted Redis
    _, duplicate_decisions = watch.duplicates()
    record(
        f"redis_restart_{how}",
        {"lost": lost, "duplicate_decisions": duplicate_decisions, "prompts": len(watch.prompts),
         "keys_checked": len(before), "keys_lost_or_changed": changed, "drain_s": round(drain_s, 1)},
    )  # fmt: skip
    assert lost == 0
    # Decisions were made before the restart (a replay could repeat them) and after it.
    assert len(before_restart) > 0 and after_restart.customer.member is None
    assert duplicate_decisions == 0
    assert len(before) > 20 and changed == 0
    pub.stop(time.time())
    watch.close()


def test_uplink_cut_for_a_long_outage_drains_in_order(stack: Stack) -> None:
    """The store's uplink (broker and Redis) is away while the gateway keeps producing;
    back, the backlog arrives oldest first and nothing is missing."""
    stack.start_recommender()
    arrivals: list[tuple[str, int]] = []

    def seen(msg: Received) -> bool:
        body = PresenceEvent.model_validate_json(msg.payload)
        arrivals.append((body.event_id, body.seq))
        return True

    # A persistent-session listener sees what the recommender sees, in broker order.
    listener = MqttLink(
        stack.endpoints.mqtt_host,
        stack.endpoints.mqtt_port,
        client_id="fault-listener",
        subscriptions=[(stack.topics.subscription(TopicKind.PRESENCE, STORE), 1)],
        on_message=seen,
        persistent_session=True,
    )
    listener.connect()
    pub = stack.gateway()
    before = produce(pub, 0, 50)
    wait_drained(pub)
    stack.svc.down()  # the uplink is gone (a clean stop keeps the sessions)
    outage = produce(pub, 50, 50 + EVENTS)
    assert pub.outbox is not None and pub.outbox.pending() >= EVENTS
    stack.restart()
    drain_s = wait_drained(pub, timeout=180)
    lost = missing(redis.Redis.from_url(stack.endpoints.redis_url), stack.keys, before + outage)
    wanted = {event_id for _, event_id in outage}
    deadline = time.monotonic() + 30
    while not wanted <= {e for e, _ in arrivals} and time.monotonic() < deadline:
        time.sleep(0.1)
    first_arrival: dict[str, int] = {}
    for i, (event_id, _seq) in enumerate(arrivals):
        first_arrival.setdefault(event_id, i)
    order = [first_arrival[e] for _, e in outage if e in first_arrival]
    out_of_order = sum(1 for a, b in itertools.pairwise(order) if b < a)
    record("uplink_outage", {"lost": lost, "backlog": len(outage), "out_of_order": out_of_order,
                             "drain_s": round(drain_s, 1)})  # fmt: skip
    assert lost == 0
    assert len(order) == len(outage)
    assert out_of_order == 0
    pub.stop(time.time())
    listener.close()


def test_gateway_restarted_sends_what_its_outbox_kept(stack: Stack) -> None:
    """The gateway dies with events nobody acknowledged yet (the recommender is down too);
    its next run sends them from the outbox on disk."""
    first = stack.gateway()
    events = produce(first, 0, EVENTS // 5)
    first.link.client.loop_stop()  # dies: no clean stop, no goodbye
    first.link.client.socket().close()  # type: ignore[union-attr]
    assert first.outbox is not None and first.outbox.pending() == len(events)
    stack.start_recommender()
    second = stack.gateway()
    drain_s = wait_drained(second)
    lost = missing(redis.Redis.from_url(stack.endpoints.redis_url), stack.keys, events)
    record("gateway_restart", {"lost": lost, "kept": len(events), "drain_s": round(drain_s, 1)})
    assert lost == 0
    second.stop(time.time())
