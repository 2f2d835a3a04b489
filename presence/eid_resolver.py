"""Ephemeral id -> member, on the store server only.

Each consenting member's BLE secret derives from the store key (:func:`member_secret`);
the key file (:mod:`floorwalker.ble_keys`) lives on the store server and lists revoked
members. For each EID window the resolver builds the table ``eid -> member``
once and caches a few windows. A sighting at time ``t`` is looked up in the windows of
``t - skew``, ``t`` and ``t + skew``, so a phone whose clock is off by up to
``skew_tolerance_s`` still resolves; beyond that, or for a member without consent or with
a revoked secret, the id resolves to nothing (counted, never guessed).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable

from edge_agent.ble.eid import eid_for, member_secret, window_index
from floorwalker.ble_keys import BleKeyFile
from recommender.crm import CrmFixture

#: Windows whose tables are kept (current, neighbours, a little slack).
CACHED_WINDOWS = 6


class EidResolver:
    def __init__(self, store_key: bytes, members: Iterable[str], *, window_s: int, skew_s: float) -> None:
        self._store_key = store_key
        self._secrets = {m: member_secret(store_key, m) for m in members}
        self.window_s = window_s
        self.skew_s = skew_s
        self._tables: OrderedDict[int, dict[str, str]] = OrderedDict()
        #: resolved, unknown (no consenting member, or beyond the skew tolerance)
        self.counters: Counter[str] = Counter()

    @classmethod
    def from_fixture(
        cls, key: BleKeyFile, fixture: CrmFixture, *, window_s: int, skew_s: float
    ) -> EidResolver:
        """Members with consent to recognition and no revoked secret."""
        revoked = set(key.revoked)
        members = [m.member for m in fixture.members if m.consent.recognition and m.member not in revoked]
        return cls(bytes.fromhex(key.store_key), members, window_s=window_s, skew_s=skew_s)

    def __contains__(self, member: str) -> bool:
        return member in self._secrets

    def revoke(self, member: str) -> None:
        """Opt-out or erasure: from now on this member's ids resolve to nothing."""
        if self._secrets.pop(member, None) is not None:
            self._tables.clear()

    def _table(self, window: int) -> dict[str, str]:
        table = self._tables.get(window)
        if table is None:
            table = {eid_for(s, window).hex(): m for m, s in self._secrets.items()}
            self._tables[window] = table
            while len(self._tables) > CACHED_WINDOWS:
                self._tables.popitem(last=False)
        return table

    def resolve(self, eid: str, ts: float) -> str | None:
        """The member advertising ``eid`` at ``ts`` (give or take the skew), else None."""
        w = window_index(ts, self.window_s)
        member = self._table(w).get(eid)
        if member is None:
            for other in {
                window_index(ts - self.skew_s, self.window_s),
                window_index(ts + self.skew_s, self.window_s),
            }:
                if other != w:
                    member = self._table(other).get(eid)
                    if member is not None:
                        break
        self.counters["resolved" if member is not None else "unknown"] += 1
        return member
