"""The tracker node: images (+ optional external detections) in, persistent-id tracks out.

Callbacks only pair messages and hand the newest frame to a worker thread,
which converts, runs the pipeline and publishes; all tracking logic lives in
``smiletrack_ros.pipeline`` / ``smiletrack_ros.tracking``.
"""
from __future__ import annotations

import dataclasses
import sys
import threading
import time
from dataclasses import dataclass
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
from smiletrack_ros.msg import TrackArray
from smiletrack_ros.pipeline import LateFrameError, Pipeline, StagedFrame
from smiletrack_ros.ros.annotate import draw_tracks
from smiletrack_ros.ros.detection_rows import read_detection_array
from smiletrack_ros.ros.frame_gaps import FrameGaps
from smiletrack_ros.ros.graph_checks import same_name_nodes
from smiletrack_ros.ros.ground_output import GroundPublisher
from smiletrack_ros.ros.ground_settings import GroundSettings
from smiletrack_ros.ros.images import ImageConverter, ImageError, bgr_to_raw_fields
from smiletrack_ros.ros.input_limits import InputLimits, detection_count
from smiletrack_ros.ros.latest_worker import LatestWorker, Stage
from smiletrack_ros.ros.messages import index_into_message
from smiletrack_ros.ros.node_stats import NodeStats
from smiletrack_ros.ros.process import ignore_interrupts_while_ending, restore_default_signals
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
    """A frame past the detect stage: its header, the pipeline's staged frame, the indices of the
    received external detections it kept (None: the detector's own), when its stage work began."""

    frame: Frame
    staged: StagedFrame
    kept: Any
    started: float
    restart: bool     # the stamp guard saw the stream restart (already reported)


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
        self._pending_lock = threading.Lock()
        self._pending_changes: dict[str, dict[str, Any]] = {"detect": {}, "track": {}}   # per stage
        self.limits = InputLimits.from_values(self._values)
        self._converter = ImageConverter(budget=self.limits.image)
        self._worker: LatestWorker[Frame] | None = None
        self._pipeline: Pipeline | None = None
        self._ground: GroundPublisher | None = None
        self._inputs: list[Any] = []
        self._outputs: list[Any] = []
        self._timer = None
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _configure(self) -> None:
        s = self.settings
        self.stats = NodeStats()
        self._gaps = FrameGaps(s.frame_rate)
        self._missing_reported = 0
        self._pipeline, self._models = self._build_pipeline()
        self._stamps = self.limits.stamp_guard(self._pipeline.max_reorder_s)
        self._detector_swap: tuple[Any, Any] = (s.detector, None)   # newest accepted config, its prepared swap
        self._pairer: StampPairer | None = None
        if s.external_detections:
            self._pairer = StampPairer(s.sync_max_pending, round(s.detector.stamp_tolerance * 1e9))

        out_qos = qos(s.output_reliability, s.output_depth)
        self._tracks_pub = self.create_publisher(Detection2DArray, s.tracks_topic, out_qos)
        self._full_pub = self.create_publisher(TrackArray, s.tracks_full_topic, out_qos)
        self._debug_pub = self.create_publisher(Image, s.debug_image_topic, out_qos)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._outputs = [self._tracks_pub, self._full_pub, self._debug_pub, self._diag_pub]
        self._failures_in_a_row = 0     # the worker's last stage only
        self._restarts_seen = 0         # stream restarts the stamp check saw (callbacks) ...
        self._restarts_done = 0         # ... and those the detect stage passed to the pipeline
        self._recoveries = 0
        self._worker = LatestWorker(self._stages(), self._on_worker_error, on_timing=self.stats.stage_done)

    def _activate(self) -> None:
        s = self.settings
        in_qos = qos(s.input_reliability, s.input_depth)
        # image_transport's convention: the compressed topic hangs off the resolved (remapped) base topic
        image_topic = self.resolve_topic_name(s.image_topic)
        if s.compressed:
            image_topic = f"{image_topic.rstrip('/')}/compressed"
            self._inputs.append(self.create_subscription(CompressedImage, image_topic, self._on_image, in_qos))
        else:
            self._inputs.append(self.create_subscription(Image, image_topic, self._on_image, in_qos))
        if s.external_detections:
            self._inputs.append(self.create_subscription(Detection2DArray, s.detections_topic, self._on_detections,
                                                         in_qos, raw=True))
        ground = GroundSettings.from_values(self._values, s.image_topic)   # ground plane output (issue 19)
        if ground.enabled and self._ground is None:
            self._ground = GroundPublisher(self, ground, qos(s.output_reliability, s.output_depth), in_qos)
        # steady clock: with use_sim_time the diagnostics keep coming even while /clock is paused
        self._timer = self.create_timer(s.diagnostics_period, self._publish_diagnostics,
                                        clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(
            f"tracking {image_topic} -> {self.resolve_topic_name(s.tracks_topic)}; detector {s.detector.backend}, "
            f"embedder {self._models['embedder']}, tracker preset {s.tracker_preset}, "
            f"images via {self._converter.backend}")

    def _deactivate(self) -> None:
        for subscription in self._inputs:
            self.destroy_subscription(subscription)
        self._inputs.clear()
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None

    def _cleanup(self) -> None:
        """Stops the worker, closes the outputs and drops the models (their memory is freed)."""
        self.shutdown()
        for publisher in self._outputs:
            self.destroy_publisher(publisher)
        self._outputs.clear()
        self._pipeline = self._worker = None

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
        """sequential: one thread, each frame start to end; pipelined: detect | [embed] | track."""
        s = self.settings
        if s.pipeline_mode == "sequential":
            return [Stage("frame", lambda frame: self._finish(self._start(frame)))]
        if s.embed_workers == 1:
            return [Stage("detect", self._start), Stage("track", self._finish)]
        return [Stage("detect", self._start), Stage("embed", self._embed, workers=s.embed_workers),
                Stage("track", self._finish)]

    def _build_pipeline(self) -> tuple[Pipeline, dict[str, str]]:
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
        tracker = SmileTracker(s.tracker, frame_rate=s.frame_rate)
        devices = {str(m.device) for m in (detector, embedder) if getattr(m, "device", None) is not None}
        models["device"] = ",".join(sorted(devices)) or "cpu"
        return Pipeline(detector, embedder, tracker), models

    def _build_embedder(self) -> tuple[Any, str]:
        from smiletrack_ros.embedding import build_embedder

        config = self.settings.embedder
        try:
            embedder = build_embedder(config)
        except SettingError as exc:
            raise ParameterError(f"embedder.{exc.field}", exc.reason) from exc
        except (OSError, ValueError, ImportError) as exc:
            raise ParameterError("embedder.weights", f"cannot load the {config.backend} embedder: {exc}") from exc
        return embedder, f"{embedder.name}@{embedder.device}"

    # ---- callbacks (never block) --------------------------------------------------------
    def _on_image(self, msg: Any) -> None:
        arrived = time.monotonic()
        self._gaps.add(stamp_ns(msg.header))
        if self._pairer is None:
            self._submit(Frame(msg, None, arrived))
            return
        pair = self._pairer.add_image(stamp_ns(msg.header), (msg, arrived))
        if pair is not None:
            self._submit_pair(*pair)

    def _on_detections(self, data: bytes) -> None:
        """Serialised, so that an oversized array is refused before rclpy builds its objects."""
        try:
            count = detection_count(data)
        except ValueError as exc:
            self._reject("bad_detections", f"rejected detections: {exc}")
            return
        if count > self.limits.max_detections:
            self._reject("too_many_detections", f"rejected an array of {count} detections (more than "
                                                f"input_limits.max_detections {self.limits.max_detections})")
            return
        try:
            msg = deserialize_message(data, Detection2DArray)
        except Exception as exc:  # noqa: BLE001 - rclpy raises its RMWError for bytes that do not parse
            self._reject("bad_detections", f"rejected detections that do not deserialise: {exc}")
            return
        pair = self._pairer.add_detections(stamp_ns(msg.header), msg)
        if pair is not None:
            self._submit_pair(*pair)

    def _submit_pair(self, image: tuple[Any, float], detections: Detection2DArray) -> None:
        """Latency counts from the image's arrival, waiting for its detections included."""
        self._submit(Frame(image[0], detections, image[1]))

    def _submit(self, frame: Frame) -> None:
        """The stamp check sees every frame, before the worker's slot: frames the busy worker drops
        must not look like a jump in time to it. A restart (bag loop) resets the tracker before the
        next frame the worker takes."""
        header = frame.image.header
        verdict = self._stamps.check(header.stamp.sec, header.stamp.nanosec, self.get_clock().now().nanoseconds)
        if not verdict.accepted:
            self._reject(verdict.reason, f"rejected frame: {verdict.message}")
            return
        if verdict.restart:
            self._restarts_seen += 1
            self._time_reset(f"time went back to the start of the stream ({stamp_ns(header) * 1e-9:.3f} s; "
                             f"bag loop?)")
        self._worker.submit(frame)

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
                swap = (config, prepare_detector_change(self._pipeline.detector, self._detector_swap[0], config))
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
        """The changes accepted since this stage's previous frame: the detector's at the detect
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
                self._pipeline.reconfigure_tracker(config)
                self._update_settings(tracker=config)
        elif swap is not None and any(k.startswith("detector.") for k in changes):
            self._pipeline.replace_detector(swap())
            self._update_settings(detector=detector_config_)

    def _update_settings(self, **changes: Any) -> None:
        with self._pending_lock:     # the stages' threads each replace their own fields
            self.settings = _replace(self.settings, **changes)

    def _start(self, frame: Frame) -> Job | None:
        """Detect stage: image conversion, detections (received or detected).
        None: the frame is rejected (counted)."""
        self._apply_pending_changes("detect")
        s = self.settings
        header = frame.image.header
        try:
            if isinstance(frame.image, CompressedImage):
                image = self._converter.compressed_to_bgr(frame.image)
            else:
                image = self._converter.raw_to_bgr(frame.image)
        except ImageError as exc:
            self._reject(exc.reason, f"rejected image: {exc}")
            return None
        detections, kept = None, None
        if frame.detections is not None:
            read = read_detection_array(frame.detections, s.class_names)
            for reason, count in read.dropped.items():
                for _ in range(count):
                    self.stats.reject(reason)
            if read.problems:
                self.get_logger().error(f"dropped {len(read.problems)} of {len(read.rows) + len(read.problems)} "
                                        f"detections ({read.problems[0]}); the others are tracked",
                                        throttle_duration_sec=_LOG_THROTTLE_S)
            chosen = kept_detections(read.detections, s.detector)
            detections, kept = read.detections.subset(chosen), read.rows[chosen]
        stamp = stamp_ns(header) * 1e-9  # the image's own time, so replays and live runs track alike
        started = time.perf_counter()
        restarts = self._restarts_seen     # written by the callbacks: read once
        restart = restarts != self._restarts_done
        try:
            staged = self._pipeline.start_frame(image, stamp, detections, restart=restart)
        except LateFrameError as exc:
            self._reject("late_frame", f"rejected frame: {exc}")
            return None
        self._restarts_done = restarts
        return Job(frame, staged, kept, started, restart)

    def _embed(self, job: Job) -> Job:
        """Embed stage (pipelined mode with pipeline.embed_workers > 1): no tracker state touched."""
        return dataclasses.replace(job, staged=self._pipeline.embed(job.staged))

    def _finish(self, job: Job | None) -> None:
        """Track stage, in frame order: embed (unless done), track, publish."""
        if job is None:
            return
        self._apply_pending_changes("track")
        s = self.settings
        header, staged = job.frame.image.header, job.staged
        if staged.embeddings is None:
            staged = self._pipeline.embed(staged)
        result = self._pipeline.track(staged)
        if result.reset and not job.restart:
            self._time_reset(f"time jumped backwards to {staged.timestamp:.3f} s (bag loop?)")
        tracks, live_tracks = result.tracks, result.live_tracks
        if job.kept is not None:
            tracks, live_tracks = index_into_message(tracks, job.kept), index_into_message(live_tracks, job.kept)
        self._tracks_pub.publish(detection_array_cdr(header, tracks, s.class_names))
        ground = None if self._ground is None else self._ground.publish(
            header, staged.timestamp, result.tracks, result.live_tracks, result.detections.boxes,
            result.detections.scores, s.class_names)
        self._full_pub.publish(track_array_cdr(header, live_tracks, s.class_names, ground))
        if s.publish_debug_image:
            annotated = draw_tracks(staged.image, result.tracks, s.class_names, copy=not staged.image.flags.writeable)
            self._debug_pub.publish(Image(header=header, **bgr_to_raw_fields(annotated)))
        self._failures_in_a_row = 0
        self.stats.frame_done((time.monotonic() - job.frame.received) * 1e3, (time.perf_counter() - job.started) * 1e3,
                              len(result.live_tracks), result.timings)

    def _time_reset(self, why: str) -> None:
        self.stats.time_reset()
        if self._pairer is not None:
            self._pairer.clear()
        self.get_logger().warning(f"{why}: tracker reset")

    def _reject(self, reason: str, message: str) -> None:
        count = self.stats.reject(reason)
        self.get_logger().error(f"{message} ({reason} #{count}); tracks are kept",
                                throttle_duration_sec=_LOG_THROTTLE_S)

    def _on_worker_error(self, exc: BaseException) -> None:
        """Two failures in a row: the tracker's state is suspect, so it starts afresh (ids keep counting)."""
        self.stats.error()
        self.get_logger().error(f"frame processing failed: {type(exc).__name__}: {exc}",
                                throttle_duration_sec=_LOG_THROTTLE_S)
        self._failures_in_a_row += 1
        if self._failures_in_a_row >= 2:
            self._pipeline.reset()
            self._failures_in_a_row = 0
            self._recoveries += 1
            self.get_logger().warning(f"frame processing failed twice in a row: tracker reset "
                                      f"(recovery #{self._recoveries}); tracking resumes with new tracks")

    # ---- diagnostics --------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        snap = self.stats.snapshot()
        dropped = self._worker.dropped
        rejected = sum(snap.rejected.values())
        missing, self._missing_reported = self._gaps.missing - self._missing_reported, self._gaps.missing
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
            "frames_received": str(self._gaps.received), "frames_missing": str(self._gaps.missing),
            "frames_processed": str(snap.total_frames), "frames_dropped_busy": str(dropped),
            "live_tracks": str(snap.live_tracks),
            "detector": self._models["detector"], "embedder": self._models["embedder"],
            "device": self._models["device"],
            "time_resets": str(snap.time_resets), "processing_errors": str(snap.errors),
            "tracker_recoveries": str(self._recoveries),
            "pipeline": "|".join(self._worker.stage_names), "frames_in_flight": str(self._worker.in_flight),
            "threads": ",".join(f"{k}={v}" for k, v in self._threads.items()),
        }
        for name, (p50, p99) in snap.percentiles.items():    # latency, detect/embed/track, stage_*, wait_*
            values[f"{name}_ms_p50"], values[f"{name}_ms_p99"] = f"{p50:.2f}", f"{p99:.2f}"
        namesakes = same_name_nodes(self)
        if namesakes > 1:
            level, message = DiagnosticStatus.WARN, f"{namesakes} nodes named {self.get_fully_qualified_name()}"
            values["nodes_with_this_name"] = str(namesakes)
            self.get_logger().warning(f"{namesakes} nodes are named {self.get_fully_qualified_name()}: their "
                                      f"topics, parameters and diagnostics mix; give each its own name or "
                                      f"namespace", throttle_duration_sec=_LOG_THROTTLE_S)
        if self._pairer is not None:
            values["unpaired_images"] = str(self._pairer.unpaired_images)
            values["unpaired_detections"] = str(self._pairer.unpaired_detections)
        values.update({f"rejected_{k}": str(v) for k, v in sorted(snap.rejected.items())})
        ground_warning = None if self._ground is None else self._ground.output.diagnostics(values)
        if ground_warning is not None:   # said beside any other problem of the period
            message = ground_warning if level == DiagnosticStatus.OK else f"{message}; {ground_warning}"
            level = DiagnosticStatus.WARN
        status = DiagnosticStatus(level=level, name=f"{self.get_fully_qualified_name()}: tracker",
                                  message=message, hardware_id=self.get_fully_qualified_name(),
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        self._diag_pub.publish(DiagnosticArray(header=_header_now(self), status=[status]))

    def shutdown(self) -> None:
        if self._worker is not None and not self._worker.stop(timeout=0.5):
            self.get_logger().warning("worker still busy at shutdown; leaving it to exit with the process")


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
        ignore_interrupts_while_ending()
        if node is not None:
            node.shutdown()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0

