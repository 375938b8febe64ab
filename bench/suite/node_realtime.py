"""The tracker node in real time: a real video published over DDS at a fixed rate into launched
node processes, per model set, worker mode and camera layout, all in one run.

    AMENT_PREFIX_PATH=.venv .venv/bin/python -m bench.suite.node_realtime [--seconds 12] [--rate 15]
        [--sets yolox+osnet,yolox+slm,external+slm] [--modes today,pipelined] [--cameras 1,3]
        [--layouts nodes,one-node] [--repeats 1] [--json R.json]

Frames: TUD-Stadtmitte (../shared/data/MOT15, 640x480), one stream per camera (camera c starts
c * 40 frames later); ``external`` sets send its det.txt detections right after each image, as
a detector would (``external+slm/detections-first``: before it, in the same participant, which Fast
DDS's shared-memory transport loses when the subscriber is busy: see ``Feeder.publish``). Each
configuration gets fresh node processes, a lock-step warm-up, then ``--seconds`` of frames at
``--rate`` on every camera. Reported per configuration: frames sent, processed (tracks came back),
processed FPS, dropped by the busy node (its ``frames_dropped_busy``), latency publish -> tracks
received p50/p99, the node's per-step and per-stage times (p50: median of its 1 s diagnostics
periods, p99: the largest period p99), and the node processes' CPU use (% of one core, from
/proc). Modes: ``main`` = the ``today`` settings run by another source tree (``--main-src``: the
code users have today), ``today`` = sequential with the thread settings main shipped before the
pipeline (every runtime on every core, no crop split, each embedder in its old runtime: the SLM
in torch, ONNX models in ONNX Runtime), ``sequential`` /
``pipelined`` = the node's defaults (one thread per runtime, each frame's crops cut in two runs
embedded at once: ``pipeline.embed_split`` 2) with that ``pipeline.mode``; ``pipelined-s1`` = one
embedder call per frame (detect | track only), ``pipelined-e2`` = two frames embedded at once
(``pipeline.embed_workers`` 2), ``pipelined-t2`` = the embedder on two runtime threads instead,
``pipelined-allcores`` = every runtime on every core.
Layouts with several cameras: ``nodes`` = one node process per camera (namespaces /cam0 ...),
``one-node`` = one node with ``cameras: [cam0, ...]`` (shared models, batched across cameras).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.suite.node_driver import SpunNode
from smiletrack_ros.ros.process import node_command, same_package_env, stop_node_process

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SMILETRACK_SHARED", REPO.parent / "shared"))
VIDEO = "TUD-Stadtmitte"
CAMERA_OFFSET = 40
BASE = {"class_names": ["person"], "input_qos.reliability": "reliable", "input_qos.depth": 10,
        "diagnostics_period": 1.0, "tracker.preset": "reid", "detector.device": "cpu", "embedder.device": "cpu"}
# today = main before issue 20: sequential, every runtime on every core (its thread defaults)
EVERY_CORE = {"detector.cpu_threads": 0, "embedder.threads": 0, "threads.torch": 0, "threads.opencv": 0}
TODAY = {"pipeline.mode": "sequential", "pipeline.embed_split": 1} | EVERY_CORE
# ... and the runtime each embedder backend ran in before ``embedder.runtime`` (mode today only)
TODAY_RUNTIMES = {"slm": "torch", "osnet": "torch", "onnx": "onnxruntime"}
MODES = {"main": TODAY, "today": TODAY,
         "sequential": {"pipeline.mode": "sequential"},
         "sequential-bf16": {"pipeline.mode": "sequential", "embedder.bf16": True},
         "sequential-ort": {"pipeline.mode": "sequential", "embedder.runtime": "onnxruntime"},
         "pipelined": {"pipeline.mode": "pipelined"},
         "pipelined-s1": {"pipeline.mode": "pipelined", "pipeline.embed_split": 1},
         "pipelined-e2": {"pipeline.mode": "pipelined", "pipeline.embed_workers": 2, "pipeline.embed_split": 1},
         "pipelined-t2": {"pipeline.mode": "pipelined", "pipeline.embed_split": 1, "embedder.threads": 2,
                          "threads.torch": 2},
         "pipelined-allcores": {"pipeline.mode": "pipelined"} | EVERY_CORE}


def model_sets(shared: Path) -> dict[str, dict]:
    models = shared / "models"
    yolox = {"detector.backend": "onnx", "detector.weights": str(models / "yolox_nano.onnx")}
    osnet = {"embedder.backend": "onnx", "embedder.weights": str(models / "reid" / "osnet_x0_25_msmt17.onnx")}
    return {"yolox+osnet": yolox | osnet, "yolox+slm": yolox | {"embedder.backend": "slm"},
            "external+slm": {"detector.backend": "external", "embedder.backend": "slm"}}


@dataclass
class Config:
    name: str
    params: dict
    cameras: int
    layout: str          # nodes | one-node
    detections_first: bool = False   # the feeder publishes each frame's detections before its image
    source: Path | None = None       # the package copy the nodes run (None: this one)

    @property
    def external(self) -> bool:
        return self.params.get("detector.backend") == "external"


@dataclass
class Result:
    config: str
    sent: int
    processed: int
    seconds: float
    dropped_busy: int
    latency_ms: list[float]
    node_ms: dict[str, tuple[float, float]]
    cpu_percent: float
    per_camera_processed: list[int] = field(default_factory=list)

    def row(self) -> dict:
        lat = np.asarray(self.latency_ms) if self.latency_ms else np.asarray([np.nan])
        return {"config": self.config, "sent": self.sent, "processed": self.processed,
                "fps": self.processed / self.seconds, "dropped_busy": self.dropped_busy,
                "latency_p50": float(np.percentile(lat, 50)), "latency_p99": float(np.percentile(lat, 99)),
                "cpu_percent": self.cpu_percent, "node_ms": self.node_ms,
                "per_camera_processed": self.per_camera_processed}


def load_video(shared: Path, frames: int) -> tuple[list[np.ndarray], dict]:
    import cv2

    from smiletrack_ros.mot.io import read_detections

    capture = cv2.VideoCapture(str(shared / "data" / "MOT15" / VIDEO / f"{VIDEO}.mp4"))
    images = []
    while len(images) < frames:
        ok, image = capture.read()
        if not ok:
            break
        images.append(cv2.resize(image, (640, 480)) if image.shape[:2] != (480, 640) else image)
    if not images:
        raise RuntimeError(f"no frames in {VIDEO}.mp4")
    return images, read_detections(shared / "data" / "MOT15" / VIDEO / "det" / "det.txt")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its reaped children, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class Feeder(SpunNode):
    """Publishes each camera's images (+ detections) and records when each frame's tracks came back."""

    def __init__(self, domain: int, cameras: int):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from vision_msgs.msg import Detection2DArray

        super().__init__(domain, "smiletrack_realtime_feeder")
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.sent: dict[tuple[int, int], float] = {}
        self.latency: dict[tuple[int, int], float] = {}
        self.diagnostics: dict[str, list[dict[str, str]]] = {}
        self.image_pubs, self.det_pubs = [], []
        for c in range(cameras):
            self.image_pubs.append(self.node.create_publisher(Image, f"/cam{c}/image", reliable))
            self.det_pubs.append(self.node.create_publisher(Detection2DArray, f"/cam{c}/detections", reliable))
            self.node.create_subscription(Detection2DArray, f"/cam{c}/tracks", lambda m, c=c: self._on_tracks(c, m),
                                          QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self.spin()

    def _on_tracks(self, camera: int, msg) -> None:
        now = time.perf_counter()
        key = (camera, msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)
        with self.lock:
            if key in self.sent:
                self.latency[key] = now - self.sent[key]

    def _on_diagnostics(self, msg) -> None:
        with self.lock:
            for status in msg.status:
                self.diagnostics.setdefault(status.hardware_id, []).append({kv.key: kv.value for kv in status.values})

    def connected(self) -> bool:
        return all(p.get_subscription_count() > 0 for p in self.image_pubs)

    def publish(self, camera: int, stamp_ns: int, fields: dict, detections=None, detections_first=False) -> None:
        """The image, then its detections. The other way round, Fast DDS loses detections: its
        shared-memory transport writes a participant's messages into one 512 KiB segment, and the
        image (921,600 bytes) right after recycles the buffer of the array a busy subscriber has not
        read yet; the reliable repair then holds that array and every later one for ~0.5-3 s."""
        from sensor_msgs.msg import Image
        from std_msgs.msg import Header

        from smiletrack_ros.cdr import detections_cdr

        header = Header(frame_id=f"cam{camera}")
        header.stamp.sec, header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        with self.lock:
            self.sent[(camera, stamp_ns)] = time.perf_counter()
        messages = [(self.image_pubs[camera], Image(header=header, **fields))]
        if detections is not None:
            array = detections_cdr(header, detections.boxes, detections.scores, detections.class_ids,
                                   class_names=("person",))
            messages.insert(0 if detections_first else 1, (self.det_pubs[camera], array))
        for publisher, message in messages:
            publisher.publish(message)

    def answered(self, keys) -> int:
        with self.lock:
            return sum(k in self.latency for k in keys)


def start_nodes(config: Config, workdir: Path, domain: int, rate: float) -> list[subprocess.Popen]:
    import yaml

    env = same_package_env(dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                                PYTHONUNBUFFERED="1"))
    if config.source is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(config.source), env["PYTHONPATH"]])
    if config.layout == "one-node":
        layouts = [("", {"cameras": [f"cam{c}" for c in range(config.cameras)]})]
    else:
        layouts = [(f"/cam{c}", {}) for c in range(config.cameras)]
    procs = []
    for k, (namespace, extra) in enumerate(layouts):
        params = workdir / f"params_{k}.yaml"
        values = BASE | {"frame_rate": rate} | config.params | extra
        params.write_text(yaml.safe_dump({"/**": {"ros__parameters": values}}))
        args = ["--params-file", str(params)] + (["-r", f"__ns:={namespace}"] if namespace else [])
        with open(workdir / f"node_{k}.log", "w") as log:
            procs.append(subprocess.Popen(node_command(*args), cwd=workdir, env=env, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True))
    return procs


def run_config(config: Config, images: list[np.ndarray], dets: dict, rate: float, seconds: float,
               domain: int) -> Result:
    from smiletrack_ros.detections import Detections
    from smiletrack_ros.image_codec import bgr_to_raw_fields

    fields = [bgr_to_raw_fields(image) for image in images]
    with tempfile.TemporaryDirectory(prefix="smiletrack_realtime_") as tmp:
        procs = start_nodes(config, Path(tmp), domain, rate)
        feeder = Feeder(domain, config.cameras)
        try:
            end = time.monotonic() + 120
            while not feeder.connected():
                if any(p.poll() is not None for p in procs) or time.monotonic() > end:
                    logs = "\n".join(p.read_text()[-1500:] for p in Path(tmp).glob("node_*.log"))
                    raise RuntimeError(f"{config.name}: the node did not come up\n{logs}")
                time.sleep(0.1)
            time.sleep(1.0)
            period_ns, t0 = round(1e9 / rate), 1_700_000_000 * 1_000_000_000

            def frame(camera: int, k: int):
                index = (k + camera * CAMERA_OFFSET) % len(images)
                d = dets.get(index + 1, Detections.empty()) if config.external else None
                return fields[index], d, config.detections_first

            for k in range(4):          # lock-step warm-up: the models' first runs
                keys = [(c, t0 + k * period_ns) for c in range(config.cameras)]
                for c, stamp in keys:
                    feeder.publish(c, stamp, *frame(c, k))
                wait_end = time.monotonic() + 60
                while feeder.answered(keys) < len(keys) and time.monotonic() < wait_end:
                    time.sleep(0.01)
            time.sleep(0.5)
            with feeder.lock:
                before = {name: dict(v[-1]) for name, v in feeder.diagnostics.items() if v}
                feeder.diagnostics.clear()
            cpu0 = sum(cpu_seconds(p.pid) for p in procs)
            count = int(seconds * rate)
            start = time.perf_counter()
            sent_keys = []
            for k in range(count):
                delay = start + k / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                for c in range(config.cameras):
                    stamp = t0 + (k + 4) * period_ns
                    feeder.publish(c, stamp, *frame(c, k + 4))
                    sent_keys.append((c, stamp))
            elapsed = time.perf_counter() - start
            cpu = (sum(cpu_seconds(p.pid) for p in procs) - cpu0) / elapsed * 100.0
            time.sleep(1.5)             # the last frames' tracks and a diagnostics period
            with feeder.lock:
                latency = [feeder.latency[k] * 1e3 for k in sent_keys if k in feeder.latency]
                per_camera = [sum(k in feeder.latency for k in sent_keys if k[0] == c) for c in range(config.cameras)]
                diagnostics = {name: list(v) for name, v in feeder.diagnostics.items()}
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{config.name}: a node exited with {p.returncode} during the run")
        finally:
            feeder.close()
            for p in procs:
                stop_node_process(p, timeout=10)
    dropped = 0
    node_ms: dict[str, list[tuple[float, float]]] = {}
    for name, periods in diagnostics.items():
        start_count = before.get(name, {}).get("frames_dropped_busy", 0)
        dropped += int(periods[-1].get("frames_dropped_busy", 0)) - int(start_count)
        for values in periods:
            for key, value in values.items():
                if key.endswith("_ms_p50"):
                    step = key[:-len("_ms_p50")]
                    node_ms.setdefault(step, []).append((float(value), float(values[f"{step}_ms_p99"])))
    summary = {name: (float(np.median([p50 for p50, _ in v])), float(max(p99 for _, p99 in v)))
               for name, v in sorted(node_ms.items())}
    return Result(config.name, len(sent_keys), len(latency), elapsed, dropped, latency, summary, cpu, per_camera)


def table(rows: list[dict]) -> str:
    steps = ("detect", "embed", "track", "stage_detect", "stage_embed", "stage_track", "stage_frame", "wait_track")
    head = ["config", "sent", "processed", "FPS", "dropped", "lat p50", "lat p99", "CPU %"] + \
        [f"{s} p50/p99" for s in steps]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        ms = r["node_ms"]
        cells = [r["config"], str(r["sent"]), str(r["processed"]), f"{r['fps']:.1f}", str(r["dropped_busy"]),
                 f"{r['latency_p50']:.0f}", f"{r['latency_p99']:.0f}", f"{r['cpu_percent']:.0f}"]
        cells += [f"{ms[s][0]:.0f}/{ms[s][1]:.0f}" if s in ms else "-" for s in steps]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=12.0)
    p.add_argument("--rate", type=float, default=15.0)
    p.add_argument("--sets", default="yolox+osnet,yolox+slm,external+slm")
    p.add_argument("--modes", default="today,pipelined")
    p.add_argument("--cameras", default="1")
    p.add_argument("--layouts", default="nodes", help="for several cameras: nodes, one-node or both")
    p.add_argument("--repeats", type=int, default=1, help="the whole list again (interleaved), for noise")
    p.add_argument("--json", type=Path)
    p.add_argument("--main-src", type=Path, help="the source tree the 'main' mode's nodes run (e.g. "
                                                  "git archive <commit> | tar -x -C DIR)")
    args = p.parse_args(argv)
    if not (SHARED / "data" / "MOT15" / VIDEO).is_dir():
        print(f"skipped: {SHARED}/data/MOT15/{VIDEO} not found (set SMILETRACK_SHARED)", file=sys.stderr)
        return 0
    sets = model_sets(SHARED)
    configs = []
    for cameras in (int(c) for c in args.cameras.split(",")):
        for set_label in args.sets.split(","):
            set_name, _, order = set_label.partition("/")
            if order not in ("", "detections-first"):
                p.error(f"unknown feeder order {order!r} in {set_label!r} (known: detections-first)")
            for mode in args.modes.split(","):
                for layout in (args.layouts.split(",") if cameras > 1 else ["nodes"]):
                    label = f"{set_label} {mode} {cameras}cam" + (f" {layout}" if cameras > 1 else "")
                    source = args.main_src if mode == "main" else None
                    if mode == "main" and not (source and (source / "smiletrack_ros").is_dir()):
                        p.error("mode main needs --main-src: a source tree with smiletrack_ros/")
                    params = sets[set_name] | MODES[mode]
                    if mode == "today":
                        params["embedder.runtime"] = TODAY_RUNTIMES[params["embedder.backend"]]
                    configs.append(Config(label, params, cameras, layout, bool(order), source))
    images, dets = load_video(SHARED, 180)
    rows = []
    domain = 120 + os.getpid() % 60
    for repeat in range(args.repeats):
        for config in configs:
            print(f"[{time.strftime('%H:%M:%S')}] {config.name} (repeat {repeat + 1})", file=sys.stderr, flush=True)
            rows.append(run_config(config, images, dets, args.rate, args.seconds, domain).row())
            print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(f"\n{VIDEO} 640x480 at {args.rate:g} Hz per camera, {args.seconds:g} s per configuration, "
          f"{os.cpu_count()} cores; times in ms\n")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
