"""The one box module: conversions and IoU, including the boxes a Kalman prediction or bad input can give."""
import numpy as np
import pytest

from smiletrack_ros.boxes import iou_matrix, xyah_to_xyxy, xywh_to_xyxy, xyxy_to_xyah


def _iou_loop(a, b):
    """Reference: one pair at a time, sides clipped at zero, 0 for an empty union."""
    out = np.zeros((len(a), len(b)))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            w = max(min(p[2], q[2]) - max(p[0], q[0]), 0.0)
            h = max(min(p[3], q[3]) - max(p[1], q[1]), 0.0)
            inter = w * h
            union = max(p[2] - p[0], 0) * max(p[3] - p[1], 0) + max(q[2] - q[0], 0) * max(q[3] - q[1], 0) - inter
            out[i, j] = inter / union if union > 0 else 0.0
    return out


def test_iou_equals_a_pairwise_reference_on_random_boxes():
    rng = np.random.default_rng(0)
    a = np.c_[rng.uniform(0, 100, (30, 2)), np.zeros((30, 2))]
    a[:, 2:] = a[:, :2] + rng.uniform(0.5, 40, (30, 2))
    b = a[rng.permutation(30)[:12]] + rng.normal(0, 5, (12, 4))
    np.testing.assert_allclose(iou_matrix(a, b), _iou_loop(a, b), rtol=0, atol=1e-15)


def test_inverted_empty_and_nan_boxes_have_iou_zero():
    good = np.array([[0.0, 0.0, 10.0, 10.0]])
    odd = np.array([[10.0, 10.0, 0.0, 0.0],      # inverted on both axes: its "area" is positive
                    [10.0, 0.0, 0.0, 10.0],      # inverted on one axis: negative "area"
                    [5.0, 5.0, 5.0, 9.0],        # zero width
                    [np.nan, 0.0, 10.0, 10.0]])  # bad input
    got = iou_matrix(odd, good)
    assert got.dtype == np.float64 and np.array_equal(got, np.zeros((4, 1)))
    assert np.array_equal(iou_matrix(good, odd), got.T)
    assert np.array_equal(iou_matrix(odd, odd), np.zeros((4, 4)))


def test_iou_shapes_and_dtype():
    a = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], np.float32)
    assert iou_matrix(a, np.zeros((0, 4))).shape == (2, 0)
    assert iou_matrix(np.zeros((0, 4)), a).shape == (0, 2)
    # float32 input is computed in float64, so the result does not depend on the caller's dtype
    assert np.array_equal(iou_matrix(a, a), iou_matrix(a.astype(np.float64), a.astype(np.float64)))
    np.testing.assert_allclose(iou_matrix(a[0], a), [[1.0, 50 / 150]])


def test_conversions_round_trip():
    xywh = np.array([[10.0, 20.0, 30.0, 60.0], [0.5, 0.0, 1.0, 2.0]])
    xyxy = xywh_to_xyxy(xywh)
    np.testing.assert_array_equal(xyxy, [[10, 20, 40, 80], [0.5, 0, 1.5, 2]])
    assert xywh[0, 2] == 30.0, "the input is not modified"
    xyah = xyxy_to_xyah(xyxy)
    np.testing.assert_allclose(xyah[0], [25, 50, 0.5, 60])
    np.testing.assert_allclose(xyah_to_xyxy(xyah), xyxy)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_xywh_accepts_any_float_dtype(dtype):
    assert xywh_to_xyxy(np.array([[1, 2, 3, 4]], dtype)).dtype == np.float64
