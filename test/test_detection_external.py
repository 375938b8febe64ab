"""The external backend: detections held by frame or stamp, from a det file or the node."""
import numpy as np
import pytest

from smiletrack_ros.detection import ExternalConfig, build_detector
from smiletrack_ros.detection.external import DetectionStore, ExternalDetector, MissingDetectionsError
from smiletrack_ros.detections import Detections

IMAGE = np.zeros((20, 30, 3), np.uint8)


def _dets(scores, classes=None):
    n = len(scores)
    boxes = np.tile(np.array([[1, 2, 11, 22]], np.float32), (n, 1)) + np.arange(n, dtype=np.float32)[:, None]
    cls = np.zeros(n, np.int64) if classes is None else np.asarray(classes, np.int64)
    return Detections(boxes, np.asarray(scores, np.float32), cls)


def test_frames_and_stamps():
    det = ExternalDetector(ExternalConfig(stamp_tolerance=0.01))
    det.store.put(3, _dets([0.9, 0.4]))
    det.store.put(10.50, _dets([0.8]))
    det.store.put(10.30, _dets([0.7, 0.6, 0.5]))
    assert len(det.select(3)(IMAGE)) == 2
    assert len(det.select(10.505)(IMAGE)) == 1       # nearest stamp within tolerance
    assert len(det.select(10.295)(IMAGE)) == 3
    assert len(det.select(10.40)(IMAGE)) == 0        # none within tolerance: empty by default
    assert len(det.select(4)(IMAGE)) == 0
    det.store.discard_before(10.4)
    assert len(det.select(10.30)(IMAGE)) == 0 and len(det.select(10.5)(IMAGE)) == 1


def test_missing_can_be_an_error():
    det = ExternalDetector(ExternalConfig(missing="error"))
    with pytest.raises(MissingDetectionsError, match="select"):
        det(IMAGE)
    det.store.put(1, _dets([0.9]))
    with pytest.raises(MissingDetectionsError, match="no external detections for 2"):
        det.select(2)(IMAGE)
    with pytest.raises(ValueError, match="finite float stamp"):
        det.store.put(float("nan"), _dets([0.9]))


def test_same_filters_as_the_model_backends():
    store = DetectionStore(ExternalConfig(score_threshold=0.3, classes=(0,), max_detections=2))
    store.put(1, _dets([0.2, 0.9, 0.5, 0.95, 0.6], classes=[0, 0, 0, 2, 0]))
    out = store.get(1)
    np.testing.assert_allclose(out.scores, [0.9, 0.6])
    assert out.class_ids.tolist() == [0, 0]


def test_from_a_mot_det_file(tmp_path):
    path = tmp_path / "det.txt"
    path.write_text("1,-1,10,20,30,60,0.9,-1,-1,-1\n1,-1,50,20,30,60,0.02,-1,-1,-1\n"
                    "3,-1,5,5,10,10,0.7,-1,-1,-1\n")
    det = build_detector(ExternalConfig(weights=str(path)))
    assert isinstance(det, ExternalDetector)
    first = det.select(1)(IMAGE)
    np.testing.assert_allclose(first.boxes, [[10, 20, 40, 80]])  # the 0.02 box is under the 0.05 threshold
    assert len(det.select(2)(IMAGE)) == 0 and len(det.select(3)(IMAGE)) == 1
    with pytest.raises(ValueError, match="HxWx3"):
        det.select(1)(IMAGE[..., 0])
