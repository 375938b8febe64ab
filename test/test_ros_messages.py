"""Message building without DDS: tracks -> Detection2DArray / TrackArray, detections round trip,
debug drawing. Needs the generated messages (run through tools/test.sh)."""
import math

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("smiletrack_ros.msg", reason="generated messages not installed (tools/test.sh)")
import smiletrack_ros.msg as msg_pkg
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from smiletrack_ros.cdr import detection_array_cdr, track_array_cdr
from smiletrack_ros.detections import Detections
from smiletrack_ros.ros.annotate import colour_for_id, draw_tracks
from smiletrack_ros.ros.messages import DetectionsError, detection_array_message, detection_array_to_detections
from smiletrack_ros.tracking import TrackOutput, TrackState


def _header() -> Header:
    h = Header(frame_id="cam_left")
    h.stamp.sec, h.stamp.nanosec = 1700000000, 123456789
    return h


def _tracks() -> list[TrackOutput]:
    return [
        TrackOutput(track_id=7, box=np.array([10.0, 20.0, 50.0, 120.0]), score=0.9, class_id=0,
                    state=TrackState.TRACKED, age=12, hits=10, frames_since_update=0, velocity=(3.5, -1.0),
                    appearance_similarity=0.82, detection_index=1),
        TrackOutput(track_id=2**33, box=np.array([100.5, 40.0, 140.5, 200.0]), score=0.4, class_id=3,
                    state=TrackState.LOST, age=40, hits=30, frames_since_update=4, velocity=(0.0, 0.0),
                    appearance_similarity=math.nan, detection_index=-1),
    ]


def test_tracks_become_vision_msgs_detections():
    header = _header()
    msg = deserialize_message(detection_array_cdr(header, _tracks(), class_names=("person",)), Detection2DArray)
    assert msg.header == header
    assert [d.id for d in msg.detections] == ["7", str(2**33)]
    first, second = msg.detections
    assert first.header == header
    assert first.bbox.center.position.x == pytest.approx(30.0) and first.bbox.center.position.y == pytest.approx(70.0)
    assert (first.bbox.size_x, first.bbox.size_y) == (40.0, 100.0)
    assert len(first.results) == 1
    assert first.results[0].hypothesis.class_id == "person"
    assert first.results[0].hypothesis.score == pytest.approx(0.9)
    assert second.results[0].hypothesis.class_id == "3"       # out of the names' range: the index


def test_track_array_carries_every_field():
    msg = deserialize_message(track_array_cdr(_header(), _tracks()), msg_pkg.TrackArray)
    assert msg.header.frame_id == "cam_left"
    a, b = msg.tracks
    assert (a.id, a.class_id, a.state, a.age, a.hits, a.frames_since_update, a.detection_index) == \
        (7, "0", msg_pkg.Track.STATE_TRACKED, 12, 10, 0, 1)
    assert (a.velocity_x, a.velocity_y) == (3.5, -1.0)
    assert a.appearance_similarity == pytest.approx(0.82)
    assert b.id == 2**33 and b.state == msg_pkg.Track.STATE_LOST and b.detection_index == -1
    assert math.isnan(b.appearance_similarity)
    assert b.bbox.center.position.x == pytest.approx(120.5) and b.bbox.size_y == pytest.approx(160.0)


def test_detections_round_trip_through_detection2darray():
    dets = Detections(np.array([[10, 20, 30, 60], [100, 50, 180, 250]], np.float32),
                      np.array([0.75, 0.25], np.float32), np.array([0, 1], np.int64))
    names = ("person", "bicycle")
    msg = _detections_msg(dets, names)
    assert [d.results[0].hypothesis.class_id for d in msg.detections] == ["person", "bicycle"]
    back = detection_array_to_detections(msg, names)
    np.testing.assert_allclose(back.boxes, dets.boxes)
    np.testing.assert_allclose(back.scores, dets.scores)
    np.testing.assert_array_equal(back.class_ids, dets.class_ids)
    # without names, integer strings are read as class indices
    np.testing.assert_array_equal(
        detection_array_to_detections(_detections_msg(dets)).class_ids, [0, 1])
    assert [d.id for d in msg.detections] == ["", ""]                       # not tracked: no id


def _detections_msg(dets: Detections, names=()) -> Detection2DArray:
    return detection_array_message(_header(), dets, names)


def test_unusable_external_detections_are_refused():
    dets = Detections(np.array([[10, 20, 30, 60]], np.float32), np.array([0.5], np.float32),
                      np.array([0], np.int64))
    msg = _detections_msg(dets, ("car",))
    with pytest.raises(DetectionsError, match="unknown class_id 'car'"):
        detection_array_to_detections(msg, ("person",))
    msg = _detections_msg(dets)
    msg.detections[0].bbox.size_x = float("nan")
    with pytest.raises(DetectionsError, match="invalid box"):
        detection_array_to_detections(msg)


def test_debug_drawing_colours_each_id():
    image = np.zeros((240, 320, 3), np.uint8)
    out = draw_tracks(image, _tracks()[:1], ("person",))
    assert not image.any()                                       # copy by default
    assert tuple(out[70, 10]) == colour_for_id(7)                # left edge of box 7
    assert colour_for_id(7) != colour_for_id(8)
    assert len({colour_for_id(i) for i in range(1, 30)}) == 29


@pytest.mark.parametrize("names", [(), ("person", "bicycle", "car", "motorcycle")])
@pytest.mark.parametrize("frame_id", ["", "cam", "camera_optical_frame_x"])
def test_cdr_encoders_match_rclpy(names, frame_id):
    """The one encoder: bytes that rclpy decodes to every track's fields, in rclpy's own layout."""
    header = _header()
    header.frame_id = frame_id
    rng = np.random.default_rng(len(frame_id) + len(names))
    tracks = _tracks() + [
        TrackOutput(track_id=int(rng.integers(1, 10**6)), box=rng.uniform(0, 600, 4), score=float(rng.uniform()),
                    class_id=int(rng.integers(0, 6)), state=TrackState(int(rng.integers(0, 3))),
                    age=int(rng.integers(0, 99)), hits=int(rng.integers(0, 99)),
                    frames_since_update=int(rng.integers(0, 9)), velocity=tuple(rng.normal(size=2) * 50),
                    appearance_similarity=float(rng.uniform()), detection_index=int(rng.integers(-1, 40)))
        for _ in range(7)]
    detections = deserialize_message(detection_array_cdr(header, tracks, names), Detection2DArray)
    full = deserialize_message(track_array_cdr(header, tracks, names), msg_pkg.TrackArray)
    for t, d, f in zip(tracks, detections.detections, full.tracks, strict=True):
        label = names[t.class_id] if t.class_id < len(names) else str(t.class_id)
        assert (d.id, d.header, d.results[0].hypothesis.class_id) == (str(t.track_id), header, label)
        assert d.results[0].pose.pose.orientation.w == 1.0 and not any(d.results[0].pose.covariance)
        assert (f.id, f.class_id, f.state, f.age, f.hits, f.frames_since_update, f.detection_index) == (
            t.track_id, label, int(t.state), t.age, t.hits, t.frames_since_update, t.detection_index)
        for got in (d.bbox, f.bbox):
            assert got.center.position.x == pytest.approx((t.box[0] + t.box[2]) / 2)
            assert got.size_y == pytest.approx(t.box[3] - t.box[1])
        assert _plain(f.score) == _plain(t.score) and _plain(f.velocity_x) == _plain(t.velocity[0])
        assert _plain(f.appearance_similarity) == _plain(t.appearance_similarity)
    # the very layout rclpy writes (padding bytes aside, which rclpy leaves uninitialised)
    for raw, msg in ((detection_array_cdr(header, tracks, names), detections),
                     (track_array_cdr(header, tracks, names), full)):
        assert len(raw) == len(serialize_message(msg))
    empty = deserialize_message(detection_array_cdr(header, []), Detection2DArray)
    assert empty.detections == [] and empty.header == header


def _plain(msg):
    """Decoded message as nested plain data, NaN made comparable, floats at float32 precision."""
    if hasattr(msg, "get_fields_and_field_types"):
        return {name: _plain(getattr(msg, name)) for name in msg.get_fields_and_field_types()}
    if isinstance(msg, (list, tuple)) or type(msg).__name__ in ("ndarray", "array"):
        return [_plain(v) for v in msg]
    if isinstance(msg, float):
        return "nan" if math.isnan(msg) else float(np.float32(msg))
    return msg
