"""Sessions as endpoints: a script exchanges its link's token for one; a manager lists the
store's sessions and ends one (its open streams end within a second)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response, status
from pydantic import BaseModel

from handheld.auth import SessionInfo, end_session, list_sessions
from handheld.session import HubDep, Manager, exchange, token_of

router = APIRouter(tags=["sessions"])

#: A session's public id: the SHA-256 of its secret, in hex.
SessionId = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="A session's public id.")]


class OpenedSession(BaseModel):
    """A new session: send ``Authorization: Bearer <session>`` from now on."""

    session: str
    id: str
    associate: str
    role: str
    expires_at: float


@router.post(
    "/api/sessions",
    status_code=status.HTTP_201_CREATED,
    responses={401: {"description": "The link's token is unknown, expired or already used"}},
)
def open_script_session(request: Request, hub: HubDep) -> OpenedSession:
    """For scripts: exchange a sign-in link's token (``Authorization: Bearer fwt_...``), once,
    for a session. A browser does the same by opening the link."""
    secret, who = exchange(hub, token_of(request))
    return OpenedSession(
        session=secret, id=who.session, associate=who.associate, role=who.role, expires_at=who.expires_at
    )


@router.get(
    "/api/sessions",
    responses={401: {"description": "Not signed in"}, 403: {"description": "Not a manager"}},
)
def sessions(who: Manager, hub: HubDep) -> list[SessionInfo]:
    """The store's open sessions, oldest first: who, since when, until when (never a secret)."""
    del who
    return list_sessions(hub.redis, hub.keys, time.time())


@router.delete(
    "/api/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        401: {"description": "Not signed in"},
        403: {"description": "Not a manager"},
        404: {"description": "No such open session"},
    },
)
def end(session_id: SessionId, who: Manager, hub: HubDep) -> Response:
    """End a session now: its cookie stops working and its open streams end."""
    del who
    if not end_session(hub.redis, hub.keys, session_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no open session {session_id[:12]}… in this store")
    hub.end_streams_of(session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
