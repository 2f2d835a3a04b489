"""Multi-person tracking with stable ids, ByteTrack style, in numpy.

Each frame's detections are matched to tracks in two rounds: first the confident ones
(score >= ``high_score``) against every live track, then the weak ones (a person half hidden
behind another gives a low score) against the confirmed tracks still unmatched — the weak
boxes keep a track alive but never start one. Tracks move by constant-velocity prediction
(velocity smoothed over recent frames, per second, so a skipped frame is no problem); a
track that goes unseen is kept "lost" for ``lost_s`` seconds and picked up again when the
person reappears near where they were heading (an occlusion gap keeps its id).

A track id is an integer from 1 up, issued when a track is confirmed (``confirm_hits``
consecutive matches), so the ids a consumer sees are always real, never a placeholder.
Time is passed in; nothing here reads a clock. The number of tracks is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

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
    lost_s: float = Field(default=1.5, ge=0, le=30)
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
    max_tracks: int = Field(default=200, ge=1, le=10_000)


@dataclass(frozen=True, slots=True)
class Track:
    """A confirmed person, as seen after one update."""

    id: int
    box: tuple[float, float, float, float]  # x0, y0, x1, y1, pixels
    score: float
    #: Seen in this frame (False: predicted while lost).
    seen: bool

    @property
    def feet(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, self.box[3])

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)


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


class Tracker:
    """Feed it each frame's detections with the frame's time; it returns the confirmed tracks."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._tracks: list[_State] = []
        self._next_id = 1

    def update(self, detections: Detections, t: float) -> list[Track]:
        cfg = self.config
        for tr in self._tracks:
            dt = min(max(t - tr.last_t, 0.0), cfg.predict_s)
            tr.predicted = (tr.box + tr.velocity * dt).astype(np.float32)

        high = detections.scores >= cfg.high_score
        low = (detections.scores >= cfg.low_score) & ~high
        high_idx = np.flatnonzero(high)
        low_idx = np.flatnonzero(low)
        boxes = detections.boxes

        # Round 1: confident detections against every track (confirmed, lost or tentative).
        preds = np.array([tr.predicted for tr in self._tracks], np.float32).reshape(-1, 4)
        matched_tracks: set[int] = set()
        matched_dets: set[int] = set()
        ious = iou_matrix(preds, boxes[high_idx])
        for r, c in greedy_match(ious, cfg.match_iou):
            self._hit(self._tracks[r], boxes[high_idx[c]], float(detections.scores[high_idx[c]]), t)
            matched_tracks.add(r)
            matched_dets.add(int(high_idx[c]))

        # Round 2: weak detections keep confirmed tracks alive (partly hidden people).
        rest = [i for i, tr in enumerate(self._tracks) if i not in matched_tracks and tr.id]
        if rest and len(low_idx):
            ious = iou_matrix(preds[rest], boxes[low_idx])
            for r, c in greedy_match(ious, max(cfg.match_iou, 0.5)):
                ti = rest[r]
                self._hit(self._tracks[ti], boxes[low_idx[c]], float(detections.scores[low_idx[c]]), t)
                matched_tracks.add(ti)

        # Round 3: confident leftovers against lost confirmed tracks, by distance.
        if cfg.reid_distance > 0:
            lost = [
                i for i, tr in enumerate(self._tracks) if i not in matched_tracks and tr.id and not tr.seen
            ]
            free = [int(j) for j in high_idx if int(j) not in matched_dets]
            if lost and free:
                gate = reid_scores(preds[lost], boxes[free], cfg.reid_height_ratio)
                for r, c in greedy_match(gate, 1.0 - cfg.reid_distance):
                    ti, di = lost[r], free[c]
                    self._hit(self._tracks[ti], boxes[di], float(detections.scores[di]), t)
                    matched_tracks.add(ti)
                    matched_dets.add(di)

        # Unmatched tracks: tentative ones die at once, confirmed ones are lost for a while.
        kept: list[_State] = []
        for i, tr in enumerate(self._tracks):
            if i in matched_tracks:
                kept.append(tr)
            elif tr.id and t - tr.last_t <= cfg.lost_s:
                tr.seen = False
                kept.append(tr)
        # New tentative tracks from confident detections nobody claimed.
        for j in high_idx:
            i = int(j)
            if i not in matched_dets and len(kept) < cfg.max_tracks:
                kept.append(
                    _State(
                        boxes[i].astype(np.float32), np.zeros(4, np.float32), float(detections.scores[i]), t
                    )
                )
                self._promote(kept[-1])
        self._tracks = kept
        return [
            Track(tr.id, _box(tr.box if tr.seen else tr.predicted), tr.score, tr.seen)
            for tr in self._tracks
            if tr.id
        ]

    def _hit(self, tr: _State, box: FloatArray, score: float, t: float) -> None:
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
        self._promote(tr)

    def _promote(self, tr: _State) -> None:
        if not tr.id and tr.hits >= self.config.confirm_hits:
            tr.id = self._next_id
            self._next_id += 1

    @property
    def live(self) -> int:
        """Tracks held (tentative, confirmed and lost): bounded by ``max_tracks``."""
        return len(self._tracks)


def _box(b: FloatArray) -> tuple[float, float, float, float]:
    return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
