"""The ``reid`` preset: lost tracks re-identified on appearance, inside a gate that
widens with the time unseen, kept for seconds, at any frame rate."""
import numpy as np
import pytest

from smiletrack_ros.tracking import SmileTracker, TrackerConfig, TrackState

W, H = 40.0, 100.0
SPEED = 50.0  # px/s: half a body height per second
E = np.eye(8, dtype=np.float32)


def box(x, y=200.0):
    return np.array([[x, y, x + W, y + H]])


def walk(trk, fps, seconds, x0, look, t0=0.0):
    """Feed one person walking right for ``seconds``; -> (id, x, next timestamp)."""
    n = int(round(seconds * fps))
    ids = set()
    for k in range(n):
        t = t0 + k / fps
        out = trk.update(box(x0 + SPEED * (t - t0)), np.array([0.9]), embeddings=look[None], timestamp=t)
        ids.update(o.track_id for o in out)
    assert len(ids) == 1, ids
    return ids.pop(), x0 + SPEED * (n / fps), t0 + n / fps


def hide(trk, fps, seconds, t0):
    n = int(round(seconds * fps))
    for k in range(n):
        assert trk.update(np.zeros((0, 4)), np.zeros(0), embeddings=np.zeros((0, 8)), timestamp=t0 + k / fps) == []
    return t0 + n / fps


def reappear(preset, fps, look, hidden_s=3.0, widths=2.0):
    """A person walks 2 s, is hidden ``hidden_s``, then a box with ``look`` appears
    ``widths`` box widths beyond where the track predicts -> (first id, new outputs)."""
    trk = SmileTracker(TrackerConfig.from_preset(preset), frame_rate=fps)
    first, x, t = walk(trk, fps, 2.0, 100.0, E[0])
    t = hide(trk, fps, hidden_s, t)
    predicted = 100.0 + SPEED * t  # the track keeps its velocity while lost
    out = trk.update(box(predicted + widths * W), np.array([0.9]), embeddings=look[None], timestamp=t)
    return trk, first, out


@pytest.mark.parametrize("fps", [25.0, 12.5, 5.0])
def test_hidden_three_seconds_then_two_widths_away_with_the_same_look_keeps_its_id(fps):
    trk, first, out = reappear("reid", fps, E[0])
    assert [o.track_id for o in out] == [first]
    assert out[0].appearance_similarity == pytest.approx(1.0)


def test_the_paper_preset_forgets_after_one_second():
    trk, first, out = reappear("paper", 5.0, E[0])
    assert out == [] and [t.track_id for t in trk.live_tracks()] == [first + 1]


def test_a_different_looking_person_there_gets_a_new_id():
    trk, first, out = reappear("reid", 5.0, E[1])
    assert out == []  # tentative: born, not re-identified
    states = {t.track_id: t.state for t in trk.live_tracks()}
    assert states == {first: TrackState.LOST, first + 1: TrackState.TENTATIVE}


def test_a_look_alike_beyond_where_anyone_walks_in_that_time_is_not_taken():
    # 3 s unseen: the speed gate reaches 0.5 + 1.0 * 3 = 3.5 heights (350 px); 8 heights is out.
    trk, first, out = reappear("reid", 5.0, E[0], widths=8 * H / W)
    assert out == [] and first in {t.track_id for t in trk.live_tracks()}


def test_memory_is_in_seconds_whatever_the_rate():
    for fps in (25.0, 5.0):
        trk, first, out = reappear("reid", fps, E[0], hidden_s=4.8)
        assert [o.track_id for o in out] == [first]
        trk, first, out = reappear("reid", fps, E[0], hidden_s=5.4)
        assert out == [] and first not in {t.track_id for t in trk.live_tracks()}


def test_an_overlapping_person_whose_appearance_disagrees_never_takes_the_id():
    """A walks right; B, who looks different, walks left through the same place. A is
    hidden behind B for 1.2 s while B's box covers A's predicted box; B keeps its own
    id the whole time and A gets A's id back when it shows again."""
    fps = 5.0
    trk = SmileTracker(TrackerConfig.from_preset("reid"), frame_rate=fps)
    a_id = b_id = None
    for k in range(40):
        t = k / fps
        ax, bx = 100.0 + SPEED * t, 500.0 - SPEED * t
        a_hidden = 16 <= k < 22  # centres closer than about a box width
        rows = ([] if a_hidden else [(box(ax), E[0])]) + [(box(bx, 205.0), E[1])]
        out = trk.update(np.concatenate([r[0] for r in rows]), np.full(len(rows), 0.9),
                         embeddings=np.stack([r[1] for r in rows]), timestamp=t)
        by_det = {o.detection_index: o.track_id for o in out}
        if k >= 1:  # tracks are confirmed from the second frame
            if a_id is None:
                a_id, b_id = by_det[0], by_det[1]
            assert by_det[len(rows) - 1] == b_id, k
            if not a_hidden:
                assert by_det[0] == a_id, k
    assert a_id != b_id


def test_the_impostor_quantile_is_learnt_from_people_seen_together():
    from smiletrack_ros.tracking.calibration import ENOUGH_PAIRS, MIN_PAIRS, ImpostorSimilarity

    imp = ImpostorSimilarity()
    rng = np.random.default_rng(0)
    assert imp.quantile(0.99) is None
    # Looks that are all alike (a weak embedder): pairwise similarity about 0.9.
    base = rng.normal(size=16)
    while imp.total < MIN_PAIRS:
        looks = base + 0.33 * np.linalg.norm(base) / 4 * rng.normal(size=(6, 16))
        imp.observe(looks / np.linalg.norm(looks, axis=1, keepdims=True))
    assert 0.88 < imp.quantile(0.99) <= 1.0
    assert imp.quantile(0.5) < imp.quantile(0.99)
    while imp.total < ENOUGH_PAIRS:  # then it stops sampling: bounded work and state
        imp.observe(looks / np.linalg.norm(looks, axis=1, keepdims=True))
    settled = imp.counts
    imp.observe(looks / np.linalg.norm(looks, axis=1, keepdims=True))
    assert imp.counts is settled


def test_impostor_bins_by_search_equal_the_arithmetic_bins():
    """observe() finds a float32 similarity's bin with one searchsorted over each bin's first
    value; those bins must be the arithmetic ones (an exhaustive check over [-1.02, 1.02] was
    run once; here: every edge and its neighbouring floats, and random similarities)."""
    from smiletrack_ros.tracking.calibration import _FIRST_OF_BIN, BINS, bin_index

    up, down = np.float32(np.inf), np.float32(-np.inf)
    above, below = [_FIRST_OF_BIN], [_FIRST_OF_BIN]
    for _ in range(4):  # the four floats on either side of every edge
        above.append(np.nextafter(above[-1], up))
        below.append(np.nextafter(below[-1], down))
    rng = np.random.default_rng(0)
    sims = np.concatenate(above + below + [rng.uniform(-1.02, 1.02, 100_000).astype(np.float32),
                                           np.array([-1, 0, 1, -0.0], np.float32)])
    assert np.array_equal(_FIRST_OF_BIN.searchsorted(sims, side="right"), bin_index(sims))
    assert bin_index(_FIRST_OF_BIN).tolist() == list(range(1, BINS))


def _lookalike_reappears(quantile, **overrides):
    """Six people seen together whose looks all score about 0.9 against each other;
    person 0 is lost for 1 s, then a look-alike (about 0.9 too) shows below where
    person 0 was predicted (no overlap, well inside the speed gate)."""
    fps = 5.0
    rng = np.random.default_rng(1)
    base = rng.normal(size=8)
    looks = base + 0.4 * np.linalg.norm(base) * rng.normal(size=(7, 8)) / np.sqrt(8)
    looks = (looks / np.linalg.norm(looks, axis=1, keepdims=True)).astype(np.float32)
    trk = SmileTracker(TrackerConfig.from_preset("reid", reid_impostor_quantile=quantile, **overrides), frame_rate=fps)
    xs = 60.0 + 90.0 * np.arange(6)
    for k in range(10):
        rows = xs if k < 5 else xs[1:]
        trk.update(np.concatenate([box(x) for x in rows]), np.full(len(rows), 0.9),
                   embeddings=looks[:6][-len(rows):], timestamp=k / fps)
    if quantile is not None:
        assert 0.7 < float(looks[6] @ looks[0]) < trk._impostors.quantile(0.99)
    moved = [box(xs[0], y=320.0), *(box(x) for x in xs[1:])]
    return trk.update(np.concatenate(moved), np.full(6, 0.9), embeddings=np.concatenate([looks[6:], looks[1:6]]),
                      timestamp=10 / fps)


def test_with_a_weak_embedder_a_lookalike_is_not_re_identified():
    assert 0 not in {o.detection_index for o in _lookalike_reappears(0.99)}  # a new, tentative track
    # Without the learnt floor (and the ambiguity test), the 0.7 appearance gate alone lets the look-alike take the id.
    assert 0 in {o.detection_index for o in _lookalike_reappears(None, reid_margin=None)}
