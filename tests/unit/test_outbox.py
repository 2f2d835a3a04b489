"""The gateway's outbox: order, acks, erasure and the disk policy, on a real SQLite file."""

from __future__ import annotations

import threading
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from broker_config.contract import EnvelopeSource, FootfallEvent, OutboxHealth, PresenceEvent, Topics, encode
from edge_agent.outbox import Kind, Outbox, OutboxPolicy, merge_footfall

T = 1_700_000_000.0
TOPICS = Topics()
SRC = EnvelopeSource("gw-1")


def _footfall(ob: Outbox, ts: float, entered: int, zone: str = "pantry") -> str:
    e = SRC.make(FootfallEvent, ts, window_s=5.0, entered=entered, exited=1, occupancy=entered)
    ob.add(e.event_id, "footfall", TOPICS.footfall("s", zone), encode(e), ts, None)
    return e.event_id


def _presence(ob: Outbox, ts: float, member: str = "m_702cc64d") -> str:
    e = SRC.make(PresenceEvent, ts, member=member, action="enter")
    ob.add(e.event_id, "presence", TOPICS.presence("s", "pantry"), encode(e), ts, member)
    return e.event_id


def test_rows_come_back_in_order_and_survive_a_reopen(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db")
    ids = [_presence(ob, T + i) for i in range(5)]
    ob.close()
    again = Outbox(tmp_path / "o.db")
    rows = again.after(0, 100)
    assert [r.event_id for r in rows] == ids
    assert [r.event_id for r in again.after(rows[1].id, 2)] == ids[2:4]
    assert again.bytes == sum(len(r.payload) for r in rows)


def test_ack_deletes_only_the_named_events(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db")
    ids = [_presence(ob, T + i) for i in range(4)]
    assert ob.ack([ids[0], ids[2], "0" * 32]) == 2
    assert [r.event_id for r in ob.after(0, 10)] == [ids[1], ids[3]]


def test_erasure_removes_one_members_events_and_counts_them(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db")
    _presence(ob, T, "m_gone0001")
    keep = _presence(ob, T + 1, "m_stay0001")
    _presence(ob, T + 2, "m_gone0001")
    foot = _footfall(ob, T + 3, 2)
    assert ob.erase("m_gone0001") == 2
    assert [r.event_id for r in ob.after(0, 10)] == [keep, foot]
    assert ob.health(T + 10).erased == 2


def test_old_presence_expires_counted(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", OutboxPolicy(presence_max_age_s=3600))
    _presence(ob, T)
    fresh = _presence(ob, T + 3000)
    done = ob.enforce(T + 3700)
    assert done["expired"] == 1
    assert [r.event_id for r in ob.after(0, 10)] == [fresh]
    assert ob.health(T + 3700).expired == 1


def test_over_the_cap_footfall_is_merged_and_totals_survive(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db")
    for i in range(40):
        _footfall(ob, T + 5 * i, entered=i)
    before = ob.bytes
    ob.policy = OutboxPolicy(max_bytes=before // 3, compact_batch=40)
    done = ob.enforce(T + 300)
    rows = ob.after(0, 100)
    events = [FootfallEvent.model_validate_json(r.payload) for r in rows]
    assert ob.bytes <= before // 3
    assert done["compacted"] == 40 - len(rows) and done["dropped"] == 0
    assert sum(e.entered for e in events) == sum(range(40))
    assert sum(e.window_s for e in events) == 40 * 5.0
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    assert ob.health(T + 300).compacted == done["compacted"]


def test_presence_dropped_only_after_footfall_cannot_shrink_and_checkouts_never(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", OutboxPolicy(max_bytes=1, compact_batch=10))
    for i in range(5):
        _presence(ob, T + i)
    co = SRC.make(PresenceEvent, T, member="m_702cc64d", action="enter")
    ob.add(co.event_id, "checkout", TOPICS.checkout("s", "lane-1"), encode(co), T, "m_702cc64d")
    done = ob.enforce(T + 10)
    assert done["dropped"] == 5
    assert [r.event_id for r in ob.after(0, 10)] == [co.event_id]
    assert ob.health(T + 10).dropped == 5


def test_a_fresh_outbox_in_a_new_folder_is_empty_with_zero_counters(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "o.db"
    ob = Outbox(path)
    assert ob.path == path and ob.pending() == 0 and ob.bytes == 0
    assert ob.counters() == {"compacted": 0, "expired": 0, "dropped": 0, "erased": 0}
    assert ob.health(T) == OutboxHealth(pending=0, bytes=0, oldest_age_s=0.0)
    assert ob.ack([]) == 0 and ob.erase("m_nobody01") == 0


def test_rows_keep_their_topic_and_payload_and_cameras_add_from_their_own_threads(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db")
    e = SRC.make(FootfallEvent, T, window_s=5.0, entered=1, exited=0, occupancy=1)
    worker = threading.Thread(
        target=ob.add, args=(e.event_id, "footfall", TOPICS.footfall("s", "dairy"), encode(e), T, None)
    )
    worker.start()
    worker.join(10)
    [row] = ob.after(0, 10)
    assert (row.event_id, row.topic, row.payload) == (e.event_id, TOPICS.footfall("s", "dairy"), encode(e))


def test_health_says_how_old_the_oldest_waiting_event_is(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db")
    _presence(ob, T + 10)
    _presence(ob, T)
    assert ob.health(T + 0.5).oldest_age_s == 0.5
    assert ob.health(T + 100).oldest_age_s == 100.0
    assert ob.health(T - 5).oldest_age_s == 0.0  # dated ahead of this clock: not negative
    assert ob.health(T).pending == 2


def test_the_byte_limit_itself_is_allowed(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db")
    for i in range(4):
        _footfall(ob, T + i, entered=i)
    ob.policy = OutboxPolicy(max_bytes=ob.bytes, compact_batch=10)
    assert ob.enforce(T + 10) == {"compacted": 0, "expired": 0, "dropped": 0, "erased": 0}
    assert ob.pending() == 4


def test_presence_is_dropped_batch_after_batch_and_every_batch_is_counted(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", OutboxPolicy(max_bytes=1, compact_batch=2))
    for i in range(5):
        _presence(ob, T + i)
    assert ob.enforce(T + 10)["dropped"] == 5
    assert ob.health(T + 10).dropped == 5


def test_compaction_merges_windows_of_one_zone_only(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db")
    for i in range(8):
        _footfall(ob, T + i, entered=10 + i, zone=("pantry", "dairy")[i % 2])
    by_zone_before = {"pantry": 10 + 12 + 14 + 16, "dairy": 11 + 13 + 15 + 17}
    ob.policy = OutboxPolicy(max_bytes=ob.bytes - 1, compact_batch=8)
    assert ob.enforce(T + 10)["compacted"] == 4
    after: dict[str, int] = {}
    for r in ob.after(0, 10):
        zone = r.topic.split("/")[-2]
        after[zone] = after.get(zone, 0) + FootfallEvent.model_validate_json(r.payload).entered
    assert after == by_zone_before


def test_merged_windows_add_up_within_the_contracts_limits() -> None:
    a = SRC.make(FootfallEvent, T, window_s=60.0, entered=3, exited=2, occupancy=9)
    b = SRC.make(FootfallEvent, T + 60, window_s=30.0, entered=4, exited=5, occupancy=8)
    m = merge_footfall(a, b, "0" * 32)
    assert (m.event_id, m.ts, m.window_s, m.entered, m.exited, m.occupancy) == (
        "0" * 32,
        T + 60,
        90.0,
        7,
        7,
        8,
    )
    big_a = SRC.make(FootfallEvent, T, window_s=86_000.0, entered=99_999, exited=99_990, occupancy=1)
    big_b = SRC.make(FootfallEvent, T + 1, window_s=1_000.0, entered=5, exited=20, occupancy=1)
    capped = merge_footfall(big_a, big_b, "1" * 32)
    assert (capped.window_s, capped.entered, capped.exited) == (86_400.0, 100_000, 100_000)


def test_bench_outbox_runs_small_and_accounts_for_every_event(tmp_path: Path) -> None:
    from bench.outbox import run_outbox_bench

    result = run_outbox_bench(300, tmp_path / "outbox.json")
    assert result["left_after_acks"] == 0
    assert result["disk_bytes_per_event"] > result["payload_bytes_per_event"] > 100  # type: ignore[operator]
    assert (tmp_path / "outbox.json").is_file()


Op = tuple[str, int]


@settings(max_examples=60, deadline=None)
# Over the byte limit, footfall is compacted first, then the oldest presence dropped.
@example([("footfall", 0)] * 10 + [("footfall", 1)] * 10 + [("presence", 1)] * 4 + [("enforce", 0)])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["presence", "footfall", "checkout", "ack", "erase", "enforce"]),
            st.integers(0, 30),
        ),
        max_size=60,
    )
)
def test_any_sequence_keeps_order_size_and_checkouts(ops: list[Op]) -> None:
    """Whatever happens, rows drain in the order they were added (a merged footfall row
    keeps its earlier row's place), the byte count is exact, a checkout leaves only when
    acknowledged, and neither an acknowledged event nor an erased member's comes back."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        ob = Outbox(
            Path(tmp) / "o.db", OutboxPolicy(max_bytes=3_000, presence_max_age_s=100, compact_batch=8)
        )
        added: list[int] = []  # row ids as add() returned them, in the order of the adds
        made: list[str] = []
        checkouts: set[str] = set()
        acked: set[str] = set()
        erased: set[str] = set()  # events of a member added before the member was erased
        of_member: dict[str, list[str]] = {}

        def add(kind: Kind, topic: str, event: PresenceEvent | FootfallEvent, member: str | None) -> None:
            added.append(ob.add(event.event_id, kind, topic, encode(event), event.ts, member))
            made.append(event.event_id)
            if member is not None:
                of_member.setdefault(member, []).append(event.event_id)

        for op, n in ops:
            ts = T + len(made)
            member = f"m_member{n % 3:04d}"
            if op == "presence":
                add(
                    "presence",
                    TOPICS.presence("s", "pantry"),
                    SRC.make(PresenceEvent, ts, member=member, action="enter"),
                    member,
                )
            elif op == "footfall":
                e = SRC.make(FootfallEvent, ts, window_s=5.0, entered=n, exited=1, occupancy=n)
                add("footfall", TOPICS.footfall("s", ("pantry", "dairy")[n % 2]), e, None)
            elif op == "checkout":
                e = SRC.make(PresenceEvent, ts, member="m_member0000", action="leave")
                add("checkout", TOPICS.checkout("s", "lane-1"), e, None)
                checkouts.add(e.event_id)
            elif op == "ack" and made:
                victim = made[n % len(made)]
                ob.ack([victim])
                acked.add(victim)
            elif op == "erase":
                ob.erase(member)
                erased.update(of_member.pop(member, []))
            else:
                ob.enforce(ts + n * 10)
        rows = ob.after(0, 10_000)
        position = {row_id: i for i, row_id in enumerate(added)}
        assert all(r.id in position for r in rows)  # no row is ever re-queued at the back
        assert [position[r.id] for r in rows] == sorted(position[r.id] for r in rows)
        assert ob.bytes == sum(len(r.payload) for r in rows)
        left = {r.event_id for r in rows}
        assert checkouts - acked <= left
        assert not left & acked and not left & erased
        ob.close()
