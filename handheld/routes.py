"""The associate's handheld: sign-in, the live prompt stream, answers, status, customer card."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import html
import time
from collections.abc import AsyncGenerator
from importlib import resources
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from broker_config.contract import DismissReason, EventId, Ident
from floorwalker.errors import ServiceUnavailable
from handheld import sse
from handheld.auth import COOKIE, MAX_TOKEN_CHARS, Principal, end_session
from handheld.hub import StoreHub
from handheld.prompts import HandheldPrompt, Moved, Outcome, Withdrawal, parse_sid, prompt_event
from handheld.session import HubDep, SignedIn, authenticate, exchange, token_of
from handheld.sse import SSE_EVENT_SCHEMA, EventStream

router = APIRouter()
#: Categories shown on the customer card.
RECENT_CATEGORIES = 4


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt_id: EventId
    outcome: Outcome
    reason: DismissReason | None = None

    @model_validator(mode="after")
    def _reason_only_when_dismissed(self) -> FeedbackIn:
        if self.reason is not None and self.outcome != "dismissed":
            raise ValueError("reason is only allowed with outcome 'dismissed'")
        return self


class FeedbackAccepted(BaseModel):
    feedback_id: str
    prompt_id: str
    outcome: Outcome
    reason: DismissReason | None


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: Literal["available", "busy", "on_break"]
    zone: Ident | None = None


class Me(BaseModel):
    store: str
    store_name: str
    associate: str
    name: str
    role: str
    zones: list[str]
    status: str
    expires_at: float


class RecentPurchase(BaseModel):
    category: str
    label: str
    days_ago: int


class CustomerCardView(BaseModel):
    member: str
    name: str
    tier: str | None
    points: int | None
    recent: list[RecentPurchase] = Field(description="Latest purchase per category, newest first.")
    open_complaint: str | None


# --------------------------------------------------------------------------------------
# Pages
# --------------------------------------------------------------------------------------


@functools.cache
def static_text(name: str) -> str:
    return resources.files("handheld").joinpath(f"static/{name}").read_text(encoding="utf-8")


def signin_page(store_name: str, message: str = "", status_code: int = 200) -> HTMLResponse:
    e = html.escape
    body = static_text("signin.html").replace("__STORE_NAME__", e(store_name))
    body = body.replace("__MESSAGE__", e(message)).replace("__HIDDEN__", "" if message else "hidden")
    return HTMLResponse(body, status_code=status_code)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index(hub: HubDep) -> HTMLResponse:
    return signin_page(hub.config.name)


@router.get("/signin", include_in_schema=False)
def signin(
    request: Request,
    hub: HubDep,
    token: Annotated[str | None, Query(max_length=MAX_TOKEN_CHARS)] = None,
    to: Annotated[Literal["handheld", "dashboard"] | None, Query()] = None,
) -> Response:
    """Exchange a sign-in link's token, once, for a session kept in an HttpOnly cookie."""
    if token is None:
        return signin_page(hub.config.name)
    try:
        secret, who = exchange(hub, token)
    except HTTPException as exc:
        return signin_page(hub.config.name, str(exc.detail), exc.status_code)
    page = to or ("dashboard" if who.role == "manager" else "handheld")
    resp = RedirectResponse(f"/{page}", status.HTTP_303_SEE_OTHER)
    set_session_cookie(request, resp, secret, who.expires_at)
    return resp


def set_session_cookie(request: Request, resp: Response, secret: str, expires_at: float) -> None:
    """The session in an HttpOnly, SameSite=Strict cookie; ``Secure`` when served over TLS."""
    resp.set_cookie(
        COOKIE,
        secret,
        max_age=max(1, int(expires_at - time.time())),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


@router.post("/signout", include_in_schema=False)
def signout(request: Request, hub: HubDep) -> Response:
    """End the session at once (its open streams too) and forget the cookie; a signed-in
    associate is published as ``signed_out`` for routing."""
    try:
        who = authenticate(hub, token_of(request))
    except HTTPException:
        who = None  # not signed in: signing out still works
    if who is not None:
        end_session(hub.redis, hub.keys, who.session)
        hub.end_streams_of(who.session)
        with contextlib.suppress(ServiceUnavailable):  # the broker is away: still signed out
            hub.send_status(who.associate, "signed_out", None)
    resp = RedirectResponse("/", status.HTTP_303_SEE_OTHER)
    resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return resp


def page_for(hub: HubDep, token: str | None, page: str) -> HTMLResponse:
    try:
        who = authenticate(hub, token)
    except HTTPException as exc:
        return signin_page(hub.config.name, str(exc.detail), exc.status_code)
    if page == "dashboard.html" and who.role != "manager":
        return signin_page(
            hub.config.name, f"{who.associate} is not a manager: the dashboard is for managers", 403
        )
    return HTMLResponse(static_text(page).replace("__STORE_NAME__", html.escape(hub.config.name)))


@router.get("/handheld", response_class=HTMLResponse, include_in_schema=False)
def handheld_page(request: Request, hub: HubDep) -> HTMLResponse:
    return page_for(hub, token_of(request), "handheld.html")


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
def dashboard_page(request: Request, hub: HubDep) -> HTMLResponse:
    return page_for(hub, token_of(request), "dashboard.html")


# --------------------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------------------


def _me(hub: HubDep, who: Principal) -> Me:
    a = hub.associates[who.associate]
    return Me(
        store=hub.config.store,
        store_name=hub.config.name,
        associate=a.id,
        name=a.display_name,
        role=who.role,
        zones=list(a.zones),
        status=hub.status_of(a.id),
        expires_at=who.expires_at,
    )


@router.get("/api/me", tags=["handheld"])
def me(who: SignedIn, hub: HubDep) -> Me:
    """Who is signed in, and their current availability."""
    return _me(hub, who)


@router.get("/api/prompts", tags=["handheld"])
def recent_prompts(who: SignedIn, hub: HubDep) -> list[HandheldPrompt]:
    """The signed-in associate's recent prompts, newest first, each with its latest answer."""
    return hub.prompts.recent(who.associate)


def resume_point(
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
    after: Annotated[str | None, Query(alias="last_event_id", max_length=64)] = None,
) -> tuple[int, int] | None:
    """Where a reconnecting page left off; a value that is not a stream id is a 400."""
    value = last_event_id if last_event_id is not None else after
    if value is None or value == "":
        return None
    sid = parse_sid(value)
    if sid is None:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"Last-Event-ID {value[:64]!r} is not a prompt stream id (like 1712345678901-0): "
            "reload the page to start afresh",
        )
    return sid


@router.get(
    "/api/stream",
    response_class=EventStream,
    status_code=status.HTTP_200_OK,
    tags=["handheld"],
    responses={
        200: {"content": {"text/event-stream": {"itemSchema": SSE_EVENT_SCHEMA}}},
        400: {"description": "Last-Event-ID is not a prompt stream id"},
    },
)
async def prompt_stream(
    who: SignedIn,
    hub: HubDep,
    resume: Annotated[tuple[int, int] | None, Depends(resume_point)],
) -> EventStream:
    """Server-Sent Events: recent prompts (oldest first), a ``ready`` event, then live prompts.

    Every prompt's event id is its position in the associate's Redis stream. A browser
    that reconnects sends ``Last-Event-ID`` and gets exactly the prompts after it: none
    lost, none repeated. A ``: ping`` comment every 15 s keeps proxies from closing it.
    A ``withdraw`` event (``{"member": ...}``) tells the page to drop every card about a
    member who was just erased; ``{"prompt_id": ...}``, to drop one prompt's card: it was
    re-routed to another associate (who gets it once, as a new prompt on their stream). The
    stream ends within a second of its session ending (sign-out, ``floorwalker token
    revoke``, a manager, expiry), and before the next prompt.
    """
    return EventStream(stream_events(hub, who, resume))


async def stream_events(
    hub: StoreHub, who: Principal, resume: tuple[int, int] | None, ping_s: float = sse.PING_S
) -> AsyncGenerator[bytes, None]:
    """The stream's body: each chunk is every event due since the last one, encoded."""
    sub = hub.feed.subscribe(who.associate, who.session)  # first: nothing stored from now on is missed
    hub.metrics.streams.inc()
    hub.stream_opened(who.associate)  # a connected handheld: on the floor (heartbeats follow)
    try:
        backlog = await asyncio.to_thread(hub.prompts.backlog, who.associate, resume)
        last = parse_sid(backlog[-1].sid) if backlog else resume
        # ``ready`` lets the page tell history (no buzz) from news (buzz).
        yield b"".join(
            [*map(prompt_event, backlog), sse.json_event("ready", {"backlog": len(backlog)}, 1000)]
        )
        while True:
            batch = await sub.next_batch(ping_s)
            if not batch:
                yield sse.PING
                continue
            out: list[bytes] = []
            ended = False
            for live in batch:
                if live is None:
                    ended = True
                    break
                if isinstance(live, Withdrawal):
                    out.append(sse.json_event("withdraw", {"member": live.member}))
                    continue
                if isinstance(live, Moved):
                    out.append(sse.json_event("withdraw", {"prompt_id": live.prompt_id}))
                    continue
                sid = parse_sid(live.view.sid)
                if sid is None or (last is not None and sid <= last):
                    continue  # already sent from the backlog
                # Checked when it was stored, unless this page opened since: then check now.
                if who.session not in live.live and not await asyncio.to_thread(
                    hub.session_alive, who.session
                ):
                    ended = True  # revoked since: not one more prompt
                    break
                last = sid
                out.append(live.frame)
            if out:
                yield b"".join(out)
            if ended:
                return
    finally:
        hub.metrics.streams.dec()
        hub.feed.unsubscribe(sub)
        hub.stream_closed(who.associate, time.time())


@router.post(
    "/api/feedback",
    status_code=status.HTTP_202_ACCEPTED,
    tags=["handheld"],
    responses={
        401: {"description": "Not signed in, or the token is wrong or expired"},
        403: {"description": "The prompt was sent to another associate"},
        404: {"description": "No such prompt in this store"},
        409: {"description": "The prompt was already closed"},
        503: {"description": "Broker or Redis away"},
    },
)
def post_feedback(body: FeedbackIn, who: SignedIn, hub: HubDep) -> FeedbackAccepted:
    """Accept, dismiss (optionally with a reason) or mark done one of your prompts (a
    manager: anyone's). One answer per step wins: of answers sent at once, the first is
    published and the rest get 409."""
    verdict, detail = hub.prompts.answer(
        body.prompt_id, who.associate, who.role == "manager", body.outcome, body.reason, time.time()
    )
    if verdict == "missing":
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no prompt {body.prompt_id} in store {hub.config.store} (unknown, or older than a day)",
        )
    if verdict == "not_holder":
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"prompt {body.prompt_id} was sent to another associate, not to you"
        )
    if verdict != "ok":
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"prompt {body.prompt_id} is already {detail or 'answered'}; nothing to do",
        )
    try:
        fb = hub.send_feedback(who.associate, body.prompt_id, body.outcome, body.reason)
    except ServiceUnavailable as exc:
        hub.prompts.undo_answer(body.prompt_id, detail)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    record = hub.prompts.record(body.prompt_id)
    hub.metrics.feedback.labels(record.kind if record else "", body.outcome).inc()
    return FeedbackAccepted(
        feedback_id=fb.event_id, prompt_id=fb.prompt_id, outcome=fb.outcome, reason=fb.reason
    )


@router.post("/api/status", tags=["handheld"], responses={503: {"description": "Broker away"}})
def post_status(body: StatusIn, who: SignedIn, hub: HubDep) -> Me:
    """Set your availability; published retained on the contract's associate status topic."""
    try:
        hub.send_status(who.associate, body.state, body.zone)
    except ServiceUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    return _me(hub, who)


@router.get(
    "/api/prompts/{prompt_id}/customer",
    tags=["handheld"],
    responses={
        403: {"description": "Another associate's prompt"},
        404: {"description": "No such prompt or a guest"},
    },
)
def customer_card(prompt_id: EventId, who: SignedIn, hub: HubDep) -> CustomerCardView:
    """The customer card of one of your prompts: tier, points, recent categories, open complaint."""
    record = hub.prompts.record(prompt_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no prompt {prompt_id} in store {hub.config.store}")
    if record.associate != who.associate:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"prompt {prompt_id} was sent to another associate")
    if record.member is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, "this prompt is about a guest: there is no customer card"
        )
    raw: dict[bytes, bytes] = hub.redis.hgetall(hub.keys.profile(record.member))  # type: ignore[assignment]
    profile = {k.decode(): v.decode(errors="replace") for k, v in raw.items()}
    return card_from_profile(record.member, profile, time.time())


def card_from_profile(member: str, profile: dict[str, str], now: float) -> CustomerCardView:
    """The card from the member's CRM profile hash (pure)."""
    recent: list[tuple[float, str, str]] = []
    for key, value in profile.items():
        if key.startswith("last:"):
            category = key.removeprefix("last:")
            try:
                recent.append((float(value), category, profile.get(f"label:{category}", category)))
            except ValueError:
                continue
    recent.sort(reverse=True)
    points = profile.get("points")
    return CustomerCardView(
        member=member,
        name=profile.get("name") or "Member",
        tier=profile.get("tier"),
        points=int(points) if points and points.isdigit() else None,
        recent=[
            RecentPurchase(category=c, label=label, days_ago=max(0, round((now - t) / 86_400)))
            for t, c, label in recent[:RECENT_CATEGORIES]
        ],
        open_complaint=profile.get("complaint") or None,
    )
