"""Redis writes that need not delay a prompt: prompt records, dismissals, new CLVs,
forgetting the unsent copies of prompts the broker confirmed, and releasing the holds of
prompts not claimed or answered. Queued while a batch is handled, sent ahead of the next
batch's scripts (or flushed by :meth:`DeferredWrites.flush`), forgotten once the call
carrying them returned."""

from __future__ import annotations

import logging

import redis

from recommender.decide import Command, Decider
from recommender.keys import HISTORY_TTL_S, Keys

log = logging.getLogger(__name__)

#: Deletes an associate's hold if a given prompt still holds it.
_RELEASE_HOLD = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class DeferredWrites:
    def __init__(self, keys: Keys, decider: Decider) -> None:
        self._keys = keys
        self._decider = decider
        #: (what, key, data): "prompt", "sent", "release", "dismissed" or "profile".
        self.queue: list[tuple[str, str, dict[str, str]]] = []
        #: How many of ``queue`` went out with the Redis call in progress: forgotten only
        #: once that call returned (on a connection error they go again with the next).
        self._sent = 0

    def flush(self) -> None:
        """Send the queued writes now (the service does it once a second, when no batch
        with a read took them along)."""
        if not self.queue:
            return
        replies = self._decider.raw(self.commands())
        self.written()
        for reply in replies:
            if isinstance(reply, redis.ResponseError):
                log.error("a deferred write failed: %s", reply)

    def written(self) -> None:
        del self.queue[: self._sent]
        self._sent = 0

    def commands(self) -> list[Command]:
        """The queued writes as commands. They stay queued until the call carrying them
        returns (:meth:`written`); each is idempotent, so sending one again after a broken
        connection is harmless."""
        self._sent = len(self.queue)
        commands: list[Command] = []
        for what, key, data in self.queue:
            if what == "prompt":
                commands.append(("HSET", self._keys.prompt(key), *(x for kv in data.items() for x in kv)))
                commands.append(("EXPIRE", self._keys.prompt(key), HISTORY_TTL_S))
            elif what == "sent":
                commands.append(("HDEL", key, data["id"]))
            elif what == "release":  # only the hold this prompt took (a peer's may follow)
                commands.append(("EVAL", _RELEASE_HOLD, 1, self._keys.associate_hold(key), data["id"]))
            elif what == "dismissed":
                commands.append(("ZADD", self._keys.contacts(key), data["ts"], data["member"]))
                commands.append(("EXPIRE", self._keys.contacts(key), HISTORY_TTL_S))
            else:
                commands.append(("HSET", self._keys.profile(key), *(x for kv in data.items() for x in kv)))
        return commands
