"""The tracker node: images (+ optional external detections) in, persistent-id tracks out.

Callbacks only pair messages, check stamps and hand the newest frame of each camera to
the worker (``ros/latest_worker.py``), whose stages convert and detect (detect), embed and
track in frame order, then publish (track): pipelined, on threads of their own, or
sequential, on one. All tracking logic lives in ``smiletrack_ros.pipeline`` /
``smiletrack_ros.tracking``; ``ros/camera.py`` holds each camera's share of the node.
"""
from __future__ import annotations

import dataclasses
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rclpy.signals import SignalHandlerOptions, install_signal_handlers
from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray

from smiletrack_ros.cdr import detection_array_cdr, track_array_cdr
from smiletrack_ros.detection.external import kept_detections
from smiletrack_ros.errors import SettingError
from smiletrack_ros.image_codec import ImageError, bgr_to_raw_fields
from smiletrack_ros.msg import TrackArray
from smiletrack_ros.pipeline import LateFrameError, Pipeline, StagedFrame, embed_frames, start_frames
from smiletrack_ros.ros.annotate import draw_tracks
from smiletrack_ros.ros.camera import Camera
from smiletrack_ros.ros.detection_rows import read_detection_array
from smiletrack_ros.ros.frame_gaps import FrameGaps
from smiletrack_ros.ros.graph_checks import same_name_nodes
from smiletrack_ros.ros.ground_output import GroundPublisher
from smiletrack_ros.ros.ground_settings import GroundSettings
from smiletrack_ros.ros.images import ImageConverter
from smiletrack_ros.ros.input_limits import InputLimits, detection_count
from smiletrack_ros.ros.latest_worker import LatestWorker, Stage
from smiletrack_ros.ros.messages import index_into_message
from smiletrack_ros.ros.process import end_within, restore_default_signals, teardown_done
from smiletrack_ros.ros.runtime_changes import prepare_detector_change
from smiletrack_ros.ros.settings import (
    NodeSettings,
    ParameterError,
    ParamSpec,
    all_param_specs,
    check_limits,
    detector_config,
    tracker_config,
    tracker_overrides,
    tracker_values,
)
from smiletrack_ros.ros.stamp_pairing import StampPairer
from smiletrack_ros.ros.threads import set_thread_counts
from smiletrack_ros.tracking import SmileTracker

NODE_NAME = "smiletrack_tracker"
_TYPES = {"bool": Parameter.Type.BOOL, "int": Parameter.Type.INTEGER, "double": Parameter.Type.DOUBLE,
          "string": Parameter.Type.STRING, "string_array": Parameter.Type.STRING_ARRAY,
          "integer_array": Parameter.Type.INTEGER_ARRAY}
_LOG_THROTTLE_S = 5.0


@dataclass(frozen=True)
class Frame:
    image: Any
    detections: Any  # Detection2DArray or None
    received: float  # time.monotonic() when the image (or its pair) arrived


@dataclass(frozen=True)
class Job:
    """A camera's frame past the detect stage: the pipeline's staged frame (or the error that stopped
    it, reported by the track stage in order), the indices of the received external detections it
    kept (None: the detector's own), when its stage work began."""

    camera: Camera
    frame: Frame
    staged: StagedFrame | Exception
    kept: Any
    started: float
    restart: bool     # the stamp check saw the stream restart (reported already)


def stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def qos(reliability: str, depth: int) -> QoSProfile:
    policy = ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort" else ReliabilityPolicy.RELIABLE
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=policy)


class TrackerCore:
    """The tracker's behaviour, shared by the plain and the managed node: parameters are declared
    and validated once at construction (a bad one raises ParameterError); ``_configure`` loads the
    models and opens the outputs, ``_activate`` subscribes, ``_deactivate`` unsubscribes and
    ``_cleanup`` frees the models. Mixed into an rclpy Node or LifecycleNode."""

    def _declare(self) -> None:
        self._specs = {s.name: s for s in all_param_specs()}
        self._values = self._declare_parameters()
        self.settings = NodeSettings.from_values(self._values)
        GroundSettings.from_values(self._values, self.settings.image_topic)   # a bad ground.* fails start-up
        self._pending_lock = threading.Lock()
        self._pending_changes: dict[str, dict[str, Any]] = {"detect": {}, "track": {}}   # per stage
        self.limits = InputLimits.from_values(self._values)
        self._converter = ImageConverter(budget=self.limits.image)
        self._worker: LatestWorker[Frame] | None = None
        self._cameras: list[Camera] = []
        self._grounds: dict[str, GroundPublisher] = {}     # made once per camera, at the first activation
        self._outputs: list[Any] = []
        self._timer = None
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _configure(self) -> None:
        s = self.settings
        detector, embedder, self._models = self._build_models()
        out_qos = qos(s.output_reliability, s.output_depth)
        self._cameras = []
        for index, name in enumerate(s.cameras or ("",)):
            pipeline = Pipeline(detector, embedder, SmileTracker(s.tracker, frame_rate=s.frame_rate))
            pairer = None
            if s.external_detections:
                pairer = StampPairer(s.sync_max_pending, round(s.detector.stamp_tolerance * 1e9))
            camera = Camera(name, index, pipeline, self.limits.stamp_guard(pipeline.max_reorder_s), pairer,
                            FrameGaps(s.frame_rate))
            camera.outputs = {
                "tracks": self.create_publisher(Detection2DArray, camera.topic(s.tracks_topic), out_qos),
                "full": self.create_publisher(TrackArray, camera.topic(s.tracks_full_topic), out_qos),
                "debug": self.create_publisher(Image, camera.topic(s.debug_image_topic), out_qos)}
            self._cameras.append(camera)
        self._detector_swap: tuple[Any, Any] = (s.detector, None)   # newest accepted config, its prepared swap
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._outputs = [p for c in self._cameras for p in c.outputs.values()] + [self._diag_pub]
        self._embed_pool = ThreadPoolExecutor(s.embed_split, "smiletrack-embed") if s.embed_split > 1 else None
        self._worker = LatestWorker(self._stages(), self._on_worker_error, on_timing=self._stage_done, keyed=True)

    def _activate(self) -> None:
        s = self.settings
        in_qos = qos(s.input_reliability, s.input_depth)
        for camera in self._cameras:
            # image_transport's convention: the compressed topic hangs off the resolved (remapped) base topic
            image_topic = self.resolve_topic_name(camera.topic(s.image_topic))
            on_image = partial(self._on_image, camera)
            if s.compressed:
                image_topic = f"{image_topic.rstrip('/')}/compressed"
                camera.inputs.append(self.create_subscription(CompressedImage, image_topic, on_image, in_qos))
            else:
                camera.inputs.append(self.create_subscription(Image, image_topic, on_image, in_qos))
            if s.external_detections:
                camera.inputs.append(self.create_subscription(
                    Detection2DArray, camera.topic(s.detections_topic), partial(self._on_detections, camera),
                    in_qos, raw=True))
            ground = GroundSettings.from_values(self._values, camera.topic(s.image_topic))   # issue 19
            if ground.enabled and camera.name not in self._grounds:
                ground = dataclasses.replace(ground, detections_topic=camera.topic(ground.detections_topic),
                                             markers_topic=camera.topic(ground.markers_topic))
                self._grounds[camera.name] = GroundPublisher(self, ground, qos(s.output_reliability, s.output_depth),
                                                             in_qos)
            camera.ground = self._grounds.get(camera.name)
            self.get_logger().info(
                f"tracking {image_topic} -> {self.resolve_topic_name(camera.topic(s.tracks_topic))}; detector "
                f"{s.detector.backend}, embedder {self._models['embedder']}, tracker preset {s.tracker_preset}, "
                f"images via {self._converter.backend}, {s.pipeline_mode}")
        # steady clock: with use_sim_time the diagnostics keep coming even while /clock is paused
        self._timer = self.create_timer(s.diagnostics_period, self._publish_diagnostics,
                                        clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _deactivate(self) -> None:
        for camera in self._cameras:
            for subscription in camera.inputs:
                self.destroy_subscription(subscription)
            camera.inputs.clear()
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None

    def _cleanup(self) -> None:
        """Stops the worker, closes the outputs and drops the models (their memory is freed)."""
        self.shutdown()
        for publisher in self._outputs:
            self.destroy_publisher(publisher)
        self._outputs.clear()
        self._cameras = []
        self._worker = None

    # ---- set-up -------------------------------------------------------------------------
    def _declare_parameters(self) -> dict[str, Any]:
        """Declares every parameter with a value, so that each one can be read, dumped and loaded
        back: the tracker.* fields default to the values of ``tracker.preset`` (declared before them).
        An empty-list default is declared by type (rclpy cannot infer an element type from []) and
        then given its typed empty value, before the descriptor makes it read-only."""
        values: dict[str, Any] = {}
        preset_values: dict[str, Any] = {}
        for spec in self._specs.values():
            if spec.name.startswith("tracker.") and not preset_values and spec.name != "tracker.preset":
                preset_values = tracker_values(values["tracker.preset"])
            default = preset_values.get(spec.name, spec.default)
            try:
                if default == []:
                    param = self.declare_parameter(spec.name, _TYPES[spec.type])
                    if param.type_ == Parameter.Type.NOT_SET:
                        self.set_parameters([Parameter(spec.name, _TYPES[spec.type], [])])
                    self.set_descriptor(spec.name, _descriptor(spec))
                else:
                    self.declare_parameter(spec.name, default, _descriptor(spec))
            except ParameterException as exc:
                raise ParameterError(spec.name, f"expected a {spec.type}{_limits_text(spec)}: {exc}") from exc
            values[spec.name] = self.get_parameter(spec.name).value
        return values

    def _stages(self) -> list[Stage]:
        """sequential: one thread, each frame start to end; pipelined: detect | [embed] | track.
        Each stage takes the frames of every camera that arrived together (a batch)."""
        s = self.settings
        if s.pipeline_mode == "sequential":
            return [Stage("frame", lambda frames: self._finish(self._start(frames)))]
        if s.embed_workers == 1:
            return [Stage("detect", self._start), Stage("track", self._finish)]
        return [Stage("detect", self._start), Stage("embed", self._embed, workers=s.embed_workers),
                Stage("track", self._finish)]

    def _build_models(self) -> tuple[Any, Any, dict[str, str]]:
        """The detector (None with external detections) and embedder (None when off) every camera
        shares, and their descriptions for the diagnostics."""
        s = self.settings
        self._threads = set_thread_counts(s.torch_threads, s.opencv_threads)
        models = {"detector": s.detector.backend, "embedder": "off"}
        detector = None
        if not s.external_detections:
            from smiletrack_ros.detection import build_detector

            try:
                detector = build_detector(s.detector)
            except ImportError as exc:
                raise ParameterError("detector.backend", f"{s.detector.backend} is not usable here: {exc}") from exc
            except (OSError, ValueError) as exc:
                raise ParameterError("detector.weights", f"cannot build the {s.detector.backend} detector: {exc}") \
                    from exc
            models["detector"] = f"{s.detector.backend}:{s.detector.weights}"
        embedder = None
        if s.embedder_enabled:
            embedder, models["embedder"] = self._build_embedder()
        devices = {str(m.device) for m in (detector, embedder) if getattr(m, "device", None) is not None}
        models["device"] = ",".join(sorted(devices)) or "cpu"
        return detector, embedder, models

    def _build_embedder(self) -> tuple[Any, str]:
        from smiletrack_ros.embedding import build_embedder

        s = self.settings
        calls = s.embed_split * (s.embed_workers if s.pipeline_mode == "pipelined" else 1)   # at once, at most
        config = dataclasses.replace(s.embedder, parallel_calls=calls)
        try:
            embedder = build_embedder(config)
        except SettingError as exc:
            raise ParameterError(f"embedder.{exc.field}", exc.reason) from exc
        except (OSError, ValueError, ImportError) as exc:
            raise ParameterError("embedder.weights", f"cannot load the {config.backend} embedder: {exc}") from exc
        return embedder, f"{embedder.name}@{embedder.device}"

    # ---- callbacks (never block) --------------------------------------------------------
    def _on_image(self, camera: Camera, msg: Any) -> None:
        arrived = time.monotonic()
        camera.gaps.add(stamp_ns(msg.header))
        if camera.pairer is None:
            self._submit(camera, Frame(msg, None, arrived))
            return
        pair = camera.pairer.add_image(stamp_ns(msg.header), (msg, arrived))
        if pair is not None:
            self._submit_pair(camera, *pair)

    def _on_detections(self, camera: Camera, data: bytes) -> None:
        """Serialised, so that an oversized array is refused before rclpy builds its objects."""
        try:
            count = detection_count(data)
        except ValueError as exc:
            self._reject(camera, "bad_detections", f"rejected detections: {exc}")
            return
        if count > self.limits.max_detections:
            self._reject(camera, "too_many_detections", f"rejected an array of {count} detections (more than "
                                                        f"input_limits.max_detections {self.limits.max_detections})")
            return
        try:
            msg = deserialize_message(data, Detection2DArray)
        except Exception as exc:  # noqa: BLE001 - rclpy raises its RMWError for bytes that do not parse
            self._reject(camera, "bad_detections", f"rejected detections that do not deserialise: {exc}")
            return
        pair = camera.pairer.add_detections(stamp_ns(msg.header), msg)
        if pair is not None:
            self._submit_pair(camera, *pair)

    def _submit_pair(self, camera: Camera, image: tuple[Any, float], detections: Detection2DArray) -> None:
        """Latency counts from the image's arrival, waiting for its detections included."""
        self._submit(camera, Frame(image[0], detections, image[1]))

    def _submit(self, camera: Camera, frame: Frame) -> None:
        """The stamp check sees every frame, before the worker's slot: frames the busy worker drops
        must not look like a jump in time to it. A restart (bag loop) resets the camera's tracker
        before the next frame the worker takes from it."""
        header = frame.image.header
        verdict = camera.stamps.check(header.stamp.sec, header.stamp.nanosec, self.get_clock().now().nanoseconds)
        if not verdict.accepted:
            self._reject(camera, verdict.reason, f"rejected frame: {verdict.message}")
            return
        if verdict.restart:
            camera.restarts_seen += 1
            self._time_reset(camera, f"time went back to the start of the stream ({stamp_ns(header) * 1e-9:.3f} "
                                     f"s; bag loop?)")
        self._worker.submit(frame, key=camera.index)

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Validates run-time changes with the start-up code; the worker applies them between frames."""
        changes = {}
        for p in params:
            if p.name == "use_sim_time":     # rclpy's own: its time source applies it after this check
                continue
            spec: ParamSpec | None = self._specs.get(p.name)
            if spec is None:
                return SetParametersResult(successful=False, reason=f"unknown parameter '{p.name}'")
            if not spec.runtime:
                return SetParametersResult(successful=False, reason=f"parameter '{p.name}' is read-only at run time")
            changes[p.name] = spec.default if p.type_ == Parameter.Type.NOT_SET else p.value
        with self._pending_lock:
            candidate = self._values | changes
        swap = None
        try:
            check_limits(changes)
            if any(k.startswith("tracker.") for k in changes):
                tracker_config(candidate["tracker.preset"], tracker_overrides(candidate))
            if any(k.startswith("detector.") for k in changes):
                config = detector_config(candidate)     # built now if it must be: a failure is refused here
                if not self._cameras:
                    raise RuntimeError("detector changes need a configured node (its models are not loaded)")
                swap = (config, prepare_detector_change(self._cameras[0].pipeline.detector, self._detector_swap[0],
                                                        config))
        except Exception as exc:  # noqa: BLE001 - any refusal goes back to the caller, never crashes the node
            return SetParametersResult(successful=False, reason=str(exc))
        with self._pending_lock:
            self._values.update(changes)
            for pending in self._pending_changes.values():
                pending.update(changes)
            if swap is not None:
                self._detector_swap = swap
        self.get_logger().info(f"parameters changed: {changes}")
        return SetParametersResult(successful=True)

    # ---- worker stages -----------------------------------------------------------------------
    def _apply_pending_changes(self, stage: str) -> None:
        """The changes accepted since this stage's previous frames: the detector's at the detect
        stage, the tracker's and the debug image's at the track stage (between two frames each)."""
        with self._pending_lock:
            changes, self._pending_changes[stage] = self._pending_changes[stage], {}
            values = dict(self._values)
            detector_config_, swap = self._detector_swap
        if not changes:
            return
        if stage == "track":
            if "publish_debug_image" in changes:
                self._update_settings(publish_debug_image=values["publish_debug_image"])
            if any(k.startswith("tracker.") for k in changes):
                config = tracker_config(values["tracker.preset"], tracker_overrides(values))
                for camera in self._cameras:
                    camera.pipeline.reconfigure_tracker(config)
                self._update_settings(tracker=config)
        elif swap is not None and any(k.startswith("detector.") for k in changes):
            detector = swap()
            for camera in self._cameras:
                camera.pipeline.replace_detector(detector)
            self._update_settings(detector=detector_config_)

    def _update_settings(self, **changes: Any) -> None:
        with self._pending_lock:     # the stages' threads each replace their own fields
            self.settings = _replace(self.settings, **changes)

    def _start(self, frames: dict[int, Frame]) -> list[Job] | None:
        """Detect stage, for the frames of each camera taken together: image conversion, then the
        detections (received, or one detector call for all: ``start_frames``). None: all rejected."""
        self._apply_pending_changes("detect")
        s = self.settings
        accepted = []
        for index, frame in sorted(frames.items()):
            camera = self._cameras[index]
            try:
                if isinstance(frame.image, CompressedImage):
                    image = self._converter.compressed_to_bgr(frame.image)
                else:
                    image = self._converter.raw_to_bgr(frame.image)
            except ImageError as exc:
                self._reject(camera, exc.reason, f"rejected image: {exc}")
                continue
            detections, kept = None, None
            if frame.detections is not None:
                read = read_detection_array(frame.detections, s.class_names)
                for reason, count in read.dropped.items():
                    for _ in range(count):
                        camera.stats.reject(reason)
                if read.problems:
                    self.get_logger().error(f"dropped {len(read.problems)} of {len(read.rows) + len(read.problems)} "
                                            f"detections ({read.problems[0]}); the others are tracked",
                                            throttle_duration_sec=_LOG_THROTTLE_S)
                chosen = kept_detections(read.detections, s.detector)
                detections, kept = read.detections.subset(chosen), read.rows[chosen]
            restarts = camera.restarts_seen     # written by the callbacks: read once
            stamp = stamp_ns(frame.image.header) * 1e-9  # the image's own time: replays and live runs track alike
            accepted.append((camera, frame, (image, stamp, detections, restarts != camera.restarts_done), kept,
                             restarts))
        if not accepted:
            return None
        started = time.perf_counter()
        staged = start_frames([a[0].pipeline for a in accepted], [a[2] for a in accepted])
        jobs = []
        for (camera, frame, (*_, restart), kept, restarts), result in zip(accepted, staged, strict=True):
            if isinstance(result, LateFrameError):
                self._reject(camera, "late_frame", f"rejected frame: {result}")
                continue
            if not isinstance(result, Exception):
                camera.restarts_done = restarts
            jobs.append(Job(camera, frame, result, kept, started, restart))
        return jobs or None

    def _embed(self, jobs: list[Job]) -> list[Job]:
        """Embedding of a batch's frames, every camera's crops in one embedder call; the embed stage
        (pipelined mode with pipeline.embed_workers > 1) or the track stage runs it."""
        todo = [job for job in jobs if not isinstance(job.staged, Exception) and not job.staged.embedded]
        if not todo:
            return jobs
        embedded = embed_frames([j.camera.pipeline for j in todo], [j.staged for j in todo], self._embed_pool,
                                self.settings.embed_split)
        done = dict(zip(map(id, todo), embedded, strict=True))
        return [dataclasses.replace(job, staged=done[id(job)]) if id(job) in done else job for job in jobs]

    def _finish(self, jobs: list[Job] | None) -> None:
        """Track stage, in frame order, each camera's frame: embed (unless done), track, publish."""
        if jobs is None:
            return
        self._apply_pending_changes("track")
        try:
            jobs = self._embed(jobs)
        except Exception as exc:  # noqa: BLE001 - a failed embedder call costs this batch, not the node
            jobs = [dataclasses.replace(job, staged=exc) for job in jobs]
        for job in jobs:
            try:
                if isinstance(job.staged, Exception):
                    raise job.staged
                self._track(job)
            except Exception as exc:  # noqa: BLE001 - one camera's failure must not cost the others their frame
                self._camera_failed(job.camera, exc)

    def _track(self, job: Job) -> None:
        s, camera = self.settings, job.camera
        header, staged = job.frame.image.header, job.staged
        result = camera.pipeline.track(staged)
        if result.reset and not job.restart:
            self._time_reset(camera, f"time jumped backwards to {staged.timestamp:.3f} s (bag loop?)")
        tracks, live_tracks = result.tracks, result.live_tracks
        if job.kept is not None:
            tracks, live_tracks = index_into_message(tracks, job.kept), index_into_message(live_tracks, job.kept)
        if s.publish_debug_image:   # first: written after them, it would recycle their shared-memory buffers
            annotated = draw_tracks(staged.image, result.tracks, s.class_names, copy=not staged.image.flags.writeable)
            camera.outputs["debug"].publish(Image(header=header, **bgr_to_raw_fields(annotated)))
        camera.outputs["tracks"].publish(detection_array_cdr(header, tracks, s.class_names))
        ground = None if camera.ground is None else camera.ground.publish(
            header, staged.timestamp, result.tracks, result.live_tracks, result.detections.boxes,
            result.detections.scores, s.class_names,
            image_size=(staged.image.shape[1], staged.image.shape[0]))
        camera.outputs["full"].publish(track_array_cdr(header, live_tracks, s.class_names, ground))
        camera.failures_in_a_row = 0
        camera.stats.frame_done((time.monotonic() - job.frame.received) * 1e3,
                                (time.perf_counter() - job.started) * 1e3, len(result.live_tracks), result.timings)

    def _stage_done(self, stage: str, waited_s: float, ran_s: float) -> None:
        for camera in self._cameras:     # a stage's time serves every camera of its batch
            camera.stats.stage_done(stage, waited_s, ran_s)

    def _time_reset(self, camera: Camera, why: str) -> None:
        camera.stats.time_reset()
        if camera.pairer is not None:
            camera.pairer.clear()
        self.get_logger().warning(f"{self._named(camera, why)}: tracker reset")

    def _reject(self, camera: Camera, reason: str, message: str) -> None:
        count = camera.stats.reject(reason)
        self.get_logger().error(f"{self._named(camera, message)} ({reason} #{count}); tracks are kept",
                                throttle_duration_sec=_LOG_THROTTLE_S)

    @staticmethod
    def _named(camera: Camera, message: str) -> str:
        return f"camera {camera.name}: {message}" if camera.name else message

    def _on_worker_error(self, exc: BaseException) -> None:
        """A failure no single camera's frame owns (e.g. the shared detector's call): each camera
        of the node counts it."""
        for camera in self._cameras:
            self._camera_failed(camera, exc)

    def _camera_failed(self, camera: Camera, exc: BaseException) -> None:
        """Two failures in a row: the camera's tracker state is suspect, so it starts afresh (ids
        keep counting). Runs on the track stage's thread, in frame order."""
        camera.stats.error()
        self.get_logger().error(self._named(camera, f"frame processing failed: {type(exc).__name__}: {exc}"),
                                throttle_duration_sec=_LOG_THROTTLE_S)
        camera.failures_in_a_row += 1
        if camera.failures_in_a_row >= 2:
            camera.pipeline.reset()
            camera.failures_in_a_row = 0
            camera.recoveries += 1
            self.get_logger().warning(self._named(camera, f"frame processing failed twice in a row: tracker reset "
                                                          f"(recovery #{camera.recoveries}); tracking resumes with "
                                                          f"new tracks"))

    # ---- diagnostics --------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        statuses = [self._camera_status(camera) for camera in self._cameras]
        self._diag_pub.publish(DiagnosticArray(header=_header_now(self), status=statuses))

    def _camera_status(self, camera: Camera) -> DiagnosticStatus:
        snap = camera.stats.snapshot()
        dropped = self._worker.dropped_by_key.get(camera.index, 0)
        rejected = sum(snap.rejected.values())
        missing, camera.missing_reported = camera.gaps.missing - camera.missing_reported, camera.gaps.missing
        problems = []
        if snap.frames == 0:
            problems.append("no frames processed in the last period")
        if rejected or snap.errors:
            problems.append(f"{rejected} rejected inputs, {snap.errors} processing errors")
        if missing:
            problems.append(f"{missing} frames missing from the stream in the last period (DDS loss?)")
        level = DiagnosticStatus.WARN if problems else DiagnosticStatus.OK
        message = "; ".join(problems) or "tracking"
        values = {
            "rate_hz": f"{snap.rate_hz:.2f}", "latency_ms_mean": f"{snap.latency_ms_mean:.2f}",
            "latency_ms_max": f"{snap.latency_ms_max:.2f}", "processing_ms_mean": f"{snap.processing_ms_mean:.2f}",
            "frames_received": str(camera.gaps.received), "frames_missing": str(camera.gaps.missing),
            "frames_processed": str(snap.total_frames), "frames_dropped_busy": str(dropped),
            "live_tracks": str(snap.live_tracks),
            "detector": self._models["detector"], "embedder": self._models["embedder"],
            "device": self._models["device"],
            "time_resets": str(snap.time_resets), "processing_errors": str(snap.errors),
            "tracker_recoveries": str(camera.recoveries),
            "pipeline": "|".join(self._worker.stage_names), "frames_in_flight": str(self._worker.in_flight),
            "threads": ",".join(f"{k}={v}" for k, v in self._threads.items()),
        }
        for name, (p50, p99) in snap.percentiles.items():    # latency, detect/embed/track, stage_*, wait_*
            values[f"{name}_ms_p50"], values[f"{name}_ms_p99"] = f"{p50:.2f}", f"{p99:.2f}"
        fqn = self.get_fully_qualified_name()
        namesakes = same_name_nodes(self)
        if namesakes > 1:
            level, message = DiagnosticStatus.WARN, f"{namesakes} nodes named {fqn}"
            values["nodes_with_this_name"] = str(namesakes)
            self.get_logger().warning(f"{namesakes} nodes are named {fqn}: their topics, parameters and "
                                      f"diagnostics mix; give each its own name or namespace",
                                      throttle_duration_sec=_LOG_THROTTLE_S)
        if camera.pairer is not None:
            values["unpaired_images"] = str(camera.pairer.unpaired_images)
            values["unpaired_detections"] = str(camera.pairer.unpaired_detections)
        values.update({f"rejected_{k}": str(v) for k, v in sorted(snap.rejected.items())})
        ground_warning = None if camera.ground is None else camera.ground.output.diagnostics(values)
        if ground_warning is not None:   # said beside any other problem of the period
            message = ground_warning if level == DiagnosticStatus.OK else f"{message}; {ground_warning}"
            level = DiagnosticStatus.WARN
        hardware = f"{fqn}/{camera.name}" if camera.name else fqn
        return DiagnosticStatus(level=level, name=f"{hardware}: tracker", message=message, hardware_id=hardware,
                                values=[KeyValue(key=k, value=v) for k, v in values.items()])

    def shutdown(self) -> None:
        if self._worker is not None and not self._worker.stop(timeout=0.5):
            self.get_logger().warning("worker still busy at shutdown; leaving it to exit with the process")
        if getattr(self, "_embed_pool", None) is not None:
            self._embed_pool.shutdown(wait=False, cancel_futures=True)
            self._embed_pool = None


class TrackerNode(TrackerCore, Node):
    """The plain node: configured and active from construction."""

    def __init__(self, **kwargs: Any):
        Node.__init__(self, NODE_NAME, **kwargs)
        self._declare()
        self._configure()
        self._activate()


class ManagedTrackerNode(TrackerCore, LifecycleNode):
    """The managed (lifecycle) node: unconfigured until ``ros2 lifecycle set <node> configure``.
    A model that fails to load fails the configure transition (logged) and the node stays up."""

    def __init__(self, **kwargs: Any):
        LifecycleNode.__init__(self, NODE_NAME, **kwargs)
        self._declare()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except ParameterError as exc:
            self.get_logger().error(f"configure failed: invalid configuration: {exc}")
            self._cleanup()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._activate()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        self._cleanup()
        return TransitionCallbackReturn.SUCCESS


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """What ``ros2 param describe`` shows: the description, the limits the validation enforces
    as a range, and the other constraints in words."""
    descriptor = ParameterDescriptor(type=_TYPES[spec.type].value, description=spec.description,
                                     read_only=not spec.runtime, additional_constraints=spec.constraints)
    if spec.limits is not None and spec.type == "double":
        descriptor.floating_point_range = [FloatingPointRange(from_value=float(spec.limits[0]),
                                                              to_value=float(spec.limits[1]))]
    elif spec.limits is not None and spec.type == "int":
        descriptor.integer_range = [IntegerRange(from_value=int(spec.limits[0]), to_value=int(spec.limits[1]))]
    return descriptor


def _limits_text(spec: ParamSpec) -> str:
    return f" ({spec.constraints})" if spec.constraints else ""


def _replace(settings: NodeSettings, **changes: Any) -> NodeSettings:
    return dataclasses.replace(settings, **changes)


def _header_now(node: Node):
    from std_msgs.msg import Header

    return Header(stamp=node.get_clock().now().to_msg())


def main(argv: list[str] | None = None) -> int:
    """Runs the node until SIGINT/SIGTERM; returns the exit status (2: invalid configuration).
    ``--managed`` (before ``--ros-args``) starts the lifecycle node."""
    # run_node installed the quiet signal handlers before the imports: model loading takes seconds
    argv = list(sys.argv if argv is None else argv)
    managed = "--managed" in remove_ros_args(argv)
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        node = ManagedTrackerNode() if managed else TrackerNode()
        restore_default_signals()
        install_signal_handlers(SignalHandlerOptions.ALL)
        rclpy.spin(node)
    except ParameterError as exc:
        print(f"[{NODE_NAME}] invalid configuration: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        end_within()
        if node is not None:
            node.shutdown()
            node.destroy_node()
        rclpy.try_shutdown()
        teardown_done()
    return 0

