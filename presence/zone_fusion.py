"""Zone fusion: which zone each member is in, from every gateway's smoothed RSSI.

Pure code with time passed in; the fuser process (:mod:`presence.fuser`) feeds it.

**Evidence.** Each gateway with a floor position predicts, for every cell of a 0.5 m grid
over the zones, the RSSI it would hear from a phone there (its calibrated log-distance
model). A member's fresh readings score each cell by their Gaussian log-likelihood
(``sigma_db`` per reading), and a zone's evidence is the log-sum over its cells. Even a
gateway standing on the border of two zones helps: the other gateways break the tie. A
store without a floor plan falls back to the strongest gateway's first zone.

**Decision.** A member's zone switches only when another zone's evidence leads the
current one by ``hysteresis`` and keeps leading for ``min_dwell_s`` (two equally strong
gateways therefore do not make the zone flap). Unheard by every gateway for
``away_timeout_s``: the member left ("away", a ``leave`` event). But when a gateway
covering the member's zone is offline, silence proves nothing: the state becomes
"unknown" — no event, and the current zone is kept until the member is heard again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import numpy as np
import numpy.typing as npt

from floorwalker import geometry
from floorwalker.config import BlePresenceConfig, StoreConfig
from presence.survey import SurveyMap

GRID_M = 0.5
#: A slight lead (this fraction of the hysteresis) that holds for ``settle_s`` also switches.
WEAK_LEAD = 0.25
#: Members in "unknown" this long are forgotten (no event): the visit's own TTL takes over.
FORGET_UNKNOWN_S = 900.0


class ZoneState(StrEnum):
    IN = "in"
    AWAY = "away"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ZoneChange:
    member: str
    zone: str
    action: Literal["enter", "leave"]
    ts: float
    confidence: float


@dataclass(frozen=True, slots=True)
class FusionParams:
    stale_s: float = 4.0
    hysteresis: float = 2.0
    min_dwell_s: float = 1.0
    away_timeout_s: float = 12.0
    sigma_db: float = 4.0
    settle_s: float = 4.0
    #: While the member app says the phone is walking (its motion hint), the zone may
    #: switch on these instead: someone walking is leaving, so a quick switch is right;
    #: a phone standing still (or without the hint) keeps the steady settings above.
    walking_hysteresis: float = 2.0
    walking_min_dwell_s: float = 0.5
    walking_settle_s: float = 2.0

    @classmethod
    def from_config(cls, p: BlePresenceConfig) -> FusionParams:
        # With a site survey the predictions are good to ~2.5 dB instead of ~4, so the
        # evidence may be sharper; the margin is wider in log-likelihood (about the same in
        # dB) and the dwell shorter. Tuned on RF-model seeds 3 and 4 (see the README).
        base = SURVEYED if p.survey is not None else cls()
        return cls(
            stale_s=p.stale_s,
            hysteresis=base.hysteresis if p.hysteresis is None else p.hysteresis,
            min_dwell_s=base.min_dwell_s if p.min_dwell_s is None else p.min_dwell_s,
            away_timeout_s=p.away_timeout_s,
            sigma_db=base.sigma_db if p.sigma_db is None else p.sigma_db,
            settle_s=p.settle_s,
            walking_hysteresis=_given(p.walking_hysteresis, base.walking_hysteresis),
            walking_min_dwell_s=_given(p.walking_min_dwell_s, base.walking_min_dwell_s),
            walking_settle_s=_given(p.walking_settle_s, base.walking_settle_s),
        )


def _given(value: float | None, default: float) -> float:
    return default if value is None else value


#: The defaults for a store with a site survey (``ble_presence.survey``).
SURVEYED = FusionParams(
    hysteresis=3.5, min_dwell_s=0.5, sigma_db=2.5, walking_hysteresis=1.0, walking_settle_s=1.0
)


class ZoneModel:
    """Per-zone evidence from a set of (gateway, smoothed RSSI) readings."""

    def __init__(self, config: StoreConfig, sigma_db: float = 4.0, survey: SurveyMap | None = None) -> None:
        self.zones = [z.id for z in config.zones]
        self.gateways = [g.id for g in config.gateways]
        self._gw_index = {g: i for i, g in enumerate(self.gateways)}
        self.covering = {z: [g.id for g in config.gateways if z in g.zones] for z in self.zones}
        self._fallback = [g.zones[0] for g in config.gateways]
        self._inv2var = 1.0 / (2.0 * sigma_db * sigma_db)
        positioned = all(g.position is not None for g in config.gateways)
        polygons = [z.polygon for z in config.zones]
        self.fingerprint = positioned and all(p is not None for p in polygons)
        self._pred: npt.NDArray[np.float64] = np.zeros((0, len(self.gateways)))
        self._cell_zone: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        if self.fingerprint:
            self._build_grid(config, survey)

    def _build_grid(self, config: StoreConfig, survey: SurveyMap | None) -> None:
        cells: list[tuple[float, float]] = []
        owner: list[int] = []
        for zi, zone in enumerate(config.zones):
            assert zone.polygon is not None
            xs = [p[0] for p in zone.polygon]
            ys = [p[1] for p in zone.polygon]
            x = min(xs) + GRID_M / 2
            while x < max(xs):
                y = min(ys) + GRID_M / 2
                while y < max(ys):
                    if geometry.contains(zone.polygon, (x, y)):
                        cells.append((x, y))
                        owner.append(zi)
                    y += GRID_M
                x += GRID_M
        pts = np.array(cells)
        pred = np.empty((len(cells), len(config.gateways)))
        for gi, gw in enumerate(config.gateways):
            assert gw.position is not None
            d = np.hypot(pts[:, 0] - gw.position[0], pts[:, 1] - gw.position[1])
            d = np.maximum(d, 0.5)
            pred[:, gi] = gw.ble.measured_power_dbm - 10.0 * gw.ble.path_loss_exponent * np.log10(d)
            if survey is not None:
                # What the site survey measured here beyond the path-loss model.
                pred[:, gi] += [survey.at(gw.id, x, y) for x, y in cells]
        self._pred = pred
        self._cell_zone = np.array(owner, dtype=np.int64)

    def scores(self, readings: dict[str, float]) -> npt.NDArray[np.float64]:
        """Log-evidence per zone (same order as ``self.zones``) for ``{gateway: rssi}``."""
        n = len(self.zones)
        if not self.fingerprint:
            out = np.full(n, -1e9)
            for gw, rssi in readings.items():
                zi = self.zones.index(self._fallback[self._gw_index[gw]])
                out[zi] = max(out[zi], rssi)
            return out
        idx = [self._gw_index[g] for g in readings]
        obs = np.fromiter(readings.values(), dtype=np.float64, count=len(idx))
        err = self._pred[:, idx] - obs
        ll = -(err * err).sum(axis=1) * self._inv2var
        top = ll.max()
        w = np.exp(ll - top)
        per_zone = np.bincount(self._cell_zone, weights=w, minlength=n)
        with np.errstate(divide="ignore"):
            result: npt.NDArray[np.float64] = np.log(per_zone) + top
        return result


@dataclass(slots=True)
class _Member:
    readings: dict[str, tuple[float, float]] = field(default_factory=dict)  # gateway -> (rssi, ts)
    zone: str | None = None
    state: ZoneState = ZoneState.AWAY
    candidate: str | None = None
    candidate_since: float = 0.0
    last_heard: float = 0.0
    unknown_since: float | None = None
    strong_since: float | None = None
    #: The app's latest motion hint (None: its frames carry none) and when it was heard.
    moving: bool | None = None
    moving_ts: float = 0.0


class ZoneFusion:
    def __init__(self, model: ZoneModel, params: FusionParams, *, max_members: int = 10_000) -> None:
        self.model = model
        self.params = params
        self.max_members = max_members
        self._members: dict[str, _Member] = {}
        #: gateway -> online? (from its retained status; a report also proves it is up)
        self._online: dict[str, bool] = {}

    # -- inputs ------------------------------------------------------------------------

    def gateway_state(self, gateway: str, online: bool) -> None:
        self._online[gateway] = online

    def observe(self, member: str, gateway: str, rssi: float, ts: float, moving: bool | None = None) -> None:
        """A gateway's smoothed reading of ``member`` (and the app's motion hint, if any)."""
        self._online[gateway] = True
        m = self._members.get(member)
        if m is None:
            if len(self._members) >= self.max_members:
                self._drop_oldest()
            m = self._members[member] = _Member()
        prev = m.readings.get(gateway)
        if prev is None or ts >= prev[1]:
            m.readings[gateway] = (rssi, ts)
        m.last_heard = max(m.last_heard, ts)
        if moving is not None and ts >= m.moving_ts:
            m.moving, m.moving_ts = moving, ts

    def _drop_oldest(self) -> None:
        oldest = min(self._members, key=lambda k: self._members[k].last_heard)
        del self._members[oldest]

    # -- outputs -----------------------------------------------------------------------

    def state_of(self, member: str) -> tuple[ZoneState, str | None]:
        m = self._members.get(member)
        return (ZoneState.AWAY, None) if m is None else (m.state, m.zone)

    def members(self) -> list[str]:
        return list(self._members)

    def _observable(self, zone: str) -> bool:
        return any(self._online.get(g, False) for g in self.model.covering[zone])

    def tick(self, now: float) -> list[ZoneChange]:
        """Advance every member to ``now``; return the enter/leave events that result."""
        changes: list[ZoneChange] = []
        gone: list[str] = []
        for ref, m in self._members.items():
            if self._tick_member(ref, m, now, changes):
                gone.append(ref)
        for ref in gone:
            del self._members[ref]
        return changes

    def _tick_member(self, ref: str, m: _Member, now: float, out: list[ZoneChange]) -> bool:
        """One member; True when its state can be forgotten."""
        p = self.params
        fresh = {
            g: r for g, (r, t) in m.readings.items() if now - t <= p.stale_s and self._online.get(g, False)
        }
        if m.zone is not None and not self._observable(m.zone):
            return self._unknown(m, now)
        if not fresh:
            if now - m.last_heard < p.away_timeout_s:
                return False
            if m.zone is None:
                return True
            if any(not self._online.get(g, False) for g in self.model.gateways):
                # Someone who might hear them is down: do not claim they left.
                return self._unknown(m, now)
            out.append(ZoneChange(ref, m.zone, "leave", now, 1.0))
            return True
        scores = self.model.scores(fresh)
        best_i = int(np.argmax(scores))
        best = self.model.zones[best_i]
        if not self._observable(best):
            return self._unknown(m, now)
        m.unknown_since = None
        if m.moving and now - m.moving_ts <= p.stale_s:  # a fresh hint: walking
            hysteresis, min_dwell, settle = p.walking_hysteresis, p.walking_min_dwell_s, p.walking_settle_s
        else:
            hysteresis, min_dwell, settle = p.hysteresis, p.min_dwell_s, p.settle_s
        if m.zone is not None:
            m.state = ZoneState.IN
            lead = float(scores[best_i] - scores[self.model.zones.index(m.zone)])
            if best == m.zone or lead < hysteresis * WEAK_LEAD:
                m.candidate, m.strong_since = None, None
                return False
            if m.candidate != best:
                m.candidate, m.candidate_since, m.strong_since = best, now, None
            if lead < hysteresis:
                m.strong_since = None
            elif m.strong_since is None:
                m.strong_since = now
            # A clear lead for min_dwell_s, or a slight one that never lapses for settle_s
            # (someone standing just inside a zone, near its border).
            clear = m.strong_since is not None and now - m.strong_since >= min_dwell
            if not clear and now - m.candidate_since < settle:
                return False
        else:
            if m.candidate != best:
                m.candidate, m.candidate_since = best, now
            if now - m.candidate_since < min_dwell:
                return False
        confidence = _share(scores, best_i)
        if m.zone is not None:
            out.append(ZoneChange(ref, m.zone, "leave", now, confidence))
        out.append(ZoneChange(ref, best, "enter", now, confidence))
        m.zone, m.state, m.candidate = best, ZoneState.IN, None
        return False

    def _unknown(self, m: _Member, now: float) -> bool:
        m.state = ZoneState.UNKNOWN
        if m.unknown_since is None:
            m.unknown_since = now
        return now - m.unknown_since > FORGET_UNKNOWN_S


def _share(scores: npt.NDArray[np.float64], i: int) -> float:
    """The zone's share of the evidence (softmax), rounded: the event's confidence."""
    finite = scores[np.isfinite(scores)]
    if finite.size == 0:
        return 0.0
    top = float(finite.max())
    total = float(np.exp(finite - top).sum())
    return round(math.exp(float(scores[i]) - top) / total, 3)
