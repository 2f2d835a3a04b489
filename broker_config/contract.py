"""The wire contract: every MQTT topic and every payload, defined once.

Producers (gateways, POS adapters, simulators, the recommender) and consumers (the
recommender, the handheld API, recorders) import these definitions; nothing else builds
a topic string or a payload dict by hand. The same pydantic models validate input and
document it (``floorwalker contract --schema`` prints their JSON Schema).

Topics are versioned and scoped by store::

    {prefix}fw/v1/{store}/gw/{gateway}/status          GatewayStatus   retained, last will
    {prefix}fw/v1/{store}/gw/{gateway}/ble             BleReport       rotating ids only
    {prefix}fw/v1/{store}/zone/{zone}/presence         PresenceEvent
    {prefix}fw/v1/{store}/zone/{zone}/footfall         FootfallEvent
    {prefix}fw/v1/{store}/pos/{lane}/checkout          CheckoutEvent
    {prefix}fw/v1/{store}/handheld/{associate}/prompt  Prompt
    {prefix}fw/v1/{store}/handheld/{associate}/feedback Feedback
    {prefix}fw/v1/{store}/handheld/{associate}/status   AssociateStatus retained
    {prefix}fw/v1/{store}/deadletter                   DeadLetter
    {prefix}fw/v1/{store}/gw/{producer}/ack            EventAck        recommender -> outbox
    {prefix}fw/v1/{store}/erasure/{member}/notice      ErasureNotice   retained

``prefix`` is empty in production; tests and benchmarks set a unique one so that runs
sharing a broker never see each other's traffic.

Every payload is an :class:`Envelope`: ``schema_version``, a unique ``event_id``, the
``producer`` id, a per-producer ``seq`` and the event time ``ts`` (Unix seconds). No
payload carries a name, a phone number or a device address: members appear only as
pseudonymous ``MemberRef`` ids issued by the CRM.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from floorwalker.errors import PermanentError

SCHEMA_VERSION: Final = 1
TOPIC_ROOT: Final = "fw/v1"
#: Largest payload any producer may send or any consumer will parse. The broker enforces
#: the same limit (``max_packet_size`` in ``mosquitto.conf.tmpl``, a little higher to allow
#: for the MQTT header), so an oversized message is refused at every hop.
MAX_PAYLOAD_BYTES: Final = 16 * 1024
#: Topic names a :class:`Topics` remembers, built and parsed.
TOPIC_CACHE: Final = 4096
#: How much of a rejected payload a dead-letter record keeps.
DEADLETTER_EXCERPT_BYTES: Final = 512

# --------------------------------------------------------------------------------------
# Field types
# --------------------------------------------------------------------------------------

#: Ids that appear as topic levels: stores, gateways, zones, lanes, associates, categories.
Ident = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$")]
#: Pseudonymous member id issued by the CRM (never a name, card number or phone).
MemberRef = Annotated[str, StringConstraints(pattern=r"^m_[A-Za-z0-9]{6,40}$")]
#: 128-bit random id as 32 lowercase hex digits.
EventId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
#: Event time, Unix seconds (2001..2286).
EventTime = Annotated[float, Field(ge=1e9, lt=1e10)]
ShortText = Annotated[str, StringConstraints(max_length=300)]


class RejectReason(StrEnum):
    """Why a message went to the dead-letter topic and stream."""

    TOO_LARGE = "too_large"
    UNKNOWN_TOPIC = "unknown_topic"
    MALFORMED_JSON = "malformed_json"
    BAD_SCHEMA_VERSION = "bad_schema_version"
    INVALID_FIELD = "invalid_field"
    UNKNOWN_STORE = "unknown_store"
    UNKNOWN_PRODUCER = "unknown_producer"
    UNKNOWN_ZONE = "unknown_zone"
    UNKNOWN_LANE = "unknown_lane"
    #: Valid, but the recommender's state script failed on it (e.g. a corrupted key).
    PROCESSING_ERROR = "processing_error"


class ContractError(PermanentError):
    """A message breaks the contract; ``reason`` is the dead-letter reason code."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


# --------------------------------------------------------------------------------------
# Payloads
# --------------------------------------------------------------------------------------


class Envelope(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = Field(description="Payload schema version; bumps with the topic version.")
    event_id: EventId = Field(description="Unique id; consumers deduplicate on it.")
    producer: Ident = Field(description="Id of the device or service that produced the event.")
    seq: int = Field(ge=0, description="Per-producer sequence number, +1 per event.")
    ts: EventTime = Field(description="When the event happened, Unix seconds.")


class SensorHealth(BaseModel):
    """One sensing source of a gateway (a camera, a BLE scanner) and how it is doing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Ident
    kind: Literal["camera", "ble"]
    #: e.g. ``starting``, ``streaming``, ``reconnecting``, ``ended``, ``failed``.
    state: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,20}$")]
    detail: ShortText = ""
    #: Frames (or scans) processed per second, recently.
    rate_hz: float | None = Field(default=None, ge=0)


class OutboxHealth(BaseModel):
    """A producer's store-and-forward outbox (``edge_agent/outbox.py``): what waits, and
    every event it gave up on, counted by why (nothing is dropped silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pending: int = Field(ge=0, description="Events written but not yet acknowledged.")
    bytes: int = Field(ge=0, description="Payload bytes the pending events take.")
    oldest_age_s: float = Field(default=0.0, ge=0, description="Age of the oldest pending event.")
    compacted: int = Field(default=0, ge=0, description="Footfall events merged into a neighbour.")
    expired: int = Field(default=0, ge=0, description="Presence events older than the policy's limit.")
    dropped: int = Field(default=0, ge=0, description="Presence events removed over the disk cap.")
    erased: int = Field(default=0, ge=0, description="Events of members who asked to be erased.")


class GatewayStatus(Envelope):
    """Health of a gateway; retained, and the gateway's MQTT last will says ``offline``."""

    state: Literal["online", "offline"]
    software: Annotated[str, StringConstraints(max_length=40)] = ""
    uptime_s: float = Field(default=0.0, ge=0)
    detail: ShortText = ""
    #: Per-source health (additive in schema 1; absent from older gateways).
    sensors: list[SensorHealth] = Field(default_factory=list, max_length=32)
    #: The store-and-forward outbox (additive in schema 1; absent without one).
    outbox: OutboxHealth | None = None


class PresenceEvent(Envelope):
    """A consenting member entered or left the zone named in the topic."""

    member: MemberRef
    action: Literal["enter", "leave"]
    confidence: float = Field(default=1.0, ge=0.0, le=1.0)


#: A member app's rotating ephemeral id (8 bytes as 16 hex digits): changes every EID
#: window, so a bystander cannot follow a phone; only the store server can resolve it.
EphemeralId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]


class BleSighting(BaseModel):
    """One ephemeral id as a gateway heard it since its previous report."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    eid: EphemeralId
    rssi_dbm: float = Field(ge=-127, le=20, description="Smoothed RSSI at the gateway, dBm.")
    distance_m: float = Field(ge=0, le=1_000, description="Distance estimate from the gateway's calibration.")
    adverts: int = Field(ge=0, le=100_000, description="Advertisements heard since the previous report.")
    last_seen: EventTime = Field(description="When the latest advertisement was heard.")
    moving: bool | None = Field(
        default=None,
        description="The member app's motion hint in the latest advertisement (its step detector "
        "says the phone is walking); null when the frame carries none.",
    )


class BleReport(Envelope):
    """A gateway's batch of BLE sightings, sent on change and at a heartbeat (never per advert).

    Carries rotating ephemeral ids only: never a device address or a stable id.
    """

    window_s: float = Field(gt=0, le=3_600, description="Seconds this report covers.")
    sightings: list[BleSighting] = Field(max_length=200)


class FootfallEvent(Envelope):
    """Anonymous counts for the zone named in the topic over the last window."""

    window_s: float = Field(gt=0, le=86_400)
    entered: int = Field(ge=0, le=100_000)
    exited: int = Field(ge=0, le=100_000)
    occupancy: int = Field(ge=0, le=100_000)
    queue_length: int | None = Field(default=None, ge=0, le=10_000)
    #: Mean time spent in the zone by people who left it during the window (additive).
    dwell_avg_s: float | None = Field(default=None, ge=0, le=86_400)
    #: Queue length per checkout lane in the zone; ``queue_length`` is their sum (additive).
    lane_queues: dict[Ident, Annotated[int, Field(ge=0, le=10_000)]] | None = Field(
        default=None, max_length=32
    )


class BasketLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    category: Ident
    qty: int = Field(ge=1, le=1_000)
    amount_cents: int = Field(ge=0, le=10_000_000)


class CheckoutEvent(Envelope):
    """A basket paid at the lane named in the topic; ``member`` is null for non-members."""

    member: MemberRef | None = None
    items: list[BasketLine] = Field(max_length=200)
    total_cents: int = Field(ge=0, le=100_000_000)


class PromptKind(StrEnum):
    """What the associate is asked to do; one per action of the catalog."""

    GREET_VIP = "greet_vip"
    REPLENISHMENT_DUE = "replenishment_due"
    CROSS_SELL = "cross_sell"
    BIRTHDAY = "birthday"
    EXPIRING_POINTS = "expiring_points"
    COMPLAINT_FOLLOW_UP = "complaint_follow_up"
    WIN_BACK = "win_back"
    LONG_DWELL_HELP = "long_dwell_help"
    JOIN_INVITE = "join_invite"
    #: Store-level (no customer): the checkout queue is long; goes to the manager role.
    OPEN_TILL = "open_till"


class CustomerCard(BaseModel):
    """What the associate may see on the wire: no name (the handheld API adds it locally)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    member: MemberRef | None = None
    tier: Annotated[str, StringConstraints(max_length=20)] | None = None
    points: int | None = Field(default=None, ge=0)


FactValue = str | int | float | bool


class PromptReason(BaseModel):
    """Why a prompt was chosen, machine-readable: the rule, the facts it used, the scores."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: Ident = Field(description="Id of the catalog action that fired.")
    facts: dict[Ident, FactValue] = Field(default_factory=dict, max_length=24)
    scores: dict[Ident, float] = Field(default_factory=dict, max_length=12)


class Prompt(Envelope):
    """A service prompt for the associate named in the topic."""

    kind: PromptKind
    customer: CustomerCard
    zone: Ident | None = None
    lane: Ident | None = None
    headline: Annotated[str, StringConstraints(max_length=120)]
    suggestion: ShortText
    why: ShortText = Field(description="A reason the associate can say out loud.")
    cause_event_id: EventId
    cause_ts: EventTime
    expires_at: EventTime
    reason: PromptReason | None = Field(
        default=None, description="Machine-readable reason: rule, facts and scores."
    )


class DismissReason(StrEnum):
    """Why an associate dismissed a prompt (optional, one tap after Dismiss)."""

    NOT_RELEVANT = "not_relevant"
    CUSTOMER_BUSY = "customer_busy"
    ALREADY_HELPED = "already_helped"
    WRONG_PERSON = "wrong_person"


class Feedback(Envelope):
    """The associate's answer to a prompt."""

    prompt_id: EventId
    outcome: Literal["accepted", "dismissed", "done"]
    reason: DismissReason | None = Field(default=None, description="Only with outcome 'dismissed'.")

    @model_validator(mode="after")
    def _reason_only_when_dismissed(self) -> Feedback:
        if self.reason is not None and self.outcome != "dismissed":
            raise ValueError("reason is only allowed with outcome 'dismissed'")
        return self


class AssociateStatus(Envelope):
    """An associate's availability, which routing uses; retained per associate."""

    state: Literal["available", "busy", "on_break", "signed_out"]
    #: The zone the associate is in or nearest to, when known.
    zone: Ident | None = None


class DeadLetter(Envelope):
    """A rejected message: why, and the start of its original bytes."""

    reason: RejectReason
    detail: ShortText
    topic: Annotated[str, StringConstraints(max_length=300)]
    payload_size: int = Field(ge=0)
    payload_excerpt: Annotated[str, StringConstraints(max_length=4 * DEADLETTER_EXCERPT_BYTES)]


class EventAck(Envelope):
    """The recommender's acknowledgement to one producer: these events' Redis updates have
    committed, so the producer's outbox may delete them.

    A list of event ids rather than a ``seq`` watermark: a producer's ``seq`` also counts
    messages the recommender never sees (status, BLE reports), and a redelivered backlog
    may arrive interleaved with new events, so a watermark would have gaps it cannot close.
    """

    event_ids: list[EventId] = Field(min_length=1, max_length=256)


class ErasureNotice(Envelope):
    """A member was erased (``floorwalker member erase``): producers delete every event of
    theirs about the member still waiting in their outbox. Retained, one topic per member,
    so a gateway that was offline acts on it when it reconnects."""

    member: MemberRef


# --------------------------------------------------------------------------------------
# Topics
# --------------------------------------------------------------------------------------


class TopicKind(StrEnum):
    STATUS = "status"
    PRESENCE = "presence"
    FOOTFALL = "footfall"
    CHECKOUT = "checkout"
    PROMPT = "prompt"
    FEEDBACK = "feedback"
    ASSOCIATE_STATUS = "associate_status"
    DEADLETTER = "deadletter"
    BLE = "ble"
    ACK = "ack"
    ERASURE = "erasure"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    kind: TopicKind
    #: Levels below ``{root}/{store}``; ``None`` stands for the one variable level.
    levels: tuple[str | None, ...]
    model: type[Envelope]
    qos: int
    retain: bool


SPECS: Final[dict[TopicKind, TopicSpec]] = {
    s.kind: s
    for s in (
        TopicSpec(TopicKind.STATUS, ("gw", None, "status"), GatewayStatus, 1, True),
        TopicSpec(TopicKind.PRESENCE, ("zone", None, "presence"), PresenceEvent, 1, False),
        TopicSpec(TopicKind.FOOTFALL, ("zone", None, "footfall"), FootfallEvent, 1, False),
        TopicSpec(TopicKind.CHECKOUT, ("pos", None, "checkout"), CheckoutEvent, 1, False),
        TopicSpec(TopicKind.PROMPT, ("handheld", None, "prompt"), Prompt, 1, False),
        TopicSpec(TopicKind.FEEDBACK, ("handheld", None, "feedback"), Feedback, 1, False),
        TopicSpec(TopicKind.ASSOCIATE_STATUS, ("handheld", None, "status"), AssociateStatus, 1, True),
        TopicSpec(TopicKind.DEADLETTER, ("deadletter",), DeadLetter, 1, False),
        # QoS 0: a lost report is replaced by the next one within a second.
        TopicSpec(TopicKind.BLE, ("gw", None, "ble"), BleReport, 0, False),
        TopicSpec(TopicKind.ACK, ("gw", None, "ack"), EventAck, 1, False),
        TopicSpec(TopicKind.ERASURE, ("erasure", None, "notice"), ErasureNotice, 1, True),
    )
}
# Topic parsing looks up (first level below the store, last level) to find the spec.
_SPEC_BY_SHAPE: Final = {(s.levels[0], s.levels[-1], len(s.levels)): s for s in SPECS.values()}


@dataclass(frozen=True, slots=True)
class TopicAddress:
    """A parsed topic: which kind, which store, and the one variable id (if the kind has one)."""

    kind: TopicKind
    store: str
    subject: str | None  # gateway, zone, lane or associate id

    @property
    def spec(self) -> TopicSpec:
        return SPECS[self.kind]


class Topics:
    """Builds and parses topic names under an optional prefix (``""`` in production)."""

    def __init__(self, prefix: str = "") -> None:
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        if any(c in prefix for c in "+#"):
            raise ValueError(f"topic prefix {prefix!r} must not contain MQTT wildcards")
        self.prefix = prefix
        self.root = f"{prefix}{TOPIC_ROOT}"
        self._root_levels = len(self.root.split("/"))
        # A store has a few hundred topics, each built or parsed on every message: remember
        # them (bounded, as topics come from outside).
        self.build = functools.lru_cache(maxsize=TOPIC_CACHE)(self.build)  # type: ignore[method-assign]
        self.parse = functools.lru_cache(maxsize=TOPIC_CACHE)(self.parse)  # type: ignore[method-assign]

    def build(self, kind: TopicKind, store: str, subject: str | None = None) -> str:
        levels = [subject if lvl is None else lvl for lvl in SPECS[kind].levels]
        if None in levels:
            raise ValueError(f"topic {kind.value} needs a subject id")
        return "/".join([self.root, store, *(lv for lv in levels if lv is not None)])

    def status(self, store: str, gateway: str) -> str:
        return self.build(TopicKind.STATUS, store, gateway)

    def presence(self, store: str, zone: str) -> str:
        return self.build(TopicKind.PRESENCE, store, zone)

    def footfall(self, store: str, zone: str) -> str:
        return self.build(TopicKind.FOOTFALL, store, zone)

    def checkout(self, store: str, lane: str) -> str:
        return self.build(TopicKind.CHECKOUT, store, lane)

    def prompt(self, store: str, associate: str) -> str:
        return self.build(TopicKind.PROMPT, store, associate)

    def feedback(self, store: str, associate: str) -> str:
        return self.build(TopicKind.FEEDBACK, store, associate)

    def associate_status(self, store: str, associate: str) -> str:
        return self.build(TopicKind.ASSOCIATE_STATUS, store, associate)

    def deadletter(self, store: str) -> str:
        return self.build(TopicKind.DEADLETTER, store)

    def ble(self, store: str, gateway: str) -> str:
        return self.build(TopicKind.BLE, store, gateway)

    def ack(self, store: str, producer: str) -> str:
        return self.build(TopicKind.ACK, store, producer)

    def erasure(self, store: str, member: str) -> str:
        return self.build(TopicKind.ERASURE, store, member)

    def subscription(self, kind: TopicKind, store: str = "+") -> str:
        """Wildcard filter for every topic of ``kind`` (in one store, or in all)."""
        levels = ["+" if lvl is None else lvl for lvl in SPECS[kind].levels]
        return "/".join([self.root, store, *levels])

    def parse(self, topic: str) -> TopicAddress:
        parts = topic.split("/")
        n = self._root_levels
        if len(parts) < n + 2 or "/".join(parts[:n]) != self.root:
            raise ContractError(RejectReason.UNKNOWN_TOPIC, f"topic {topic!r} is not under {self.root}/")
        store, rest = parts[n], parts[n + 1 :]
        spec = _SPEC_BY_SHAPE.get((rest[0], rest[-1], len(rest)))
        if spec is None:
            raise ContractError(RejectReason.UNKNOWN_TOPIC, f"topic {topic!r} matches no contract topic")
        subject = rest[1] if len(rest) == 3 else None
        return TopicAddress(spec.kind, store, subject)


# --------------------------------------------------------------------------------------
# Encoding and decoding
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded, validated message: where it came from and what it says."""

    address: TopicAddress
    payload: Envelope


def encode(payload: Envelope) -> bytes:
    """Serialize a payload, refusing one over :data:`MAX_PAYLOAD_BYTES`."""
    data = payload.model_dump_json(exclude_none=False).encode()
    if len(data) > MAX_PAYLOAD_BYTES:
        raise ContractError(
            RejectReason.TOO_LARGE,
            f"{type(payload).__name__} is {len(data)} bytes, limit {MAX_PAYLOAD_BYTES}",
        )
    return data


def decode(topics: Topics, topic: str, payload: bytes) -> Message:
    """Validate ``payload`` against the model for ``topic``; raise :class:`ContractError`."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError(
            RejectReason.TOO_LARGE, f"payload is {len(payload)} bytes, limit {MAX_PAYLOAD_BYTES}"
        )
    address = topics.parse(topic)
    try:
        body = address.spec.model.model_validate_json(payload)
    except ValidationError as exc:
        raise _contract_error(exc) from None
    return Message(address, body)


def _contract_error(exc: ValidationError) -> ContractError:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return ContractError(RejectReason.MALFORMED_JSON, f"not valid JSON ({first['msg']})")
    if first["type"] == "model_type":
        return ContractError(RejectReason.MALFORMED_JSON, "payload must be a JSON object")
    for err in errors:
        if err["loc"] == ("schema_version",):
            return ContractError(
                RejectReason.BAD_SCHEMA_VERSION, f"schema_version must be {SCHEMA_VERSION} ({err['msg']})"
            )
    loc = ".".join(str(p) for p in first["loc"]) or "payload"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return ContractError(RejectReason.INVALID_FIELD, f"{loc}: {first['msg']}{more}")


def excerpt(payload: bytes) -> str:
    """The start of rejected bytes, readable and bounded, for a dead-letter record."""
    return payload[:DEADLETTER_EXCERPT_BYTES].decode("utf-8", errors="backslashreplace")


def new_event_id() -> str:
    """128 random bits as 32 hex digits (cheaper than building a ``uuid.UUID``)."""
    return os.urandom(16).hex()


E = TypeVar("E", bound=Envelope)


class EnvelopeSource:
    """Issues events for one producer: a fresh ``event_id`` and the next ``seq`` each time.

    Time is passed in, never read here, so simulated and replayed producers stay exact.
    The event is validated like any received one, so a producer cannot emit what a
    consumer would reject.
    """

    def __init__(
        self, producer: str, *, start_seq: int = 0, new_id: Callable[[], str] = new_event_id
    ) -> None:
        self.producer = producer
        self._seq = start_seq
        self._new_id = new_id

    def make(self, model: type[E], ts: float, **fields: object) -> E:
        event = model.model_validate(
            {
                "schema_version": SCHEMA_VERSION,
                "event_id": self._new_id(),
                "producer": self.producer,
                "seq": self._seq,
                "ts": ts,
                **fields,
            }
        )
        self._seq += 1
        return event


def dead_letter(
    source: EnvelopeSource, ts: float, topic: str, payload: bytes, error: ContractError
) -> DeadLetter:
    """The dead-letter record of a rejected message: why, where, and the start of its bytes."""
    return source.make(
        DeadLetter,
        ts,
        reason=error.reason,
        detail=error.detail[:300],
        topic=topic[:300],
        payload_size=len(payload),
        payload_excerpt=excerpt(payload),
    )
