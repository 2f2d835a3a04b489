"""The fuser process: gateways' BLE reports in, zone enter/leave presence events out.

A thin store-server process next to the recommender (``floorwalker fuser``): it holds the
members' BLE secrets (:class:`EidResolver`), so the ids it hears from gateways are
resolved here and nowhere else. It subscribes to every gateway's ``ble`` topic and to the
retained ``status`` topic (a gateway that is offline makes its zones "unknown" instead of
"away"), ticks :class:`ZoneFusion` and publishes each change as a
:class:`PresenceEvent` (producer: the configured fuser id) on the zone's presence topic,
which the recommender consumes like any other. A report that breaks the contract or
comes from an unknown gateway is dropped, counted and published on the dead-letter topic.
Every ``STATUS_EVERY_S`` it publishes its retained :class:`FuserStatus`: per gateway, the
reports received and how many sightings resolved to a member or to nobody (counts only,
never a member or an id), which the API turns into metrics.

**Time is the reports' own.** The fusion runs on the time the gateways' sightings carry
(``last_seen``), never on this machine's clock: each report that moves that clock on by
``TICK_S`` ticks the fusion at it, so a trace replayed at 1x, 10x or as fast as it goes
gives the same presence events. Only while no report comes does the clock advance on
its own (by the monotonic time since the last report arrived), so that silence still
ends in "away".
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from broker_config.contract import (
    BleReport,
    ContractError,
    EnvelopeSource,
    ErasureNotice,
    FuserStatus,
    GatewayBleCounts,
    GatewayStatus,
    PresenceEvent,
    RejectReason,
    TopicKind,
    Topics,
    check_not_future,
    dead_letter,
    decode,
    encode,
)
from floorwalker.ble_keys import read_key_file
from floorwalker.config import Endpoints, StoreConfig
from floorwalker.errors import ConfigError
from floorwalker.mqtt import MqttAuth, MqttLink, Received
from presence.eid_resolver import EidResolver
from presence.survey import SurveyMap, read_survey
from presence.zone_fusion import FusionParams, ZoneChange, ZoneFusion, ZoneModel
from recommender.crm import read_fixture

log = logging.getLogger(__name__)

TICK_S = 0.25
#: How often the counters (reports, unresolved ids, events, rejects) are logged.
STATS_EVERY_S = 60.0
#: How often the retained :class:`FuserStatus` (counts per gateway) is republished.
STATUS_EVERY_S = 10.0


def zone_model_for(config: StoreConfig, params: FusionParams, survey: SurveyMap | None = None) -> ZoneModel:
    """The store's zone model, with its site survey (``survey``, else the config's
    ``ble_presence.survey`` file) when it has one."""
    path = config.ble_presence.survey
    if survey is None and path is not None:
        survey = read_survey(path, config)
    if params.fingerprints and (survey is None or survey.fingerprints is None):
        where = path if path is not None else "the site survey"
        raise ConfigError(
            f"ble_presence.fingerprints: {where} has no fingerprints; re-make it with "
            "`floorwalker calibrate survey` or set `fingerprints: false`"
        )
    return ZoneModel(
        config,
        params.sigma_db,
        survey,
        miss_probability=params.miss_probability,
        offset_sd_db=params.offset_sd_db,
        fingerprints=survey.fingerprints if params.fingerprints and survey is not None else None,
        fingerprint_sigma_db=params.fingerprint_sigma_db,
        fingerprint_k=params.fingerprint_k,
        fingerprint_mix=params.fingerprint_mix,
    )


def resolver_for(config: StoreConfig) -> EidResolver:
    """The store's resolver: consenting CRM members, minus revoked secrets."""
    p = config.ble_presence
    if p.secrets is None:
        raise ConfigError(
            "the store config has no `ble_presence.secrets` key file, so no member id can resolve"
        )
    if config.crm is None:
        raise ConfigError("the store config has no `crm` fixture, so there are no members to resolve")
    return EidResolver.from_fixture(
        read_key_file(p.secrets), read_fixture(config.crm), window_s=p.eid_window_s, skew_s=p.skew_tolerance_s
    )


class Fuser:
    """Pure-ish core of the process: messages in (with ``now``), presence events out."""

    def __init__(self, config: StoreConfig, resolver: EidResolver, topics: Topics) -> None:
        self.config = config
        self.topics = topics
        self.resolver = resolver
        params = FusionParams.from_config(config.ble_presence)
        self.fusion = ZoneFusion(zone_model_for(config, params), params)
        self._gateways = {g.id for g in config.gateways}
        self._source = EnvelopeSource(config.ble_presence.fuser)
        self.counters: Counter[str] = Counter()
        #: gateway -> its reports, resolved and unresolved sightings (the FuserStatus).
        self.ble_counts: dict[str, Counter[str]] = {}
        #: The reports' clock: the newest sighting time fused, when that report arrived
        #: (monotonic seconds), and the time of the last tick.
        self.clock: float | None = None
        self._arrived = 0.0
        self._ticked: float | None = None

    def subscriptions(self) -> list[tuple[str, int]]:
        return [
            (self.topics.subscription(TopicKind.BLE, self.config.store), 0),
            (self.topics.subscription(TopicKind.STATUS, self.config.store), 1),
            (self.topics.subscription(TopicKind.ERASURE, self.config.store), 1),
        ]

    def handle(
        self, topic: str, payload: bytes, now: float, arrived: float | None = None
    ) -> list[tuple[str, bytes]]:
        """One message; returns what to publish (a dead letter for a bad one, presence events
        when a report moves the reports' clock on). ``now`` stamps dead letters; ``arrived``
        (monotonic seconds) is when the message came, for the clock between reports."""
        try:
            message = decode(self.topics, topic, payload)
            if isinstance(message.payload, ErasureNotice):
                self.resolver.revoke(message.payload.member)  # erased: their ids resolve to nothing
                return []
            gateway = message.address.subject or ""
            if gateway not in self._gateways or message.payload.producer != gateway:
                raise ContractError(
                    RejectReason.UNKNOWN_PRODUCER,
                    f"{message.payload.producer!r} on {gateway!r} is not a gateway of {self.config.store!r}",
                )
            _check_times(message.payload, now, self.config.rules.max_future_skew_s)
        except ContractError as exc:
            self.counters[f"rejected:{exc.reason.value}"] += 1
            log.warning("rejected message on %s: %s", topic[:200], exc)
            record = dead_letter(self._source, now, topic, payload, exc)
            return [(self.topics.deadletter(self.config.store), encode(record))]
        body = message.payload
        if isinstance(body, GatewayStatus):
            self.fusion.gateway_state(gateway, body.state == "online")
        elif isinstance(body, BleReport):
            self.counters["reports"] += 1
            counts = self.ble_counts.setdefault(gateway, Counter())
            counts["reports"] += 1
            for s in body.sightings:
                member = self.resolver.resolve(s.eid, s.last_seen)
                if member is None:
                    self.counters["unresolved"] += 1  # not a consenting member, or too far off in time
                    counts["unresolved"] += 1
                    continue
                counts["resolved"] += 1
                self.fusion.observe(member, gateway, s.rssi_dbm, s.last_seen, s.moving)
            newest = max((s.last_seen for s in body.sightings), default=None)
            if newest is not None and (self.clock is None or newest > self.clock):
                self.clock = newest
                self._arrived = arrived if arrived is not None else 0.0
                if self._ticked is None or newest - self._ticked >= TICK_S:
                    return self.tick(newest)
        return []

    def report_time(self, monotonic: float) -> float | None:
        """The reports' clock at ``monotonic``: the newest report's time, moved on by the
        time since it arrived (None before the first report)."""
        return None if self.clock is None else self.clock + max(monotonic - self._arrived, 0.0)

    def tick(self, now: float) -> list[tuple[str, bytes]]:
        """Advance the fusion to ``now`` (report time; a time before the last tick is ignored)."""
        if self._ticked is not None and now <= self._ticked:
            return []
        self._ticked = now
        return [self._event(c) for c in self.fusion.tick(now)]

    def status(self, now: float) -> tuple[str, bytes]:
        """The retained :class:`FuserStatus` at ``now``: per gateway heard from, its reports
        and sightings resolved or not, since this fuser started. Counts only."""
        ble = {
            gw: GatewayBleCounts(reports=c["reports"], resolved=c["resolved"], unresolved=c["unresolved"])
            for gw, c in sorted(self.ble_counts.items())
        }
        body = self._source.make(FuserStatus, now, ble=ble)
        return self.topics.fuser_status(self.config.store, self.config.ble_presence.fuser), encode(body)

    def _event(self, change: ZoneChange) -> tuple[str, bytes]:
        self.counters[f"presence:{change.action}"] += 1
        event = self._source.make(
            PresenceEvent, change.ts, member=change.member, action=change.action, confidence=change.confidence
        )
        return self.topics.presence(self.config.store, change.zone), encode(event)


class FuserService:
    """The MQTT shell: messages on paho's thread, ticks on a timer thread, one lock."""

    def __init__(
        self,
        config: StoreConfig,
        endpoints: Endpoints,
        *,
        topic_prefix: str = "",
        auth: MqttAuth | None = None,
    ) -> None:
        self.core = Fuser(config, resolver_for(config), Topics(topic_prefix))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.link = MqttLink(
            endpoints.mqtt_host,
            endpoints.mqtt_port,
            client_id=f"{topic_prefix.replace('/', '-')}{config.ble_presence.fuser}",
            subscriptions=self.core.subscriptions(),
            on_message=self._receive,
            auth=auth,
        )

    def _receive(self, message: Received) -> bool:
        with self._lock:
            out = self.core.handle(message.topic, message.payload, time.time(), time.monotonic())
        self._publish(out)
        return True

    def _publish(self, out: list[tuple[str, bytes]]) -> None:
        for topic, payload in out:
            self.link.publish(topic, payload, qos=1)

    def _publish_status(self) -> None:
        with self._lock:
            topic, payload = self.core.status(time.time())
        self.link.publish(topic, payload, qos=1, retain=True)

    def run(self) -> None:
        """Connect and serve until :meth:`stop`."""
        self.link.connect()
        log.info("fuser for store %s serving on %s", self.core.config.store, self.link.url)
        next_stats = time.monotonic() + STATS_EVERY_S
        self._publish_status()
        next_status = time.monotonic() + STATUS_EVERY_S
        try:
            while not self._stop.wait(TICK_S):
                with self._lock:
                    now = self.core.report_time(time.monotonic())
                    out = [] if now is None else self.core.tick(now)
                self._publish(out)
                if time.monotonic() >= next_status:
                    next_status += STATUS_EVERY_S
                    self._publish_status()
                if time.monotonic() >= next_stats:
                    next_stats += STATS_EVERY_S
                    with self._lock:
                        counts = dict(self.core.counters) | dict(self.core.resolver.counters)
                    log.info("fuser: %s", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "idle")
        finally:
            self.link.close()

    def stop(self) -> None:
        self._stop.set()


def _check_times(body: object, now: float, max_skew_s: float) -> None:
    """A report (or status) dated ahead of ``now``, or a sighting heard in the future, is
    dead-lettered ``future_ts``: it would pin a member to a zone until that moment."""
    if isinstance(body, GatewayStatus | BleReport):
        check_not_future(body, now, max_skew_s)
    if isinstance(body, BleReport) and body.sightings:
        latest = max(s.last_seen for s in body.sightings)
        if latest > now + max_skew_s:
            raise ContractError(
                RejectReason.FUTURE_TS,
                f"a sighting is dated {latest - now:.0f} s ahead of this clock (allowed: {max_skew_s:.0f} s)",
            )
