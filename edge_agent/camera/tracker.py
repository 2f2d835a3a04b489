"""Multi-person tracking with stable ids, ByteTrack style, in numpy and scipy.

Each frame's detections are matched to tracks in rounds, each an optimal assignment
(``scipy.optimize.linear_sum_assignment``) over a cost that adds the boxes' overlap, the
distance from the track's predicted position and, when the detections carry an
appearance vector (see :mod:`edge_agent.camera.appearance`), how different they look: first
the confident detections (score >= ``high_score``) against every track seen last time,
then the weak ones (a person half hidden behind another gives a low score) against the
tracks still unmatched (weak boxes keep a track alive), then confident leftovers against
*lost* tracks by distance. A pair is allowed when the boxes overlap enough or the
detection lies within a gate around the prediction that grows with
the time since the track was last seen (``gate`` + ``max_speed`` x seconds, in track
heights), so a camera at 5-7 fps, where a walker moves further than their own width
between frames, keeps its ids. For weak boxes the gate grows only at the track's own
measured speed: someone standing does not take a neighbour's weak box. Two neighbours
walking side by side stay apart because the assignment is joint, not greedy, and because
their clothes differ.

A weak box nobody claimed may start a *candidate* track, but only one that overlaps no one
tracked in this frame; the candidate is fed weak boxes only (never a confident box, which
goes to the tracks and starts its own track as before) and is confirmed on its
``weak_start_hits``-th consecutive match only if its box has moved ``weak_start_move`` of its
height by then; otherwise it is dropped (a static false positive jitters, it does not walk).
So someone whom the detector only ever sees weakly (dark clothes, half hidden) is still
counted, and a confident start works as before.

Tracks move by constant-velocity prediction (velocity smoothed, per second); a track that
goes unseen is kept "lost" for ``lost_s`` seconds. A track id is an integer from 1 up,
issued when a track is confirmed (``confirm_hits`` matches) and never reused; each track
also reports the box it was first detected with (``origin``), so a line counter knows
which side someone came from even when they were confirmed on the line. Time is passed
in; nothing here reads a clock. The number of tracks is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field
from scipy.optimize import linear_sum_assignment  # type: ignore[import-untyped]

from edge_agent.camera.detector import Detections, FloatArray


class TrackerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Detections at or above this start tracks and match first.
    high_score: float = Field(default=0.5, gt=0, le=1)
    #: Detections between this and ``high_score`` only extend existing tracks.
    low_score: float = Field(default=0.2, gt=0, le=1)
    #: Minimum overlap (IoU of the predicted box with a detection) to match.
    match_iou: float = Field(default=0.2, gt=0, lt=1)
    #: Consecutive matches before a new track is confirmed and gets an id.
    confirm_hits: int = Field(default=2, ge=1, le=10)
    #: How long an unseen track is kept for re-identification by position.
    lost_s: float = Field(default=2.5, ge=0, le=30)
    #: Round 3: a confident detection nobody claimed picks up a *lost* track when its centre
    #: is within this many track heights of the track's predicted centre (and its height
    #: within ``reid_height_ratio`` of the track's). IoU alone fails after a long occlusion:
    #: the prediction drifts off the person and the overlap is zero, so the person came back
    #: under a new id and a crossing made while hidden was never counted. 0 turns it off.
    reid_distance: float = Field(default=0.6, ge=0, le=5)
    reid_height_ratio: float = Field(default=1.5, ge=1, le=5)
    #: A lost track's prediction moves on for at most this long, then waits where it got to
    #: (a velocity estimated from boxes that merged as people overlapped is often wrong).
    predict_s: float = Field(default=1.0, ge=0, le=30)
    #: Weight of the newest velocity sample (0..1]; lower is smoother.
    velocity_smoothing: float = Field(default=0.5, gt=0, le=1)
    #: Distance gate around a track's prediction, in track heights: ``gate`` plus
    #: ``max_speed`` (heights per second) times the seconds since it was last seen. For a
    #: weak detection (round 2) a track grows it at its own measured speed, at most ``max_speed``.
    gate: float = Field(default=0.35, ge=0, le=5)
    max_speed: float = Field(default=1.2, ge=0, le=10)
    #: Weight of the appearance difference in the matching cost (0: positions only), and
    #: the largest difference a distance-gated (not overlapping) pair may have.
    appearance_weight: float = Field(default=3.0, ge=0, le=10)
    max_appearance: float = Field(default=0.25, gt=0, le=2)
    #: Weight of the appearance vector's newest sample in a track's running mean.
    appearance_smoothing: float = Field(default=0.3, gt=0, le=1)
    max_tracks: int = Field(default=200, ge=1, le=10_000)
    #: A run of weak detections (below ``high_score``) nobody claimed starts a candidate
    #: track, confirmed on its ``weak_start_hits``-th consecutive match if its box's centre
    #: has moved at least ``weak_start_move`` of its height since the first, else dropped
    #: (0 hits: weak boxes never start a track). A weak box overlapping (IoU >=
    #: ``weak_start_overlap``) anyone matched in this frame starts nothing. Chosen on the
    #: development lines of vtest.avi (bench/README.md, 2026-12-08).
    weak_start_hits: int = Field(default=3, ge=0, le=20)
    weak_start_move: float = Field(default=0.15, ge=0, le=5)
    weak_start_overlap: float = Field(default=0.2, gt=0, le=1)


@dataclass(frozen=True, slots=True)
class Track:
    """A confirmed person, as seen after one update."""

    id: int
    box: tuple[float, float, float, float]  # x0, y0, x1, y1, pixels
    score: float
    #: Seen in this frame (False: predicted while lost).
    seen: bool
    #: The box the person was first detected with (before the track was confirmed).
    origin: tuple[float, float, float, float] | None = None

    @property
    def feet(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, self.box[3])

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)

    @property
    def origin_feet(self) -> tuple[float, float]:
        b = self.origin or self.box
        return ((b[0] + b[2]) / 2, b[3])

    @property
    def origin_centre(self) -> tuple[float, float]:
        b = self.origin or self.box
        return ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)


@dataclass(slots=True)
class _State:
    box: FloatArray  # x0, y0, x1, y1
    velocity: FloatArray  # d(box)/dt, pixels per second
    score: float
    last_t: float
    hits: int = 1
    id: int = 0  # 0 until confirmed; confirmed tracks always have id >= 1
    seen: bool = True
    predicted: FloatArray = field(default_factory=lambda: np.zeros(4, np.float32))
    origin: FloatArray | None = None
    look: FloatArray | None = None  # running mean of the appearance vectors
    #: Started from a weak box (a candidate until confirmed).
    weak: bool = False


def iou_matrix(a: FloatArray, b: FloatArray) -> npt.NDArray[np.float64]:
    """Pairwise intersection over union of boxes ``a`` [n, 4] and ``b`` [m, 4]."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return np.asarray(inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9), np.float64)


def reid_scores(tracks: FloatArray, dets: FloatArray, height_ratio: float) -> npt.NDArray[np.float64]:
    """``1 - d`` per pair, d = centre distance in track heights; -1 where heights differ too much.

    A similarity so that :func:`greedy_match` (highest first) takes the nearest pairs.
    """
    if len(tracks) == 0 or len(dets) == 0:
        return np.zeros((len(tracks), len(dets)))
    tc = (tracks[:, :2] + tracks[:, 2:]) / 2
    dc = (dets[:, :2] + dets[:, 2:]) / 2
    th = np.maximum(tracks[:, 3] - tracks[:, 1], 1.0)
    dh = np.maximum(dets[:, 3] - dets[:, 1], 1.0)
    dist = np.linalg.norm(tc[:, None, :] - dc[None, :, :], axis=2) / th[:, None]
    ratio = np.maximum(th[:, None] / dh[None, :], dh[None, :] / th[:, None])
    return np.where(ratio <= height_ratio, 1.0 - dist, -1.0).astype(np.float64)


def greedy_match(scores: npt.NDArray[np.float64], threshold: float) -> list[tuple[int, int]]:
    """Pairs (row, col) by descending score, each row and column used once, score >= threshold."""
    pairs: list[tuple[int, int]] = []
    if scores.size == 0:
        return pairs
    rows, cols = np.nonzero(scores >= threshold)
    order = np.argsort(-scores[rows, cols], kind="stable")
    used_r: set[int] = set()
    used_c: set[int] = set()
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r not in used_r and c not in used_c:
            pairs.append((r, c))
            used_r.add(r)
            used_c.add(c)
    return pairs


#: Cost of a pair the gates do not allow (never chosen).
_BLOCKED = 1e6


def assign(cost: npt.NDArray[np.float64]) -> list[tuple[int, int]]:
    """The optimal pairs (row, col) of a cost matrix, leaving out blocked ones."""
    if cost.size == 0:
        return []
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] < _BLOCKED]


class Tracker:
    """Feed it each frame's detections with the frame's time; it returns the confirmed tracks."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._tracks: list[_State] = []
        self._next_id = 1

    def _cost(
        self,
        tracks: list[int],
        preds: FloatArray,
        dets: npt.NDArray[np.intp],
        detections: Detections,
        t: float,
        min_iou: float,
        use_distance: bool,
        time_scaled: bool = True,
        own_speed: bool = False,
    ) -> npt.NDArray[np.float64]:
        """Matching cost of tracks x detections; ``_BLOCKED`` where no gate allows the pair.

        ``use_distance``: also allow pairs within the distance gate around the prediction,
        which grows with the time since the track was seen (for a lost track only when
        ``time_scaled``); with ``own_speed`` it grows only at the track's own measured speed
        (at most ``max_speed``), not at ``max_speed``: a standing track's gate stays ``gate``.
        """
        cfg = self.config
        boxes = detections.boxes[dets]
        p = preds[tracks]
        iou = iou_matrix(p, boxes)
        allowed = iou >= min_iou
        cost = 1.0 - iou
        if use_distance:
            dt = np.array([max(t - self._tracks[i].last_t, 0.0) for i in tracks])
            # Tracks not seen last time (lost) get the fixed gate unless ``time_scaled``.
            # With ``own_speed`` a track seen last time looks only as far as its own speed explains.
            speed = np.array(
                [
                    (min(_speed(tr), cfg.max_speed) if own_speed else cfg.max_speed)
                    if time_scaled or tr.seen
                    else 0.0
                    for tr in (self._tracks[i] for i in tracks)
                ]
            )
            gate = cfg.gate + speed * np.minimum(dt, cfg.predict_s + 0.5)
            d = 1.0 - reid_scores(p, boxes, cfg.reid_height_ratio)  # in track heights; 2 = size mismatch
            near = (d <= gate[:, None]) & (d < 2.0)
            cost = cost + np.minimum(d / np.maximum(gate[:, None], 1e-6), 1.0)
            allowed |= near
        feats = detections.features
        if feats is not None and cfg.appearance_weight > 0:
            looks = [self._tracks[i].look for i in tracks]
            if all(lk is not None for lk in looks) and len(tracks):
                tl = np.stack([lk for lk in looks if lk is not None])
                diff = np.abs(tl[:, None, :] - feats[dets][None, :, :]).mean(axis=2)
                cost = cost + cfg.appearance_weight * diff
                # Without a firm overlap, a pair must also look alike.
                allowed &= (iou >= 0.5) | (diff <= cfg.max_appearance)
        return np.where(allowed, cost, _BLOCKED)

    def update(self, detections: Detections, t: float) -> list[Track]:
        cfg = self.config
        # A track unseen for longer than lost_s is gone, however long since the last call.
        self._tracks = [tr for tr in self._tracks if t - tr.last_t <= cfg.lost_s]
        for tr in self._tracks:
            dt = min(max(t - tr.last_t, 0.0), cfg.predict_s)
            tr.predicted = _moved(tr.box, tr.velocity, dt)

        high = detections.scores >= cfg.high_score
        low = (detections.scores >= cfg.low_score) & ~high
        high_idx = np.flatnonzero(high)
        low_idx = np.flatnonzero(low)
        boxes = detections.boxes
        feats = detections.features

        def hit(ti: int, di: int) -> None:
            f = None if feats is None else feats[di]
            self._hit(self._tracks[ti], boxes[di], float(detections.scores[di]), t, f)
            matched_tracks.add(ti)
            matched_dets.add(di)

        preds = np.array([tr.predicted for tr in self._tracks], np.float32).reshape(-1, 4)
        matched_tracks: set[int] = set()
        matched_dets: set[int] = set()
        # Round 1: confident detections against every track, by overlap or within the
        # distance gate (time-scaled for tracks seen last time, fixed for lost ones), in one
        # joint assignment: a lost person's box is not handed to a neighbour who was seen.
        # Candidates started from weak boxes take no confident box.
        every = [i for i, tr in enumerate(self._tracks) if tr.id or not tr.weak]
        if every and len(high_idx):
            cost = self._cost(every, preds, high_idx, detections, t, cfg.match_iou, True, False)
            for r, c in assign(cost):
                hit(every[r], int(high_idx[c]))

        # Round 2: weak detections keep confirmed tracks alive (partly hidden people) and
        # confirm tentative ones (candidates from weak boxes too): by overlap, or close to the
        # prediction (a weak box is too easily someone else: a lost track's gate does not grow
        # while it is lost, and a track seen last time gets only what its own speed explains,
        # so someone standing does not take a neighbour's weak box at 7 fps).
        rest = [i for i, tr in enumerate(self._tracks) if i not in matched_tracks and (tr.id or tr.seen)]
        if rest and len(low_idx):
            cost = self._cost(
                rest, preds, low_idx, detections, t, max(cfg.match_iou, 0.5), True, False, own_speed=True
            )
            for r, c in assign(cost):
                hit(rest[r], int(low_idx[c]))

        # Round 3: confident leftovers against lost confirmed tracks, by distance.
        if cfg.reid_distance > 0:
            lost = [
                i for i, tr in enumerate(self._tracks) if i not in matched_tracks and tr.id and not tr.seen
            ]
            free_l = [int(j) for j in high_idx if int(j) not in matched_dets]
            if lost and free_l:
                gate = reid_scores(preds[lost], boxes[free_l], cfg.reid_height_ratio)
                for r, c in greedy_match(gate, 1.0 - cfg.reid_distance):
                    hit(lost[r], free_l[c])

        # Unmatched tracks: tentative ones die at once, confirmed ones are lost for a while.
        # A candidate still unconfirmed after weak_start_hits matches did not move: dropped.
        kept: list[_State] = []
        for i, tr in enumerate(self._tracks):
            if i in matched_tracks:
                if not (tr.weak and not tr.id and tr.hits >= cfg.weak_start_hits):
                    kept.append(tr)
            elif tr.id and t - tr.last_t <= cfg.lost_s:
                tr.seen = False
                kept.append(tr)
        # New tentative tracks from confident detections nobody claimed.
        for j in high_idx:
            i = int(j)
            if i not in matched_dets and len(kept) < cfg.max_tracks:
                box = boxes[i].astype(np.float32)
                look = None if feats is None else feats[i].astype(np.float32)
                kept.append(
                    _State(
                        box, np.zeros(4, np.float32), float(detections.scores[i]), t, origin=box, look=look
                    )
                )
                self._promote(kept[-1])
        # Candidates from weak detections nobody claimed that overlap no one here now.
        if cfg.weak_start_hits:
            here = np.array([tr.box for tr in kept if tr.last_t == t], np.float32).reshape(-1, 4)
            for j in low_idx:
                i = int(j)
                if i in matched_dets or len(kept) >= cfg.max_tracks:
                    continue
                box = boxes[i].astype(np.float32)
                if len(here) and float(iou_matrix(box[None, :], here).max()) >= cfg.weak_start_overlap:
                    continue
                look = None if feats is None else feats[i].astype(np.float32)
                kept.append(
                    _State(
                        box,
                        np.zeros(4, np.float32),
                        float(detections.scores[i]),
                        t,
                        origin=box,
                        look=look,
                        weak=True,
                    )
                )
        self._tracks = kept
        return [
            Track(
                tr.id,
                _box(tr.box if tr.seen else tr.predicted),
                tr.score,
                tr.seen,
                None if tr.origin is None else _box(tr.origin),
            )
            for tr in self._tracks
            if tr.id
        ]

    def _hit(self, tr: _State, box: FloatArray, score: float, t: float, look: FloatArray | None) -> None:
        dt = t - tr.last_t
        if dt > 0:
            sample = (box - tr.box) / dt
            a = self.config.velocity_smoothing
            tr.velocity = (a * sample + (1 - a) * tr.velocity).astype(np.float32)
        tr.box = box.astype(np.float32)
        tr.score = score
        tr.last_t = t
        tr.seen = True
        tr.hits += 1
        if look is not None:
            a = self.config.appearance_smoothing
            tr.look = look.astype(np.float32) if tr.look is None else (a * look + (1 - a) * tr.look)
        self._promote(tr)

    def _promote(self, tr: _State) -> None:
        cfg = self.config
        if tr.id:
            return
        if tr.weak:
            # A candidate: weak_start_hits matches in a row, and it must have moved.
            if tr.hits < cfg.weak_start_hits or tr.origin is None:
                return
            o = tr.origin
            height = max(float(o[3] - o[1]), 1.0)
            moved = (
                float(np.hypot(tr.box[0] + tr.box[2] - o[0] - o[2], tr.box[1] + tr.box[3] - o[1] - o[3])) / 2
            )
            if moved < cfg.weak_start_move * height:
                return
        elif tr.hits < cfg.confirm_hits:
            return
        tr.id = self._next_id
        self._next_id += 1

    @property
    def live(self) -> int:
        """Tracks held (tentative, confirmed and lost): bounded by ``max_tracks``."""
        return len(self._tracks)


def _moved(box: FloatArray, velocity: FloatArray, dt: float) -> FloatArray:
    """``box`` moved ``dt`` seconds along ``velocity``: its centre moves, its size stays (a
    size change estimated from a few boxes does not go on for long)."""
    vx = (velocity[0] + velocity[2]) / 2
    vy = (velocity[1] + velocity[3]) / 2
    return (box + np.array([vx, vy, vx, vy], np.float32) * dt).astype(np.float32)


def _speed(tr: _State) -> float:
    """How fast the track's centre moves, in its own heights per second."""
    vx = (tr.velocity[0] + tr.velocity[2]) / 2
    vy = (tr.velocity[1] + tr.velocity[3]) / 2
    return float(np.hypot(vx, vy)) / max(float(tr.box[3] - tr.box[1]), 1.0)


def _box(b: FloatArray) -> tuple[float, float, float, float]:
    return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
