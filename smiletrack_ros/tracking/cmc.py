"""Camera-motion compensation from consecutive frames (sparse optical flow).

Corners found in the previous frame (away from detected objects, which move on
their own) are followed into the current frame with pyramidal Lucas-Kanade;
a RANSAC partial affine (rotation, uniform scale, translation) fitted to the
pairs maps previous-frame pixels to current-frame pixels. OpenCV is imported
only when an estimator is built, so the tracker core does not need it.
"""
from __future__ import annotations

import numpy as np

IDENTITY = np.eye(2, 3)


class CameraMotionEstimator:
    def __init__(self, downscale: int = 2, max_corners: int = 1000, min_inliers: int = 8) -> None:
        import cv2  # lazily: only camera-motion compensation needs OpenCV

        self._cv2 = cv2
        self.downscale = downscale
        self.max_corners = max_corners
        self.min_inliers = min_inliers
        self._previous: np.ndarray | None = None
        self._previous_mask: np.ndarray | None = None

    def reset(self) -> None:
        self._previous = None
        self._previous_mask = None

    def estimate(self, image: np.ndarray, boxes: np.ndarray | None = None) -> np.ndarray:
        """2x3 affine from the previous frame to ``image`` (identity on the first
        frame, after a size change, or when too few corners can be followed)."""
        cv2 = self._cv2
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if self.downscale > 1:
            gray = cv2.resize(gray, (gray.shape[1] // self.downscale, gray.shape[0] // self.downscale),
                              interpolation=cv2.INTER_AREA)
        mask = self._static_mask(gray.shape, boxes)
        previous, previous_mask = self._previous, self._previous_mask
        self._previous, self._previous_mask = gray, mask
        if previous is None or previous.shape != gray.shape:
            return IDENTITY.copy()
        corners = cv2.goodFeaturesToTrack(previous, maxCorners=self.max_corners, qualityLevel=0.01,
                                          minDistance=1, blockSize=3, mask=previous_mask)
        if corners is None or len(corners) < self.min_inliers:
            return IDENTITY.copy()
        moved, status, _ = cv2.calcOpticalFlowPyrLK(previous, gray, corners, None)
        ok = status.ravel() == 1
        if ok.sum() < self.min_inliers:
            return IDENTITY.copy()
        affine, inliers = cv2.estimateAffinePartial2D(corners[ok], moved[ok], method=cv2.RANSAC)
        if affine is None or inliers is None or inliers.sum() < self.min_inliers or not np.isfinite(affine).all():
            return IDENTITY.copy()
        affine = affine.astype(np.float64)
        affine[:, 2] *= self.downscale
        return affine

    def _static_mask(self, shape: tuple[int, ...], boxes: np.ndarray | None) -> np.ndarray:
        """Where corners may be taken: the image minus detected boxes."""
        mask = np.full(shape[:2], 255, np.uint8)
        if boxes is not None and len(boxes):
            scaled = np.round(np.asarray(boxes, np.float64) / self.downscale).astype(np.int64)
            scaled[:, [0, 2]] = np.clip(scaled[:, [0, 2]], 0, shape[1])
            scaled[:, [1, 3]] = np.clip(scaled[:, [1, 3]], 0, shape[0])
            for x1, y1, x2, y2 in scaled:
                mask[y1:y2, x1:x2] = 0
        return mask
