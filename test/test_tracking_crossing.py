"""Two people whose boxes overlap heavily for several frames: appearance keeps their
IDs (paper preset), motion alone swaps or breaks them (bytetrack preset).

The first scene: A walks right from x=120, B walks left from x=222, 2 px a frame each,
until they meet nose to nose at frame 25 (box centres 2 px apart, IoU 0.9); then
each turns round and walks back the way it came. Around the meeting their boxes
overlap with IoU > 0.5 for five frames. A constant-velocity model predicts each
of them to carry on through the other, so right after the turn each prediction
lies closer to the *other* person's box: motion alone prefers the wrong pairing.
Their appearances differ (embeddings with cosine similarity 0.2, plus noise).
"""
import numpy as np
import pytest

from smiletrack_ros.boxes import iou_matrix
from smiletrack_ros.tracking import SmileTracker, TrackerConfig

TURN, FRAMES, SPEED, W, H = 25, 45, 2.0, 40.0, 100.0


def scene(seed=0):
    """Per frame: boxes (A, B), embeddings (A, B)."""
    rng = np.random.default_rng(seed)
    look_a = np.zeros(32)
    look_a[0] = 1.0
    look_b = np.zeros(32)
    look_b[:2] = [0.2, np.sqrt(1 - 0.04)]
    frames = []
    for f in range(FRAMES):
        walked = SPEED * (min(f, TURN) - max(0, f - TURN))
        centres = [120 + walked, 222 - walked]
        boxes = np.array([[c - W / 2, 200, c + W / 2, 200 + H] for c in centres])
        emb = np.stack([look_a, look_b]) + rng.normal(0, 0.05, (2, 32))
        frames.append((boxes, emb))
    return frames


def run(preset):
    """Track ids given to A and to B in every frame where both are output."""
    trk = SmileTracker(TrackerConfig.from_preset(preset), frame_rate=30)
    history = []
    for boxes, emb in scene():
        out = trk.update(boxes, np.array([0.9, 0.9]), embeddings=emb)
        by_det = {t.detection_index: t.track_id for t in out}
        if len(by_det) == 2:
            history.append((by_det[0], by_det[1]))
    return history


def test_scenario_is_not_trivial():
    frames = scene()
    overlap = [iou_matrix(b[:1], b[1:])[0, 0] for b, _ in frames]
    heavy = [f for f, v in enumerate(overlap) if v > 0.5]
    assert heavy == list(range(TURN - 2, TURN + 3))  # five consecutive frames
    assert max(overlap) == pytest.approx(38 / 42)
    # Right after the turn, constant-velocity extrapolation from the two previous boxes
    # overlaps the wrong person more.
    (a0, b0), (a1, b1) = frames[TURN - 1][0], frames[TURN][0]
    iou = iou_matrix(np.stack([2 * a1 - a0, 2 * b1 - b0]), frames[TURN + 1][0])
    assert iou[0, 1] > iou[0, 0] and iou[1, 0] > iou[1, 1]
    # The appearances are far apart: below the gate, even with the noise.
    (_, emb) = frames[TURN]
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    assert unit[0] @ unit[1] < 0.4


def test_appearance_keeps_both_ids_through_the_meeting():
    history = run("paper")
    assert len(history) == FRAMES
    assert set(history) == {(1, 2)}


def test_motion_alone_swaps_the_ids():
    history = run("bytetrack")
    assert len(history) == FRAMES
    assert set(history[:TURN + 1]) == {(1, 2)}
    assert set(history[TURN + 1:]) == {(2, 1)}  # after the turn, each id follows the other person


def test_official_preset_also_keeps_the_ids():
    assert set(run("official")) == {(1, 2)}


def occluded_crossing(seed=0):
    """A second, honest crossing: A (front) walks right, B (behind) walks left, 3 px a
    frame, boxes 40 px wide, crossing at frame 30. While A covers part of B the
    detector only sees B's visible part, which slides RIGHT as A passes over it; B is
    not detected while less than 10 px of it shows. Per frame: boxes, which person
    each box is (0 = A, 1 = B), embeddings."""
    rng = np.random.default_rng(seed)
    look = np.zeros((2, 32))
    look[0, 0] = 1.0
    look[1, :2] = [0.2, np.sqrt(0.96)]
    frames = []
    for f in range(60):
        ca, cb = 200 + 3.0 * (f - 30), 200 - 3.0 * (f - 30)
        a = [ca - 20, 200, ca + 20, 300]
        visible = [seg for seg in ((cb - 20, min(cb + 20, a[0])), (max(cb - 20, a[2]), cb + 20))
                   if seg[1] - seg[0] > 0]
        rows, who = [a], [0]
        if visible:
            x1, x2 = max(visible, key=lambda seg: seg[1] - seg[0])
            if x2 - x1 >= 10:
                rows.append([x1, 200, x2, 300])
                who.append(1)
        who = np.array(who)
        frames.append((np.array(rows), who, look[who] + rng.normal(0, 0.05, (len(who), 32))))
    return frames


def ids_by_person(preset, **overrides):
    trk = SmileTracker(TrackerConfig.from_preset(preset, **overrides))
    history = []
    for rows, who, emb in occluded_crossing():
        out = trk.update(rows, np.full(len(rows), 0.9), embeddings=emb)
        history.append({int(who[t.detection_index]): t.track_id for t in out})
    return history


def test_occluded_crossing_is_not_trivial():
    frames = occluded_crossing()
    b_left_edges = [(f, rows[list(who).index(1), 0]) for f, (rows, who, _) in enumerate(frames) if 1 in who]
    unseen = [f for f, (_, who, _) in enumerate(frames) if 1 not in who]
    assert len(unseen) >= 3 and unseen == list(range(unseen[0], unseen[-1] + 1))
    # Just before B disappears, its detected box moves right although B walks left.
    before = [x for f, x in b_left_edges if f < unseen[0]]
    assert before[-1] > before[-2] > before[-3]


def test_occluded_crossing_appearance_keeps_both_ids_motion_alone_does_not():
    # B re-appears where its (misled) motion did not predict it: only the literal
    # fused similarity, without the min_iou overlap gate, re-identifies it by appearance.
    paper = ids_by_person("paper", min_iou=0.0)
    assert all(seen == {0: 1, 1: 2} for seen in paper if len(seen) == 2)
    assert paper[-1] == {0: 1, 1: 2}
    gated = ids_by_person("paper")
    assert all(seen[0] == 1 for seen in gated) and gated[-1][1] != 1  # no swap, a new id for B
    byte = ids_by_person("bytetrack")
    assert byte[0] == {0: 1, 1: 2} and byte[-1][0] == 1 and byte[-1][1] != 2  # B re-appears as someone new
