"""The wire contract: every payload round-trips, topics build and parse, bad bytes are
rejected with the right reason and nothing but a ContractError."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from broker_config.contract import (
    MAX_PAYLOAD_BYTES,
    SPECS,
    AssociateStatus,
    BleReport,
    CheckoutEvent,
    ContractError,
    CustomerCard,
    DeadLetter,
    DismissReason,
    EntranceFigures,
    EnvelopeSource,
    ErasureNotice,
    EventAck,
    Feedback,
    FloorState,
    FootfallEvent,
    FuserStatus,
    GatewayBleCounts,
    GatewayStatus,
    LaneFigures,
    PresenceEvent,
    Prompt,
    PromptFigures,
    PromptKind,
    PromptReason,
    ReassignRequest,
    RejectReason,
    TopicKind,
    Topics,
    ZoneFigures,
    check_not_future,
    dead_letter,
    decode,
    encode,
)

T = 1_800_000_000.0
SRC = EnvelopeSource("gw-1")
ID = "0123456789abcdef0123456789abcdef"

SAMPLES: dict[TopicKind, tuple[str | None, object]] = {
    TopicKind.STATUS: ("gw-1", SRC.make(GatewayStatus, T, state="online", software="0.1.0", uptime_s=3.5)),
    TopicKind.PRESENCE: (
        "pantry",
        SRC.make(PresenceEvent, T, member="m_702cc64d", action="enter", confidence=0.8),
    ),
    TopicKind.FOOTFALL: (
        "checkout",
        SRC.make(FootfallEvent, T, window_s=60, entered=12, exited=9, occupancy=3, queue_length=2),
    ),
    TopicKind.CHECKOUT: (
        "lane-1",
        SRC.make(
            CheckoutEvent,
            T,
            member=None,
            items=[{"sku": "kikkoman-500", "category": "sauces", "qty": 2, "amount_cents": 798}],
            total_cents=798,
        ),
    ),
    TopicKind.PROMPT: (
        "a-ben",
        SRC.make(
            Prompt,
            T,
            kind=PromptKind.REPLENISHMENT_DUE,
            customer=CustomerCard(member="m_702cc64d", tier="gold", points=1840),
            zone="pantry",
            headline="Kikkoman soy sauce 500 ml due",
            suggestion="Mention it",
            why="Buys it monthly; last bought 32 days ago.",
            cause_event_id=ID,
            cause_ts=T,
            expires_at=T + 300,
            reason=PromptReason(
                rule="replenishment_due",
                facts={"category": "sauces", "days_since": 32, "interval_days": 31.0},
                scores={"propensity": 0.4, "value": 2.5},
            ),
        ),
    ),
    TopicKind.FEEDBACK: (
        "a-ben",
        SRC.make(Feedback, T, prompt_id=ID, outcome="dismissed", reason=DismissReason.CUSTOMER_BUSY),
    ),
    TopicKind.ASSOCIATE_STATUS: ("a-ben", SRC.make(AssociateStatus, T, state="busy", zone="pantry")),
    TopicKind.DEADLETTER: (
        None,
        SRC.make(
            DeadLetter,
            T,
            reason=RejectReason.MALFORMED_JSON,
            detail="not valid JSON",
            topic="fw/v1/s/zone/a/presence",
            topic_size=23,
            payload_size=3,
            payload_sha256="0" * 64,
        ),
    ),
    TopicKind.BLE: (
        "gw-1",
        SRC.make(
            BleReport,
            T,
            window_s=1.0,
            sightings=[
                {
                    "eid": "0f1e2d3c4b5a6978",
                    "rssi_dbm": -67.5,
                    "distance_m": 3.2,
                    "adverts": 4,
                    "last_seen": T,
                }
            ],
        ),
    ),
    TopicKind.ACK: ("gw-1", SRC.make(EventAck, T, event_ids=["0" * 32, "f" * 32])),
    TopicKind.ERASURE: ("m_Chen0001", SRC.make(ErasureNotice, T, member="m_Chen0001")),
    TopicKind.FLOOR_STATE: (
        None,
        SRC.make(
            FloorState,
            T,
            zones={"pantry": ZoneFigures(occupancy=4), "dairy": ZoneFigures()},
            lanes={"lane-1": LaneFigures(queue=3, wait_s=95.0)},
            entrances={"main-door": EntranceFigures(entered=120, exited=97)},
            prompts=PromptFigures(sent=12, served=9, unserved=2),
        ),
    ),
    TopicKind.FUSER_STATUS: (
        "fuser",
        SRC.make(
            FuserStatus,
            T,
            ble={"gw-1": GatewayBleCounts(reports=40, resolved=31, unresolved=9)},
        ),
    ),
    TopicKind.REASSIGN: ("a-amy", SRC.make(ReassignRequest, T, prompt_id=ID, to_associate="a-ben")),
}


def test_every_topic_kind_has_a_sample() -> None:
    assert set(SAMPLES) == set(SPECS)


@pytest.mark.parametrize("prefix", ["", "test-1/"])
@pytest.mark.parametrize("kind", list(TopicKind))
def test_payload_round_trips_through_its_topic(kind: TopicKind, prefix: str) -> None:
    subject, payload = SAMPLES[kind]
    topics = Topics(prefix)
    topic = topics.build(kind, "store-1", subject)
    message = decode(topics, topic, encode(payload))  # type: ignore[arg-type]
    assert message.payload == payload
    assert (message.address.kind, message.address.store, message.address.subject) == (
        kind,
        "store-1",
        subject,
    )
    assert isinstance(message.payload, SPECS[kind].model)


def test_topics_follow_the_documented_shape() -> None:
    t = Topics()
    assert t.status("s1", "gw-1") == "fw/v1/s1/gw/gw-1/status"
    assert t.presence("s1", "pantry") == "fw/v1/s1/zone/pantry/presence"
    assert t.footfall("s1", "pantry") == "fw/v1/s1/zone/pantry/footfall"
    assert t.checkout("s1", "lane-1") == "fw/v1/s1/pos/lane-1/checkout"
    assert t.prompt("s1", "a-ben") == "fw/v1/s1/handheld/a-ben/prompt"
    assert t.feedback("s1", "a-ben") == "fw/v1/s1/handheld/a-ben/feedback"
    assert t.associate_status("s1", "a-ben") == "fw/v1/s1/handheld/a-ben/status"
    assert t.deadletter("s1") == "fw/v1/s1/deadletter"
    assert t.subscription(TopicKind.PRESENCE) == "fw/v1/+/zone/+/presence"
    assert Topics("p").subscription(TopicKind.PROMPT, "s1") == "p/fw/v1/s1/handheld/+/prompt"


@pytest.mark.parametrize(
    "topic",
    [
        "fw/v1",
        "fw/v2/s1/zone/a/presence",
        "fw/v1/s1/zone/a/footprint",
        "fw/v1/s1/zone/presence",
        "other/s1/deadletter",
    ],
)
def test_unknown_topics_are_rejected(topic: str) -> None:
    topics = Topics()
    for _ in range(2):  # remembered topic names never include a rejected one
        with pytest.raises(ContractError) as err:
            topics.parse(topic)
        assert err.value.reason is RejectReason.UNKNOWN_TOPIC


def test_topic_names_are_remembered_per_prefix() -> None:
    a, b = Topics("a"), Topics("b")
    assert a.presence("s1", "z1") == "a/fw/v1/s1/zone/z1/presence"
    assert b.presence("s1", "z1") == "b/fw/v1/s1/zone/z1/presence"
    assert a.parse("a/fw/v1/s1/zone/z1/presence") == a.parse("a/fw/v1/s1/zone/z1/presence")
    with pytest.raises(ContractError):
        b.parse("a/fw/v1/s1/zone/z1/presence")  # another prefix's topic, even once parsed there


def _presence(**changes: object) -> bytes:
    body = json.loads(encode(SAMPLES[TopicKind.PRESENCE][1]))  # type: ignore[arg-type]
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


@pytest.mark.parametrize(
    ("payload", "reason", "mentions"),
    [
        (b"{not json", RejectReason.MALFORMED_JSON, "JSON"),
        (b'"a string"', RejectReason.MALFORMED_JSON, "object"),
        (_presence(schema_version=2), RejectReason.BAD_SCHEMA_VERSION, "schema_version"),
        (_presence(schema_version=None), RejectReason.BAD_SCHEMA_VERSION, "schema_version"),
        (_presence(confidence=-0.1), RejectReason.INVALID_FIELD, "confidence"),
        (_presence(member="+4917612345678"), RejectReason.INVALID_FIELD, "member"),
        (_presence(event_id="not-an-id"), RejectReason.INVALID_FIELD, "event_id"),
        (_presence(ts=12), RejectReason.INVALID_FIELD, "ts"),
        (_presence(seq=-1), RejectReason.INVALID_FIELD, "seq"),
        (_presence(mac="aa:bb:cc:dd:ee:ff"), RejectReason.INVALID_FIELD, "mac"),
        (b"{" + b" " * MAX_PAYLOAD_BYTES + b"}", RejectReason.TOO_LARGE, str(MAX_PAYLOAD_BYTES)),
    ],
    ids=[
        "truncated json", "not an object", "future schema", "no schema", "out of range",
        "phone number as member", "bad event id", "ancient time", "negative seq", "extra field", "oversized",
    ],
)  # fmt: skip
def test_bad_payloads_name_their_reason(payload: bytes, reason: RejectReason, mentions: str) -> None:
    with pytest.raises(ContractError) as err:
        decode(Topics(), "fw/v1/s1/zone/pantry/presence", payload)
    assert err.value.reason is reason
    assert mentions in str(err.value)


def test_producers_cannot_encode_oversized_payloads() -> None:
    items = [{"sku": "x" * 64, "category": "sauces", "qty": 1, "amount_cents": 1}] * 200
    event = SRC.make(CheckoutEvent, T, member=None, items=items, total_cents=200)
    with pytest.raises(ContractError) as err:
        encode(event)
    assert err.value.reason is RejectReason.TOO_LARGE


def test_envelope_source_numbers_events_and_gives_fresh_ids() -> None:
    src = EnvelopeSource("pos-1", start_seq=41)
    a = src.make(Feedback, T, prompt_id=ID, outcome="done")
    b = src.make(Feedback, T + 1, prompt_id=ID, outcome="done")
    assert (a.seq, b.seq, a.producer, a.schema_version) == (41, 42, "pos-1", 1)
    assert a.event_id != b.event_id


@given(payload=st.binary(max_size=2048))
def test_arbitrary_bytes_raise_only_contract_errors(payload: bytes) -> None:
    try:
        decode(Topics(), "fw/v1/s1/zone/pantry/presence", payload)
    except ContractError as err:
        assert err.reason in RejectReason


@given(topic=st.text(alphabet="fw/v1sznpgh+#-ab", max_size=60))
def test_arbitrary_topics_raise_only_contract_errors(topic: str) -> None:
    try:
        address = Topics().parse(topic)
    except ContractError as err:
        assert err.reason is RejectReason.UNKNOWN_TOPIC
    else:
        assert Topics().build(address.kind, address.store, address.subject) == topic


@given(
    member=st.from_regex(r"m_[A-Za-z0-9]{6,40}", fullmatch=True),
    confidence=st.floats(0, 1),
    seq=st.integers(0, 2**53),
)
def test_valid_presence_round_trips(member: str, confidence: float, seq: int) -> None:
    event = EnvelopeSource("gw-1", start_seq=seq).make(
        PresenceEvent, T, member=member, action="leave", confidence=confidence
    )
    assert decode(Topics(), "fw/v1/s1/zone/a/presence", encode(event)).payload == event


def test_a_dismiss_reason_needs_a_dismissal() -> None:
    with pytest.raises(ValidationError, match="only allowed with outcome 'dismissed'"):
        SRC.make(Feedback, T, prompt_id=ID, outcome="accepted", reason=DismissReason.NOT_RELEVANT)


# -- what a rejection says, at the limits -----------------------------------------------------


@pytest.mark.parametrize(
    ("build", "kind", "subject"),
    [
        (lambda t: t.ack("s1", "gw-1"), TopicKind.ACK, "gw-1"),
        (lambda t: t.erasure("s1", "m_702cc64d"), TopicKind.ERASURE, "m_702cc64d"),
        (lambda t: t.floor_state("s1"), TopicKind.FLOOR_STATE, None),
        (lambda t: t.reassign("s1", "a-amy"), TopicKind.REASSIGN, "a-amy"),
        (lambda t: t.fuser_status("s1", "fuser-1"), TopicKind.FUSER_STATUS, "fuser-1"),
    ],
)
def test_every_builder_makes_a_topic_that_parses_back(
    build: object, kind: TopicKind, subject: str | None
) -> None:
    for topics in (Topics(), Topics("Xt-1/")):  # a prefix may hold any letter but a wildcard
        topic = build(topics)  # type: ignore[operator]
        assert topic.startswith(topics.prefix + "fw/v1/s1/")
        address = topics.parse(topic)
        assert (address.kind, address.store, address.subject) == (kind, "s1", subject)


def test_a_prefix_gets_its_slash_and_may_hold_no_wildcard() -> None:
    assert Topics("t1/").prefix == Topics("t1").prefix == "t1/"
    assert Topics("t1").presence("s1", "z") == "t1/fw/v1/s1/zone/z/presence"
    with pytest.raises(ValueError, match="topic prefix 'a\\+/' must not contain MQTT wildcards"):
        Topics("a+/")
    with pytest.raises(ValueError, match="topic presence needs a subject id"):
        Topics().build(TopicKind.PRESENCE, "s1")


@pytest.mark.parametrize(
    ("topic", "detail"),
    [
        ("other/v1/s1/zone/z/presence", "topic 'other/v1/s1/zone/z/presence' is not under fw/v1/"),
        ("fw/v1/s1/zone/z/nonsense", "topic 'fw/v1/s1/zone/z/nonsense' matches no contract topic"),
    ],
)
def test_an_unknown_topic_is_named(topic: str, detail: str) -> None:
    with pytest.raises(ContractError) as err:
        Topics().parse(topic)
    assert (err.value.reason, err.value.detail) == (RejectReason.UNKNOWN_TOPIC, detail)


def _presence(**override: object) -> bytes:
    body = json.loads(encode(SRC.make(PresenceEvent, T, member="m_702cc64d", action="enter")))
    body.update(override)
    return json.dumps(body).encode()


NOT_A_NUMBER = "Value error, must be a JSON number, not a string or boolean"
NOT_AN_INTEGER = "Value error, must be a JSON integer, not a string, boolean or fraction"


@pytest.mark.parametrize(
    ("payload", "reason", "detail"),
    [
        (b"[1, 2]", RejectReason.MALFORMED_JSON, "payload must be a JSON object"),
        (_presence(ts="soon"), RejectReason.INVALID_FIELD, f"ts: {NOT_A_NUMBER}"),
        (_presence(seq=1.5), RejectReason.INVALID_FIELD, f"seq: {NOT_AN_INTEGER}"),
        (_presence(ts="soon", seq=True), RejectReason.INVALID_FIELD, f"seq: {NOT_AN_INTEGER} (+1 more)"),
        (
            _presence(schema_version=9),
            RejectReason.BAD_SCHEMA_VERSION,
            "schema_version must be 1 (Input should be 1)",
        ),
    ],
)
def test_a_rejection_says_which_field_and_why(payload: bytes, reason: RejectReason, detail: str) -> None:
    with pytest.raises(ContractError) as err:
        decode(Topics(), Topics().presence("s1", "pantry"), payload)
    assert (err.value.reason, err.value.detail) == (reason, detail)


def test_a_nested_field_is_named_by_its_path() -> None:
    event = SRC.make(
        CheckoutEvent, T, member=None, items=[{"sku": "a", "category": "tea", "qty": 1, "amount_cents": 5}],
        total_cents=5,
    )  # fmt: skip
    body = json.loads(encode(event))
    body["items"][0]["qty"] = 0
    with pytest.raises(ContractError) as err:
        decode(Topics(), Topics().checkout("s1", "lane-1"), json.dumps(body).encode())
    assert err.value.detail.startswith("items.0.qty: ")


def test_the_size_limit_itself_is_allowed() -> None:
    body = _presence()
    topic = Topics().presence("s1", "pantry")
    exact = b" " * (MAX_PAYLOAD_BYTES - len(body)) + body  # JSON may start with blanks
    assert decode(Topics(), topic, exact).payload.member == "m_702cc64d"
    with pytest.raises(ContractError) as err:
        decode(Topics(), topic, b" " + exact)
    assert err.value.reason is RejectReason.TOO_LARGE
    assert err.value.detail == f"payload is {MAX_PAYLOAD_BYTES + 1} bytes, limit {MAX_PAYLOAD_BYTES}"


def test_an_event_from_the_future_is_refused_beyond_the_allowed_skew() -> None:
    event = SRC.make(PresenceEvent, T + 300, member="m_702cc64d", action="enter")
    check_not_future(event, T, 300)  # exactly the allowed skew: fine
    with pytest.raises(ContractError) as err:
        check_not_future(event, T - 1, 300)
    assert err.value.reason is RejectReason.FUTURE_TS
    assert err.value.detail == "PresenceEvent is dated 301 s ahead of this clock (allowed: 300 s)"


def test_a_dead_letter_keeps_at_most_300_characters_of_topic_and_detail() -> None:
    topic, error = "x" * 400, ContractError(RejectReason.UNKNOWN_TOPIC, "y" * 400)
    dl = dead_letter(EnvelopeSource("recommender"), T, topic, b"{}", error)
    assert (len(dl.topic), len(dl.detail), dl.topic_size, dl.payload_size) == (300, 300, 400, 2)


def test_a_source_numbers_its_events_from_zero_or_where_it_left_off() -> None:
    for source, first in ((EnvelopeSource("gw-9"), 0), (EnvelopeSource("gw-9", start_seq=41), 41)):
        made = [source.make(PresenceEvent, T, member="m_702cc64d", action="enter") for _ in range(2)]
        assert [e.seq for e in made] == [first, first + 1]


def test_a_rule_across_fields_is_named_as_the_payload() -> None:
    fb = EnvelopeSource("handheld-a-ben").make(
        Feedback, T, prompt_id=ID, outcome="dismissed", reason="customer_busy"
    )
    body = json.loads(encode(fb))
    body["outcome"] = "done"
    with pytest.raises(ContractError) as err:
        decode(Topics(), Topics().feedback("s1", "a-ben"), json.dumps(body).encode())
    assert err.value.detail == "payload: Value error, reason is only allowed with outcome 'dismissed'"


def _basket_of(size: int) -> CheckoutEvent:
    """A checkout whose encoding is exactly ``size`` bytes (SKUs trimmed to fit)."""

    def make(skus: list[int]) -> CheckoutEvent:
        items = [{"sku": "s" * n, "category": "tea", "qty": 1, "amount_cents": 5} for n in skus]
        return EnvelopeSource("pos-1").make(
            CheckoutEvent, T, member=None, items=items, total_cents=5 * len(skus)
        )

    skus = [64] * 160
    over = len(type(make(skus)).__pydantic_serializer__.to_json(make(skus))) - size
    for i in range(len(skus)):
        cut = min(over, skus[i] - 1)
        skus[i] -= cut
        over -= cut
    assert over == 0
    return make(skus)


def test_an_event_of_exactly_the_size_limit_is_sent_and_one_byte_more_is_not() -> None:
    assert len(encode(_basket_of(MAX_PAYLOAD_BYTES))) == MAX_PAYLOAD_BYTES
    with pytest.raises(ContractError) as err:
        encode(_basket_of(MAX_PAYLOAD_BYTES + 1))
    assert err.value.reason is RejectReason.TOO_LARGE
    assert err.value.detail == f"CheckoutEvent is {MAX_PAYLOAD_BYTES + 1} bytes, limit {MAX_PAYLOAD_BYTES}"
