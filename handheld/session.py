"""Who is asking: the FastAPI dependencies that turn a request's session into a principal.

A session comes as ``Authorization: Bearer fws_...`` (scripts) or in the ``fw_session``
cookie (browsers; set by ``/signin``, which exchanges the link's one-use token for it). No
session, a wrong, ended or expired one is a 401 with a one-line reason; a signed-in
associate asking for a manager's page or endpoint a 403.
"""

from __future__ import annotations

import time
from typing import Annotated

import redis
from fastapi import Depends, HTTPException, Request, status

from handheld.auth import COOKIE, AuthError, Principal, open_session, verify_session
from handheld.hub import StoreHub


def get_hub(request: Request) -> StoreHub:
    hub: StoreHub = request.app.state.hub
    return hub


HubDep = Annotated[StoreHub, Depends(get_hub)]


def token_of(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else None
    return request.cookies.get(COOKIE)


def _refusal(hub: StoreHub, exc: Exception) -> HTTPException:
    if isinstance(exc, AuthError):
        return HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": "Bearer"})
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE, f"cannot check sign-in: Redis at {hub.redis_url} ({exc})"
    )


def authenticate(hub: StoreHub, secret: str | None) -> Principal:
    """The principal of a session secret, or an HTTP 401 (503 when Redis is away)."""
    try:
        return verify_session(hub.redis, hub.keys, hub.config, secret, time.time())
    except (AuthError, redis.RedisError) as exc:
        raise _refusal(hub, exc) from None


def exchange(hub: StoreHub, token: str | None) -> tuple[str, Principal]:
    """Exchange a sign-in link's token, once, for a session: its secret and principal."""
    try:
        return open_session(hub.redis, hub.keys, hub.config, token, time.time())
    except (AuthError, redis.RedisError) as exc:
        raise _refusal(hub, exc) from None


def signed_in(request: Request, hub: HubDep) -> Principal:
    return authenticate(hub, token_of(request))


SignedIn = Annotated[Principal, Depends(signed_in)]


def manager(who: SignedIn) -> Principal:
    if who.role != "manager":
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"{who.associate} is signed in as an associate; this is for managers",
        )
    return who


Manager = Annotated[Principal, Depends(manager)]
