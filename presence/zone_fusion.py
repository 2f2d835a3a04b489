"""Zone fusion: which zone each member is in, from every gateway's smoothed RSSI.

Pure code with time passed in (the time of the reports being fused, never a clock); the
fuser process (:mod:`presence.fuser`) feeds it.

**Evidence.** Each gateway with a floor position predicts, for every cell of a 0.5 m grid
over the zones, the RSSI it would hear from a phone there (its calibrated log-distance
model, plus the site survey's residual when there is one). A fresh reading scores each
cell by its Gaussian log-likelihood (``sigma_db``). A gateway that is online and does
*not* hear the member is evidence too: a cell where it would expect a phone well above
its ``sensitivity_dbm`` is unlikely (the probability of missing a phone there, censored at
the sensitivity, never below ``miss_probability``: adverts are lost, phones advertise
slowly).

**Time filter.** Each member carries a posterior over the cells (a grid-based Bayes
filter, i.e. an HMM whose states are the cells): between updates it spreads at walking
speed (``speed_m_s``) and leaks a little towards "anywhere" (``jump_per_s``); every tick
with fresh readings it is multiplied by the evidence, weighted by the time since the last
update over ``evidence_s`` (the gateways' readings are smoothed, so one reading is not
independent of the next). A zone's score is its share of the posterior (log). Through a
gap of several seconds without readings the posterior simply stays where it was.
A store without a floor plan falls back to the strongest gateway's first zone.

**Fingerprints** (``FusionParams.fingerprints``, with a survey that kept them: see
:mod:`presence.survey`). Each survey fingerprint is a point of the walk with the RSSI
every gateway heard there; a gateway that heard nothing reads as its ``sensitivity_dbm``
floor. The readings score each fingerprint like a cell above (Gaussian,
``fingerprint_sigma_db``; a silent gateway by the chance of missing the phone given the
fingerprint's value), only the ``fingerprint_k`` best count (a kernel k-nearest-neighbour
estimate), and a zone's fingerprint evidence is the log of the summed likelihood of
its fingerprints among them (a zone with none of them: its best fingerprint's). It
replaces the path-loss evidence, or is added to ``fingerprint_mix`` times it. The time
filter (``time_filter``) stays on the path-loss grid.

**Decision.** A member's zone switches only when another zone's score leads the
current one by ``hysteresis`` and keeps leading for ``min_dwell_s`` (two equally strong
gateways therefore do not make the zone flap), or by a quarter of it for ``settle_s``;
the ``walking_*`` settings while the app's motion hint has said "walking" for
``walking_confirm_s``. For a phone whose hint says it is not walking, the clear lead must
instead add up: each zone's lead less a quarter of the margin, summed over time (a CUSUM),
must reach what the margin held for ``settle_s`` gives, since the smoothed readings wobble
together for a second or so and two ticks past the margin prove little. Unheard by
every gateway for ``away_timeout_s``: the member left ("away", a ``leave`` event). But when a gateway
covering the member's zone is offline, silence proves nothing: the state becomes
"unknown" — no event, and the current zone is kept until the member is heard again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.ndimage import gaussian_filter  # type: ignore[import-untyped]
from scipy.special import log_ndtr  # type: ignore[import-untyped]

from floorwalker import geometry
from floorwalker.config import BlePresenceConfig, StoreConfig
from presence.survey import Fingerprints, SurveyMap

GRID_M = 0.5
#: The time filter spreads a member's position by at most this much between two updates.
MAX_SPREAD_M = 4.0
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
    #: The hint must have said "walking" this long, with no "still" between, before the
    #: walking settings apply: a step detector's odd wrong "walking" on a phone standing
    #: still (one advert, gone by the next report) does not give it the quick settings.
    walking_confirm_s: float = 0.5
    #: The time filter: how fast a member may move (m/s), how much of the posterior
    #: leaks to "anywhere" per second, and how long one snapshot of readings counts for.
    speed_m_s: float = 1.0
    jump_per_s: float = 0.02
    evidence_s: float = 1.0
    #: The chance that a gateway which should hear the phone reports nothing anyway.
    miss_probability: float = 0.2
    #: On: decide on the time filter's posterior; off (the default): on each tick's evidence
    #: alone. On the development data the filter did not beat the snapshot (bench/README.md).
    time_filter: bool = False
    #: On: decide on a forward filter over the zones (an HMM whose states are the zones):
    #: each tick's zone evidence times the previous posterior, which may switch zone at
    #: ``switch_per_s``; the zone changes when another zone's posterior leads the current
    #: one by ``switch_margin`` (log-odds), without dwell timers. Off: hysteresis and dwell.
    zone_filter: bool = False
    switch_per_s: float = 0.1
    switch_margin: float = 1.0
    #: The spread (dB) of an unknown offset common to all gateways' readings of one phone
    #: (its own transmit power and antenna): the evidence is marginalised over it, so the
    #: phone is located by the differences between gateways. 0: no offset (the calibrated
    #: power is the phone's).
    offset_sd_db: float = 0.0
    #: On (with a survey that kept fingerprints): score each tick's readings against the
    #: survey's fingerprints (kernel kNN: the ``fingerprint_k`` most likely fingerprints,
    #: Gaussian of width ``fingerprint_sigma_db``), plus ``fingerprint_mix`` times the
    #: path-loss evidence (0: the fingerprints alone).
    fingerprints: bool = False
    fingerprint_sigma_db: float = 4.0
    fingerprint_k: int = 20
    fingerprint_mix: float = 0.0

    def __post_init__(self) -> None:
        if not (self.fingerprint_sigma_db > 0 and math.isfinite(self.fingerprint_sigma_db)):
            raise ValueError(f"fingerprint_sigma_db: must be positive (got {self.fingerprint_sigma_db})")
        if self.fingerprint_k < 1:
            raise ValueError(f"fingerprint_k: must be at least 1 (got {self.fingerprint_k})")
        if not (0.0 <= self.fingerprint_mix <= 10.0):
            raise ValueError(f"fingerprint_mix: must be within 0..10 (got {self.fingerprint_mix})")

    @classmethod
    def from_config(cls, p: BlePresenceConfig) -> FusionParams:
        # With a site survey the predictions are good to ~2.5 dB instead of ~4, so the
        # evidence may be sharper; the margin is wider in log-likelihood (about the same in
        # dB) and the dwell shorter. Tuned on RF-model seeds 3 and 4 (see docs/ble.md).
        if p.survey is None:
            base = cls()
        elif p.fingerprints:
            base = FINGERPRINTED
        else:
            base = SURVEYED
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
            fingerprints=base.fingerprints,
            fingerprint_sigma_db=_given(p.fingerprint_sigma_db, base.fingerprint_sigma_db),
            fingerprint_k=base.fingerprint_k if p.fingerprint_k is None else p.fingerprint_k,
        )


def _given(value: float | None, default: float) -> float:
    return default if value is None else value


#: The defaults for a store with a site survey (``ble_presence.survey``).
SURVEYED = FusionParams(
    hysteresis=3.5, min_dwell_s=0.5, sigma_db=2.5, walking_hysteresis=1.0, walking_settle_s=1.0
)
#: The defaults with survey fingerprints (``ble_presence.fingerprints``): a margin of 2,
#: chosen held out on the real development data's calibration run (bench/README.md).
FINGERPRINTED = replace(SURVEYED, fingerprints=True, hysteresis=2.0)


class ZoneModel:
    """Per-zone evidence from a set of (gateway, smoothed RSSI) readings."""

    def __init__(
        self,
        config: StoreConfig,
        sigma_db: float = 4.0,
        survey: SurveyMap | None = None,
        *,
        miss_probability: float = 0.2,
        offset_sd_db: float = 0.0,
        fingerprints: Fingerprints | None = None,
        fingerprint_sigma_db: float = 4.0,
        fingerprint_k: int = 20,
        fingerprint_mix: float = 0.0,
    ) -> None:
        self.zones = [z.id for z in config.zones]
        self.gateways = [g.id for g in config.gateways]
        self._gw_index = {g: i for i, g in enumerate(self.gateways)}
        self.covering = {z: [g.id for g in config.gateways if z in g.zones] for z in self.zones}
        self._fallback = [g.zones[0] for g in config.gateways]
        self.sigma_db = sigma_db
        self._inv2var = 1.0 / (2.0 * sigma_db * sigma_db)
        self._log_miss = math.log(miss_probability)
        self._miss = miss_probability
        #: tau², the common offset's prior variance (0: no offset).
        self._offset_var = offset_sd_db * offset_sd_db
        self._sensitivity = np.array([g.ble.sensitivity_dbm for g in config.gateways])
        positioned = all(g.position is not None for g in config.gateways)
        polygons = [z.polygon for z in config.zones]
        self.fingerprint = positioned and all(p is not None for p in polygons)
        self._pred: npt.NDArray[np.float64] = np.zeros((0, len(self.gateways)))
        self._cell_zone: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        #: The cells on a dense (nx, ny) raster (for the time filter's spreading).
        self._cell_ix: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._cell_iy: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._shape = (0, 0)
        if self.fingerprint:
            self._build_grid(config, survey)
        #: Survey fingerprints inside a zone: RSSI per gateway (unheard: the floor), zone.
        self._fp_sigma = fingerprint_sigma_db
        self._fp_k = fingerprint_k
        self._fp_mix = fingerprint_mix
        self._fp: npt.NDArray[np.float64] | None = None
        self._fp_zone: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        if fingerprints is not None:
            self._build_fingerprints(config, fingerprints)

    @property
    def uses_fingerprints(self) -> bool:
        return self._fp is not None

    def _build_fingerprints(self, config: StoreConfig, fp: Fingerprints) -> None:
        rows: list[int] = []
        owner: list[int] = []
        for i, (x, y) in enumerate(fp.xy):
            zone = config.zone_at((float(x), float(y)))
            if zone is not None:
                rows.append(i)
                owner.append(self.zones.index(zone.id))
        if not rows:
            return
        table = np.empty((len(rows), len(self.gateways)))
        col = {g: j for j, g in enumerate(fp.gateways)}
        for gi, gw in enumerate(self.gateways):
            j = col.get(gw)
            # A gateway the survey did not cover: as if it never heard (its floor).
            values = fp.rssi[rows, j] if j is not None else np.full(len(rows), np.nan)
            table[:, gi] = np.where(np.isnan(values), self._sensitivity[gi], values)
        self._fp = table
        self._fp_zone = np.array(owner, dtype=np.int64)

    @property
    def cells(self) -> int:
        return len(self._cell_zone)

    def _build_grid(self, config: StoreConfig, survey: SurveyMap | None) -> None:
        cells: list[tuple[float, float]] = []
        owner: list[int] = []
        for zi, zone in enumerate(config.zones):
            assert zone.polygon is not None
            xs = [p[0] for p in zone.polygon]
            ys = [p[1] for p in zone.polygon]
            # Cells on one raster for the whole floor (centres at (i + ½) · GRID_M).
            x = (math.floor(min(xs) / GRID_M) + 0.5) * GRID_M
            while x < max(xs):
                y = (math.floor(min(ys) / GRID_M) + 0.5) * GRID_M
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
        ix = np.floor(pts[:, 0] / GRID_M).astype(np.int64)
        iy = np.floor(pts[:, 1] / GRID_M).astype(np.int64)
        self._cell_ix, self._cell_iy = ix - ix.min(), iy - iy.min()
        self._shape = (int(self._cell_ix.max()) + 1, int(self._cell_iy.max()) + 1)

    def fingerprint_scores(
        self, readings: dict[str, float], silent: Iterable[str] = ()
    ) -> npt.NDArray[np.float64]:
        """Per-zone log-likelihood from the fingerprints: the log of the summed likelihood
        of the zone's fingerprints among the ``fingerprint_k`` most likely ones, or, for a
        zone with none of those, its single most likely fingerprint's (so every zone has a
        finite score on the same scale as :meth:`loglik`'s)."""
        assert self._fp is not None
        ll = _gauss_loglik(
            self._fp,
            [self._gw_index[g] for g in readings],
            np.fromiter(readings.values(), dtype=np.float64, count=len(readings)),
            [self._gw_index[g] for g in silent],
            self._sensitivity,
            self._fp_sigma,
            self._miss,
        )
        n = len(self.zones)
        best = np.full(n, -np.inf)
        np.maximum.at(best, self._fp_zone, ll)
        keep = np.argsort(-ll, kind="stable")[: self._fp_k]
        top = float(ll[keep[0]])
        summed = np.bincount(self._fp_zone[keep], weights=np.exp(ll[keep] - top), minlength=n)
        with np.errstate(divide="ignore"):
            result: npt.NDArray[np.float64] = np.where(summed > 0, np.log(summed) + top, best)
        return result

    def loglik(self, readings: dict[str, float], silent: Iterable[str] = ()) -> npt.NDArray[np.float64]:
        """Per-cell log-likelihood of ``{gateway: rssi}`` and of ``silent`` gateways hearing nothing."""
        idx = [self._gw_index[g] for g in readings]
        obs = np.fromiter(readings.values(), dtype=np.float64, count=len(idx))
        err = self._pred[:, idx] - obs
        ll: npt.NDArray[np.float64] = -(err * err).sum(axis=1) * self._inv2var
        shift: npt.NDArray[np.float64] | float = 0.0
        if self._offset_var > 0 and idx:
            # Marginalise a common offset b ~ N(0, tau²) (obs = pred + b + noise): the
            # posterior mean of b per cell, and the sum of squares less its explained part.
            k = 1.0 / (len(idx) + self.sigma_db**2 / self._offset_var)
            total = err.sum(axis=1)
            ll = ll + total * total * k * self._inv2var
            shift = -total * k
        quiet = [self._gw_index[g] for g in silent]
        if quiet:
            # P(unheard | cell) = miss + (1 - miss) · P(rssi < sensitivity | cell)
            pred = self._pred[:, quiet] + (shift[:, None] if isinstance(shift, np.ndarray) else shift)
            z = (self._sensitivity[quiet] - pred) / self.sigma_db
            below = np.exp(log_ndtr(z))
            ll = ll + np.log(self._miss + (1.0 - self._miss) * below).sum(axis=1)
        return ll

    def zone_log(self, logp: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Per-zone log of the summed (unnormalized) cell probabilities ``exp(logp)``."""
        top = logp.max()
        per_zone = np.bincount(self._cell_zone, weights=np.exp(logp - top), minlength=len(self.zones))
        with np.errstate(divide="ignore"):
            result: npt.NDArray[np.float64] = np.log(per_zone) + top
        return result

    def spread(
        self, logp: npt.NDArray[np.float64], dt: float, params: FusionParams
    ) -> npt.NDArray[np.float64]:
        """The time filter's prediction: ``dt`` seconds of walking (and a small jump anywhere)."""
        if dt <= 0:
            return logp
        p = np.exp(logp - logp.max())
        sigma_cells = min(params.speed_m_s * dt, MAX_SPREAD_M) / GRID_M
        if sigma_cells > 0.2:
            raster = np.zeros(self._shape)
            raster[self._cell_ix, self._cell_iy] = p
            mask = np.zeros(self._shape)
            mask[self._cell_ix, self._cell_iy] = 1.0
            blurred = gaussian_filter(raster, sigma_cells, mode="constant", truncate=3.0)
            norm = gaussian_filter(mask, sigma_cells, mode="constant", truncate=3.0)
            p = blurred[self._cell_ix, self._cell_iy] / np.maximum(norm[self._cell_ix, self._cell_iy], 1e-9)
        p = p / p.sum()
        leak = 1.0 - math.exp(-params.jump_per_s * dt)
        p = (1.0 - leak) * p + leak / len(p)
        result: npt.NDArray[np.float64] = np.log(p)
        return result

    def scores(self, readings: dict[str, float], silent: Iterable[str] = ()) -> npt.NDArray[np.float64]:
        """Log-evidence per zone (same order as ``self.zones``) for ``{gateway: rssi}``
        (and the ``silent`` gateways), from these readings alone."""
        n = len(self.zones)
        if not self.fingerprint:
            out = np.full(n, -1e9)
            for gw, rssi in readings.items():
                zi = self.zones.index(self._fallback[self._gw_index[gw]])
                out[zi] = max(out[zi], rssi)
            return out
        if self._fp is None:
            return self.zone_log(self.loglik(readings, silent))
        silent = list(silent)
        fp = self.fingerprint_scores(readings, silent)
        if self._fp_mix > 0:
            grid = self.zone_log(self.loglik(readings, silent))
            fp = fp + self._fp_mix * (grid - grid.max())
        return fp


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
    #: The app's latest motion hint (None: its frames carry none) and when it was heard,
    #: and since when it has said "walking" without a "still" between (None: it has not).
    moving: bool | None = None
    moving_ts: float = 0.0
    walking_since: float | None = None
    #: Per zone, its lead over the member's zone summed over time, less a drift, never
    #: below 0 (a CUSUM; None until the member is in a zone with a fresh motion hint), and
    #: the time of the member's last tick.
    lead_sums: npt.NDArray[np.float64] | None = None
    lead_ts: float | None = None
    #: The time filter's log-posterior over the model's cells, and when it was updated.
    posterior: npt.NDArray[np.float64] | None = None
    updated: float | None = None
    #: The zone filter's log-posterior over the zones, and when it was updated.
    zone_post: npt.NDArray[np.float64] | None = None
    zone_updated: float | None = None


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
            if not moving:
                m.walking_since = None
            elif m.walking_since is None:
                m.walking_since = ts
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
        scores = self._evidence(m, fresh, now)
        best_i = int(np.argmax(scores))
        best = self.model.zones[best_i]
        if not self._observable(best):
            return self._unknown(m, now)
        m.unknown_since = None
        if p.zone_filter and self.model.fingerprint:
            if m.zone is not None:
                m.state = ZoneState.IN
                if (
                    best == m.zone
                    or scores[best_i] - scores[self.model.zones.index(m.zone)] < p.switch_margin
                ):
                    return False
            confidence = _share(scores, best_i)
            if m.zone is not None:
                out.append(ZoneChange(ref, m.zone, "leave", now, confidence))
            out.append(ZoneChange(ref, best, "enter", now, confidence))
            m.zone, m.state, m.candidate = best, ZoneState.IN, None
            return False
        hinted = m.moving is not None and now - m.moving_ts <= p.stale_s  # a fresh hint
        walking = hinted and m.walking_since is not None and now - m.walking_since >= p.walking_confirm_s
        if walking:
            hysteresis, min_dwell, settle = p.walking_hysteresis, p.walking_min_dwell_s, p.walking_settle_s
        else:
            hysteresis, min_dwell, settle = p.hysteresis, p.min_dwell_s, p.settle_s
        if m.zone is not None:
            m.state = ZoneState.IN
            zi = self.model.zones.index(m.zone)
            lead_sums = None
            if hinted:  # the sums count only for a phone that gives the hint
                lead_sums = self._sum_leads(m, scores, zi, hysteresis * WEAK_LEAD, now)
            else:
                m.lead_sums, m.lead_ts = None, now
            lead = float(scores[best_i] - scores[zi])
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
            if lead_sums is not None and not walking:
                # Known to stand still: the smoothed readings wobble together for a second
                # or so, so two ticks past the margin prove little. Instead the lead, summed
                # over time less a quarter of the margin, must reach what the margin held
                # for settle_s gives (still no sooner than min_dwell_s).
                summed = lead_sums[best_i] >= (hysteresis - hysteresis * WEAK_LEAD) * settle
                clear = summed and now - m.candidate_since >= min_dwell
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
        m.lead_sums, m.lead_ts = None, now
        return False

    def _sum_leads(
        self, m: _Member, scores: npt.NDArray[np.float64], zi: int, drift: float, now: float
    ) -> npt.NDArray[np.float64]:
        """Add this tick to each zone's summed lead over the member's zone (index ``zi``):
        its lead less ``drift``, times the time since the last tick (at most ``evidence_s``,
        one snapshot's worth), never below 0 (a CUSUM). A lead that wobbles about 0 drifts
        back to 0; a steady one adds up."""
        finite = np.where(np.isfinite(scores), scores, -1e9)
        last = m.lead_ts
        dt = self.params.evidence_s if last is None else min(max(now - last, 0.0), self.params.evidence_s)
        sums = np.zeros(len(scores)) if m.lead_sums is None else m.lead_sums
        m.lead_sums = np.maximum(0.0, sums + (finite - finite[zi] - drift) * dt)
        m.lead_ts = now
        return m.lead_sums

    def _evidence(self, m: _Member, fresh: dict[str, float], now: float) -> npt.NDArray[np.float64]:
        """Zone scores: the time filter's posterior (or this tick's evidence alone)."""
        model, p = self.model, self.params
        if not model.fingerprint:
            return model.scores(fresh)
        silent = [g for g in model.gateways if g not in fresh and self._online.get(g, False)]
        if p.zone_filter:
            return self._zone_filter(m, model.scores(fresh, silent), now)
        if not p.time_filter:
            return model.scores(fresh, silent)
        ll = model.loglik(fresh, silent)
        if m.posterior is None or m.updated is None:
            m.posterior = ll - ll.max()
        else:
            dt = now - m.updated
            weight = min(max(dt, 0.0) / p.evidence_s, 1.0)
            post = model.spread(m.posterior, dt, p) + weight * ll
            m.posterior = post - post.max()
        m.updated = now
        return model.zone_log(m.posterior)

    def _zone_filter(
        self, m: _Member, evidence: npt.NDArray[np.float64], now: float
    ) -> npt.NDArray[np.float64]:
        """One forward step of the zone HMM: stay with probability exp(-switch_per_s · dt),
        else move to any other zone alike; then weigh by this tick's evidence."""
        finite = np.where(np.isfinite(evidence), evidence, -1e9)
        ll = finite - finite.max()
        if m.zone_post is None or m.zone_updated is None:
            post = ll
        else:
            dt = min(max(now - m.zone_updated, 0.0), self.params.stale_s)
            stay = math.exp(-self.params.switch_per_s * dt)
            prior = np.exp(m.zone_post)
            n = len(prior)
            moved = (1.0 - prior) / max(n - 1, 1)
            post = np.log(np.maximum(stay * prior + (1.0 - stay) * moved, 1e-300)) + ll
        top = post.max()
        post = post - (top + math.log(float(np.exp(post - top).sum())))
        result: npt.NDArray[np.float64] = post
        m.zone_post, m.zone_updated = result, now
        return result

    def _unknown(self, m: _Member, now: float) -> bool:
        m.state = ZoneState.UNKNOWN
        if m.unknown_since is None:
            m.unknown_since = now
        return now - m.unknown_since > FORGET_UNKNOWN_S


def _gauss_loglik(
    pred: npt.NDArray[np.float64],
    idx: list[int],
    obs: npt.NDArray[np.float64],
    quiet: list[int],
    sensitivity: npt.NDArray[np.float64],
    sigma_db: float,
    miss: float,
) -> npt.NDArray[np.float64]:
    """Per row of ``pred`` (rows: places, columns: gateways): the Gaussian log-likelihood
    of readings ``obs`` at gateways ``idx``, and of gateways ``quiet`` hearing nothing
    (missed, or below their sensitivity)."""
    err = pred[:, idx] - obs
    ll: npt.NDArray[np.float64] = -(err * err).sum(axis=1) / (2.0 * sigma_db * sigma_db)
    if quiet:
        z = (sensitivity[quiet] - pred[:, quiet]) / sigma_db
        ll = ll + np.log(miss + (1.0 - miss) * np.exp(log_ndtr(z))).sum(axis=1)
    return ll


def _share(scores: npt.NDArray[np.float64], i: int) -> float:
    """The zone's share of the evidence (softmax), rounded: the event's confidence."""
    finite = scores[np.isfinite(scores)]
    if finite.size == 0:
        return 0.0
    top = float(finite.max())
    total = float(np.exp(finite - top).sum())
    return round(math.exp(float(scores[i]) - top) / total, 3)
