"""Sign-in: one-use link tokens, exchanged for server-side sessions, both kept hashed in Redis.

``floorwalker token issue`` makes a link token (``fwt_``): 256 random bits, shown once in
a sign-in link. Redis keeps only its SHA-256 (a random 256-bit secret needs no slow hash)
with the associate, the role and the expiry. The link works once: ``/signin`` (or ``POST
/api/sessions`` for a script) marks it used and opens a session (``fws_``, another 256
random bits) that the cookie or ``Authorization: Bearer`` then carries. The session lasts
until the link's expiry, or until sign-out, ``floorwalker token revoke`` or a manager
ends it. Records outlive their expiry by a week so that the answer can say "expired" or
"already used" rather than "unknown". Everything is looked up under its own store's keys
only, so a token of another store is simply unknown here.

A session's public id (shown to managers, used to end one) is the SHA-256 of its secret:
it names the session without letting anyone use it.
"""

from __future__ import annotations

import hashlib
import math
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
SESSION_PREFIX: Final = "fws_"
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
    #: The session's public id (the SHA-256 of its secret).
    session: str = ""


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


@dataclass(frozen=True, slots=True)
class Revoked:
    tokens: int
    sessions: int


def revoke_tokens(client: redis.Redis, keys: Keys, associate: str) -> Revoked:
    """Delete every link token and end every session of ``associate`` (a store has few).

    Open streams of those sessions end within a second (the API checks them; see
    :meth:`handheld.hub.StoreHub.watch_sessions`)."""
    counts = []
    for pattern in (keys.token("*"), keys.session("*")):
        removed = 0
        for key in client.scan_iter(match=pattern, count=500):
            owner: object = client.hget(key, "associate")
            if owner == associate.encode():
                removed += int(client.delete(key))  # type: ignore[arg-type]
        counts.append(removed)
    return Revoked(tokens=counts[0], sessions=counts[1])


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _float(value: object) -> float:
    """A stored number, or 0 (expired, unknown) for anything that is not one."""
    try:
        number = float(value.decode() if isinstance(value, bytes) else str(value))
    except ValueError:
        return 0.0
    return number if math.isfinite(number) else 0.0


def _record(client: redis.Redis, key: str) -> dict[str, str]:
    raw: dict[bytes, bytes] = client.hgetall(key)  # type: ignore[assignment]
    return {k.decode(): v.decode(errors="replace") for k, v in raw.items()}


def _principal(config: StoreConfig, record: dict[str, str], session: str = "") -> Principal:
    associate = record.get("associate", "")
    if all(a.id != associate for a in config.associates):
        raise AuthError(f"associate {associate!r} is no longer in store {config.store}; {HOW_TO_GET_ONE}")
    role: Role = "manager" if record.get("role") == "manager" else "associate"
    return Principal(config.store, associate, role, _float(record.get("expires_at", "0")), session)


def verify_token(
    client: redis.Redis, keys: Keys, config: StoreConfig, token: str | None, now: float
) -> Principal:
    """The principal a token stands for, or :class:`AuthError` saying why not."""
    if not token:
        raise AuthError(f"not signed in: open your sign-in link, or {HOW_TO_GET_ONE}")
    if len(token) > MAX_TOKEN_CHARS or not token.startswith(TOKEN_PREFIX):
        raise AuthError(f"that is not a Floorwalker sign-in token; {HOW_TO_GET_ONE}")
    record = _record(client, keys.token(digest(token)))
    if not record:
        raise AuthError(f"unknown or revoked token for store {config.store}; {HOW_TO_GET_ONE}")
    expires_at = _float(record.get("expires_at", "0"))
    if expires_at <= now:
        raise AuthError(f"your sign-in token expired at {_utc(expires_at)}; {HOW_TO_GET_ONE}")
    return _principal(config, record)


def open_session(
    client: redis.Redis, keys: Keys, config: StoreConfig, token: str | None, now: float
) -> tuple[str, Principal]:
    """Exchange a sign-in link's token, once, for a new session: its secret and principal.

    Raises :class:`AuthError` for a token that is unknown, expired or already used."""
    who = verify_token(client, keys, config, token, now)
    key = keys.token(digest(token or ""))
    if not client.hsetnx(key, "used_at", f"{now:.3f}"):
        used: object = client.hget(key, "used_at")
        when = _utc(_float(used)) if used is not None else "an earlier time"
        raise AuthError(
            f"this sign-in link was already used (at {when}): a link works once; {HOW_TO_GET_ONE}"
        )
    secret = SESSION_PREFIX + secrets.token_urlsafe(32)
    sid = digest(secret)
    skey = keys.session(sid)
    pipe = client.pipeline(transaction=True)
    pipe.hset(
        skey,
        mapping={
            "associate": who.associate,
            "role": who.role,
            "expires_at": f"{who.expires_at:.3f}",
            "created_at": f"{now:.3f}",
        },
    )
    pipe.expireat(skey, int(who.expires_at + EXPIRED_GRACE_S))
    pipe.execute()
    return secret, Principal(who.store, who.associate, who.role, who.expires_at, sid)


def verify_session(
    client: redis.Redis, keys: Keys, config: StoreConfig, secret: str | None, now: float
) -> Principal:
    """The principal of a session (the cookie's or a bearer's), or :class:`AuthError` saying why not."""
    if not secret:
        raise AuthError(f"not signed in: open your sign-in link, or {HOW_TO_GET_ONE}")
    if secret.startswith(TOKEN_PREFIX) and len(secret) <= MAX_TOKEN_CHARS:
        raise AuthError(
            "that is a sign-in link's token: open the link once (or POST it to /api/sessions) "
            "to get a session"
        )
    if len(secret) > MAX_TOKEN_CHARS or not secret.startswith(SESSION_PREFIX):
        raise AuthError(f"that is not a Floorwalker sign-in token; {HOW_TO_GET_ONE}")
    sid = digest(secret)
    record = _record(client, keys.session(sid))
    if not record:
        raise AuthError(
            f"your session in store {config.store} was signed out, ended or revoked; {HOW_TO_GET_ONE}"
        )
    expires_at = _float(record.get("expires_at", "0"))
    if expires_at <= now:
        raise AuthError(f"your session ended at {_utc(expires_at)}; {HOW_TO_GET_ONE}")
    return _principal(config, record, sid)


def session_valid(expires_at: object, now: float) -> bool:
    """Whether a session whose record says ``expires_at`` (None: no record; it was signed
    out, ended or revoked) is still valid at ``now``."""
    return expires_at is not None and _float(expires_at) > now


def live_sessions(client: redis.Redis, keys: Keys, ids: list[str], now: float) -> set[str]:
    """Which of these session ids are still valid (one round trip)."""
    pipe = client.pipeline(transaction=False)
    for sid in ids:
        pipe.hget(keys.session(sid), "expires_at")
    return {sid for sid, expires in zip(ids, pipe.execute(), strict=True) if session_valid(expires, now)}


def end_session(client: redis.Redis, keys: Keys, sid: str) -> bool:
    """End one session by its public id; False if there was none."""
    return bool(client.delete(keys.session(sid)))


class SessionInfo(BaseModel):
    """A session as a manager sees it: who, since when, until when; never its secret."""

    id: str
    associate: str
    role: Role
    created_at: float
    expires_at: float


def list_sessions(client: redis.Redis, keys: Keys, now: float) -> list[SessionInfo]:
    """The store's open sessions, oldest first."""
    prefix = keys.session("")
    out: list[SessionInfo] = []
    for raw_key in client.scan_iter(match=keys.session("*"), count=500):
        key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
        r = _record(client, key)
        if not r or _float(r.get("expires_at", "0")) <= now:
            continue
        out.append(
            SessionInfo(
                id=key.removeprefix(prefix),
                associate=r.get("associate", ""),
                role="manager" if r.get("role") == "manager" else "associate",
                created_at=_float(r.get("created_at", "0")),
                expires_at=_float(r.get("expires_at", "0")),
            )
        )
    return sorted(out, key=lambda s: s.created_at)
