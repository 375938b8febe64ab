"""Replay a bag's images (and detections) into a live tracker node over DDS and record its tracks.

    python -m smiletrack_ros.cli.replay_bag BAG [--rate 1.0 | --lockstep] [--record OUT_BAG] [--mot OUT.txt]

Messages go out as the bag stores them (raw CDR, original header stamps) at the
bag's pace scaled by ``--rate``; ``--lockstep`` instead waits for each image's
tracks before sending the next, so no frame is dropped and runs repeat exactly.
The node's ``tracks`` (and ``tracks_full``) are written to an mcap bag; ``--mot``
turns them into a MOTChallenge results file numbered by the bag's images.
"""
from __future__ import annotations

import argparse
import importlib
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from smiletrack_ros.bags import BagError, BagWriter, bag_info, build_typestore, read_tracks
from smiletrack_ros.bags.io import pick_topic
from smiletrack_ros.bags.messages import DETECTION_ARRAY, IMAGE_TYPES, TRACK_ARRAY, stamp_to_ns
from smiletrack_ros.mot.io import write_results


@dataclass
class ReplayStats:
    images: int = 0
    detections: int = 0
    answered: int = 0            # images whose tracks came back
    wall_s: float = 0.0
    image_stamps: list[int] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> str:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.array([np.nan])
        return (f"published {self.images} images, {self.detections} detection arrays in {self.wall_s:.1f} s "
                f"({self.images / max(self.wall_s, 1e-9):.1f} images/s); tracks for {self.answered} images "
                f"({self.images - self.answered} not answered: dropped or rejected by the node); "
                f"image -> tracks latency p50 {np.percentile(lat, 50):.1f} ms, p99 {np.percentile(lat, 99):.1f} ms")


@dataclass(frozen=True)
class ReplayOptions:
    rate: float = 1.0
    lockstep: bool = False
    image_topic: str | None = None          # in the bag (default: its only image topic)
    detections_topic: str | None = None     # in the bag (default: its only Detection2DArray topic; "" none)
    out_image_topic: str | None = None      # published as (default: the bag's name)
    out_detections_topic: str | None = None
    tracks_topic: str = "/tracks"
    tracks_full_topic: str | None = "/tracks_full"
    clock: bool = False
    domain_id: int | None = None            # None: ROS_DOMAIN_ID from the environment
    wait_node_s: float = 20.0
    frame_timeout_s: float = 5.0
    drain_s: float = 2.0

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"rate must be > 0, got {self.rate}")
        for name in ("wait_node_s", "frame_timeout_s", "drain_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


def _msg_class(msgtype: str):
    """'pkg/msg/Type' -> the rclpy message class."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def header_stamp_ns(raw: bytes) -> int:
    """The header stamp of a serialized message that starts with std_msgs/Header: it follows the
    4-byte CDR encapsulation (whose 2nd byte says the byte order), so no full decode is needed."""
    if len(raw) < 12 or raw[0] != 0 or raw[1] not in (0, 1):
        raise BagError("message is not CDR-encoded (unexpected encapsulation header)")
    sec, nanosec = struct.unpack("<iI" if raw[1] == 1 else ">iI", raw[4:12])
    return sec * 1_000_000_000 + nanosec


def _bag_messages(path: Path, topics: list[str]) -> Iterator[tuple[str, int, int, bytes]]:
    """(topic, log time ns, header stamp ns, raw CDR) in log-time order."""
    from rosbags.highlevel import AnyReader

    with AnyReader([path], default_typestore=build_typestore()) as reader:
        connections = [c for c in reader.connections if c.topic in topics]
        for connection, log_ns, raw in reader.messages(connections=connections):
            raw = bytes(raw)
            yield connection.topic, log_ns, header_stamp_ns(raw), raw


class Replayer:
    """One rclpy node that publishes the bag and records the tracker's outputs."""

    def __init__(self, bag: str | Path, options: ReplayOptions, record: str | Path | None = None):
        import rclpy
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        self.bag, self.options = Path(bag), options
        info = bag_info(self.bag)
        self.image_topic = pick_topic(info, IMAGE_TYPES, options.image_topic, "image")
        self.det_topic = None
        if options.detections_topic != "":
            if options.detections_topic is not None or info.topics_of((DETECTION_ARRAY,)):
                self.det_topic = pick_topic(info, (DETECTION_ARRAY,), options.detections_topic, "detections",
                                            prefer="detect")
        self.store = build_typestore()
        self.writer = BagWriter(record, typestore=self.store).__enter__() if record is not None else None
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=options.domain_id)
        self.node = rclpy.create_node("smiletrack_replay", context=self.context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.publishers = {self.image_topic.name: self.node.create_publisher(
            _msg_class(self.image_topic.msgtype), options.out_image_topic or self.image_topic.name, qos)}
        if self.det_topic is not None:
            self.publishers[self.det_topic.name] = self.node.create_publisher(
                _msg_class(DETECTION_ARRAY), options.out_detections_topic or self.det_topic.name, qos)
        self.clock_pub = None
        if options.clock:
            from rosgraph_msgs.msg import Clock

            self.clock_pub = self.node.create_publisher(Clock, "/clock", 10)
        self.received: dict[int, float] = {}     # tracks stamp -> wall time received
        outputs = [(options.tracks_topic, DETECTION_ARRAY), (options.tracks_full_topic, TRACK_ARRAY)]
        for topic, msgtype in outputs:
            if topic:
                self.node.create_subscription(_msg_class(msgtype), topic,
                                              lambda raw, t=topic, m=msgtype: self._on_output(t, m, raw),
                                              QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE),
                                              raw=True)
        self.stats = ReplayStats()

    def _on_output(self, topic: str, msgtype: str, raw: bytes) -> None:
        msg = self.store.deserialize_cdr(raw, msgtype)
        stamp = stamp_to_ns(msg.header.stamp)
        if topic == self.options.tracks_topic:
            self.received.setdefault(stamp, time.monotonic())
        if self.writer is not None:
            self.writer.write(topic, msgtype, stamp, msg)

    def _spin_until(self, condition, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not condition():
            left = end - time.monotonic()
            if left <= 0:
                return False
            self.executor.spin_once(timeout_sec=min(left, 0.005))
        return True

    def wait_for_node(self) -> None:
        image_pub = self.publishers[self.image_topic.name]
        ok = self._spin_until(lambda: image_pub.get_subscription_count() > 0
                              and self.node.count_publishers(self.options.tracks_topic) > 0,
                              self.options.wait_node_s)
        if not ok:
            raise BagError(f"no tracker node subscribed to {image_pub.topic_name} / publishing "
                           f"{self.options.tracks_topic} within {self.options.wait_node_s} s")
        self._spin_until(lambda: False, 0.3)    # let the reverse discovery settle

    def run(self) -> ReplayStats:
        opts, stats = self.options, self.stats
        topics = [self.image_topic.name] + ([self.det_topic.name] if self.det_topic else [])
        start_wall, first_log = time.monotonic(), None
        sent: dict[int, float] = {}
        detections_sent: set[int] = set()
        for topic, log_ns, stamp_ns, raw in _bag_messages(self.bag, topics):
            first_log = log_ns if first_log is None else first_log
            if not opts.lockstep:
                due = start_wall + (log_ns - first_log) / 1e9 / opts.rate
                self._spin_until(lambda due=due: time.monotonic() >= due, max(due - time.monotonic(), 0.0))
            if self.clock_pub is not None:
                self._publish_clock(log_ns)
            self.publishers[topic].publish(raw)
            if topic == self.image_topic.name:
                stats.images += 1
                stats.image_stamps.append(stamp_ns)
                sent[stamp_ns] = time.monotonic()
                frame_complete = self.det_topic is None or stamp_ns in detections_sent
            else:
                stats.detections += 1
                detections_sent.add(stamp_ns)
                frame_complete = stamp_ns in sent
            if opts.lockstep and frame_complete:
                self._spin_until(lambda s=stamp_ns: s in self.received, opts.frame_timeout_s)
        self._spin_until(lambda: all(s in self.received for s in sent), opts.drain_s)
        stats.wall_s = time.monotonic() - start_wall
        stats.answered = sum(1 for s in sent if s in self.received)
        stats.latencies_ms = [(self.received[s] - t) * 1e3 for s, t in sent.items() if s in self.received]
        return stats

    def _publish_clock(self, log_ns: int) -> None:
        from rosgraph_msgs.msg import Clock

        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = log_ns // 1_000_000_000, log_ns % 1_000_000_000
        self.clock_pub.publish(msg)

    def close(self) -> None:
        import rclpy

        if self.writer is not None:
            self.writer.__exit__(None, None, None)
            self.writer = None
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def tracks_bag_to_mot(tracks_bag: str | Path, image_stamps: list[int], out_file: str | Path,
                      tracks_topic: str = "/tracks") -> int:
    """MOT rows from a recorded tracks bag, frame k = the k-th image stamp of the replayed bag."""
    frame_of = {s: k for k, s in enumerate(image_stamps, start=1)}
    rows = []
    for stamped in read_tracks(tracks_bag, tracks_topic):
        frame = frame_of.get(stamped.stamp_ns)
        if frame is None:
            raise BagError(f"tracks stamped {stamped.stamp_ns} ns match no replayed image")
        t = stamped.tracks
        rows.append(np.column_stack([np.full(len(t), frame), t.ids, t.boxes, t.scores]))
    table = np.concatenate(rows) if rows else np.zeros((0, 7))
    return write_results(out_file, table[np.lexsort((table[:, 1], table[:, 0]))])


def replay(bag: str | Path, options: ReplayOptions, record: str | Path | None = None,
           mot: str | Path | None = None) -> ReplayStats:
    if mot is not None and record is None:
        raise ValueError("--mot needs --record (the MOT file is made from the recorded tracks)")
    replayer = Replayer(bag, options, record)
    try:
        replayer.wait_for_node()
        stats = replayer.run()
    finally:
        replayer.close()
    if mot is not None:
        tracks_bag_to_mot(record, stats.image_stamps, mot, options.tracks_topic)
    return stats


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="replay_bag", description=__doc__.split("\n\n")[0])
    parser.add_argument("bag", help="bag folder or .mcap/.db3 file with images (and detections)")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor (1.0 = real time)")
    parser.add_argument("--lockstep", action="store_true",
                        help="wait for each image's tracks before the next (no drops, repeatable)")
    parser.add_argument("--image-topic", help="image topic in the bag (default: its only one)")
    parser.add_argument("--detections-topic", help="detections topic in the bag; '' to send none")
    parser.add_argument("--publish-image-topic", help="publish images on this topic (default: the bag's)")
    parser.add_argument("--publish-detections-topic", help="publish detections on this topic (default: the bag's)")
    parser.add_argument("--tracks-topic", default="/tracks")
    parser.add_argument("--tracks-full-topic", default="/tracks_full", help="'' to not record it")
    parser.add_argument("--clock", action="store_true", help="publish /clock from the bag (use_sim_time nodes)")
    parser.add_argument("--record", help="write the node's outputs to this mcap bag (must not exist)")
    parser.add_argument("--mot", help="also write the recorded tracks as a MOT results file")
    parser.add_argument("--wait-node", type=float, default=20.0, help="seconds to wait for the node")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        options = ReplayOptions(
            rate=args.rate, lockstep=args.lockstep, image_topic=args.image_topic,
            detections_topic=args.detections_topic, out_image_topic=args.publish_image_topic,
            out_detections_topic=args.publish_detections_topic, tracks_topic=args.tracks_topic,
            tracks_full_topic=args.tracks_full_topic or None, clock=args.clock, wait_node_s=args.wait_node)
        stats = replay(args.bag, options, args.record, args.mot)
    except (BagError, ValueError, OSError) as err:
        print(f"replay_bag: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(stats.summary())
    if args.record:
        print(f"recorded tracks to {args.record}" + (f", MOT results to {args.mot}" if args.mot else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
