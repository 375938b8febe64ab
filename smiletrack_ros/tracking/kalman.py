"""Constant-velocity Kalman filter over stacked track states.

State per track: (cx, cy, a, h, vcx, vcy, va, vh) with a = w/h, as in ByteTrack,
whose noise model (standard deviations proportional to the box height) this
follows. Time is measured in frames at the tracker's nominal frame rate, so a
step of ``dt`` frames scales the transition and the process noise. All
functions take (T, 8) means and (T, 8, 8) covariances and return new arrays.
"""
from __future__ import annotations

import numpy as np

STD_POSITION = 1.0 / 20
STD_VELOCITY = 1.0 / 160
# Floors keep the filter well-conditioned for boxes that shrink towards zero.
MIN_HEIGHT = 1e-3
MIN_ASPECT = 1e-3


# Standard deviations: a multiple of the box height, plus a floor for the aspect terms.
_INIT_SCALE = np.array([2 * STD_POSITION, 2 * STD_POSITION, 0, 2 * STD_POSITION,
                        10 * STD_VELOCITY, 10 * STD_VELOCITY, 0, 10 * STD_VELOCITY])
_INIT_FLOOR = np.array([0, 0, 1e-2, 0, 0, 0, 1e-5, 0])
_PROCESS_SCALE = np.array([STD_POSITION, STD_POSITION, 0, STD_POSITION,
                           STD_VELOCITY, STD_VELOCITY, 0, STD_VELOCITY])
_PROCESS_FLOOR = np.array([0, 0, 1e-2, 0, 0, 0, 1e-5, 0])
_MEASURE_SCALE = np.array([STD_POSITION, STD_POSITION, 0, STD_POSITION])
_MEASURE_FLOOR = np.array([0, 0, 1e-1, 0])
# Floors of the whole state: -inf (no floor) but for the aspect and the height.
_STATE_FLOOR = np.array([-np.inf, -np.inf, MIN_ASPECT, MIN_HEIGHT, -np.inf, -np.inf, -np.inf, -np.inf])
_IDENTITY8 = np.eye(8)
_POSITION_FROM_VELOCITY = np.eye(8, k=4)


def _std(height: np.ndarray, scale: np.ndarray, floor: np.ndarray) -> np.ndarray:
    return height[:, None] * scale + floor


def initiate(measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks from (N, 4) xyah measurements: zero velocity, wide uncertainty."""
    n = len(measurements)
    mean = np.zeros((n, 8))
    mean[:, :4] = measurements
    cov = np.zeros((n, 8, 8))
    _diagonal(cov)[:] = _std(measurements[:, 3], _INIT_SCALE, _INIT_FLOOR) ** 2
    return mean, cov


def predict(mean: np.ndarray, cov: np.ndarray, dt: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """One constant-velocity step of ``dt`` frames for every track at once."""
    variance = _std(mean[:, 3], _PROCESS_SCALE, _PROCESS_FLOOR) ** 2
    transition = _IDENTITY8 + dt * _POSITION_FROM_VELOCITY
    new_mean = mean @ transition.T
    # (F P) F^T with the right product as one (8T, 8) @ (8, 8) matrix product instead of T
    # small ones: fewer BLAS calls, the same dot products (bit for bit, checked here).
    new_cov = ((transition @ cov).reshape(-1, 8) @ transition.T).reshape(cov.shape)
    _diagonal(new_cov)[:] += dt * variance
    _clamp_shape(new_mean)
    return new_mean, new_cov


def _clamp_shape(mean: np.ndarray) -> None:
    """Aspect and height at least their floors, in place (nan stays nan; one call on whole rows)."""
    np.maximum(mean, _STATE_FLOOR, out=mean)


def _diagonal(matrices: np.ndarray) -> np.ndarray:
    """Writable (T, K) view of the diagonals of C-contiguous (T, K, K) matrices
    (a strided view: cheaper than fancy indexing, which copies)."""
    k = matrices.shape[-1]
    return matrices.reshape(len(matrices), k * k, copy=False)[:, ::k + 1]


def project(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted measurement (T, 4) and its innovation covariance (T, 4, 4)."""
    innovation_cov = cov[:, :4, :4].copy()
    _diagonal(innovation_cov)[:] += _std(mean[:, 3], _MEASURE_SCALE, _MEASURE_FLOOR) ** 2
    return mean[:, :4], innovation_cov


def _times_inverse(a: np.ndarray, innovation_cov: np.ndarray) -> np.ndarray:
    """``a`` (T, R, 4) @ the inverse of (T, 4, 4) innovation covariances. Without
    camera-motion compensation the four measured quantities never couple (each
    moves with its own velocity only), so the covariances stay diagonal and the
    product is a division by their diagonals."""
    diagonal = _diagonal(innovation_cov)
    if np.count_nonzero(innovation_cov) == np.count_nonzero(diagonal):
        return a / diagonal[:, None, :]
    return a @ np.linalg.inv(innovation_cov)


def _gain(mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Kalman gains P H^T S^-1 (H selects the first four state entries: P H^T = P[:, :, :4]).
    S's off-diagonal entries are P's top-left ones: when those are all zero (no camera-motion
    compensation, see ``_times_inverse``), S is its diagonal, computed as ``project`` does,
    without building S."""
    top, diagonal = cov[:, :4, :4], _diagonal(cov)[:, :4]
    if np.count_nonzero(top) == np.count_nonzero(diagonal):
        return cov[:, :, :4] / (diagonal + _std(mean[:, 3], _MEASURE_SCALE, _MEASURE_FLOOR) ** 2)[:, None, :]
    return _times_inverse(cov[:, :, :4], project(mean, cov)[1])


def update(mean: np.ndarray, cov: np.ndarray, measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correct each track (row i) with its measurement (row i, xyah)."""
    gain = _gain(mean, cov)
    new_mean = mean + (gain @ (measurements - mean[:, :4])[:, :, None])[:, :, 0]  # H x = x[:, :4]
    new_cov = cov - gain @ cov[:, :4, :]  # = P - K S K^T
    _clamp_shape(new_mean)
    return new_mean, new_cov


def squared_mahalanobis(mean: np.ndarray, cov: np.ndarray, measurements: np.ndarray,
                        pairs: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of (N, 4) xyah measurements to tracks, for the
    (T, N) boolean ``pairs`` only; other entries are inf."""
    projected, innovation_cov = project(mean, cov)
    t, n = np.nonzero(pairs)
    out = np.full(pairs.shape, np.inf)
    if len(t):
        diff = measurements[n] - projected[t]
        out[t, n] = np.einsum("pi,pi->p", _times_inverse(diff[:, None, :], innovation_cov[t])[:, 0], diff)
    return out


def squared_position_mahalanobis(mean: np.ndarray, cov: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of (N, 2) box centres to every track's predicted
    centre, under the centre's innovation covariance -> (T, N)."""
    projected, innovation_cov = project(mean, cov)
    diff = centres[None, :, :] - projected[:, None, :2]
    inverse = np.linalg.inv(innovation_cov[:, :2, :2])
    return np.einsum("tni,tij,tnj->tn", diff, inverse, diff)


def warp(mean: np.ndarray, cov: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move states by a 2x3 camera affine (rotation/scale + translation).

    Centre and centre velocity are rotated and scaled; height and its velocity
    scale by the transform's scale; the aspect ratio is unchanged."""
    rot = affine[:, :2]
    scale = float(np.sqrt(abs(np.linalg.det(rot))))
    m = np.eye(8)
    m[0:2, 0:2] = rot
    m[4:6, 4:6] = rot
    m[3, 3] = m[7, 7] = scale
    new_mean = mean @ m.T
    new_mean[:, :2] += affine[:, 2]
    return new_mean, m @ cov @ m.T


def finite_states(mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Per-track flag: every number in the state is finite."""
    return np.isfinite(mean).all(axis=1) & np.isfinite(cov).all(axis=(1, 2))
