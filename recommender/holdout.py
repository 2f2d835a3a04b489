"""The persistent holdout: a fixed, hash-based share of members never prompted.

The same member is in or out for as long as the salt stays, on every replica and across
restarts, so the difference in conversion between prompted and held-out members
measures what the prompts add (uplift). Pure.
"""

from __future__ import annotations

import functools
import hashlib


# Asked on every member decision; a member's answer never changes for a given salt.
@functools.lru_cache(maxsize=65_536)
def in_holdout(member: str, pct: float, salt: str) -> bool:
    if pct <= 0:
        return False
    digest = hashlib.sha256(f"{salt}:{member}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 10_000 < pct * 100
