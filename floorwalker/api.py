"""The handheld web app: prompts pushed to each associate's phone over Server-Sent Events.

The API subscribes to every associate's prompt topic of one store, adds the member's
display name from Redis (names never travel on MQTT; they are added here, on the store
server), and fans each prompt out to the open handheld pages of that associate. The
associate answers with one tap, which the API publishes as a contract ``Feedback``.

Threads: paho delivers messages on its network thread; decoding and the Redis name
lookup happen there (blocking calls stay off the event loop), and the finished prompt is
handed to the asyncio loop with ``call_soon_threadsafe``. Everything in
:class:`PromptBoard` is touched only on the loop, so it needs no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import hashlib
import html
import logging
import socket
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated, Final, Literal

import redis
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, status
from fastapi.responses import HTMLResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict

from broker_config.contract import (
    ContractError,
    EnvelopeSource,
    EventId,
    Feedback,
    Prompt,
    PromptKind,
    TopicKind,
    Topics,
    decode,
    encode,
)
from floorwalker.config import AssociateConfig, Endpoints, StoreConfig
from floorwalker.errors import ServiceStartError, ServiceUnavailable
from floorwalker.mqtt import MqttLink, Received
from recommender.keys import Keys
from recommender.service import connect_redis

log = logging.getLogger(__name__)

#: Prompts kept per associate for pages opened later.
HISTORY: Final = 20
#: Prompt ids remembered per associate (for feedback and deduplication of redeliveries).
KNOWN_IDS: Final = 256
#: Per-subscriber queue bound: a stalled page loses its oldest prompts, never the server's memory.
QUEUE_SIZE: Final = 100
#: Seconds uvicorn waits for open streams on shutdown (SSE streams never end by themselves).
GRACEFUL_SHUTDOWN_S: Final = 3
GUEST: Final = "Guest"
#: Shown when a member's profile (or Redis) has no name: the prompt is still useful.
UNNAMED_MEMBER: Final = "Member"

Outcome = Literal["accepted", "dismissed", "done"]


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------


class HandheldPrompt(BaseModel):
    """A prompt as the handheld shows it: the wire prompt plus the locally added name."""

    model_config = ConfigDict(frozen=True)

    prompt_id: str
    associate: str
    kind: PromptKind
    #: Display name for members, "Guest" for non-members; never sent over MQTT.
    customer_name: str
    member: str | None
    tier: str | None
    points: int | None
    zone: str | None
    lane: str | None
    headline: str
    suggestion: str
    why: str
    ts: float
    expires_at: float
    #: The associate's latest answer, if any.
    outcome: Outcome | None = None

    @classmethod
    def from_prompt(cls, associate: str, prompt: Prompt, name: str | None) -> HandheldPrompt:
        c = prompt.customer
        return cls(
            prompt_id=prompt.event_id,
            associate=associate,
            kind=prompt.kind,
            customer_name=GUEST if c.member is None else (name or UNNAMED_MEMBER),
            member=c.member,
            tier=c.tier,
            points=c.points,
            zone=prompt.zone,
            lane=prompt.lane,
            headline=prompt.headline,
            suggestion=prompt.suggestion,
            why=prompt.why,
            ts=prompt.ts,
            expires_at=prompt.expires_at,
        )


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt_id: EventId
    outcome: Outcome


class FeedbackAccepted(BaseModel):
    feedback_id: str
    prompt_id: str
    outcome: Outcome


class Health(BaseModel):
    mqtt: bool
    redis: bool


# --------------------------------------------------------------------------------------
# In-memory state (event loop only)
# --------------------------------------------------------------------------------------


@dataclass(eq=False)
class Subscription:
    """One open stream: its bounded queue and how many prompts it lost to overflow."""

    associate: str
    #: ``None`` ends the stream (the server is shutting down).
    queue: asyncio.Queue[HandheldPrompt | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: int = 0


@dataclass(eq=False)
class _Desk:
    recent: deque[HandheldPrompt] = field(default_factory=lambda: deque(maxlen=HISTORY))
    #: prompt id -> latest outcome, oldest first, capped at KNOWN_IDS.
    known: OrderedDict[str, Outcome | None] = field(default_factory=OrderedDict)
    subscribers: set[Subscription] = field(default_factory=set)


class PromptBoard:
    """Recent prompts and live subscribers per associate. Not thread-safe: loop only."""

    def __init__(self, associates: Iterable[str]) -> None:
        self._desks = {a: _Desk() for a in associates}
        self.dropped = 0

    def __contains__(self, associate: object) -> bool:
        return associate in self._desks

    def add(self, prompt: HandheldPrompt) -> bool:
        """Record and fan out a prompt; False for an unknown associate or a redelivery."""
        desk = self._desks.get(prompt.associate)
        if desk is None or prompt.prompt_id in desk.known:
            return False
        desk.known[prompt.prompt_id] = None
        while len(desk.known) > KNOWN_IDS:
            desk.known.popitem(last=False)
        desk.recent.append(prompt)
        for sub in desk.subscribers:
            self._offer(sub, prompt)
        return True

    def end_streams(self) -> None:
        """Ask every open stream to finish, so a shutdown need not wait for or cancel them."""
        for desk in self._desks.values():
            for sub in desk.subscribers:
                self._offer(sub, None)

    def _offer(self, sub: Subscription, item: HandheldPrompt | None) -> None:
        if sub.queue.full():
            sub.queue.get_nowait()
            sub.dropped += 1
            self.dropped += 1
            log.warning("handheld stream of %s is not keeping up; dropped its oldest prompt", sub.associate)
        sub.queue.put_nowait(item)

    def recent(self, associate: str) -> list[HandheldPrompt]:
        """Recent prompts, oldest first, each with its latest outcome."""
        desk = self._desks[associate]
        return [self._with_outcome(desk, p) for p in desk.recent]

    def subscribe(self, associate: str) -> tuple[Subscription, list[HandheldPrompt]]:
        """A new subscription and the backlog it should see first (atomic on the loop)."""
        sub = Subscription(associate)
        self._desks[associate].subscribers.add(sub)
        return sub, self.recent(associate)

    def unsubscribe(self, sub: Subscription) -> None:
        self._desks[sub.associate].subscribers.discard(sub)

    def knows(self, associate: str, prompt_id: str) -> bool:
        return prompt_id in self._desks[associate].known

    def record_outcome(self, associate: str, prompt_id: str, outcome: Outcome) -> None:
        known = self._desks[associate].known
        if prompt_id in known:
            known[prompt_id] = outcome

    @staticmethod
    def _with_outcome(desk: _Desk, prompt: HandheldPrompt) -> HandheldPrompt:
        outcome = desk.known.get(prompt.prompt_id)
        return prompt if outcome == prompt.outcome else prompt.model_copy(update={"outcome": outcome})


# --------------------------------------------------------------------------------------
# MQTT and Redis
# --------------------------------------------------------------------------------------


def feedback_producer(associate: str) -> str:
    """Producer id for an associate's feedback; hashed when the id would be too long."""
    producer = f"handheld-{associate}"
    if len(producer) <= 48:  # the contract's Ident limit
        return producer
    return f"handheld-{hashlib.sha256(associate.encode()).hexdigest()[:16]}"


class HandheldHub:
    """The API's connections (MQTT and Redis) around a :class:`PromptBoard`."""

    def __init__(
        self,
        config: StoreConfig,
        endpoints: Endpoints,
        *,
        topic_prefix: str = "",
        key_prefix: str = "",
    ) -> None:
        self.config = config
        self.topics = Topics(topic_prefix)
        self.keys = Keys(config.store, key_prefix)
        self.associates: dict[str, AssociateConfig] = {a.id: a for a in config.associates}
        self.board = PromptBoard(self.associates)
        self._redis_url = endpoints.redis_url
        self._redis: redis.Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sources = {a: EnvelopeSource(feedback_producer(a)) for a in self.associates}
        # A persistent session: prompts published while the API restarts are delivered after.
        self.link = MqttLink(
            endpoints.mqtt_host,
            endpoints.mqtt_port,
            client_id=f"{topic_prefix.replace('/', '-')}handheld-api-{config.store}",
            subscriptions=[(self.topics.subscription(TopicKind.PROMPT, config.store), 1)],
            on_message=self._on_message,
            persistent_session=True,
        )

    @property
    def started(self) -> bool:
        return self._loop is not None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect Redis, then MQTT; raises :class:`ServiceUnavailable` with one line."""
        if self._loop is not None:
            return
        self._redis = connect_redis(self._redis_url)
        self._loop = loop  # before connecting: messages may arrive at once
        try:
            self.link.connect()
        except ServiceUnavailable:
            self._loop = None
            self._redis.close()
            self._redis = None
            raise

    def close(self) -> None:
        if self._loop is None:
            return
        self.link.close()
        if self._redis is not None:
            self._redis.close()
            self._redis = None
        self._loop = None

    def health(self) -> Health:
        ok = False
        if self._redis is not None:
            try:
                ok = bool(self._redis.ping())
            except redis.RedisError:
                ok = False
        return Health(mqtt=self.link.connected, redis=ok)

    def send_feedback(self, associate: str, prompt_id: str, outcome: Outcome) -> Feedback:
        """Publish the associate's answer (QoS 1); raises ServiceUnavailable if the broker is away."""
        if not self.link.connected:
            raise ServiceUnavailable(f"not connected to the MQTT broker at {self.link.url}; try again")
        fb = self._sources[associate].make(Feedback, time.time(), prompt_id=prompt_id, outcome=outcome)
        info = self.link.publish(self.topics.feedback(self.config.store, associate), encode(fb), qos=1)
        if info.rc != 0:
            raise ServiceUnavailable(
                f"could not publish feedback to {self.link.url} (rc {info.rc}); try again"
            )
        self.board.record_outcome(associate, prompt_id, outcome)
        return fb

    # -- paho's network thread -------------------------------------------------------

    def _on_message(self, received: Received) -> bool:
        topic = received.topic
        try:
            msg = decode(self.topics, topic, received.payload)
        except ContractError as exc:
            log.warning("ignoring an invalid prompt on %s: %s", topic, exc)
            return True
        prompt, associate = msg.payload, msg.address.subject
        if not isinstance(prompt, Prompt) or associate not in self.associates:
            log.warning("ignoring a prompt on %s: not for an associate of store %s", topic, self.config.store)
            return True
        view = HandheldPrompt.from_prompt(associate, prompt, self._display_name(prompt.customer.member))
        loop = self._loop
        if loop is None:
            return False  # shutting down: leave it to the persistent session
        try:
            loop.call_soon_threadsafe(self.board.add, view)
        except RuntimeError:  # the loop closed under us
            return False
        return True

    def _display_name(self, member: str | None) -> str | None:
        if member is None or self._redis is None:
            return None
        try:
            raw: object = self._redis.hget(self.keys.profile(member), "name")
        except redis.RedisError as exc:
            # A prompt without a name beats no prompt: deliver it anyway.
            log.warning("could not read the name of %s from Redis at %s (%s)", member, self._redis_url, exc)
            return None
        if isinstance(raw, bytes):
            return raw.decode(errors="replace")
        return raw if isinstance(raw, str) else None


# --------------------------------------------------------------------------------------
# Routes
# --------------------------------------------------------------------------------------


def get_hub(request: Request) -> HandheldHub:
    hub: HandheldHub = request.app.state.hub
    return hub


HubDep = Annotated[HandheldHub, Depends(get_hub)]


def known_associate(associate: str, hub: HubDep) -> AssociateConfig:
    found = hub.associates.get(associate)
    if found is None:
        known = ", ".join(sorted(hub.associates))
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no associate {associate!r} in store {hub.config.store}; known associates: {known}",
        )
    return found


AssociateDep = Annotated[AssociateConfig, Depends(known_associate)]

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def index(hub: HubDep) -> str:
    e = html.escape
    items = "\n".join(
        f'<li><a href="/handheld/{e(a.id)}">{e(a.display_name)}</a> <small>{e(a.id)}</small></li>'
        for a in hub.config.associates
    )
    return _INDEX.format(store=e(hub.config.name), items=items)


@router.get("/handheld/{associate}", response_class=HTMLResponse)
def handheld_page(associate: AssociateDep, hub: HubDep) -> str:
    e = html.escape
    return (
        _handheld_template()
        .replace("__ASSOCIATE_ID__", e(associate.id))
        .replace("__ASSOCIATE_NAME__", e(associate.display_name))
        .replace("__STORE_NAME__", e(hub.config.name))
    )


@router.get("/api/handheld/{associate}/prompts")
async def recent_prompts(associate: AssociateDep, hub: HubDep) -> list[HandheldPrompt]:
    """Recent prompts, newest first (async: the board lives on the event loop)."""
    return hub.board.recent(associate.id)[::-1]


@router.get("/api/handheld/{associate}/stream", response_class=EventSourceResponse)
async def prompt_stream(
    associate: AssociateDep,
    hub: HubDep,
    last_event_id: Annotated[str | None, Header()] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Recent prompts (oldest first), a ``ready`` event, then live prompts.

    A reconnecting browser sends ``Last-Event-ID``; it then gets only what came after.
    FastAPI adds a ``: ping`` comment every 15 s while idle, so proxies keep the stream.
    """
    sub, backlog = hub.board.subscribe(associate.id)
    try:
        ids = [p.prompt_id for p in backlog]
        if last_event_id in ids:
            backlog = backlog[ids.index(last_event_id) + 1 :]
        for p in backlog:
            yield ServerSentEvent(data=p, event="prompt", id=p.prompt_id)
        # Lets the page tell history (no buzz) from news (buzz).
        yield ServerSentEvent(data={"backlog": len(backlog)}, event="ready")
        while (live := await sub.queue.get()) is not None:
            yield ServerSentEvent(data=live, event="prompt", id=live.prompt_id)
    finally:
        hub.board.unsubscribe(sub)


@router.post(
    "/api/handheld/{associate}/feedback",
    status_code=status.HTTP_202_ACCEPTED,
    responses={404: {"description": "Unknown associate or prompt"}, 503: {"description": "Broker away"}},
)
async def post_feedback(associate: AssociateDep, body: FeedbackIn, hub: HubDep) -> FeedbackAccepted:
    if not hub.board.knows(associate.id, body.prompt_id):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no recent prompt {body.prompt_id} for associate {associate.id!r}"
        )
    try:
        fb = hub.send_feedback(associate.id, body.prompt_id, body.outcome)
    except ServiceUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    return FeedbackAccepted(feedback_id=fb.event_id, prompt_id=fb.prompt_id, outcome=fb.outcome)


@router.get("/api/health")
def health(hub: HubDep) -> Health:
    return hub.health()


# --------------------------------------------------------------------------------------
# App and server
# --------------------------------------------------------------------------------------


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    hub: HandheldHub = app.state.hub
    if not hub.started:  # run_api starts it before uvicorn, to fail with one clear line
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(hub.start, loop)
    try:
        yield
    finally:
        await asyncio.to_thread(hub.close)


def create_app(
    config: StoreConfig,
    endpoints: Endpoints,
    *,
    topic_prefix: str = "",
    key_prefix: str = "",
) -> FastAPI:
    """The handheld app; it connects to MQTT and Redis when its lifespan starts."""
    hub = HandheldHub(config, endpoints, topic_prefix=topic_prefix, key_prefix=key_prefix)
    app = FastAPI(title=f"Floorwalker handhelds — {config.name}", lifespan=_lifespan)
    app.state.hub = hub
    app.include_router(router)
    return app


def bind_port(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or one line saying why not and what to do."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # still refuses a live listener
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ServiceStartError(
                f"port {port} on {host} is already in use: stop what listens there "
                f"(`ss -ltnp 'sport = :{port}'`) or choose another port with --port"
            ) from None
        raise ServiceStartError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): choose another --host or --port"
        ) from None
    return sock


class _Server(uvicorn.Server):
    """Ends the open SSE streams first: uvicorn would otherwise wait, then cancel them."""

    def __init__(self, hub: HandheldHub, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._hub = hub

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._hub.board.end_streams()
        await super().shutdown(sockets)


def run_api(
    config: StoreConfig,
    endpoints: Endpoints,
    host: str = "127.0.0.1",
    port: int = 8080,
    topic_prefix: str = "",
    key_prefix: str = "",
) -> None:
    """Serve the handheld app until interrupted.

    Raises :class:`ServiceStartError` if the port is taken and :class:`ServiceUnavailable`
    if MQTT or Redis cannot be reached; both before anything is served.
    """
    sock = bind_port(host, port)  # handed to uvicorn: no window for another process to take it
    app = create_app(config, endpoints, topic_prefix=topic_prefix, key_prefix=key_prefix)
    hub: HandheldHub = app.state.hub
    server = _Server(
        hub, uvicorn.Config(app, host=host, port=port, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    )

    async def serve() -> None:
        await asyncio.to_thread(hub.start, asyncio.get_running_loop())
        await server.serve(sockets=[sock])

    try:
        # uvicorn re-raises the SIGINT it caught after a graceful shutdown; that is a normal end.
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve())
    finally:
        hub.close()
        sock.close()


@functools.cache
def _handheld_template() -> str:
    return resources.files("floorwalker").joinpath("static/handheld.html").read_text(encoding="utf-8")


_INDEX: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{store} — handhelds</title>
<style>
body {{ font: 18px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 32rem; padding: 1rem; }}
li {{ margin: .75rem 0; }} a {{ display: inline-block; padding: .75rem 1rem; font-size: 1.2rem; }}
small {{ color: #666; }}
</style></head>
<body><h1>{store}</h1><p>Open your handheld page:</p><ul>
{items}
</ul></body></html>
"""
