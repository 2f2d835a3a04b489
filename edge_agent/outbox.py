"""The producer's store-and-forward outbox: every event is on disk before it is sent.

An event is written here first (SQLite in WAL mode) and deleted only when the
recommender acknowledges it (:class:`~broker_config.contract.EventAck`, published after
the event's Redis update committed), not when the broker's PUBACK arrives: paho's queue
is in memory and a broker that crashes may lose what it acknowledged. After an outage
the publisher resends from the oldest row, in order; the recommender's dedupe makes the
repeats harmless.

BLE reports are not kept: they are QoS 0 snapshots that the next report (within a
second) replaces, and a minutes-old sighting is worthless. Status messages are retained
by the broker and replaced by the next heartbeat.

Bounded by disk (:class:`OutboxPolicy`), applied by :meth:`Outbox.enforce`:

1. presence events older than ``presence_max_age_s`` expire (a visit hours ago cannot
   earn a prompt any more; the visit's TTL in Redis is shorter still);
2. over ``max_bytes``, the oldest footfall windows of a zone are merged pairwise into one
   (counts summed, the later occupancy kept): totals survive, resolution halves;
3. still over, the oldest presence events go;
4. checkouts are never removed: a basket is revenue and a member's purchase history.

Every removal is counted by why (``compacted``, ``expired``, ``dropped``, ``erased``) and
reported in the gateway's status (:class:`~broker_config.contract.OutboxHealth`).

Sizing (``floorwalker bench outbox`` measures it): a busy store sends a footfall window
per zone every 5 s; 72 hours of 12 zones plus 5 000 presence events a day is about
640 000 events, some 150 MiB of payload and 270 MiB on disk (SQLite adds its row and
index overhead). The default cap, 512 MiB of payload, holds that with room to spare.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from broker_config.contract import FootfallEvent, OutboxHealth, new_event_id

Kind = Literal["presence", "footfall", "checkout"]
#: Removal reasons, each a counter in the outbox's own table.
COUNTERS: Final = ("compacted", "expired", "dropped", "erased")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    ts REAL NOT NULL,
    member TEXT
);
CREATE INDEX IF NOT EXISTS outbox_member ON outbox(member) WHERE member IS NOT NULL;
CREATE INDEX IF NOT EXISTS outbox_kind ON outbox(kind, id);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class OutboxPolicy:
    max_bytes: int = 512 * 1024 * 1024
    presence_max_age_s: float = 6 * 3600.0
    #: Footfall rows merged per compaction step (the oldest ones).
    compact_batch: int = 2_000


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    event_id: str
    topic: str
    payload: bytes


class Outbox:
    """Thread-safe (one connection, one lock): cameras add from their own threads."""

    def __init__(self, path: Path, policy: OutboxPolicy | None = None) -> None:
        self.path = path
        self.policy = policy or OutboxPolicy()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # WAL: a writer does not block the sender's reads; synchronous=NORMAL survives a
        # crash of the process (the OS has the log), FULL would also survive power loss at
        # one fsync per event.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        row = self._db.execute("SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()
        self._bytes = int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def checkpoint(self) -> None:
        """Fold the WAL into the database file (SQLite does it by itself every 1000 pages)."""
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def add(
        self, event_id: str, kind: Kind, topic: str, payload: bytes, ts: float, member: str | None
    ) -> int:
        """Write one event (committed when this returns); its row id orders the drain."""
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO outbox(event_id, kind, topic, payload, ts, member) VALUES (?,?,?,?,?,?)",
                (event_id, kind, topic, payload, ts, member),
            )
            self._bytes += len(payload)
            assert cur.lastrowid is not None
            return cur.lastrowid

    def after(self, row_id: int, limit: int) -> list[Row]:
        """Up to ``limit`` rows after ``row_id``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, event_id, topic, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (row_id, limit),
            ).fetchall()
        return [Row(int(r[0]), str(r[1]), str(r[2]), bytes(r[3])) for r in rows]

    def ack(self, event_ids: Iterable[str]) -> int:
        """Delete acknowledged events; unknown ids (already gone) are ignored."""
        return self._delete("event_id", list(event_ids), None)

    def erase(self, member: str) -> int:
        """Delete every waiting event about ``member`` (an erasure notice)."""
        return self._delete("member", [member], "erased")

    def _delete(self, column: str, values: list[str], counter: str | None) -> int:
        if not values:
            return 0
        removed = 0
        with self._lock:
            self._db.execute("BEGIN")
            for value in values:
                for (size,) in self._db.execute(
                    f"DELETE FROM outbox WHERE {column} = ? RETURNING LENGTH(payload)", (value,)
                ).fetchall():
                    self._bytes -= int(size)
                    removed += 1
            if counter is not None and removed:
                self._count(counter, removed)
            self._db.execute("COMMIT")
        return removed

    def _count(self, name: str, n: int) -> None:
        self._db.execute(
            "INSERT INTO counters(name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, n),
        )

    def counters(self) -> dict[str, int]:
        with self._lock:
            found = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        return {name: int(found.get(name, 0)) for name in COUNTERS}

    @property
    def bytes(self) -> int:
        return self._bytes

    def pending(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def health(self, now: float) -> OutboxHealth:
        with self._lock:
            n, oldest = self._db.execute("SELECT COUNT(*), MIN(ts) FROM outbox").fetchone()
        return OutboxHealth(
            pending=int(n),
            bytes=self._bytes,
            oldest_age_s=max(0.0, now - float(oldest)) if oldest is not None else 0.0,
            **self.counters(),
        )

    # -- the disk policy ---------------------------------------------------------------

    def enforce(self, now: float) -> dict[str, int]:
        """Apply the policy (see the module doc); returns what it removed, by reason."""
        done = {name: 0 for name in COUNTERS}
        with self._lock:
            done["expired"] = self._remove_where(
                "kind = 'presence' AND ts < ?", (now - self.policy.presence_max_age_s,), "expired"
            )
            while self._bytes > self.policy.max_bytes:
                merged = self._compact_footfall()
                if merged:
                    done["compacted"] += merged
                    continue
                dropped = self._drop_oldest_presence()
                if not dropped:
                    break  # only checkouts left: kept, and the status shows the size
                done["dropped"] += dropped
        return done

    def _remove_where(self, where: str, params: tuple[object, ...], counter: str) -> int:
        self._db.execute("BEGIN")
        sizes = self._db.execute(
            f"DELETE FROM outbox WHERE {where} RETURNING LENGTH(payload)", params
        ).fetchall()
        for (size,) in sizes:
            self._bytes -= int(size)
        if sizes:
            self._count(counter, len(sizes))
        self._db.execute("COMMIT")
        return len(sizes)

    def _drop_oldest_presence(self) -> int:
        batch = self.policy.compact_batch
        return self._remove_where(
            "id IN (SELECT id FROM outbox WHERE kind = 'presence' ORDER BY id LIMIT ?)", (batch,), "dropped"
        )

    def _compact_footfall(self) -> int:
        """Merge the oldest footfall windows of each zone pairwise; returns rows merged away."""
        rows = self._db.execute(
            "SELECT id, topic, payload FROM outbox WHERE kind = 'footfall' ORDER BY id LIMIT ?",
            (self.policy.compact_batch,),
        ).fetchall()
        by_topic: dict[str, list[tuple[int, bytes]]] = {}
        for row_id, topic, payload in rows:
            by_topic.setdefault(str(topic), []).append((int(row_id), bytes(payload)))
        merged = 0
        self._db.execute("BEGIN")
        for items in by_topic.values():
            for (first_id, first), (second_id, second) in zip(items[::2], items[1::2], strict=False):
                a = FootfallEvent.model_validate_json(first)
                b = FootfallEvent.model_validate_json(second)
                combined = merge_footfall(a, b, new_event_id())
                data = combined.model_dump_json().encode()
                # The merged window takes the earlier row's place in the drain order, under
                # a new id: the recommender may already have seen one of the two.
                self._db.execute(
                    "UPDATE outbox SET event_id = ?, payload = ?, ts = ? WHERE id = ?",
                    (combined.event_id, data, combined.ts, first_id),
                )
                self._db.execute("DELETE FROM outbox WHERE id = ?", (second_id,))
                self._bytes += len(data) - len(first) - len(second)
                merged += 1
        if merged:
            self._count("compacted", merged)
        self._db.execute("COMMIT")
        return merged


def merge_footfall(a: FootfallEvent, b: FootfallEvent, event_id: str) -> FootfallEvent:
    """Two consecutive windows of one zone as one: counts add up, the state is the later's."""
    fields = json.loads(b.model_dump_json())
    fields.update(
        event_id=event_id,
        window_s=min(86_400.0, a.window_s + b.window_s),
        entered=min(100_000, a.entered + b.entered),
        exited=min(100_000, a.exited + b.exited),
    )
    return FootfallEvent.model_validate(fields)
