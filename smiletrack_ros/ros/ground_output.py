"""The node's ground-plane output: camera_info in; Detection3DArray, MarkerArray and Track ground fields out.

``GroundOutput`` holds no node: it is fed camera_info messages and, once a frame,
the pipeline's result, and returns the ground estimates (or why there are none).
``GroundPublisher`` wires it into a node (subscription, publishers, optional TF).
The message builders take the image header's stamp and the target frame, so
the 3D outputs line up with the 2D ones of the same image.
"""
from __future__ import annotations

import colorsys
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from geometry_msgs.msg import Point, Pose, PoseWithCovariance, Quaternion, Vector3
from std_msgs.msg import ColorRGBA, Header
from vision_msgs.msg import BoundingBox3D, Detection3D, Detection3DArray, ObjectHypothesis, ObjectHypothesisWithPose
from visualization_msgs.msg import Marker, MarkerArray

from smiletrack_ros.cdr import GroundFields
from smiletrack_ros.ground import (
    CameraModel,
    CameraModelError,
    CameraPose,
    CameraPoseError,
    GroundEstimate,
    GroundProjector,
    GroundStatus,
    GroundTracker,
)
from smiletrack_ros.labels import class_label
from smiletrack_ros.ros.ground_fields import ground_fields
from smiletrack_ros.ros.ground_settings import GroundSettings
from smiletrack_ros.tracking import TrackOutput

DEFAULT_HEIGHT_M = 1.7      # drawn / boxed height of a person whose height was never seen
PERSON_WIDTH_M = 0.5        # Detection3D box footprint and marker diameter
_PAIRING_MEMORY = 8         # camera_info messages kept to pair with images by stamp
_MARKER_ID_MOD = 2**31      # Marker.id is int32


def stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


@dataclass(frozen=True)
class GroundFrame:
    """One frame's ground output: ``estimates`` by track id (empty with ``reason`` set when none
    could be made), ``header`` the 3D outputs' header (image stamp, target frame)."""

    estimates: Mapping[int, GroundEstimate]
    header: Any
    reason: str | None = None


class CameraInfoCache:
    """The recent camera_info messages by stamp, each as a ``CameraModel`` (built once per distinct
    calibration). ``model_for(stamp)``: the one with the image's stamp, else the latest."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_stamp: OrderedDict[int, tuple[CameraModel, str]] = OrderedDict()
        self._last_key: tuple | None = None
        self._last_model: CameraModel | None = None
        self.received = 0
        self.rejected = 0
        self.paired_exact = 0
        self.paired_latest = 0
        self.last_error = ""

    def add(self, msg: Any) -> None:
        key = (tuple(msg.k), tuple(msg.d), msg.distortion_model, int(msg.width), int(msg.height))
        with self._lock:
            self.received += 1
            if key != self._last_key:
                try:
                    self._last_model = CameraModel.from_camera_info(msg)
                except CameraModelError as exc:
                    self.rejected += 1
                    self.last_error = str(exc)
                    return
                self._last_key = key
            self._by_stamp[stamp_ns(msg.header)] = (self._last_model, msg.header.frame_id)
            while len(self._by_stamp) > _PAIRING_MEMORY:
                self._by_stamp.popitem(last=False)

    def model_for(self, stamp: int) -> tuple[CameraModel, str] | None:
        with self._lock:
            if stamp in self._by_stamp:
                self.paired_exact += 1
                return self._by_stamp[stamp]
            if not self._by_stamp:
                return None
            self.paired_latest += 1
            return next(reversed(self._by_stamp.values()))


class GroundOutput:
    """``pose_lookup(camera_frame, stamp_ns)`` -> 4x4 ``T_target_optical`` or None: where the pose
    comes from TF; without it the settings' mounting pose is used."""

    def __init__(self, settings: GroundSettings,
                 pose_lookup: Callable[[str, int], np.ndarray | None] | None = None):
        self.settings = settings
        self.cameras = CameraInfoCache()
        self.tracker = GroundTracker(settings.motion)
        self._pose_lookup = pose_lookup
        self._projector: GroundProjector | None = None
        self.frames_without_camera_info = 0
        self.pose_failures = 0
        self.errors = 0   # counted by GroundPublisher
        self.size_mismatches = 0
        self.last_size_mismatch = ""   # the latest frame's, "" once the sizes agree again

    def on_camera_info(self, msg: Any) -> None:
        self.cameras.add(msg)

    def process(self, header: Any, timestamp: float, live_tracks: Sequence[TrackOutput], boxes: np.ndarray,
                scores: np.ndarray | None, image_size: tuple[int, int] | None = None) -> GroundFrame:
        """``image_size`` (width, height) of the frame, when known, must be the camera_info's: a
        calibration of another resolution would put every foot point in the wrong place."""
        out_header = Header(stamp=header.stamp, frame_id=self.settings.target_frame)
        camera = self.cameras.model_for(stamp_ns(header))
        if camera is None:
            self.frames_without_camera_info += 1
            self.tracker.update(timestamp, live_tracks, boxes, None)
            return GroundFrame({}, out_header, f"no camera_info received on {self.settings.camera_info_topic}")
        model, camera_frame = camera
        if image_size is not None and (int(image_size[0]), int(image_size[1])) != (model.width, model.height):
            self.size_mismatches += 1
            self.last_size_mismatch = (f"image {int(image_size[0])}x{int(image_size[1])} but camera_info on "
                                       f"{self.settings.camera_info_topic} is {model.width}x{model.height}")
            self.tracker.update(timestamp, live_tracks, boxes, None)
            return GroundFrame({}, out_header, self.last_size_mismatch)
        self.last_size_mismatch = ""
        pose = self._pose(camera_frame, stamp_ns(header))
        if pose is None:
            self.tracker.update(timestamp, live_tracks, boxes, None)
            return GroundFrame({}, out_header, f"no transform {camera_frame} -> {self.settings.target_frame}")
        projector = self._projector
        if projector is None or projector.camera is not model or projector.pose is not pose:
            projector = self._projector = GroundProjector(model, pose, self.settings.projection)
        return GroundFrame(self.tracker.update(timestamp, live_tracks, boxes, projector, scores), out_header)

    def _pose(self, camera_frame: str, stamp: int) -> CameraPose | None:
        if self._pose_lookup is None:
            return self.settings.pose
        matrix = self._pose_lookup(camera_frame, stamp)
        if matrix is None:
            self.pose_failures += 1
            return None
        if self._projector is not None and np.array_equal(self._projector.pose.matrix, matrix):
            return self._projector.pose
        try:
            return CameraPose(matrix)
        except CameraPoseError:
            self.pose_failures += 1
            return None

    def diagnostics(self, values: dict[str, str]) -> str | None:
        """Adds the ground counters to ``values``; returns a warning when there is no 3D output."""
        c = self.cameras
        values.update({"ground_camera_info_received": str(c.received), "ground_camera_info_rejected": str(c.rejected),
                       "ground_camera_info_paired_by_stamp": str(c.paired_exact),
                       "ground_camera_info_paired_latest": str(c.paired_latest),
                       "ground_frames_without_camera_info": str(self.frames_without_camera_info),
                       "ground_pose_failures": str(self.pose_failures), "ground_errors": str(self.errors),
                       "ground_image_size_mismatches": str(self.size_mismatches),
                       "ground_tracks": str(len(self.tracker))})
        if c.received == 0:
            return f"no camera_info on {self.settings.camera_info_topic}: no ground (3D) output"
        if c.rejected and self._projector is None:
            return f"camera_info unusable ({c.last_error}): no ground (3D) output"
        if self.last_size_mismatch:
            return f"{self.last_size_mismatch}: no ground (3D) output"
        return None


# ---- messages --------------------------------------------------------------------------
def _has_ground(e: GroundEstimate | None) -> bool:
    return e is not None and e.status != GroundStatus.NONE


def _height(e: GroundEstimate) -> float:
    return e.height if math.isfinite(e.height) else DEFAULT_HEIGHT_M


def detection3d_array(header: Any, tracks: Sequence[TrackOutput], estimates: Mapping[int, GroundEstimate],
                      class_names: Sequence[str] = ()) -> Detection3DArray:
    """One Detection3D per track with a ground estimate: ``id`` = track id, box centre above the
    ground position at half the person's height, size (width, width, height); the hypothesis pose
    is the ground position with its x/y covariance."""
    detections = []
    for t in tracks:
        e = estimates.get(int(t.track_id))
        if not _has_ground(e):
            continue
        x, y = (float(v) for v in e.position)
        h = _height(e)
        covariance = np.zeros((6, 6))
        covariance[:2, :2] = e.covariance[:2, :2]
        hypothesis = ObjectHypothesisWithPose(
            hypothesis=ObjectHypothesis(class_id=class_label(t.class_id, class_names), score=float(t.score)),
            pose=PoseWithCovariance(pose=Pose(position=Point(x=x, y=y, z=0.0)),
                                    covariance=covariance.reshape(-1).tolist()))
        bbox = BoundingBox3D(center=Pose(position=Point(x=x, y=y, z=h / 2)),
                             size=Vector3(x=PERSON_WIDTH_M, y=PERSON_WIDTH_M, z=h))
        detections.append(Detection3D(header=header, results=[hypothesis], bbox=bbox, id=str(t.track_id)))
    return Detection3DArray(header=header, detections=detections)


def _colour(track_id: int) -> ColorRGBA:
    """A stable colour per id, hues spread by the golden ratio."""
    r, g, b = colorsys.hsv_to_rgb((int(track_id) * 0.61803398875) % 1.0, 0.8, 0.95)
    return ColorRGBA(r=r, g=g, b=b, a=0.8)


def marker_array(header: Any, estimates: Mapping[int, GroundEstimate], lifetime_s: float = 0.5) -> MarkerArray:
    """RViz markers: a DELETEALL (so people who left disappear), then per person a cylinder at its
    ground position, its id as text above it and an arrow of one second of its velocity."""
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    lifetime = _duration(lifetime_s)
    for track_id, e in estimates.items():
        if not _has_ground(e):
            continue
        x, y = (float(v) for v in e.position)
        vx, vy = (float(v) for v in e.velocity)
        h = _height(e)
        colour, mid = _colour(track_id), int(track_id) % _MARKER_ID_MOD
        common = dict(header=header, id=mid, action=Marker.ADD, color=colour, lifetime=lifetime)
        markers.append(Marker(ns="people", type=Marker.CYLINDER, pose=Pose(position=Point(x=x, y=y, z=h / 2)),
                              scale=Vector3(x=PERSON_WIDTH_M, y=PERSON_WIDTH_M, z=h), **common))
        markers.append(Marker(ns="ids", type=Marker.TEXT_VIEW_FACING, text=str(track_id),
                              pose=Pose(position=Point(x=x, y=y, z=h + 0.3)), scale=Vector3(z=0.3), **common))
        markers.append(Marker(ns="velocity", type=Marker.ARROW, pose=Pose(orientation=Quaternion(w=1.0)),
                              points=[Point(x=x, y=y, z=0.05), Point(x=x + vx, y=y + vy, z=0.05)],
                              scale=Vector3(x=0.08, y=0.16, z=0.16), **common))
    return MarkerArray(markers=markers)


def _duration(seconds: float):
    from builtin_interfaces.msg import Duration

    whole = int(seconds)
    return Duration(sec=whole, nanosec=int(round((seconds - whole) * 1e9)))


class GroundPublisher:
    """Attaches ground output to a node: the camera_info subscription, the 3D publishers and (with
    ``ground.use_tf``) a TF listener for the camera pose."""

    def __init__(self, node: Any, settings: GroundSettings, output_qos: Any, input_qos: Any):
        self.settings = settings
        self._logger = node.get_logger()
        lookup = self._tf_lookup(node) if settings.use_tf else None
        self.output = GroundOutput(settings, lookup)
        from sensor_msgs.msg import CameraInfo

        node.create_subscription(CameraInfo, settings.camera_info_topic, self.output.on_camera_info, input_qos)
        self._detections_pub = node.create_publisher(Detection3DArray, settings.detections_topic, output_qos)
        self._markers_pub = node.create_publisher(MarkerArray, settings.markers_topic, output_qos)

    def publish(self, header: Any, timestamp: float, tracks: Sequence[TrackOutput],
                live_tracks: Sequence[TrackOutput], boxes: np.ndarray, scores: np.ndarray | None,
                class_names: Sequence[str] = (), image_size: tuple[int, int] | None = None
                ) -> Mapping[int, GroundFields] | None:
        """Runs one frame; publishes the 3D outputs when there are estimates; returns each track's
        ``ground_*`` fields for the TrackArray (None: none).
        A failure here is counted and logged, never passed on: the 2D outputs do not depend on it."""
        try:
            frame = self.output.process(header, timestamp, live_tracks, boxes, scores, image_size)
            if frame.reason is not None:
                return None
            self._detections_pub.publish(detection3d_array(frame.header, tracks, frame.estimates, class_names))
            self._markers_pub.publish(marker_array(frame.header, frame.estimates))
        except Exception as exc:  # noqa: BLE001 - the ground stage must not take the 2D tracking down
            self.output.errors += 1
            self._logger.error(f"ground output failed: {type(exc).__name__}: {exc} (#{self.output.errors})",
                               throttle_duration_sec=5.0)
            return None
        return {track_id: ground_fields(e) for track_id, e in frame.estimates.items()}

    def _tf_lookup(self, node: Any) -> Callable[[str, int], np.ndarray | None]:
        import tf2_ros  # GroundSettings refused ground.use_tf without it
        from rclpy.time import Time

        buffer = tf2_ros.Buffer()
        self._tf_listener = tf2_ros.TransformListener(buffer, node)
        target = self.settings.target_frame

        def lookup(camera_frame: str, stamp: int) -> np.ndarray | None:
            try:
                t = buffer.lookup_transform(target, camera_frame, Time(nanoseconds=stamp)).transform
            except (tf2_ros.LookupException, tf2_ros.ConnectivityException, tf2_ros.ExtrapolationException):
                return None
            return transform_matrix(t)

        return lookup


def transform_matrix(transform: Any) -> np.ndarray:
    """geometry_msgs/Transform -> 4x4 matrix (unit quaternion x, y, z, w)."""
    q, p = transform.rotation, transform.translation
    x, y, z, w = q.x, q.y, q.z, q.w
    T = np.eye(4)
    T[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                 [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                 [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    T[:3, 3] = (p.x, p.y, p.z)
    return T
