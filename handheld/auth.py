"""Sign-in: per-associate tokens, stored hashed in Redis, scoped to one store and a role.

``floorwalker token issue`` makes a token: 256 random bits, shown once. Redis keeps only
its SHA-256 (a random 256-bit secret needs no slow hash) with the associate, the role and
the expiry. The record outlives the expiry by a week so that an expired token gets
"expired" rather than "unknown" as its answer. A token is looked up under its own store's
keys only, so a token of another store is simply unknown here.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

import redis
from pydantic import BaseModel

from floorwalker.config import StoreConfig
from floorwalker.errors import ConfigError
from recommender.keys import Keys

Role = Literal["associate", "manager"]
TOKEN_PREFIX: Final = "fwt_"
#: Longest token we even look at; anything longer is not ours.
MAX_TOKEN_CHARS: Final = 128
#: The cookie a signed-in browser carries (EventSource cannot send an Authorization header).
COOKIE: Final = "fw_session"
#: Expired records are kept this long, so the answer can say "expired".
EXPIRED_GRACE_S: Final = 7 * 86_400
DEFAULT_TTL_S: Final = 12 * 3600
HOW_TO_GET_ONE: Final = "ask your manager for a new sign-in link (`floorwalker token issue`)"


class AuthError(Exception):
    """The request carries no valid token; the message says why and what to do (HTTP 401)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is signed in: an associate of one store, with a role."""

    store: str
    associate: str
    role: Role
    expires_at: float


class IssuedToken(BaseModel):
    token: str
    store: str
    associate: str
    role: Role
    expires_at: float


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    client: redis.Redis,
    keys: Keys,
    config: StoreConfig,
    associate: str,
    *,
    role: Role | None = None,
    ttl_s: float = DEFAULT_TTL_S,
    now: float | None = None,
) -> IssuedToken:
    """Make and store a token; raises :class:`ConfigError` for an unknown associate."""
    known = {a.id: a for a in config.associates}
    if associate not in known:
        raise ConfigError(
            f"--associate {associate!r}: not an associate of store {config.store} "
            f"(known: {', '.join(sorted(known))})"
        )
    if ttl_s <= 0:
        raise ConfigError(f"--ttl-hours: must be greater than 0 (got {ttl_s / 3600:g} h)")
    now = time.time() if now is None else now
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    issued = IssuedToken(
        token=token,
        store=config.store,
        associate=associate,
        role=role or known[associate].role,
        expires_at=now + ttl_s,
    )
    key = keys.token(digest(token))
    pipe = client.pipeline(transaction=True)
    pipe.hset(
        key,
        mapping={
            "associate": issued.associate,
            "role": issued.role,
            "expires_at": f"{issued.expires_at:.3f}",
            "issued_at": f"{now:.3f}",
        },
    )
    pipe.expireat(key, int(issued.expires_at + EXPIRED_GRACE_S))
    pipe.execute()
    return issued


def revoke_tokens(client: redis.Redis, keys: Keys, associate: str) -> int:
    """Delete every token of ``associate``; returns how many (a store has few tokens)."""
    removed = 0
    for key in client.scan_iter(match=keys.token("*"), count=500):
        owner: object = client.hget(key, "associate")
        if owner == associate.encode():
            removed += int(client.delete(key))  # type: ignore[arg-type]
    return removed


def verify_token(
    client: redis.Redis, keys: Keys, config: StoreConfig, token: str | None, now: float
) -> Principal:
    """The principal a token stands for, or :class:`AuthError` saying why not."""
    if not token:
        raise AuthError(f"not signed in: open your sign-in link, or {HOW_TO_GET_ONE}")
    if len(token) > MAX_TOKEN_CHARS or not token.startswith(TOKEN_PREFIX):
        raise AuthError(f"that is not a Floorwalker sign-in token; {HOW_TO_GET_ONE}")
    raw: dict[bytes, bytes] = client.hgetall(keys.token(digest(token)))  # type: ignore[assignment]
    record = {k.decode(): v.decode() for k, v in raw.items()}
    if not record:
        raise AuthError(f"unknown or revoked token for store {config.store}; {HOW_TO_GET_ONE}")
    expires_at = float(record.get("expires_at", "0"))
    if expires_at <= now:
        when = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        raise AuthError(f"your sign-in token expired at {when}; {HOW_TO_GET_ONE}")
    associate = record.get("associate", "")
    if all(a.id != associate for a in config.associates):
        raise AuthError(f"associate {associate!r} is no longer in store {config.store}; {HOW_TO_GET_ONE}")
    role: Role = "manager" if record.get("role") == "manager" else "associate"
    return Principal(config.store, associate, role, expires_at)
