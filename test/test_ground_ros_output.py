"""Ground output on the ROS side without a node: settings, camera_info pairing, 3D messages, Track fields."""
from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from smiletrack_ros.ground import CameraModel, CameraPose, GroundEstimate, GroundStatus, Refusal
from smiletrack_ros.ros.ground_settings import GROUND_PARAMS, GroundSettings, camera_info_beside
from smiletrack_ros.ros.settings import ParameterError
from smiletrack_ros.tracking import TrackOutput, TrackState

rclpy_serialization = pytest.importorskip("rclpy.serialization")
from sensor_msgs.msg import CameraInfo  # noqa: E402
from smiletrack_ros.msg import Track, TrackArray  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from smiletrack_ros.cdr import track_array_cdr  # noqa: E402
from smiletrack_ros.ros.ground_fields import ground_fields  # noqa: E402
from smiletrack_ros.ros.ground_output import (  # noqa: E402
    GroundOutput,
    detection3d_array,
    marker_array,
    transform_matrix,
)

DEFAULTS = {s.name: s.default for s in GROUND_PARAMS}
K = [500.0, 0.0, 320.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0]


def _settings(**changes) -> GroundSettings:
    return GroundSettings.from_values({**DEFAULTS, **{f"ground.{k}": v for k, v in changes.items()}}, "cam/image_raw")


def _track(track_id: int, detection_index: int = 0) -> TrackOutput:
    return TrackOutput(track_id=track_id, box=np.array([300.0, 100.0, 340.0, 300.0]), score=0.9, class_id=0,
                       state=TrackState.TRACKED, age=3, hits=3, frames_since_update=0, velocity=(1.0, 0.0),
                       appearance_similarity=math.nan, detection_index=detection_index)


def _estimate(track_id: int, status=GroundStatus.MEASURED, refusal=Refusal.NONE) -> GroundEstimate:
    cov = np.diag([0.04, 0.01, 0.2, 0.1]) + 0.001
    return GroundEstimate(track_id, status, refusal, np.array([4.0 + track_id, -1.0]), np.array([0.5, 0.25]), cov,
                          1.72, 0.0)


def _header(sec: int = 12, nanosec: int = 5, frame: str = "camera_optical") -> Header:
    header = Header(frame_id=frame)
    header.stamp.sec, header.stamp.nanosec = sec, nanosec
    return header


def _camera_info(sec: int = 12, nanosec: int = 5, k=K) -> CameraInfo:
    return CameraInfo(header=_header(sec, nanosec), width=640, height=480, distortion_model="plumb_bob",
                      d=[0.0] * 5, k=k)


def test_settings_defaults_names_and_errors():
    s = _settings()
    assert s.camera_info_topic == "cam/camera_info" and s.target_frame == "base_link" and not s.enabled
    assert s.pose.height == 1.5
    assert camera_info_beside("image") == "camera_info" and camera_info_beside("/a/b/image_rect") == "/a/b/camera_info"
    assert _settings(camera_info_topic="/x/info").camera_info_topic == "/x/info"
    motion = _settings(acceleration_psd=0.01, turn_psd=0.05, sway_share=0.0, sway_time=2.0).motion
    assert (motion.acceleration_psd, motion.turn_psd, motion.sway_share, motion.sway_time) == (0.01, 0.05, 0.0, 2.0)
    for change, name in (({"camera_height": -1.0}, "ground.camera_height"), ({"camera_pitch_deg": 95.0},
                         "ground.camera_pitch_deg"), ({"min_height": 3.0}, "ground.min_height"),
                         ({"noise_floor_px": 0.0}, "ground.noise_floor_px"), ({"target_frame": " "},
                         "ground.target_frame"), ({"markers_topic": "a//b"}, "ground.markers_topic"),
                         ({"acceleration_psd": 0.0}, "ground.acceleration_psd"), ({"min_score": 2.0},
                         "ground.min_score"), ({"turn_psd": -0.1}, "ground.turn_psd"),
                         ({"sway_share": 1.5}, "ground.sway_share"), ({"sway_time": 0.0}, "ground.sway_time")):
        with pytest.raises(ParameterError) as info:
            _settings(**change)
        assert info.value.name == name, change


def test_track_message_constants_are_the_library_codes():
    for code in Refusal:
        assert getattr(Track, f"REFUSAL_{code.name}") == int(code)
    for status in GroundStatus:
        assert getattr(Track, f"GROUND_{status.name}") == int(status)


def test_track_array_cdr_with_ground_fields_equals_rclpy():
    tracks = [_track(1), _track(2), _track(3, -1), _track(4)]
    ground = {1: _estimate(1), 2: _estimate(2, GroundStatus.PREDICTED, Refusal.LOW_SCORE),
              3: GroundEstimate.none(3, Refusal.UNMATCHED)}   # 4: no estimate at all
    header = _header()
    encoded = track_array_cdr(header, tracks, (), {k: ground_fields(e) for k, e in ground.items()})
    back = rclpy_serialization.deserialize_message(encoded, TrackArray)   # rclpy checks the layout
    for ours in back.tracks:   # the decoded fields are the values encoded for the same estimate
        want = ground_fields(ground.get(int(ours.id)))
        decoded = (ours.ground_x, ours.ground_y, ours.ground_velocity_x, ours.ground_velocity_y,
                   *ours.ground_covariance)
        assert (ours.ground_status, ours.ground_refusal) == (want.status, want.refusal)
        np.testing.assert_array_equal(np.asarray(decoded), np.asarray(want.state))   # nan == nan here
        np.testing.assert_allclose(ours.ground_height, want.height, rtol=1e-7)      # float32 field
    t1, t2, t3, t4 = back.tracks
    assert (t1.ground_status, t1.ground_refusal) == (Track.GROUND_MEASURED, Track.REFUSAL_NONE)
    assert (t1.ground_x, t1.ground_y, t1.ground_velocity_x) == (5.0, -1.0, 0.5)
    np.testing.assert_allclose(np.reshape(t1.ground_covariance, (4, 4)), ground[1].covariance)
    assert t1.ground_height == pytest.approx(1.72)
    assert (t2.ground_status, t2.ground_refusal) == (Track.GROUND_PREDICTED, Track.REFUSAL_LOW_SCORE)
    assert (t3.ground_status, t3.ground_refusal) == (Track.GROUND_NONE, Track.REFUSAL_UNMATCHED)
    assert math.isnan(t3.ground_x) and math.isnan(t3.ground_height)
    assert (t4.ground_status, t4.ground_refusal) == (Track.GROUND_NONE, Track.REFUSAL_NO_CAMERA_MODEL)
    # without any ground output the encoder still matches the message class
    plain = rclpy_serialization.deserialize_message(track_array_cdr(header, tracks), TrackArray).tracks[0]
    assert (plain.ground_status, plain.ground_refusal, plain.ground_x) == (0, Track.REFUSAL_NO_CAMERA_MODEL, 0.0)


def test_detection3d_array_ids_frames_boxes():
    header = Header(frame_id="base_link", stamp=_header().stamp)
    ground = {1: _estimate(1), 2: GroundEstimate.none(2, Refusal.TRUNCATED),
              3: _estimate(3, GroundStatus.PREDICTED, Refusal.UNMATCHED)}
    msg = detection3d_array(header, [_track(1), _track(2), _track(3)], ground, ("person",))
    assert msg.header.frame_id == "base_link" and (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 5)
    assert [d.id for d in msg.detections] == ["1", "3"]
    d = msg.detections[0]
    assert d.header.frame_id == "base_link"
    assert (d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.center.position.z) == (5.0, -1.0, 0.86)
    assert d.bbox.size.z == pytest.approx(1.72) and d.bbox.center.orientation.w == 1.0
    assert d.results[0].hypothesis.class_id == "person" and d.results[0].hypothesis.score == pytest.approx(0.9)
    np.testing.assert_allclose(np.reshape(d.results[0].pose.covariance, (6, 6))[:2, :2], ground[1].covariance[:2, :2])


def test_marker_array_cylinder_text_arrow_per_person():
    header = Header(frame_id="base_link", stamp=_header().stamp)
    msg = marker_array(header, {7: _estimate(7), 8: GroundEstimate.none(8, Refusal.TOO_FAR)})
    assert msg.markers[0].action == Marker.DELETEALL
    people = msg.markers[1:]
    assert [(m.ns, m.type) for m in people] == [("people", Marker.CYLINDER), ("ids", Marker.TEXT_VIEW_FACING),
                                                ("velocity", Marker.ARROW)]
    assert all(m.id == 7 and m.header.frame_id == "base_link" for m in people)
    assert people[1].text == "7"
    start, end = people[2].points
    assert (start.x, start.y, end.x, end.y) == (11.0, -1.0, 11.5, -0.75)


def test_ground_output_needs_camera_info_then_projects_and_pairs_by_stamp():
    out = GroundOutput(_settings())
    boxes = np.array([[300.0, 120.0, 340.0, 330.0]])
    frame = out.process(_header(), 12.0, [_track(1)], boxes, np.array([0.9]))
    assert frame.estimates == {} and "no camera_info" in frame.reason and "cam/camera_info" in frame.reason
    values: dict[str, str] = {}
    assert "no camera_info" in out.diagnostics(values) and values["ground_frames_without_camera_info"] == "1"

    out.on_camera_info(_camera_info(12, 5))
    frame = out.process(_header(12, 5), 12.0, [_track(1)], boxes, np.array([0.9]))
    assert frame.reason is None and frame.header.frame_id == "base_link"
    e = frame.estimates[1]
    assert e.status == GroundStatus.MEASURED
    camera = CameraModel.from_camera_info(_camera_info())
    pose = CameraPose.from_mounting(1.5, math.radians(10.0))
    seen = camera.project(pose.to_optical(np.array([[*e.position, 0.0]])))[0]
    np.testing.assert_allclose(seen, [320.0, 330.0], atol=1e-6)   # the foot point lands where it was seen
    out.process(_header(12, 50_000_005), 12.05, [_track(1)], boxes, np.array([0.9]))   # no info at that stamp
    assert (out.cameras.paired_exact, out.cameras.paired_latest) == (1, 1)
    assert out.diagnostics({}) is None

    bad = GroundOutput(_settings())
    bad.on_camera_info(_camera_info(k=[0.0] * 9))
    assert bad.cameras.rejected == 1 and "no camera_info" in bad.process(_header(), 1.0, [], np.zeros((0, 4)),
                                                                         None).reason


def test_pose_from_a_lookup_and_quaternion_transforms():
    from geometry_msgs.msg import Transform

    T = CameraPose.from_mounting(1.3, 0.2, 0.05, 0.3, 0.1, -0.2).matrix
    q = Rotation.from_matrix(T[:3, :3]).as_quat()   # x, y, z, w
    msg = Transform()
    msg.translation.x, msg.translation.y, msg.translation.z = T[:3, 3]
    msg.rotation.x, msg.rotation.y, msg.rotation.z, msg.rotation.w = q
    np.testing.assert_allclose(transform_matrix(msg), T, atol=1e-12)

    calls = []
    out = GroundOutput(_settings(), lambda frame, stamp: calls.append((frame, stamp)) or (None if stamp < 0 else T))
    out.on_camera_info(_camera_info())
    frame = out.process(_header(), 12.0, [_track(1)], np.array([[300.0, 150.0, 340.0, 330.0]]), None)
    assert calls == [("camera_optical", 12 * 10**9 + 5)] and frame.reason is None
    assert out._projector.pose.matrix is not None and np.allclose(out._projector.pose.matrix, T)


@pytest.mark.skipif(importlib.util.find_spec("tf2_ros") is not None, reason="tf2_ros is importable here")
def test_use_tf_without_tf2_ros_is_refused_naming_the_parameter():
    with pytest.raises(ParameterError) as info:
        _settings(enabled=True, use_tf=True)
    assert info.value.name == "ground.use_tf" and "tf2_ros" in str(info.value)
    assert _settings(enabled=False, use_tf=True).use_tf        # not used, not checked


def test_an_image_of_another_size_than_the_camera_info_gets_no_ground_output_and_is_counted():
    out = GroundOutput(_settings())
    out.on_camera_info(_camera_info(12, 5))                       # 640 x 480
    boxes, scores = np.array([[300.0, 120.0, 340.0, 330.0]]), np.array([0.9])
    assert out.process(_header(12, 5), 12.0, [_track(1)], boxes, scores, (640, 480)).estimates   # measured
    frame = out.process(_header(12, 5), 12.05, [_track(1)], boxes, scores, (1280, 720))
    assert frame.estimates == {} and frame.reason == "image 1280x720 but camera_info on cam/camera_info is 640x480"
    values: dict[str, str] = {}
    assert out.diagnostics(values) == f"{frame.reason}: no ground (3D) output"
    assert values["ground_image_size_mismatches"] == "1" and len(out.tracker) == 0   # the filters are dropped
    again = out.process(_header(12, 5), 12.1, [_track(1)], boxes, scores, (640, 480))
    assert again.reason is None and again.estimates[1].status == GroundStatus.MEASURED
    assert out.diagnostics({}) is None                            # sizes agree again: no warning
