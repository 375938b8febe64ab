"""The tracker's building blocks: geometry, batched Kalman filter, costs, assignment, feature bank."""
import numpy as np
import pytest

from smiletrack_ros.boxes import iou_matrix, xyah_to_xyxy, xyxy_to_xyah
from smiletrack_ros.tracking import kalman
from smiletrack_ros.tracking.bank import AppearanceStore
from smiletrack_ros.tracking.matching import assign, fuse_score, fused_cost, gated_iou_cost


def test_iou_matrix_values():
    a = np.array([[0, 0, 10, 10], [0, 0, 20, 20]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [100, 100, 110, 110]], float)
    np.testing.assert_allclose(iou_matrix(a, b), [[1, 50 / 150, 0], [0.25, 0.25, 0]])
    assert iou_matrix(a, np.zeros((0, 4))).shape == (2, 0)


def test_box_conversion_round_trip():
    boxes = np.array([[10, 20, 50, 120], [0.5, 1.5, 3.0, 9.5]])
    xyah = xyxy_to_xyah(boxes)
    np.testing.assert_allclose(xyah[0], [30, 70, 0.4, 100])
    np.testing.assert_allclose(xyah_to_xyxy(xyah), boxes)


def _reference_predict(mean, cov, dt):
    """ByteTrack's single-track predict, written out for one track, with a step of dt frames."""
    h = mean[3]
    q = np.diag(np.square([h / 20, h / 20, 1e-2, h / 20, h / 160, h / 160, 1e-5, h / 160]))
    f = np.eye(8)
    f[:4, 4:] = dt * np.eye(4)
    return f @ mean, f @ cov @ f.T + dt * q


@pytest.mark.parametrize("dt", [1.0, 2.5])
def test_batched_predict_equals_per_track_predict(dt):
    """Also with full covariances (as after a camera warp), which the diagonal start hides."""
    rng = np.random.default_rng(0)
    mean, _ = kalman.initiate(np.array([[50, 60, 0.4, 100], [300, 200, 0.5, 40], [10, 10, 1.0, 20]], float))
    mean[:, 4:] = rng.normal(0, 2, (3, 4)) * [1, 1, 0.001, 1]
    root = rng.normal(size=(3, 8, 8))
    cov = root @ root.transpose(0, 2, 1)
    new_mean, new_cov = kalman.predict(mean, cov, dt)
    for i in range(3):
        ref_mean, ref_cov = _reference_predict(mean[i], cov[i], dt)
        np.testing.assert_allclose(new_mean[i], ref_mean)
        np.testing.assert_allclose(new_cov[i], ref_cov)


def test_kalman_update_moves_towards_measurement_and_shrinks_uncertainty():
    mean, cov = kalman.initiate(np.array([[100, 100, 0.5, 80]], float))
    mean, cov = kalman.predict(mean, cov)
    new_mean, new_cov = kalman.update(mean, cov, np.array([[110, 100, 0.5, 80]], float))
    assert 100 < new_mean[0, 0] < 110 and new_mean[0, 4] > 0  # moved, and learned a velocity
    assert new_cov[0, 0, 0] < cov[0, 0, 0]
    np.testing.assert_allclose(new_cov[0], new_cov[0].T, atol=1e-9)


@pytest.mark.parametrize("rotate", [False, True])
def test_kalman_update_matches_the_textbook_formula(rotate):
    """Diagonal innovation covariances take a shortcut; a camera rotation couples x
    and y and takes the general inverse. Both must equal K = P H^T (H P H^T + R)^-1."""
    mean, cov = kalman.initiate(np.array([[100, 100, 0.5, 80], [300, 50, 0.4, 120]], float))
    mean, cov = kalman.predict(mean, cov)
    if rotate:
        c, s = np.cos(0.1), np.sin(0.1)
        mean, cov = kalman.warp(mean, cov, np.array([[c, -s, 5.0], [s, c, -3.0]]))
    meas = np.array([[104, 98, 0.52, 82], [296, 55, 0.41, 118]], float)
    new_mean, new_cov = kalman.update(mean, cov, meas)
    h = np.eye(4, 8)
    for i in range(2):
        _, innovation = kalman.project(mean[i:i + 1], cov[i:i + 1])
        gain = cov[i] @ h.T @ np.linalg.inv(innovation[0])
        np.testing.assert_allclose(new_mean[i], mean[i] + gain @ (meas[i] - h @ mean[i]), rtol=1e-9)
        np.testing.assert_allclose(new_cov[i], cov[i] - gain @ h @ cov[i], rtol=1e-9, atol=1e-12)


def test_prediction_with_longer_step_moves_further():
    mean, cov = kalman.initiate(np.array([[100, 100, 0.5, 80]], float))
    mean[0, 4] = 3.0
    one, cov_one = kalman.predict(mean, cov, 1.0)
    three, cov_three = kalman.predict(mean, cov, 3.0)
    assert one[0, 0] == pytest.approx(103) and three[0, 0] == pytest.approx(109)
    assert cov_three[0, 0, 0] > cov_one[0, 0, 0]


def test_mahalanobis_is_small_near_the_prediction_and_large_far_away():
    mean, cov = kalman.initiate(np.array([[100, 100, 0.5, 80]], float))
    meas = np.array([[101, 100, 0.5, 80], [200, 100, 0.5, 80], [100, 100, 0.5, 80]], float)
    d2 = kalman.squared_mahalanobis(mean, cov, meas, np.array([[True, True, False]]))
    assert d2.shape == (1, 3) and d2[0, 0] < 1 < 9.4877 < d2[0, 1] and d2[0, 2] == np.inf
    _, s = kalman.project(mean, cov)
    diff = meas[0] - mean[0, :4]
    assert d2[0, 0] == pytest.approx(diff @ np.linalg.inv(s[0]) @ diff)


def test_camera_warp_moves_mean_and_covariance():
    mean, cov = kalman.initiate(np.array([[100, 50, 0.5, 80]], float))
    mean[0, 4:6] = [2.0, 0.0]
    affine = np.array([[0.0, -2.0, 10.0], [2.0, 0.0, -5.0]])  # rotate 90 degrees, scale 2, shift
    new_mean, new_cov = kalman.warp(mean, cov, affine)
    np.testing.assert_allclose(new_mean[0, :4], [-100 + 10, 200 - 5, 0.5, 160])
    np.testing.assert_allclose(new_mean[0, 4:6], [0.0, 4.0])
    assert new_cov[0, 3, 3] == pytest.approx(4 * cov[0, 3, 3])
    np.testing.assert_allclose(new_cov[0, 0, 0], 4 * cov[0, 1, 1])


def test_assign_respects_threshold_and_minimises_cost():
    cost = np.array([[0.1, 0.5], [0.2, np.inf]])
    rows, cols = assign(cost, 0.8)
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 1), (1, 0)]  # 0.7 total beats 0.1 + a miss
    rows, cols = assign(np.array([[0.85, 0.9]]), 0.8)
    assert len(rows) == 0
    rows, cols = assign(np.array([[0.3], [0.1], [np.nan]]), 0.5)
    assert rows.tolist() == [1] and cols.tolist() == [0]


def test_assign_prefers_leaving_unmatched_over_costly_pairs():
    # (0,0) alone costs 0.1 + two misses at 0.4 = 0.9; the two 0.75 pairs cost 1.5, so
    # unlike a maximum-cardinality assignment, the cheap pair alone wins.
    rows, cols = assign(np.array([[0.1, 0.75], [0.75, np.inf]]), 0.8)
    assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 0)]
    rows, cols = assign(np.array([[0.1, 0.3], [0.3, np.inf]]), 0.8)  # 0.6 < 0.9: both pairs
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 1), (1, 0)]


def test_fused_cost_gate_and_iou_fallback():
    iou = np.array([[0.9, 0.2, 0.6]])
    app = np.array([[0.5, 0.95, 0.0]])
    has = np.array([[True, True, False]])
    cost = fused_cost(iou, app, has, alpha=0.5, gate=0.7, min_iou=0.1)
    assert cost[0, 0] == np.inf  # high IoU, but appearance below the gate
    assert cost[0, 1] == pytest.approx(1 - (0.1 + 0.475))
    assert cost[0, 2] == pytest.approx(0.4)  # no appearance: IoU only
    assert fused_cost(iou, app, has, alpha=0.5, gate=None, min_iou=0.1)[0, 0] == pytest.approx(1 - 0.7)


def test_fused_cost_never_joins_boxes_that_barely_overlap():
    iou = np.array([[0.0, 0.05, 0.1]])
    app = np.array([[1.0, 0.95, 0.8]])
    has = np.ones((1, 3), bool)
    cost = fused_cost(iou, app, has, alpha=0.5, gate=0.7, min_iou=0.1)
    assert cost[0, 0] == np.inf and cost[0, 1] == np.inf  # appearance alone would pass 0.8
    assert cost[0, 2] == pytest.approx(1 - (0.05 + 0.4))


def test_gated_iou_cost_uses_appearance_fused_with_motion():
    iou = np.array([[0.8, 0.8, 0.8]])
    app = np.array([[0.95, 0.95, 0.5]])
    has = np.ones((1, 3), bool)
    maha = np.array([[1.0, 20.0, 1.0]])  # the second pair is outside the chi-square gate
    cost = gated_iou_cost(iou, app, has, maha, 0.98, 9.4877, 0.7)
    np.testing.assert_allclose(cost, [[0.2, 1.0, 1.0]])


def test_fuse_score_only_touches_motion_only_pairs():
    cost = np.array([[0.2, 0.2]])
    fused = fuse_score(cost, np.array([0.5, 0.5]), np.array([[True, False]]))
    np.testing.assert_allclose(fused, [[1 - 0.8 * 0.5, 0.2]])


def _unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_bank_similarity_is_the_max_over_the_bank():
    store = AppearanceStore(bank_size=50, ema_momentum=0.9)
    store.adopt_dim(3)
    store.append(1, _unit([[1, 0, 0]]), np.array([True]))
    store.update(np.array([0]), _unit([[0, 1, 0]]))
    det = _unit([[1, 0, 0], [0, 0, 1]])
    bank, has = store.bank_similarity(np.array([0]), det, np.array([True, True]), np.ones((1, 2), bool))
    np.testing.assert_allclose(bank, [[1.0, 0.0]], atol=1e-6)  # matches the OLD appearance
    last, _ = store.similarity(np.array([0]), det, np.array([True, True]), "last")
    np.testing.assert_allclose(last, [[0.0, 0.0]], atol=1e-6)
    assert has.all() and store.count[0] == 2
    only_first = np.array([[True, False]])  # the second pair is not searched, though it would match
    bank, has = store.bank_similarity(np.array([0]), _unit([[1, 0, 0], [0, 1, 0]]), np.array([True, True]),
                                      only_first)
    assert has.tolist() == [[True, True]] and bank.tolist() == [[pytest.approx(1.0), 0.0]]


def _one_track_fed(bank_size: int, n: int) -> tuple[AppearanceStore, np.ndarray]:
    """A store whose single track saw the unit vectors e0, e1, ..., e(n-1) in turn."""
    store = AppearanceStore(bank_size=bank_size, ema_momentum=0.9)
    store.adopt_dim(n)
    feats = np.eye(n, dtype=np.float32)
    store.append(1, feats[:1], np.array([True]))
    for k in range(1, n):
        store.update(np.array([0]), feats[k:k + 1])
    return store, feats


def test_bank_is_capped_and_forgets_the_oldest():
    store, feats = _one_track_fed(bank_size=3, n=5)
    assert store.count[0] == 3 and store.bank.shape == (1, 3, 5)
    sims, _ = store.bank_similarity(np.array([0]), feats, np.ones(5, bool), np.ones((1, 5), bool))
    np.testing.assert_allclose(sims, [[0, 0, 1, 1, 1]], atol=1e-6)


def test_invalid_features_do_not_change_a_track_and_mark_no_appearance():
    store = AppearanceStore(bank_size=4, ema_momentum=0.9)
    store.adopt_dim(2)
    store.append(2, _unit([[1, 0], [0, 1]]), np.array([True, False]))
    assert store.has.tolist() == [True, False]
    _, has = store.similarity(np.arange(2), _unit([[1, 0], [1, 1]]), np.array([True, False]), "ema")
    assert has.tolist() == [[True, False], [False, False]]


def test_ema_feature_blends_old_and_new():
    store = AppearanceStore(bank_size=4, ema_momentum=0.9)
    store.adopt_dim(2)
    store.append(1, _unit([[1, 0]]), np.array([True]))
    store.update(np.array([0]), _unit([[0, 1]]))
    np.testing.assert_allclose(store.ema[0], _unit([0.9, 0.1]), atol=1e-6)
    np.testing.assert_allclose(store.last[0], [0, 1])


def test_bank_resize_keeps_the_newest_features():
    store, feats = _one_track_fed(bank_size=4, n=6)
    everything = np.ones((1, 6), bool)
    store.resize(2)
    sims, _ = store.bank_similarity(np.array([0]), feats, np.ones(6, bool), everything)
    np.testing.assert_allclose(sims, [[0, 0, 0, 0, 1, 1]], atol=1e-6)
    store.resize(5)  # growing keeps them and makes room
    store.update(np.array([0]), feats[:1])
    sims, _ = store.bank_similarity(np.array([0]), feats, np.ones(6, bool), everything)
    np.testing.assert_allclose(sims, [[1, 0, 0, 0, 1, 1]], atol=1e-6)
    assert store.bank.shape == (1, 5, 6) and store.count[0] == 3


def test_banks_follow_their_tracks_through_births_and_deaths():
    store = AppearanceStore(bank_size=2, ema_momentum=0.9)
    store.adopt_dim(4)
    feats = np.eye(4, dtype=np.float32)
    store.append(3, feats[:3], np.ones(3, bool))
    store.keep(np.array([0, 2]))  # the track with feature 1 dies; its pool row is reused
    store.append(2, feats[[3, 1]], np.ones(2, bool))
    sims, _ = store.bank_similarity(np.arange(4), feats, np.ones(4, bool), np.ones((4, 4), bool))
    np.testing.assert_allclose(sims, feats[[0, 2, 3, 1]], atol=1e-6)
    assert store.bank.shape == (4, 2, 4) and store._pool.shape[0] <= 6
    store.update(np.array([1]), feats[:1])  # row 1's bank: features 2 and 0
    np.testing.assert_allclose(store.bank[1], feats[[2, 0]])


def test_bank_similarity_equals_a_plain_list_model_through_updates_and_resizes():
    rng = np.random.default_rng(3)
    store = AppearanceStore(bank_size=4, ema_momentum=0.9)
    store.adopt_dim(8)
    model: list[list[np.ndarray]] = []  # per track: its features, newest last, at most bank_size
    for step in range(200):
        action = rng.integers(10)
        if action == 0 or not model:
            feats = _unit(rng.normal(size=(2, 8))).astype(np.float32)
            store.append(2, feats, np.ones(2, bool))
            model += [[f] for f in feats]
        elif action == 1:
            keep = np.flatnonzero(rng.random(len(model)) < 0.8)
            store.keep(keep)
            model = [model[i] for i in keep]
        elif action == 2:
            size = int(rng.integers(1, 7))
            store.resize(size)
            model = [m[-size:] for m in model]
        else:
            rows = np.flatnonzero(rng.random(len(model)) < 0.5)
            feats = _unit(rng.normal(size=(len(rows), 8))).astype(np.float32)
            store.update(rows, feats)
            for i, f in zip(rows, feats, strict=True):
                model[i] = (model[i] + [f])[-store.bank_size:]
        if model:
            probe = _unit(rng.normal(size=(3, 8))).astype(np.float32)
            sims, _ = store.bank_similarity(np.arange(len(model)), probe, np.ones(3, bool),
                                            np.ones((len(model), 3), bool))
            want = [[max(float(f @ p) for f in m) for p in probe] for m in model]
            np.testing.assert_allclose(sims, want, atol=1e-5, err_msg=f"step {step}")


def _thresholded_objective(cost, rows, cols, max_cost):
    matched = cost[rows, cols].sum()
    return matched + (cost.shape[0] - len(rows) + cost.shape[1] - len(cols)) * max_cost / 2


def _reference_assign(cost, max_cost):
    """The whole extended problem in one solve, without splitting off lone pairs."""
    from scipy.optimize import linear_sum_assignment

    r, c = cost.shape
    ext = np.full((r + c, c + r), np.inf)
    ext[:r, :c] = np.where(cost <= max_cost, cost, np.inf)
    np.fill_diagonal(ext[:r, c:], max_cost / 2)
    np.fill_diagonal(ext[r:, :c], max_cost / 2)
    ext[r:, c:] = 0
    ri, ci = linear_sum_assignment(ext)
    keep = (ri < r) & (ci < c)
    return ri[keep], ci[keep]


@pytest.mark.parametrize("seed", range(20))
def test_assign_is_optimal_on_random_sparse_problems(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 12, 2))
    cost = rng.uniform(0, 1, shape)
    cost[rng.random(shape) < 0.7] = np.inf  # sparse: many lone pairs, some competition
    cost[rng.random(shape) < 0.05] = np.nan  # never feasible, as inf
    rows, cols = assign(cost, 0.8)
    assert len(set(rows.tolist())) == len(rows) and len(set(cols.tolist())) == len(cols)
    assert (cost[rows, cols] <= 0.8).all()
    ref = _reference_assign(cost, 0.8)
    assert _thresholded_objective(cost, rows, cols, 0.8) == pytest.approx(_thresholded_objective(cost, *ref, 0.8))


def test_ema_starts_from_the_latest_feature_when_switched_on():
    store = AppearanceStore(bank_size=4, ema_momentum=None)
    store.adopt_dim(2)
    store.append(1, _unit([[1, 0]]), np.array([True]))
    store.update(np.array([0]), _unit([[0, 1]]))
    with pytest.raises(ValueError, match="no EMA"):
        store.similarity(np.array([0]), _unit([[0, 1]]), np.array([True]), "ema")
    store.set_ema_momentum(0.9)
    np.testing.assert_allclose(store.ema[0], [0, 1])
    store.update(np.array([0]), _unit([[1, 0]]))
    np.testing.assert_allclose(store.ema[0], _unit([0.1, 0.9]), atol=1e-6)


def test_true_pairs_equals_nonzero_in_order():
    from smiletrack_ros.tracking.matching import true_pairs

    rng = np.random.default_rng(0)
    for shape in ((0, 5), (5, 0), (1, 1), (7, 3), (50, 25)):
        mask = rng.random(shape) < 0.3
        for m in (mask, mask.T, mask[:, ::2]):  # any layout
            rows, cols = true_pairs(m)
            expected = m.nonzero()
            assert np.array_equal(rows, expected[0]) and np.array_equal(cols, expected[1])
            assert rows.dtype == expected[0].dtype
