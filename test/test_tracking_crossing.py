"""Two people whose boxes overlap heavily for several frames: appearance keeps their
IDs (paper preset), motion alone swaps them (bytetrack preset).

The scene: A walks right from x=120, B walks left from x=222, 2 px a frame each,
until they meet nose to nose at frame 25 (box centres 2 px apart, IoU 0.9); then
each turns round and walks back the way it came. Around the meeting their boxes
overlap with IoU > 0.5 for five frames. A constant-velocity model predicts each
of them to carry on through the other, so right after the turn each prediction
lies closer to the *other* person's box: motion alone prefers the wrong pairing.
Their appearances differ (embeddings with cosine similarity 0.2, plus noise).
"""
import numpy as np
import pytest

from smiletrack_ros.tracking import SmileTracker, TrackerConfig
from smiletrack_ros.tracking.geometry import iou_matrix

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
