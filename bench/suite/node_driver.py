"""Feeds the real tracker node over DDS and measures it; writes a JSON result.

Run from the repository root (the node it starts runs the same copy of the package):
    .venv/bin/python -m bench.suite.node_driver rates --rates 30,60,120 --seconds 3 --result R.json
    .venv/bin/python -m bench.suite.node_driver soak --frames 10000 --rate 200 --result R.json
The node runs as its own process (external detections, embedder off: the
models' cost is in the speed suite's other tables).
Latency = publish of a frame (image + detections) to receipt of its tracks.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from smiletrack_ros.ros.process import node_command, same_package_env, stop_node_process

WIDTH, HEIGHT, FRAME_RATE = 640, 480, 30.0
# Measured frames are stamped after the warm-up ones (a stamp going back resets the tracker).
MEASURED_OFFSET = 100_000
# Reliable inputs with some history: frames the node cannot keep up with are then
# dropped by its own latest-frame worker (what we measure), not lost in DDS.
NODE_PARAMS = {"detector.backend": "external", "embedder.enabled": False, "class_names": ["person"],
               "input_qos.reliability": "reliable", "input_qos.depth": 10, "frame_rate": FRAME_RATE,
               "diagnostics_period": 5.0}


def start_node(workdir: Path, domain: int, preset: str) -> subprocess.Popen:
    import yaml

    params = workdir / "params.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {**NODE_PARAMS, "tracker.preset": preset}}}))
    env = same_package_env(dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                                PYTHONUNBUFFERED="1"))
    return subprocess.Popen(node_command("--params-file", str(params)), cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(workdir / "node.log", "w"), start_new_session=True)


class SpunNode:
    """An rclpy node on a context of its own (domain ``domain``), spun by a background thread
    once ``spin()`` is called; the benchmark publishes from its own thread."""

    def __init__(self, domain: int, name: str):
        import rclpy

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node(name, context=self.context)
        self.lock = threading.Lock()

    def spin(self) -> None:
        from rclpy.executors import SingleThreadedExecutor

        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.spinner = threading.Thread(target=self._spin, daemon=True)
        self.spinner.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - shutdown races end the loop
                return

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)
        self.spinner.join(timeout=2.0)


class Feeder(SpunNode):
    """Publishes frames and records, per stamp, when its tracks came back."""

    def __init__(self, domain: int):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from vision_msgs.msg import Detection2DArray

        super().__init__(domain, "smiletrack_bench_feeder")
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, "/image", reliable)
        self.det_pub = self.node.create_publisher(Detection2DArray, "/detections", reliable)
        self.node.create_subscription(Detection2DArray, "/tracks", self._on_tracks,
                                      QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.sent: dict[int, float] = {}
        self.latency: dict[int, float] = {}
        self.last_count = 0
        self.spin()

    def _on_tracks(self, msg) -> None:
        now = time.perf_counter()
        key = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.lock:
            if key in self.sent:
                self.latency[key] = now - self.sent[key]
            self.last_count = len(msg.detections)

    def wait_connected(self, proc: subprocess.Popen, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise RuntimeError(f"the node exited with {proc.returncode} while starting")
            if self.image_pub.get_subscription_count() and self.det_pub.get_subscription_count() \
                    and self.node.count_publishers("/tracks"):
                time.sleep(0.5)
                return
            time.sleep(0.05)
        raise RuntimeError(f"the node did not connect within {timeout} s")

    def publish(self, key_ns: int, image_fields: dict, dets) -> None:
        from sensor_msgs.msg import Image
        from std_msgs.msg import Header

        from smiletrack_ros.cdr import detections_cdr

        header = Header(frame_id="camera")
        header.stamp.sec, header.stamp.nanosec = divmod(key_ns, 1_000_000_000)
        det_msg = detections_cdr(header, dets.boxes, dets.scores, dets.class_ids, class_names=("person",))
        image_msg = Image(header=header, **image_fields)
        with self.lock:
            self.sent[key_ns] = time.perf_counter()
        self.image_pub.publish(image_msg)
        self.det_pub.publish(det_msg)      # after the image, as a detector would (node_realtime.Feeder.publish)

    def warm_up(self, fields: dict, answers: int = 5, timeout: float = 30.0) -> None:
        """Lock-step frames until the node answers: reliable endpoints can lose the first
        frames after discovery, which would otherwise count against the node."""
        from smiletrack_ros.detections import Detections

        empty = Detections.empty()
        end, k = time.monotonic() + timeout, 0
        while time.monotonic() < end:
            k += 1
            self.publish(int(k * 1e9 / FRAME_RATE), fields, empty)
            time.sleep(0.1)
            with self.lock:
                if len(self.latency) >= answers:
                    self.sent.clear(), self.latency.clear()
                    return
        raise RuntimeError(f"the node answered fewer than {answers} warm-up frames within {timeout} s")

def frames(count: int, objects: int, seed: int):
    from bench.suite.synthetic import SyntheticConfig, SyntheticStream
    from smiletrack_ros.detections import Detections

    config = SyntheticConfig(num_objects=objects, num_frames=count, width=WIDTH, height=HEIGHT,
                             frame_rate=FRAME_RATE, mean_lifetime=150.0, seed=seed)
    for item, _ in SyntheticStream(config):
        yield item.frame, Detections(item.boxes, item.scores, item.class_ids)


def paced(feeder: Feeder, stream, rate: float, image_fields: dict, on_frame=None) -> int:
    """Publishes at ``rate`` frames/s (absolute schedule, no drift); returns frames sent."""
    start = time.perf_counter()
    sent = 0
    for k, dets in stream:
        delay = start + sent / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        feeder.publish(int(k * 1e9 / FRAME_RATE), image_fields, dets)
        sent += 1
        if on_frame is not None:
            on_frame(sent)
    return sent


def image_fields(seed: int) -> dict:
    from smiletrack_ros.image_codec import bgr_to_raw_fields

    image = np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8)
    return bgr_to_raw_fields(image)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS")


def measure_rates(feeder: Feeder, rates: list[float], seconds: float, objects: int, seed: int) -> dict:
    fields = image_fields(seed)
    feeder.warm_up(fields)
    results, offset = [], MEASURED_OFFSET
    for rate in rates:
        count = max(10, int(rate * seconds))
        with feeder.lock:
            feeder.sent.clear(), feeder.latency.clear()
        stream = ((k + offset, d) for k, d in frames(count, objects, seed))
        t0 = time.perf_counter()
        sent = paced(feeder, stream, rate, fields)
        achieved = sent / (time.perf_counter() - t0)
        time.sleep(1.0)  # let the last frames come back
        offset += count + 1000
        with feeder.lock:
            ms = np.array(list(feeder.latency.values())) * 1e3
        results.append({"rate": rate, "achieved_input_rate": achieved, "sent": sent, "answered": int(ms.size),
                        "p50": float(np.percentile(ms, 50)) if ms.size else float("nan"),
                        "p99": float(np.percentile(ms, 99)) if ms.size else float("nan"),
                        "mean": float(ms.mean()) if ms.size else float("nan")})
    kept = [r["rate"] for r in results if r["answered"] >= 0.95 * r["sent"]]
    return {"rates": results, "sustainable_rate": max(kept) if kept else 0.0}


def soak(feeder: Feeder, node_pid: int, count: int, rate: float, objects: int, seed: int, samples: int) -> dict:
    fields = image_fields(seed)
    feeder.warm_up(fields)
    every = max(1, count // samples)
    out = {"frames": [], "rss_kb": [], "ms_mean": [], "ms_p50": [], "ms_p99": [], "live": [], "answered": []}
    done_keys: set[int] = set()

    def sample(sent: int) -> None:
        if sent % every:
            return
        with feeder.lock:
            fresh = [v for k, v in feeder.latency.items() if k not in done_keys]
            done_keys.update(feeder.latency)
            feeder.sent = {k: v for k, v in feeder.sent.items() if k not in feeder.latency}
            feeder.latency.clear()
            live = feeder.last_count
        ms = np.array(fresh) * 1e3 if fresh else np.array([np.nan])
        out["frames"].append(sent), out["rss_kb"].append(rss_kb(node_pid))
        out["ms_mean"].append(float(np.mean(ms))), out["ms_p50"].append(float(np.median(ms)))
        out["ms_p99"].append(float(np.percentile(ms, 99))), out["live"].append(live)
        out["answered"].append(len(fresh))

    t0 = time.perf_counter()
    paced(feeder, ((k + MEASURED_OFFSET, d) for k, d in frames(count, objects, seed)), rate, fields, sample)
    out["achieved_input_rate"] = count / (time.perf_counter() - t0)
    out["answered_total"] = int(sum(out["answered"]))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=("rates", "soak"))
    p.add_argument("--rates", default="15,30,60,120,240")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds per rate")
    p.add_argument("--frames", type=int, default=10_000)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--objects", type=int, default=30)
    p.add_argument("--preset", default="paper")
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--result", type=Path, required=True)
    args = p.parse_args(argv)
    domain = 100 + os.getpid() % 100
    os.environ.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    with tempfile.TemporaryDirectory(prefix="smiletrack_node_bench_") as tmp:
        proc = start_node(Path(tmp), domain, args.preset)
        feeder = None
        try:
            feeder = Feeder(domain)
            feeder.wait_connected(proc)
            if args.mode == "rates":
                result = measure_rates(feeder, [float(r) for r in args.rates.split(",")], args.seconds,
                                       args.objects, args.seed)
            else:
                result = soak(feeder, proc.pid, args.frames, args.rate, args.objects, args.seed, args.samples)
            if proc.poll() is not None:
                raise RuntimeError(f"the node exited with {proc.returncode} during the run")
        except RuntimeError as err:
            log = (Path(tmp) / "node.log").read_text()[-2000:]
            print(f"node benchmark failed: {err}\n{log}", file=sys.stderr)
            return 1
        finally:
            if feeder is not None:
                feeder.close()
            stop_node_process(proc, timeout=10)
    result.update(preset=args.preset, objects=args.objects, image=f"{WIDTH}x{HEIGHT}", node_params=NODE_PARAMS)
    args.result.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
