"""The tracker on synthetic detections: stable real ids, occlusion gaps, people passing."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.camera.detector import Detections
from edge_agent.camera.tracker import (
    Track,
    Tracker,
    TrackerConfig,
    _moved,
    assign,
    greedy_match,
    iou_matrix,
    reid_scores,
)

FPS = 10.0


def box_at(cx: float, feet_y: float, w: float = 40, h: float = 100) -> tuple[float, float, float, float]:
    return (cx - w / 2, feet_y - h, cx + w / 2, feet_y)


def walk(x0: float, vx: float, y: float, n: int) -> list[tuple[float, float, float, float]]:
    return [box_at(x0 + vx * i, y) for i in range(n)]


def run(
    tracker: Tracker, frames: list[list[tuple[float, float, float, float]]], score: float = 0.9
) -> list[list[Track]]:
    out = []
    for i, boxes in enumerate(frames):
        out.append(tracker.update(Detections.of(boxes, [score] * len(boxes)), i / FPS))
    return out


def test_one_walker_keeps_one_real_id() -> None:
    frames = [[b] for b in walk(100, 6, 300, 40)]
    history = run(Tracker(), frames)
    assert history[0] == []  # tentative until confirmed: no placeholder id is ever shown
    ids = {t.id for tracks in history[1:] for t in tracks}
    assert ids == {1}
    last = history[-1][0]
    assert abs(last.feet[0] - (100 + 6 * 39)) < 1 and last.seen


def test_a_single_false_positive_never_gets_an_id() -> None:
    frames = [[box_at(200, 300)]] + [[] for _ in range(5)]
    history = run(Tracker(), frames)
    assert all(tracks == [] for tracks in history)


def test_occlusion_gap_keeps_the_id_and_prediction_follows_the_walker() -> None:
    path = walk(100, 8, 300, 30)
    # Hidden behind a pillar for 8 frames (0.8 s) in the middle.
    frames = [[b] if not 12 <= i < 20 else [] for i, b in enumerate(path)]
    history = run(Tracker(TrackerConfig(lost_s=1.5)), frames)
    hidden = history[15]
    assert len(hidden) == 1 and not hidden[0].seen
    assert abs(hidden[0].feet[0] - path[15][0] - 20) < 12  # predicted near where they really were
    assert {t.id for tracks in history[1:] for t in tracks} == {1}
    assert history[-1][0].seen


def test_a_gap_longer_than_lost_s_starts_a_new_id() -> None:
    path = walk(100, 8, 300, 40)
    frames = [[b] if not 10 <= i < 30 else [] for i, b in enumerate(path)]
    history = run(Tracker(TrackerConfig(lost_s=1.0)), frames)
    assert history[25] == []
    assert {t.id for t in history[-1]} == {2}


def test_two_people_walking_past_each_other_keep_their_ids() -> None:
    # Opposite directions on nearby rows: their boxes overlap for a few frames.
    a = walk(100, 10, 300, 40)
    b = walk(490, -10, 320, 40)
    history = run(Tracker(), [[x, y] for x, y in zip(a, b, strict=True)])
    first = {t.id: t.feet[0] for t in history[2]}
    last = {t.id: t.feet[0] for t in history[-1]}
    assert set(first) == set(last) and len(first) == 2
    left_start = min(first, key=lambda k: first[k])
    assert last[left_start] > 400  # the one who started on the left ended on the right


def test_weak_detections_keep_a_track_and_a_barely_moving_weak_run_starts_none() -> None:
    path = walk(100, 5, 300, 20)
    tracker = Tracker(TrackerConfig(high_score=0.5, low_score=0.2, lost_s=0.2))
    for i, b in enumerate(path[:5]):
        tracker.update(Detections.of([b], [0.9]), i / FPS)
    # Half hidden: only weak detections for a second, longer than lost_s.
    for i, b in enumerate(path[5:15], start=5):
        tracks = tracker.update(Detections.of([b], [0.3]), i / FPS)
        assert [t.id for t in tracks] == [1] and tracks[0].seen
    # Weak boxes alone moving 0.05 of a height a frame: 0.1 over three boxes, under
    # weak_start_move (0.15), so no candidate is ever confirmed.
    weak_only = Tracker()
    assert all(weak_only.update(Detections.of([b], [0.3]), i / FPS) == [] for i, b in enumerate(path))


def test_the_number_of_tracks_is_bounded() -> None:
    tracker = Tracker(TrackerConfig(max_tracks=5))
    crowd = [box_at(50 + 60 * i, 300) for i in range(12)]
    for i in range(3):
        tracker.update(Detections.of(crowd, [0.9] * 12), i / FPS)
    assert tracker.live <= 5


def test_greedy_match_takes_the_best_pairs_once() -> None:
    a = Detections.of([(0, 0, 10, 10), (20, 0, 30, 10)], [1, 1]).boxes
    b = Detections.of([(21, 0, 31, 10), (1, 0, 11, 10), (100, 100, 110, 110)], [1, 1, 1]).boxes
    pairs = greedy_match(iou_matrix(a, b), 0.3)
    assert sorted(pairs) == [(0, 1), (1, 0)]


# -- re-identification of lost tracks by distance (round 3) ---------------------------------


def slowed_behind_a_pillar() -> list[list[tuple[float, float, float, float]]]:
    """Walks right at 8 px/frame, hidden 1 s, reappears 48 px short of where the pace says."""
    frames: list[list[tuple[float, float, float, float]]] = [[box_at(100 + 8 * i, 300)] for i in range(15)]
    frames += [[] for _ in range(10)]
    frames += [[box_at(252 + 4 * i, 300)] for i in range(10)]
    return frames


def test_a_person_who_slowed_while_hidden_keeps_their_id() -> None:
    # The prediction (x ~ 300) no longer overlaps the person (x ~ 252): IoU finds nothing,
    # the distance gate (0.48 heights <= 0.6) does.
    history = run(Tracker(TrackerConfig(lost_s=1.5)), slowed_behind_a_pillar())
    assert {t.id for tracks in history[1:] for t in tracks} == {1}
    assert history[26][0].seen


def test_without_reid_the_same_walk_gets_a_new_id() -> None:
    history = run(Tracker(TrackerConfig(lost_s=1.5, reid_distance=0)), slowed_behind_a_pillar())
    assert {t.id for t in history[-1] if t.seen} == {2}


def test_reid_does_not_join_a_box_of_a_very_different_size() -> None:
    frames: list[list[tuple[float, float, float, float]]] = [[box_at(100 + 8 * i, 300)] for i in range(15)]
    frames += [[] for _ in range(5)]
    # Someone twice as tall (much nearer the camera) appears near where the walker was
    # heading (x ~ 260): too little overlap for IoU, close enough for the distance gate.
    tall = frames + [[box_at(290 + 8 * i, 300, w=80, h=200)] for i in range(5)]
    assert {t.id for t in run(Tracker(TrackerConfig(lost_s=1.5)), tall)[-1] if t.seen} == {2}
    # The control: the same spot with the walker's size is the walker.
    same = frames + [[box_at(290 + 8 * i, 300, w=40, h=100)] for i in range(5)]
    assert {t.id for t in run(Tracker(TrackerConfig(lost_s=1.5)), same)[-1] if t.seen} == {1}


def test_reid_prefers_the_nearer_of_two_lost_tracks() -> None:
    # Two walkers 150 px apart both vanish; one reappears near the second's last position.
    frames = [[box_at(100 + 5 * i, 300), box_at(250 + 5 * i, 300)] for i in range(10)]
    frames += [[] for _ in range(6)]
    frames += [[box_at(330 + 2 * i, 300)] for i in range(3)]
    history = run(Tracker(TrackerConfig(lost_s=2.0)), frames)
    ids_before = {round(t.feet[0]): t.id for t in history[9]}
    second = ids_before[250 + 5 * 9]
    assert [t.id for t in history[-1] if t.seen] == [second]


def test_a_lost_prediction_stops_after_predict_s() -> None:
    frames: list[list[tuple[float, float, float, float]]] = [[box_at(100 + 8 * i, 300)] for i in range(10)]
    frames += [[] for _ in range(15)]
    history = run(Tracker(TrackerConfig(lost_s=2.0, predict_s=0.5, reid_distance=0)), frames)
    at = [history[i][0].feet[0] for i in (11, 13, 14, 18, 22)]
    assert at[0] < at[1] < at[2]  # moving on for 0.5 s after the last sighting (frame 9)
    assert at[2] == at[3] == at[4]  # then waiting there
    assert abs(at[2] - (172 + 8 * 5)) < 1


def test_a_line_crossed_while_hidden_counts_once_the_person_is_picked_up_again() -> None:
    from edge_agent.camera.line_counter import CountLine, LineCounter

    def counted(reid_distance: float) -> list[str]:
        tracker = Tracker(TrackerConfig(lost_s=1.5, reid_distance=reid_distance))
        # Last seen at x = 212, back in sight at x = 252: the line at 230 is crossed unseen.
        line = LineCounter(CountLine("door", (230, 100), (230, 500), inside=(400, 300)))
        out: list[str] = []
        for i, boxes in enumerate(slowed_behind_a_pillar()):
            tracks = tracker.update(Detections.of(boxes, [0.9] * len(boxes)), i / FPS)
            out += [c.direction for c in line.update({t.id: t.feet for t in tracks if t.seen}, i / FPS)]
        return out

    assert counted(0.6) == ["in"]
    assert counted(0) == []  # a new id first seen inside: the crossing is lost


# -- real frame rates, neighbours, optimal assignment --------------------------------------------


def test_at_5_fps_a_fast_walker_keeps_one_id_though_boxes_never_overlap() -> None:
    # 50 px between frames with a 40 px wide box: no overlap from one frame to the next.
    tracker = Tracker()
    ids: set[int] = set()
    for i in range(15):
        ids |= {t.id for t in tracker.update(Detections.of([box_at(100 + 50 * i, 300)], [0.9]), i / 5)}
    assert ids == {1}


def test_the_distance_gate_grows_with_the_time_between_frames() -> None:
    # The same 40 px step is a plausible walk after 0.2 s but not after 0.02 s (a jump).
    def ids(dt: float) -> set[int]:
        tracker = Tracker(TrackerConfig(max_speed=1.2, gate=0.2))
        seen: set[int] = set()
        for i in range(6):
            seen |= {t.id for t in tracker.update(Detections.of([box_at(100 + 40 * i, 300)], [0.9]), i * dt)}
        return seen

    assert ids(0.2) == {1}
    assert len(ids(0.02)) == 0  # every detection is a new tentative track: nothing confirmed


def looks(*colours: tuple[float, ...]) -> np.ndarray:
    return np.asarray(colours, np.float32)


def test_two_neighbours_whose_boxes_slip_past_each_other_keep_their_ids_by_appearance() -> None:
    red, blue = (0.1, 0.1, 0.8, 0.2, 0.2, 0.2), (0.8, 0.2, 0.1, 0.2, 0.2, 0.2)

    def people_per_id(use_looks: bool) -> dict[int, set[str]]:
        tracker = Tracker()
        who: dict[int, set[str]] = {}
        for i in range(20):
            a, b = 100.0 + 10 * i, 135.0 + 10 * i
            if i in (10, 11):  # for two frames the detector puts both boxes on the pair's middle
                a = b = (a + b) / 2
            boxes = {"blue": box_at(b, 300), "red": box_at(a, 300)}
            feats = looks(blue, red) if use_looks else None
            det = Detections(
                Detections.of(list(boxes.values()), [0.9, 0.9]).boxes, np.full(2, 0.9, np.float32), feats
            )
            for t in tracker.update(det, i / FPS):
                if t.seen and boxes["red"] != boxes["blue"]:
                    name = min(boxes, key=lambda k: abs(boxes[k][0] - t.box[0]))
                    who.setdefault(t.id, set()).add(name)
        return who

    # By position alone the ids swap on the merged boxes; the colours keep each id on one person.
    assert sorted(people_per_id(True).values()) == [{"blue"}, {"red"}]
    assert sorted(people_per_id(False).values()) == [{"blue", "red"}, {"blue", "red"}]


def test_assignment_is_optimal_not_greedy() -> None:
    # Greedy takes the single best pair (0, 0) and leaves track 1 unmatched; the optimal
    # assignment matches both.
    cost = np.array([[0.1, 0.2], [0.15, 1e6]])
    assert sorted(assign(cost)) == [(0, 1), (1, 0)]
    assert assign(np.array([[1e6]])) == []


def test_ids_are_never_reused() -> None:
    tracker = Tracker(TrackerConfig(lost_s=0.2))
    seen: list[int] = []
    for round_ in range(4):
        for i in range(4):
            seen += [
                t.id for t in tracker.update(Detections.of([box_at(100, 300)], [0.9]), round_ * 10 + i / FPS)
            ]
    assert sorted(set(seen)) == [1, 2, 3, 4]


def test_a_track_reports_where_it_was_first_detected() -> None:
    tracker = Tracker()
    tracks = run(tracker, [[b] for b in walk(100, 10, 300, 3)])
    assert tracks[1][0].origin == box_at(100, 300) and tracks[2][0].origin_feet == (100, 300)


# -- the geometry helpers, exact values worked out by hand --------------------------------


def _boxes(*rows: tuple[float, float, float, float]) -> np.ndarray:
    return np.array(rows, np.float32).reshape(-1, 4)


def test_iou_of_boxes_overlapping_touching_and_apart() -> None:
    a = _boxes((2, 4, 12, 24))  # 10 x 20
    b = _boxes(
        (7, 4, 17, 24),  # half of it sideways: 100 / 300
        (2, 4, 12, 24),  # the same box
        (2, 14, 12, 44),  # 10 x 30, overlapping 10 x 10: 100 / 400
        (22, 4, 32, 24),  # beside it, apart on x only
        (2, 34, 12, 54),  # below it, apart on y only
        (12, 24, 22, 34),  # touching at a corner
        (30, 40, 40, 60),  # apart on both
    )
    got = iou_matrix(a, b)
    assert got.shape == (1, 7)
    assert got[0] == pytest.approx([1 / 3, 1.0, 0.25, 0.0, 0.0, 0.0, 0.0])
    tiny = _boxes((0, 0, 0.5, 0.5))  # a sub-pixel box is still the same as itself
    assert iou_matrix(tiny, tiny)[0, 0] == pytest.approx(1.0)


def test_iou_with_no_boxes_on_either_side() -> None:
    one = _boxes((0, 0, 10, 10))
    assert iou_matrix(_boxes(), one).shape == (0, 1)
    assert iou_matrix(one, _boxes()).shape == (1, 0)
    assert iou_matrix(_boxes(), _boxes()).shape == (0, 0)


def test_reid_scores_are_one_less_the_distance_in_track_heights() -> None:
    tracks = _boxes((0, 0, 10, 20), (100, 0, 110, 40))  # heights 20 and 40
    dets = _boxes(
        (10, 0, 20, 20),  # centre 10 px right of track 0's: 0.5 of its height
        (100, 10, 110, 50),  # track 1 moved 10 px down: 0.25 of its height
        (0, 0, 10, 30),  # 1.5 x track 0's height: still allowed
        (0, 0, 10, 31),  # more than 1.5 x: never the same person
    )
    got = reid_scores(tracks, dets, 1.5)
    d_1_0 = ((105 - 15) ** 2 + (20 - 10) ** 2) ** 0.5 / 40
    assert got[0] == pytest.approx([0.5, -1.0, 1 - 5 / 20, -1.0])
    assert got[1, 0] == pytest.approx(-1.0)  # 40 vs 20: twice the height
    assert got[1, 1] == pytest.approx(0.75)
    assert d_1_0 > 2  # (the pair that differs in size is out whatever its distance)
    assert reid_scores(tracks, _boxes(), 1.5).shape == (2, 0)
    assert reid_scores(_boxes(), dets, 1.5).shape == (0, 4)


def test_reid_scores_of_boxes_under_a_pixel_high_count_them_one_pixel_high() -> None:
    got = reid_scores(_boxes((0, 0, 1, 0.5)), _boxes((0.5, 0, 1.5, 0.5)), 1.5)
    assert got[0, 0] == pytest.approx(0.5)  # 0.5 px apart, over a height of 1 px


def test_greedy_match_goes_by_score_and_uses_each_row_and_column_once() -> None:
    scores = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert greedy_match(scores, 0.5) == [(0, 0)]
    assert greedy_match(scores, 0.1) == [(0, 0), (1, 1)]  # the threshold itself counts
    assert greedy_match(np.array([[0.2, 0.6], [0.7, 0.3]]), 0.5) == [(1, 0), (0, 1)]


def test_a_box_moves_by_its_centres_velocity_keeping_its_size() -> None:
    moved = _moved(np.array([0, 0, 10, 20], np.float32), np.array([1, 2, 3, 6], np.float32), 0.5)
    assert moved.tolist() == [1.0, 2.0, 11.0, 22.0]  # centre velocity (2, 4) px/s for 0.5 s


# -- the tracker's thresholds at their edges ------------------------------------------------


def _frame(boxes: list[tuple[float, float, float, float]], scores: list[float]) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32))


def test_scores_exactly_at_the_thresholds_count() -> None:
    tracker = Tracker(TrackerConfig(high_score=0.5, low_score=0.2, confirm_hits=2))
    b = box_at(100, 300)
    assert tracker.update(_frame([b], [0.5]), 0.0) == []  # 0.5 is confident: a tentative track
    [track] = tracker.update(_frame([b], [0.2]), 0.1)  # 0.2 is weak but keeps it: confirmed
    assert (track.id, track.score, track.seen) == (1, pytest.approx(0.2), True)
    assert track.origin == pytest.approx(b)


def test_a_lost_track_is_kept_exactly_lost_s_then_dropped() -> None:
    tracker = Tracker(TrackerConfig(lost_s=2.0, reid_distance=0.0))
    for i in range(3):
        tracker.update(_frame([box_at(100, 300)], [0.9]), i * 0.1)
    [kept] = tracker.update(_frame([], []), 2.2)  # last seen at 0.2: exactly 2 s
    assert (kept.id, kept.seen) == (1, False)
    assert tracker.update(_frame([], []), 2.21) == []
    assert tracker.live == 0


def test_confirmation_takes_confirm_hits_matches_counted_one_by_one() -> None:
    tracker = Tracker(TrackerConfig(confirm_hits=3))
    b = box_at(100, 300)
    assert tracker.update(_frame([b], [0.9]), 0.0) == []
    assert tracker.update(_frame([b], [0.9]), 0.1) == []
    assert [t.id for t in tracker.update(_frame([b], [0.9]), 0.2)] == [1]


# -- appearance: a near box must also look alike unless it overlaps firmly -----------------

RED, BLUE = np.full(8, 0.9, np.float32), np.full(8, 0.1, np.float32)


def _seen(boxes: list[tuple[float, float, float, float]], looks: list[np.ndarray]) -> Detections:
    return Detections(
        np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.9, np.float32), np.stack(looks)
    )


def _walker_then(step: tuple[float, float, float, float], look: np.ndarray, **cfg: float) -> list[Track]:
    """A red-clad walker confirmed over three frames, then a box ``step`` wearing ``look``."""
    tracker = Tracker(TrackerConfig(reid_distance=0.0, **cfg))  # type: ignore[arg-type]
    for i in range(3):
        tracker.update(_seen([box_at(100, 300)], [RED]), i * 0.1)
    return tracker.update(_seen([step], [look]), 0.3)


NEAR = box_at(132, 300)  # 32 px on: little overlap (IoU ~0.11), inside the distance gate
FIRM = box_at(110, 300)  # 10 px on: IoU 0.6
FAR = box_at(300, 300)  # outside every gate


@pytest.mark.parametrize(
    ("step", "look", "cfg", "same_person"),
    [
        (NEAR, RED, {}, True),
        (NEAR, BLUE, {}, False),  # near but dressed differently: someone else
        (FIRM, BLUE, {}, True),  # a firm overlap is enough whatever the look
        (FAR, RED, {}, False),  # looking alike is not enough from afar
        (NEAR, BLUE, {"appearance_weight": 0.0}, True),  # appearance switched off
        (NEAR, BLUE, {"appearance_weight": 0.5}, False),  # a small weight still gates
    ],
)
def test_appearance_gates_near_pairs(
    step: tuple[float, float, float, float], look: np.ndarray, cfg: dict[str, float], same_person: bool
) -> None:
    [track] = _walker_then(step, look, **cfg)
    assert track.id == 1
    assert track.seen is same_person
    if same_person:
        assert track.box == pytest.approx(step)


def test_a_frame_at_the_same_time_as_the_last_keeps_the_prediction_sane() -> None:
    tracker = Tracker()
    frames = [(0.0, 100), (0.1, 104), (0.1, 104), (0.2, 108), (0.3, 112)]
    for t, x in frames:
        tracks = tracker.update(Detections.of([box_at(x, 300)], [0.9]), t)
    [track] = tracker.update(Detections.of([], []), 0.4)  # unseen: predicted from its velocity
    assert track.id == 1 and not track.seen
    assert np.isfinite(track.box).all() and track.centre[0] == pytest.approx(116, abs=2)
    assert len(tracks) == 1


def test_a_tracks_look_is_a_running_mean_not_the_latest_sample() -> None:
    tracker = Tracker(TrackerConfig(reid_distance=0.0, appearance_smoothing=0.3))
    for i in range(3):
        tracker.update(_seen([box_at(100, 300)], [RED]), i * 0.1)
    tracker.update(_seen([box_at(110, 300)], [BLUE]), 0.3)  # firm overlap: matched though blue
    mean = np.full(8, 0.3 * 0.1 + 0.7 * 0.9, np.float32)  # 0.66: what the track now looks like
    [track] = tracker.update(_seen([box_at(142, 300)], [mean]), 0.4)  # near, not overlapping
    assert (track.id, track.seen) == (1, True)


# -- a walking run of weak boxes starts a track ---------------------------------------------


def test_a_walking_run_of_weak_boxes_starts_a_track_counted_from_its_first_box() -> None:
    # Someone the detector only ever scores weakly (dark clothes): 0.35 a frame, 12 px a frame.
    path = walk(100, 12, 300, 6)
    tracker = Tracker()
    history = [tracker.update(_frame([b], [0.35]), i / FPS) for i, b in enumerate(path)]
    assert history[0] == [] and history[1] == []  # a candidate until its third match
    [track] = history[2]  # moved 24 px (0.24 of a height) since the first box: a walker
    assert (track.id, track.seen) == (1, True)
    assert track.origin == pytest.approx(path[0])  # where they were first seen, for the lines
    assert [t.id for t in history[-1]] == [1]


def test_a_static_run_of_weak_boxes_never_starts_a_track() -> None:
    # A weak false positive (a poster, a reflection) jittering by a pixel or two for 3 s.
    tracker = Tracker()
    for i in range(30):
        jitter = (i % 3) - 1
        assert tracker.update(_frame([box_at(300 + 2 * jitter, 300 + jitter)], [0.35]), i / FPS) == []
    assert tracker.live <= 1  # at most the current candidate


def test_a_weak_box_on_someone_already_tracked_starts_nothing() -> None:
    # A confident walker and a weak second box of their legs walking with them (IoU ~0.5).
    tracker = Tracker()
    for i in range(10):
        body = box_at(100 + 12 * i, 300)
        legs = (body[0] + 4, 240.0, body[2] + 10, 300.0)
        tracks = tracker.update(_frame([body, legs], [0.9, 0.35]), i / FPS)
    assert [t.id for t in tracks] == [1]


def test_a_weak_candidate_takes_no_confident_box() -> None:
    # A weak box, then a confident one just beside it: the confident box starts its own track
    # (first detected there), the weak candidate is not fed by it and dies unmatched.
    tracker = Tracker()
    tracker.update(_frame([box_at(100, 300)], [0.35]), 0.0)
    tracker.update(_frame([box_at(112, 300)], [0.9]), 0.1)
    [track] = tracker.update(_frame([box_at(124, 300)], [0.9]), 0.2)
    assert track.id == 1 and track.origin == pytest.approx(box_at(112, 300))
    assert tracker.live == 1


def test_a_standing_track_does_not_take_a_neighbours_weak_box_at_7_fps() -> None:
    # At 7 fps the time-scaled gate is 0.35 + 1.2 / 7 = 0.52 heights; someone standing
    # must not take a weak box 0.48 heights away (a neighbour's), but a walker may.
    dt = 1 / 7
    tracker = Tracker()
    for i in range(3):
        tracks = tracker.update(Detections.of([box_at(100, 300)], [0.9]), i * dt)
    assert [t.id for t in tracks] == [1]
    tracks = tracker.update(Detections.of([box_at(148, 300)], [0.4]), 3 * dt)
    (standing,) = [t for t in tracks if t.id == 1]
    assert not standing.seen
    assert standing.box == pytest.approx(box_at(100, 300))

    # A walker at 3 heights/s: the gate grows at its own speed (capped at max_speed).
    walker = Tracker()
    for i in range(4):
        walker.update(Detections.of([box_at(100 + 45 * i, 300)], [0.9]), i * dt)
    predicted = 100 + 45 * 3 + walker._tracks[0].velocity[0] * dt
    tracks = walker.update(Detections.of([box_at(predicted + 48, 300)], [0.4]), 4 * dt)
    (walking,) = [t for t in tracks if t.id == 1]
    assert walking.seen
