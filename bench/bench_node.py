"""Tracker-node costs outside the models, for 640x480 images and 50 tracks.

    AMENT_PREFIX_PATH=.venv .venv/bin/python bench/bench_node.py [--frames 300] [--rate 15]

1. Per-frame node overhead, in process: Image message -> BGR array, external
   Detection2DArray -> Detections, tracks -> Detection2DArray + TrackArray, and
   publishing both to a subscribed rclpy node (what the node does around
   detector/embedder/tracker). Target: under 3 ms.
2. Image-in -> tracks-out latency over DDS: the node runs as its own process
   (external detections, no embedder) and frames are published at --rate.
Run as a script so that the installed package (with its generated messages) is used.
With the models on a real video, in real time (pipelined vs sequential, one vs several
cameras): ``python -m bench.suite.node_realtime``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image
from smiletrack_ros.msg import TrackArray
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from smiletrack_ros.cdr import detection_array_cdr, detections_cdr, track_array_cdr
from smiletrack_ros.detections import Detections
from smiletrack_ros.image_codec import bgr_to_raw_fields
from smiletrack_ros.ros.images import ImageConverter
from smiletrack_ros.ros.messages import detection_array_to_detections
from smiletrack_ros.ros.process import node_command, same_package_env, stop_node_process
from smiletrack_ros.tracking import TrackOutput, TrackState

WIDTH, HEIGHT, TRACKS = 640, 480, 50
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def grid_boxes(frame: int) -> np.ndarray:
    """50 people-sized boxes on a 10 x 5 grid, drifting right 1 px a frame."""
    xs, ys = np.meshgrid(np.arange(10) * 62 + 5 + frame % 20, np.arange(5) * 92 + 10)
    x1, y1 = xs.ravel().astype(np.float32), ys.ravel().astype(np.float32)
    return np.stack([x1, y1, x1 + 40, y1 + 85], axis=1)


def _detections_cdr(header, dets: Detections) -> bytes:
    return detections_cdr(header, dets.boxes, dets.scores, dets.class_ids)


def detections(frame: int) -> Detections:
    return Detections(grid_boxes(frame), np.full(TRACKS, 0.9, np.float32), np.zeros(TRACKS, np.int64))


def fake_tracks(boxes: np.ndarray) -> list[TrackOutput]:
    return [TrackOutput(track_id=i + 1, box=b, score=0.9, class_id=0, state=TrackState.TRACKED, age=10, hits=9,
                        frames_since_update=0, velocity=(30.0, 0.0), appearance_similarity=0.8, detection_index=i)
            for i, b in enumerate(boxes)]


def header(frame: int) -> Header:
    h = Header(frame_id="camera")
    h.stamp.sec, h.stamp.nanosec = divmod(frame * 33_333_333, 1_000_000_000)
    return h


def percentiles(values_ms: list[float]) -> str:
    v = np.asarray(values_ms)
    return f"mean {v.mean():6.3f}  p50 {np.percentile(v, 50):6.3f}  p99 {np.percentile(v, 99):6.3f} ms"


def bench_overhead(frames: int) -> None:
    rclpy.init()
    pub_node, sub_node = rclpy.create_node("bench_node_pub"), rclpy.create_node("bench_node_sub")
    tracks_pub = pub_node.create_publisher(Detection2DArray, "bench_tracks", RELIABLE)
    full_pub = pub_node.create_publisher(TrackArray, "bench_tracks_full", RELIABLE)
    sub_node.create_subscription(Detection2DArray, "bench_tracks", lambda m: None, RELIABLE)
    sub_node.create_subscription(TrackArray, "bench_tracks_full", lambda m: None, RELIABLE)
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(sub_node)
    end = time.monotonic() + 5
    while tracks_pub.get_subscription_count() == 0 or full_pub.get_subscription_count() == 0:
        executor.spin_once(timeout_sec=0.05)
        if time.monotonic() > end:
            raise RuntimeError("bench subscriber never matched")
    image = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8)
    converter = ImageConverter()
    stages: dict[str, list[float]] = {"image -> BGR": [], "detections in": [], "tracks -> messages": [],
                                      "publish (2 topics)": [], "total": []}
    for k in range(frames):
        h = header(k)
        msg = Image(header=h, **bgr_to_raw_fields(image))              # as a subscription delivers it
        det_msg = deserialize_message(_detections_cdr(h, detections(k)), Detection2DArray)  # as delivered
        t0 = time.perf_counter()
        bgr = converter.raw_to_bgr(msg)
        t1 = time.perf_counter()
        dets = detection_array_to_detections(det_msg)
        t2 = time.perf_counter()
        tracks = fake_tracks(dets.boxes)
        t3 = time.perf_counter()
        out = detection_array_cdr(h, tracks)          # the node publishes serialised bytes
        full = track_array_cdr(h, tracks)
        t4 = time.perf_counter()
        tracks_pub.publish(out)
        full_pub.publish(full)
        t5 = time.perf_counter()
        executor.spin_once(timeout_sec=0)
        assert bgr.shape == (HEIGHT, WIDTH, 3) and len(dets) == TRACKS
        for name, dt in zip(stages, (t1 - t0, t2 - t1, t4 - t3, t5 - t4, (t5 - t0) - (t3 - t2)), strict=True):
            stages[name].append(dt * 1e3)
    print(f"node overhead per frame, {WIDTH}x{HEIGHT} bgr8, {TRACKS} tracks, {frames} frames "
          f"(images via {converter.backend}):")
    for name, values in stages.items():
        print(f"  {name:<20} {percentiles(values)}")
    pub_node.destroy_node()
    sub_node.destroy_node()
    rclpy.shutdown()


def bench_latency(frames: int, rate: float) -> None:
    domain = 150 + os.getpid() % 50
    with tempfile.TemporaryDirectory(prefix="bench_node_") as tmp:
        params = Path(tmp) / "params.yaml"
        params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {
            "detector.backend": "external", "embedder.enabled": False, "input_qos.reliability": "reliable",
            "input_qos.depth": 10, "tracker.preset": "bytetrack", "frame_rate": 30.0}}}))
        env = same_package_env(dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST"))
        proc = subprocess.Popen(node_command("--params-file", str(params)), env=env, cwd=tmp, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            _measure_latency(domain, frames, rate, proc)
        finally:
            stop_node_process(proc, timeout=10)


def _measure_latency(domain: int, frames: int, rate: float, proc: subprocess.Popen) -> None:
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("bench_node_feeder", context=context)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    image_pub = node.create_publisher(Image, "/image", RELIABLE)
    det_pub = node.create_publisher(Detection2DArray, "/detections", RELIABLE)
    received: dict[int, float] = {}
    sizes: list[int] = []

    def on_tracks(msg: Detection2DArray) -> None:
        received[msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = time.perf_counter()
        sizes.append(len(msg.detections))

    node.create_subscription(Detection2DArray, "/tracks", on_tracks, RELIABLE)
    processing_ms: list[float] = []        # the node's own per-frame figure (pipeline + publish)

    def on_diagnostics(msg: DiagnosticArray) -> None:
        values = {kv.key: kv.value for kv in msg.status[0].values}
        if values.get("processing_ms_mean", "nan") != "nan":
            processing_ms.append(float(values["processing_ms_mean"]))

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    end = time.monotonic() + 60
    while image_pub.get_subscription_count() == 0 or node.count_publishers("/tracks") == 0:
        executor.spin_once(timeout_sec=0.05)
        if proc.poll() is not None or time.monotonic() > end:
            raise RuntimeError(f"node did not come up: {proc.stderr.read() if proc.poll() is not None else ''}")
    image = np.random.default_rng(1).integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8)
    fields = bgr_to_raw_fields(image)
    sent: dict[int, float] = {}
    start = time.perf_counter()
    for k in range(frames):
        due = start + k / rate
        while time.perf_counter() < due:
            executor.spin_once(timeout_sec=max(0.0, min(0.002, due - time.perf_counter())))
        h = header(k)
        msg = Image(header=h, **fields)
        sent[h.stamp.sec * 1_000_000_000 + h.stamp.nanosec] = time.perf_counter()
        image_pub.publish(msg)
        det_pub.publish(_detections_cdr(h, detections(k)))   # after the image (node_realtime.Feeder.publish)
    end = time.perf_counter() + 3
    while len(received) < len(sent) and time.perf_counter() < end:
        executor.spin_once(timeout_sec=0.01)
    latencies = [(received[s] - t) * 1e3 for s, t in sent.items() if s in received]
    warm = latencies[10:] or latencies
    print(f"image-in -> tracks-out over DDS, {WIDTH}x{HEIGHT} + {TRACKS} external detections at {rate:g} Hz: "
          f"{len(received)}/{len(sent)} frames answered (the rest dropped by the busy node), "
          f"median {int(np.median(sizes)) if sizes else 0} tracks/frame")
    print(f"  latency (after 10 warm-up frames) {percentiles(warm)}")
    if processing_ms:
        print(f"  node-reported processing (tracker + messages + publish), mean of 1 s periods: "
              f"median {np.median(processing_ms):.2f} ms")
    node.destroy_node()
    rclpy.shutdown(context=context)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rate", type=float, default=15.0, help="frames per second sent to the node")
    args = parser.parse_args()
    bench_overhead(args.frames)
    bench_latency(args.frames, args.rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
