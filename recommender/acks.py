"""Acknowledgements to the producers that keep their events in an outbox until the
recommender has them (edge_agent/outbox.py; docs/reliability.md). An event id is
acknowledged once its whole batch returned: its scripts ran, or it went to the
dead-letter stream, which is final too. A batch that failed half-way (Redis down)
acknowledges nothing: it is redelivered."""

from __future__ import annotations

from broker_config.contract import EnvelopeSource, EventAck, TopicKind, Topics, encode
from recommender.outbound import Outbound

#: Events whose producers keep them in an outbox until acknowledged (edge_agent/outbox.py).
ACKED = (TopicKind.PRESENCE, TopicKind.CHECKOUT, TopicKind.FOOTFALL)
#: Event ids per acknowledgement message (the contract's limit).
ACK_CHUNK = 256


class Acks:
    def __init__(self, topics: Topics, store: str, source: EnvelopeSource) -> None:
        self._topics = topics
        self._store = store
        self._source = source
        #: producer -> event ids of the batch being handled (kept only if it completes).
        self._batch: dict[str, list[str]] = {}
        #: producer -> event ids of completed batches, not yet taken by :meth:`take`.
        self._done: dict[str, list[str]] = {}
        #: How many ids wait in ``_done``.
        self.pending = 0

    def begin(self) -> None:
        """A batch starts: what a failed one collected is dropped."""
        self._batch = {}

    def add(self, producer: str, event_id: str) -> None:
        """An event of the batch being handled, to acknowledge if the batch completes."""
        self._batch.setdefault(producer, []).append(event_id)

    def commit(self) -> None:
        """The batch completed: its events' ids wait for :meth:`take`."""
        for producer, ids in self._batch.items():
            self._done.setdefault(producer, []).extend(ids)
            self.pending += len(ids)
        self._batch = {}

    def take(self, now: float) -> list[Outbound]:
        """Acknowledgements of the batches completed since the last call, per producer.
        The caller decides how often to send them (each costs a publish)."""
        acks, self._done = self._done, {}
        self.pending = 0
        out: list[Outbound] = []
        for producer, ids in acks.items():
            for i in range(0, len(ids), ACK_CHUNK):
                ack = self._source.make(EventAck, now, event_ids=ids[i : i + ACK_CHUNK])
                out.append(Outbound(self._topics.ack(self._store, producer), encode(ack)))
        return out
