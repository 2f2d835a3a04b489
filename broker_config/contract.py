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
    {prefix}fw/v1/{store}/floor/state                  FloorState      retained, counts only
    {prefix}fw/v1/{store}/manager/{manager}/reassign   ReassignRequest API -> recommender

``prefix`` is empty in production; tests and benchmarks set a unique one so that runs
sharing a broker never see each other's traffic.

Every payload is an :class:`Envelope`: ``schema_version``, a unique ``event_id``, the
``producer`` id, a per-producer ``seq`` and the event time ``ts`` (Unix seconds). No
payload carries a name, a phone number or a device address: members appear only as
pseudonymous ``MemberRef`` ids issued by the CRM.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Final, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationError,
    model_validator,
)

from floorwalker.errors import PermanentError

SCHEMA_VERSION: Final = 1
TOPIC_ROOT: Final = "fw/v1"
#: Largest payload any producer may send or any consumer will parse. The broker enforces
#: the same limit (``max_packet_size`` in ``mosquitto.conf.tmpl``, a little higher to allow
#: for the MQTT header), so an oversized message is refused at every hop.
MAX_PAYLOAD_BYTES: Final = 16 * 1024
#: Topic names a :class:`Topics` remembers, built and parsed.
TOPIC_CACHE: Final = 4096
#: Largest ``seq`` and count on the wire: a signed 64-bit integer, as Redis and most
#: languages hold one.
MAX_INT64: Final = 2**63 - 1
#: How far in the future (by the consumer's clock) an event may be dated before it is
#: dead-lettered ``future_ts``; the store config's ``rules.max_future_skew_s`` overrides it.
DEFAULT_MAX_FUTURE_SKEW_S: Final = 300.0

# --------------------------------------------------------------------------------------
# Field types
# --------------------------------------------------------------------------------------

#: Ids that appear as topic levels: stores, gateways, zones, lanes, associates, categories.
Ident = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$")]
#: Pseudonymous member id issued by the CRM (never a name, card number or phone).
MemberRef = Annotated[str, StringConstraints(pattern=r"^m_[A-Za-z0-9]{6,40}$")]
#: 128-bit random id as 32 lowercase hex digits.
EventId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]


def _integer(value: object) -> object:
    # JSON gives int, float, str or bool; only an int is an integer (lax pydantic would take
    # "7", true and 7.0). Numeric types of producers (numpy) still pass to pydantic's check.
    if isinstance(value, str | bool | float):
        raise ValueError("must be a JSON integer, not a string, boolean or fraction")
    return value


def _number(value: object) -> object:
    if isinstance(value, str | bool):
        raise ValueError("must be a JSON number, not a string or boolean")
    return value


#: An integer on the wire: strict (``"7"``, ``true``, ``7.0`` refused); bound it with Field.
Int = Annotated[int, BeforeValidator(_integer)]
#: A number on the wire: strict and finite (every model sets ``allow_inf_nan=False``).
Number = Annotated[float, BeforeValidator(_number)]
#: A count or sequence number: 0 .. 2**63-1.
Count = Annotated[Int, Field(ge=0, le=MAX_INT64)]
#: Event time, Unix seconds (2001..2286).
EventTime = Annotated[Number, Field(ge=1e9, lt=1e10)]
ShortText = Annotated[str, StringConstraints(max_length=300)]


#: Every payload model: no unknown fields, immutable, no NaN or Infinity in any float.
_CONFIG: Final = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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
    #: Dated more than the allowed skew ahead of the consumer's clock.
    FUTURE_TS = "future_ts"
    #: Valid, but the recommender's state script failed on it (e.g. a corrupted key).
    PROCESSING_ERROR = "processing_error"
    #: Feedback on a prompt its sender does not hold (and the sender is no manager).
    NOT_HOLDER = "not_holder"
    #: Feedback that contradicts the prompt's outcome already recorded (the first one wins).
    ALREADY_ANSWERED = "answered"


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

    model_config = _CONFIG

    schema_version: Literal[1] = Field(description="Payload schema version; bumps with the topic version.")
    event_id: EventId = Field(description="Unique id; consumers deduplicate on it.")
    producer: Ident = Field(description="Id of the device or service that produced the event.")
    seq: Count = Field(description="Per-producer sequence number, +1 per event.")
    ts: EventTime = Field(description="When the event happened, Unix seconds.")


class SensorHealth(BaseModel):
    """One sensing source of a gateway (a camera, a BLE scanner) and how it is doing."""

    model_config = _CONFIG

    id: Ident
    kind: Literal["camera", "ble"]
    #: e.g. ``starting``, ``streaming``, ``reconnecting``, ``ended``, ``failed``.
    state: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,20}$")]
    detail: ShortText = ""
    #: Frames (or scans) processed per second, recently.
    rate_hz: Number | None = Field(default=None, ge=0, le=100_000)
    #: A camera's frames read but never processed (newer ones replaced them while
    #: inference was busy), since the camera started (additive in schema 1).
    dropped_frames: Int | None = Field(default=None, ge=0, le=MAX_INT64)


class OutboxHealth(BaseModel):
    """A producer's store-and-forward outbox (``edge_agent/outbox.py``): what waits, and
    every event it gave up on, counted by why (nothing is dropped silently)."""

    model_config = _CONFIG

    pending: Int = Field(ge=0, le=MAX_INT64, description="Events written but not yet acknowledged.")
    bytes: Int = Field(ge=0, le=MAX_INT64, description="Payload bytes the pending events take.")
    oldest_age_s: Number = Field(default=0.0, ge=0, le=1e10, description="Age of the oldest pending event.")
    compacted: Int = Field(
        default=0, ge=0, le=MAX_INT64, description="Footfall events merged into a neighbour."
    )
    expired: Int = Field(
        default=0, ge=0, le=MAX_INT64, description="Presence events older than the policy's limit."
    )
    dropped: Int = Field(
        default=0, ge=0, le=MAX_INT64, description="Presence events removed over the disk cap."
    )
    erased: Int = Field(
        default=0, ge=0, le=MAX_INT64, description="Events of members who asked to be erased."
    )


class GatewayStatus(Envelope):
    """Health of a gateway; retained, and the gateway's MQTT last will says ``offline``."""

    state: Literal["online", "offline"]
    software: Annotated[str, StringConstraints(max_length=40)] = ""
    uptime_s: Number = Field(default=0.0, ge=0, le=1e10)
    detail: ShortText = ""
    #: Per-source health (additive in schema 1; absent from older gateways).
    sensors: list[SensorHealth] = Field(default_factory=list, max_length=32)
    #: The store-and-forward outbox (additive in schema 1; absent without one).
    outbox: OutboxHealth | None = None


class PresenceEvent(Envelope):
    """A consenting member entered or left the zone named in the topic."""

    member: MemberRef
    action: Literal["enter", "leave"]
    confidence: Number = Field(default=1.0, ge=0.0, le=1.0)


#: A member app's rotating ephemeral id (8 bytes as 16 hex digits): changes every EID
#: window, so a bystander cannot follow a phone; only the store server can resolve it.
EphemeralId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]


class BleSighting(BaseModel):
    """One ephemeral id as a gateway heard it since its previous report."""

    model_config = _CONFIG

    eid: EphemeralId
    rssi_dbm: Number = Field(ge=-127, le=20, description="Smoothed RSSI at the gateway, dBm.")
    distance_m: Number = Field(
        ge=0, le=1_000, description="Distance estimate from the gateway's calibration."
    )
    adverts: Int = Field(ge=0, le=100_000, description="Advertisements heard since the previous report.")
    last_seen: EventTime = Field(description="When the latest advertisement was heard.")
    moving: StrictBool | None = Field(
        default=None,
        description="The member app's motion hint in the latest advertisement (its step detector "
        "says the phone is walking); null when the frame carries none.",
    )


class BleReport(Envelope):
    """A gateway's batch of BLE sightings, sent on change and at a heartbeat (never per advert).

    Carries rotating ephemeral ids only: never a device address or a stable id.
    """

    window_s: Number = Field(gt=0, le=3_600, description="Seconds this report covers.")
    sightings: list[BleSighting] = Field(max_length=200)


class FootfallEvent(Envelope):
    """Anonymous counts for the zone named in the topic over the last window."""

    window_s: Number = Field(gt=0, le=86_400)
    entered: Int = Field(ge=0, le=100_000)
    exited: Int = Field(ge=0, le=100_000)
    occupancy: Int = Field(ge=0, le=100_000)
    queue_length: Int | None = Field(default=None, ge=0, le=10_000)
    #: Mean time spent in the zone by people who left it during the window (additive).
    dwell_avg_s: Number | None = Field(default=None, ge=0, le=86_400)
    #: Queue length per checkout lane in the zone; ``queue_length`` is their sum (additive).
    lane_queues: dict[Ident, Annotated[Int, Field(ge=0, le=10_000)]] | None = Field(
        default=None, max_length=32
    )


class BasketLine(BaseModel):
    model_config = _CONFIG

    sku: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    category: Ident
    qty: Int = Field(ge=1, le=1_000)
    amount_cents: Int = Field(ge=0, le=10_000_000)


class CheckoutEvent(Envelope):
    """A basket paid at the lane named in the topic; ``member`` is null for non-members."""

    member: MemberRef | None = None
    items: list[BasketLine] = Field(max_length=200)
    total_cents: Int = Field(ge=0, le=100_000_000)


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

    model_config = _CONFIG

    member: MemberRef | None = None
    tier: Annotated[str, StringConstraints(max_length=20)] | None = None
    points: Int | None = Field(default=None, ge=0, le=1_000_000_000)


#: A fact behind a prompt: text, a bounded number, or a flag.
FactValue = (
    ShortText
    | StrictBool
    | Annotated[Int, Field(ge=-MAX_INT64, le=MAX_INT64)]
    | Annotated[Number, Field(ge=-1e15, le=1e15)]
)


class PromptReason(BaseModel):
    """Why a prompt was chosen, machine-readable: the rule, the facts it used, the scores."""

    model_config = _CONFIG

    rule: Ident = Field(description="Id of the catalog action that fired.")
    facts: dict[Ident, FactValue] = Field(default_factory=dict, max_length=24)
    scores: dict[Ident, Annotated[Number, Field(ge=-1e15, le=1e15)]] = Field(
        default_factory=dict, max_length=12
    )


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
    """A rejected message: why, where, how big, and a hash of its bytes — never the bytes.

    A refused payload may hold exactly what the contract keeps off the wire (a name, a
    phone number a broken producer put in it), so the record carries only what an operator
    needs to find and match it: the reason, the topic, the sizes and the SHA-256 of the
    payload (compare it with the producer's log or outbox)."""

    reason: RejectReason
    #: The contract's complaint: the field's path and what is wrong, never its value.
    detail: ShortText
    topic: Annotated[str, StringConstraints(max_length=300)]
    topic_size: Int = Field(ge=0, le=MAX_INT64, description="Length of the topic as received.")
    payload_size: Int = Field(ge=0, le=MAX_INT64)
    payload_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class EventAck(Envelope):
    """The recommender's acknowledgement to one producer: these events' Redis updates have
    committed, so the producer's outbox may delete them.

    A list of event ids rather than a ``seq`` watermark: a producer's ``seq`` also counts
    messages the recommender never sees (status, BLE reports), and a redelivered backlog
    may arrive interleaved with new events, so a watermark would have gaps it cannot close.
    """

    event_ids: list[EventId] = Field(min_length=1, max_length=256)


class ReassignRequest(Envelope):
    """A manager moves an open, unanswered prompt to another associate (the dashboard's
    Reassign). The topic names the manager; the recommender, which owns routing, moves the
    prompt as it does a re-route (same prompt id) and ignores a prompt it does not hold
    open (answered, expired, or another replica's)."""

    prompt_id: EventId
    to_associate: Ident


class ErasureNotice(Envelope):
    """A member was erased (``floorwalker member erase``): producers delete every event of
    theirs about the member still waiting in their outbox. Retained, one topic per member,
    so a gateway that was offline acts on it when it reconnects."""

    member: MemberRef


# -- The floor at a glance, for the store's own tools (integrations/) ------------------


class ZoneFigures(BaseModel):
    """A zone as the cameras last counted it."""

    model_config = _CONFIG

    occupancy: Int | None = Field(default=None, ge=0, le=100_000, description="People in the zone.")


class LaneFigures(BaseModel):
    """A checkout lane's queue and how long a newcomer would wait in it."""

    model_config = _CONFIG

    queue: Int | None = Field(default=None, ge=0, le=10_000, description="People queueing.")
    wait_s: Number | None = Field(
        default=None, ge=0, le=86_400, description="Queue x the lane's recent time between checkouts."
    )


class EntranceFigures(BaseModel):
    """Footfall through an entrance: the entries and exits of the zone behind it, since the
    publisher started (a counter: it only grows until a restart)."""

    model_config = _CONFIG

    entered: Count
    exited: Count


class PromptFigures(BaseModel):
    """Prompts since the publisher started: sent, served (accepted or done) and unserved
    (expired without being accepted)."""

    model_config = _CONFIG

    sent: Count
    served: Count
    unserved: Count


class FloorState(Envelope):
    """The store's floor at a glance (anonymous counts only, never a member): what Home
    Assistant's entities read. Retained, republished on change and at a heartbeat."""

    zones: dict[Ident, ZoneFigures] = Field(max_length=200)
    lanes: dict[Ident, LaneFigures] = Field(max_length=64)
    entrances: dict[Ident, EntranceFigures] = Field(max_length=32)
    prompts: PromptFigures


class GatewayBleCounts(BaseModel):
    """What the fuser made of one gateway's BLE reports since the fuser started."""

    model_config = _CONFIG

    reports: Count = Field(description="BLE reports received from the gateway.")
    resolved: Count = Field(description="Sightings whose rotating id resolved to a consenting member.")
    unresolved: Count = Field(
        description="Sightings whose id resolved to nobody (not a member, revoked, or off in time)."
    )


class FuserStatus(Envelope):
    """The fuser's health: counts only, never a member or an id. Retained, republished at
    an interval; the counts are totals since the fuser started."""

    ble: dict[Ident, GatewayBleCounts] = Field(max_length=256)


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
    FLOOR_STATE = "floor_state"
    FUSER_STATUS = "fuser_status"
    REASSIGN = "reassign"


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
        TopicSpec(TopicKind.FLOOR_STATE, ("floor", "state"), FloorState, 1, True),
        TopicSpec(TopicKind.FUSER_STATUS, ("fuser", None, "status"), FuserStatus, 1, True),
        TopicSpec(TopicKind.REASSIGN, ("manager", None, "reassign"), ReassignRequest, 1, False),
    )
}
# Topic parsing looks up (first level below the store, last level) to find the spec.
_SPEC_BY_SHAPE: Final = {(s.levels[0], s.levels[-1], len(s.levels)): s for s in SPECS.values()}


@dataclass(frozen=True, slots=True)
class TopicAddress:
    """A parsed topic: which kind, which store, and the one variable id (if the kind has one)."""

    kind: TopicKind
    store: str
    subject: str | None  # gateway, zone, lane, associate or fuser id

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

    def floor_state(self, store: str) -> str:
        return self.build(TopicKind.FLOOR_STATE, store)

    def fuser_status(self, store: str, fuser: str) -> str:
        return self.build(TopicKind.FUSER_STATUS, store, fuser)

    def reassign(self, store: str, manager: str) -> str:
        return self.build(TopicKind.REASSIGN, store, manager)

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
    # The model's serializer straight to bytes: the same bytes as model_dump_json().encode()
    # in 60 % of its time (bench decide's serialisation figures; orjson was no faster).
    data = type(payload).__pydantic_serializer__.to_json(payload)
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
    """The dead-letter record of a rejected message: why, where, sizes and a hash, no values."""
    return source.make(
        DeadLetter,
        ts,
        reason=error.reason,
        detail=error.detail[:300],
        topic=topic[:300],
        topic_size=len(topic),
        payload_size=len(payload),
        payload_sha256=hashlib.sha256(payload).hexdigest(),
    )


def check_not_future(payload: Envelope, now: float, max_skew_s: float) -> None:
    """Refuse an event dated more than ``max_skew_s`` after ``now`` (the consumer's clock).

    A clock gone wrong (or a forger) would otherwise freeze a member at a future moment —
    every real, later event looks out of order — or produce a prompt dated next year."""
    if payload.ts > now + max_skew_s:
        raise ContractError(
            RejectReason.FUTURE_TS,
            f"{type(payload).__name__} is dated {payload.ts - now:.0f} s ahead of this clock "
            f"(allowed: {max_skew_s:.0f} s)",
        )
