"""Who is asking: the FastAPI dependencies that turn a request's token into a principal.

A token comes as ``Authorization: Bearer fwt_...`` (scripts) or in the ``fw_session``
cookie (browsers; set by ``/signin``). No token, a wrong one or an expired one is a 401
with a one-line reason; a signed-in associate asking for the manager's dashboard a 403.
"""

from __future__ import annotations

import time
from typing import Annotated

import redis
from fastapi import Depends, HTTPException, Request, status

from handheld.auth import COOKIE, AuthError, Principal, verify_token
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


def authenticate(hub: StoreHub, token: str | None) -> Principal:
    try:
        return verify_token(hub.redis, hub.keys, hub.config, token, time.time())
    except AuthError as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": "Bearer"}
        ) from None
    except redis.RedisError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"cannot check sign-in: Redis at {hub.redis_url} ({exc})"
        ) from None


def signed_in(request: Request, hub: HubDep) -> Principal:
    return authenticate(hub, token_of(request))


SignedIn = Annotated[Principal, Depends(signed_in)]


def manager(who: SignedIn) -> Principal:
    if who.role != "manager":
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"{who.associate} is signed in as an associate; the dashboard is for managers",
        )
    return who


Manager = Annotated[Principal, Depends(manager)]
