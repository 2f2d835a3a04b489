"""A broker without shared subscriptions is noticed from what it says (MQTT v5 CONNACK
property, SUBACK reason code), built here with paho's own packet classes."""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from floorwalker.errors import ConfigError
from floorwalker.mqtt import MqttLink
from recommender.service import Share

SHARED = [("$share/rec/fw/v1/+/zone/+/presence", 1), ("$share/rec/fw/v1/+/pos/+/checkout", 1)]


def _link(subscriptions: list[tuple[str, int]]) -> MqttLink:
    return MqttLink("127.0.0.1", 1, "t-shared", subscriptions=subscriptions)


def _connack(shared_available: int | None) -> Properties:
    props = Properties(PacketTypes.CONNACK)  # type: ignore[no-untyped-call]
    if shared_available is not None:
        props.SharedSubscriptionAvailable = shared_available
    return props


def test_connack_without_shared_subscriptions_names_what_is_missing() -> None:
    link = _link(SHARED)
    ok = ReasonCode(PacketTypes.CONNACK, "Success")
    link._on_connect(link.client, None, None, ok, _connack(0))
    assert link._missing is not None
    assert "SharedSubscriptionAvailable=0" in link._missing and "Mosquitto >= 2.0" in link._missing
    assert link._subscribe_mid is None  # nothing subscribed: no silent single consumer


def test_connack_that_says_nothing_means_available() -> None:
    link = _link(SHARED)
    link._on_connect(link.client, None, None, ReasonCode(PacketTypes.CONNACK, "Success"), _connack(None))
    assert link._missing is None


def test_suback_refusing_the_share_names_the_filter() -> None:
    link = _link(SHARED)
    link._subscribe_mid = 7
    refused = ReasonCode(PacketTypes.SUBACK, identifier=0x9E)  # Shared Subscriptions not supported
    granted = ReasonCode(PacketTypes.SUBACK, "Granted QoS 1")
    link._on_subscribe(link.client, None, 7, [granted, refused], None)
    assert link._missing is not None and SHARED[1][0] in link._missing
    assert SHARED[0][0] not in link._missing


def test_plain_subscriptions_do_not_ask_for_shares() -> None:
    link = _link([("fw/v1/+/zone/+/presence", 1)])
    link._on_connect(link.client, None, None, ReasonCode(PacketTypes.CONNACK, "Success"), _connack(0))
    assert link._missing is None
    assert isinstance(link.client, mqtt.Client)


def test_replica_ids_must_fit_the_producer_id() -> None:
    assert Share("rec", "recommender-0").client_id("t1/", "r2") == "t1-rec-r2"
    for group, replica in (("Rec", "r0"), ("rec", "r0.x"), ("rec/a", "r0"), ("rec", "r" * 30), ("rec", "")):
        with pytest.raises(ConfigError, match="lower-case letters"):
            Share(group, replica)
