"""The main job, end to end through the real ROS 2 node.

    python -P -m smiletrack_ros.cli.demo [--out out/demo] [--frames 150 --people 8 --seed 0]
    python -P -m smiletrack_ros.cli.demo --video V.mp4 --detector-weights yolox_nano.onnx [--gt gt.txt]

Scene mode: a synthetic pedestrian scene becomes a bag of images and simulated
detections; the tracker node (external detections, SLM appearance with the
shipped weights when present) tracks it over DDS; its tracks are recorded,
drawn into ``tracks.mp4`` and scored (HOTA, IDF1, ...) against the scene's
ground truth. Video mode runs the ONNX detector in the node on a real video
(scored when ground truth is given or found as ``../gt/gt.txt`` beside it).
``-P`` keeps the source tree off sys.path so the installed package (with its
generated messages) is imported.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from smiletrack_ros.bags import BagError, BagWriter, read_images, read_tracks, write_video_bag
from smiletrack_ros.bags.convert import DEFAULT_DETECTIONS_TOPIC, DEFAULT_IMAGE_TOPIC, frame_stamp_ns, video_fps
from smiletrack_ros.cli.cli import parse_overrides
from smiletrack_ros.cli.replay_bag import ReplayOptions, replay
from smiletrack_ros.mot.evaluate import evaluate, format_table
from smiletrack_ros.mot.io import read_ground_truth, read_results
from smiletrack_ros.ros.annotate import draw_boxes
from smiletrack_ros.ros.process import node_command, same_package_env, stop_node_process
from smiletrack_ros.scene import SceneConfig, SceneConfigError, collect_ground_truth, generate_scene

NODE_START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Source:
    bag: Path
    fps: float
    frames: int
    gt_path: Path | None
    name: str


def make_scene_source(out: Path, config: SceneConfig) -> Source:
    """One pass over the scene: bag of images + detections, and the ground truth as gt.txt."""
    from smiletrack_ros.mot.io import write_ground_truth

    scene, truths = generate_scene(config), []
    bag = out / "scene_bag"
    with BagWriter(bag) as writer:
        for frame in scene.frames():
            stamp = frame_stamp_ns(frame.index, config.fps)
            writer.write_image(DEFAULT_IMAGE_TOPIC, stamp, frame.image, "camera")
            writer.write_detections(DEFAULT_DETECTIONS_TOPIC, stamp, frame.detections, "camera")
            truths.append((frame.index, frame.truth))
    gt_path = out / "gt" / "gt.txt"
    write_ground_truth(gt_path, collect_ground_truth(truths))
    return Source(bag, config.fps, config.num_frames, gt_path, f"scene-{config.num_people}p-seed{config.seed}")


def make_video_source(out: Path, video: Path, gt: Path | None, max_frames: int | None) -> Source:
    bag = out / "video_bag"
    fps = video_fps(video) or 25.0
    frames = write_video_bag(video, bag, fps=fps, max_frames=max_frames)
    if gt is None and (video.parent / "gt" / "gt.txt").exists():
        gt = video.parent / "gt" / "gt.txt"
    return Source(bag, fps, frames, gt, video.stem)


def node_params(args: argparse.Namespace, source: Source) -> dict:
    params = {
        "image_topic": DEFAULT_IMAGE_TOPIC, "detections_topic": DEFAULT_DETECTIONS_TOPIC,
        "input_qos.reliability": "reliable", "input_qos.depth": 10,   # a bag replay should lose nothing
        "frame_rate": float(source.fps),
        "embedder.enabled": not args.no_embedder, "embedder.weights": args.embedder_weights or "",
        "embedder.device": args.device, "tracker.preset": args.preset,
    }
    if args.video:
        params |= {"detector.backend": "onnx", "detector.weights": str(Path(args.detector_weights).resolve()),
                   "detector.device": args.device, "detector.score_threshold": args.score_threshold}
    else:
        params |= {"detector.backend": "external"}
    return params | parse_overrides(args.set)


def start_node(out: Path, params: dict, domain: int) -> tuple[subprocess.Popen, Path]:
    params_file = out / "node_params.yaml"
    params_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}, sort_keys=True))
    log_path = out / "node.log"
    env = same_package_env(dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                                PYTHONUNBUFFERED="1"))
    with log_path.open("w") as log:
        proc = subprocess.Popen(node_command("--params-file", str(params_file)), env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log_path


def write_video(source: Source, tracks_bag: Path, out_file: Path) -> int:
    """Source images with the recorded tracks drawn on them (frames without tracks stay plain)."""
    import cv2

    by_stamp = {t.stamp_ns: t.tracks for t in read_tracks(tracks_bag, "/tracks")}
    writer, count = None, 0
    try:
        for stamped in read_images(source.bag):
            if writer is None:
                h, w = stamped.image.shape[:2]
                writer = cv2.VideoWriter(str(out_file), cv2.VideoWriter_fourcc(*"mp4v"), source.fps, (w, h))
                if not writer.isOpened():
                    raise OSError(f"cannot write video {out_file}")
            tracks = by_stamp.get(stamped.stamp_ns)
            image = stamped.image
            if tracks is not None:
                image = draw_boxes(image, ((int(i), b, "") for i, b in zip(tracks.ids, tracks.boxes, strict=True)))
            writer.write(image)
            count += 1
    finally:
        if writer is not None:
            writer.release()
    return count


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="out/demo", help="output folder (replaced)")
    parser.add_argument("--frames", type=int, default=150, help="scene length")
    parser.add_argument("--people", type=int, default=8, help="people in the scene")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--camera-pan", type=float, default=0.0, help="scene camera pan, pixels per second")
    parser.add_argument("--video", help="a real video instead of the scene (needs --detector-weights)")
    parser.add_argument("--detector-weights", help="ONNX detector for --video (e.g. yolox_nano.onnx)")
    parser.add_argument("--score-threshold", type=float, default=0.1, help="detector score threshold (--video)")
    parser.add_argument("--gt", help="MOT ground truth of --video (default: ../gt/gt.txt beside it, if any)")
    parser.add_argument("--max-frames", type=int, help="use at most this many video frames")
    parser.add_argument("--embedder-weights", help="SLM weights (default: the shipped ones when present)")
    parser.add_argument("--no-embedder", action="store_true", help="track with motion only")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--preset", default="paper", choices=("paper", "official", "bytetrack"))
    parser.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE",
                        help="any node parameter, e.g. --set tracker.appearance_gate=0.8 (repeatable)")
    parser.add_argument("--rate", type=float,
                        help="replay at this speed factor (default: lock-step, every frame tracked)")
    return parser


def run(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    if args.video:
        source = make_video_source(out, Path(args.video), Path(args.gt) if args.gt else None, args.max_frames)
    else:
        source = make_scene_source(out, SceneConfig(num_people=args.people, num_frames=args.frames,
                                                    seed=args.seed, camera_pan=args.camera_pan))
    print(f"[demo] {source.name}: {source.frames} frames at {source.fps:g} fps -> {source.bag} "
          f"({time.perf_counter() - t0:.1f} s)")

    domain = 100 + os.getpid() % 100
    proc, log_path = start_node(out, node_params(args, source), domain)
    tracks_bag, mot_file = out / "tracks_bag", out / "tracks.txt"
    try:
        options = ReplayOptions(rate=args.rate or 1.0, lockstep=args.rate is None,
                                wait_node_s=NODE_START_TIMEOUT_S, domain_id=domain)
        t0 = time.perf_counter()
        stats = replay(source.bag, options, record=tracks_bag, mot=mot_file)
    except (BagError, ValueError) as err:
        print(f"[demo] replay failed: {err}\n--- node log ---\n{log_path.read_text()}", file=sys.stderr)
        return 1
    finally:
        stop_node_process(proc)
    node_log = log_path.read_text()
    print(next((ln for ln in node_log.splitlines() if "tracking " in ln), node_log[-2000:]))
    print(f"[demo] replay: {stats.summary()} ({time.perf_counter() - t0:.1f} s)")
    video = out / "tracks.mp4"
    print(f"[demo] wrote {write_video(source, tracks_bag, video)} frames to {video}")
    if source.gt_path is None:
        print("[demo] no ground truth: not scored")
        return 0
    gt = read_ground_truth(source.gt_path)
    results = evaluate({source.name: (gt, read_results(mot_file))}, {source.name: source.frames})
    print(format_table(results, ("HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW")))
    metrics = results[source.name]
    print(f"[demo] HOTA {metrics['HOTA']:.2f}  IDF1 {metrics['IDF1']:.2f}  (tracks: {mot_file})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.video and not args.detector_weights:
        parser.error("--video needs --detector-weights (an ONNX detector)")
    if args.rate is not None and not args.rate > 0:
        parser.error(f"--rate must be > 0, got {args.rate}")
    try:
        return run(args)
    except (SceneConfigError, BagError, OSError, ValueError) as err:
        print(f"[demo] {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
