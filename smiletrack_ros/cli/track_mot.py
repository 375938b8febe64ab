"""Run the tracker over MOTChallenge sequences and write MOT result files.

Detections come from the sequence's det file (default ``SEQ/det/det.txt``) or
from a detector model; appearance embeddings from an SLM embedder when
``--embedder-weights`` is given. Frames come from ``img1/`` or the sequence
video.

    python -m smiletrack_ros.cli.track_mot SEQ_DIR [SEQ_DIR ...] --out OUT_DIR \
        [--preset paper] [--set name=value ...] [--score-rescale minmax] [--eval]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from smiletrack_ros.cli.cli import parse_overrides
from smiletrack_ros.detections import Detections
from smiletrack_ros.mot.embedding_cache import CachedEmbedder, weights_id
from smiletrack_ros.mot.interpolate import InterpolationConfig, interpolate_tracks
from smiletrack_ros.mot.io import (
    SCORE_RESCALES,
    MotFormatError,
    iter_frames,
    load_sequence_info,
    read_detections,
    track_rows,
    write_detections,
    write_results,
)


@dataclass
class SequenceRun:
    name: str
    rows: np.ndarray               # (N, 7) frame, id, x1, y1, x2, y2, score
    frames: int
    track_ms: list[float]          # tracker update() time per frame
    detections: dict[int, Detections]


def filter_boxes(rows: np.ndarray, min_area: float, max_aspect: float) -> np.ndarray:
    """Drop result boxes smaller than ``min_area`` px² or wider than
    ``max_aspect`` (w/h) — the official code's output filter; 0 disables each."""
    w, h = rows[:, 4] - rows[:, 2], rows[:, 5] - rows[:, 3]
    keep = w * h >= min_area
    if max_aspect > 0:
        keep &= w <= max_aspect * h
    return rows[keep]


@dataclass
class Models:
    detector: Any = None
    embedder: Any = None
    embedder_weights: Path | None = None


def build_pipeline(args: argparse.Namespace, detector: Any, embedder: Any, frame_rate: float):
    """A fresh Pipeline per sequence (track ids restart at 1 in each file)."""
    from smiletrack_ros.pipeline import Pipeline
    from smiletrack_ros.tracking import SmileTracker, TrackerConfig

    config = TrackerConfig.from_preset(args.preset, **parse_overrides(args.set))
    return Pipeline(detector, embedder, SmileTracker(config, frame_rate=frame_rate))


def load_detector(args: argparse.Namespace):
    if args.detector is None:
        return None
    try:
        from smiletrack_ros.detection import build_detector
        from smiletrack_ros.detection.config import DetectorConfig
    except ImportError as err:
        raise SystemExit(f"--detector needs smiletrack_ros.detection.build_detector, which is not available: {err}") \
            from err
    config = DetectorConfig(backend=args.detector, weights=args.detector_weights, device=args.device,
                            score_threshold=args.detector_score)
    return build_detector(config)


def load_embedder(args: argparse.Namespace) -> tuple[Any, Path | None]:
    """The embedder and the weights file it loaded."""
    if args.embedder_weights is None:
        return None, None
    try:
        from smiletrack_ros.embedding import DEFAULT_WEIGHTS, Embedder
    except ImportError as err:
        raise SystemExit(f"--embedder-weights needs smiletrack_ros.embedding.Embedder, which is not available: {err}") \
            from err
    path = Path(DEFAULT_WEIGHTS if args.embedder_weights == "default" else args.embedder_weights)
    return Embedder(weights=path, device=args.device), path


def track_sequence(seq_dir: Path, args: argparse.Namespace, models: Models) -> SequenceRun:
    info = load_sequence_info(seq_dir)
    embedder = models.embedder
    if embedder is not None and args.embeddings_cache:
        embedder = CachedEmbedder(embedder, args.embeddings_cache / f"{info.name}.npz",
                                  weights_id(models.embedder_weights))
    pipeline = build_pipeline(args, models.detector, embedder, info.frame_rate)
    detections = None
    if models.detector is None:
        det_path = Path(args.det_file) if args.det_file else seq_dir / "det" / "det.txt"
        detections = read_detections(det_path, min_score=args.det_min_score, rescale=args.score_rescale)
    rows: list[tuple[float, ...]] = []
    track_ms: list[float] = []
    stop = args.stop if args.stop is not None else info.length + 1
    frames = iter_frames(seq_dir, args.start, stop)
    if not args.quiet:
        from tqdm import tqdm

        frames = tqdm(frames, total=max(0, min(stop, info.length + 1) - args.start), desc=info.name, unit="frame",
                      file=sys.stderr)
    empty = Detections.empty()
    used: dict[int, Detections] = {}
    for frame, image in frames:
        given = None if detections is None else detections.get(frame, empty)
        if isinstance(embedder, CachedEmbedder):
            embedder.frame = frame
        result = pipeline.process(image, (frame - 1) / info.frame_rate, detections=given)
        used[frame] = result.detections
        track_ms.append(result.timings["track"])
        rows.extend(track_rows(frame, result.tracks))
    if isinstance(embedder, CachedEmbedder):
        embedder.save()
    table = np.asarray(rows, np.float64).reshape(-1, 7)
    if args.interpolate:
        table = interpolate_tracks(table, InterpolationConfig(max_gap=args.max_gap, min_length=args.min_length))
    table = filter_boxes(table, args.min_box_area, args.max_aspect)
    return SequenceRun(info.name, table, len(track_ms), track_ms, used)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m smiletrack_ros.cli.track_mot", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("sequences", nargs="+", type=Path, help="MOTChallenge sequence folders (seqinfo.ini, img1/ or .mp4)")
    p.add_argument("--out", type=Path, required=True, help="folder for the <sequence>.txt result files")
    p.add_argument("--preset", default="paper", help="tracker preset: paper, official or bytetrack")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a TrackerConfig field (repeatable)")
    det = p.add_argument_group("detections")
    det.add_argument("--det-file", help="detections file (default: SEQ/det/det.txt); only with one sequence")
    det.add_argument("--det-min-score", type=float, default=-math.inf, help="drop det-file rows scoring lower")
    det.add_argument("--score-rescale", choices=SCORE_RESCALES, default="none",
                     help="map det-file scores into [0, 1]: per-file min-max, or logistic for log-odds scores")
    det.add_argument("--detector", choices=("onnx", "prb"), help="run a detector instead of reading a det file")
    det.add_argument("--detector-weights", help="detector weights (.onnx / .safetensors)")
    det.add_argument("--detector-score", type=float, default=0.05, help="detector score threshold")
    p.add_argument("--embedder-weights", help="SLM embedder weights ('default': the shipped ones); "
                                               "enables appearance embeddings")
    p.add_argument("--embeddings-cache", type=Path, metavar="DIR",
                   help="reuse embeddings across runs over the same detections (DIR/<sequence>.npz)")
    p.add_argument("--device", default="auto", help="device for the models: auto, cpu, cuda[:N]")
    p.add_argument("--start", type=int, default=1, help="first frame (1-based)")
    p.add_argument("--stop", type=int, help="stop before this frame")
    post = p.add_argument_group("offline post-processing")
    post.add_argument("--interpolate", action="store_true", help="fill short track gaps linearly")
    post.add_argument("--max-gap", type=int, default=20, help="longest gap (frames) to fill")
    post.add_argument("--min-length", type=int, default=5, help="interpolate only tracks with this many boxes")
    post.add_argument("--min-box-area", type=float, default=0.0, help="drop result boxes under this area (px²)")
    post.add_argument("--max-aspect", type=float, default=0.0, help="drop result boxes with w/h above this (0: off)")
    p.add_argument("--save-detections", type=Path, metavar="DIR",
                   help="also write the detections used as DIR/<sequence>.txt (MOT det format)")
    p.add_argument("--eval", action="store_true", help="score each sequence having gt/gt.txt with TrackEval")
    p.add_argument("--metrics-json", type=Path, help="write the --eval metrics here as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.det_file and len(args.sequences) > 1:
        parser.error("--det-file applies to a single sequence")
    if args.detector and not args.detector_weights:
        parser.error("--detector needs --detector-weights")
    if args.detector and args.det_file:
        parser.error("--detector and --det-file are alternatives: give one")
    try:
        models = Models(load_detector(args), *load_embedder(args))
        runs = []
        for seq_dir in args.sequences:
            run = track_sequence(seq_dir, args, models)
            write_results(args.out / f"{run.name}.txt", run.rows)
            if args.save_detections:
                write_detections(args.save_detections / f"{run.name}.txt", run.detections)
            ms = np.asarray(run.track_ms) if run.track_ms else np.zeros(1)
            print(f"{run.name}: {run.frames} frames, {len(run.rows)} boxes, {len(np.unique(run.rows[:, 1]))} tracks, "
                  f"tracker update mean {ms.mean():.3f} ms p99 {np.percentile(ms, 99):.3f} ms -> "
                  f"{args.out / (run.name + '.txt')}")
            runs.append((seq_dir, run))
        if args.eval:
            report_metrics(runs, args)
    except (ValueError, MotFormatError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def report_metrics(runs: list[tuple[Path, SequenceRun]], args: argparse.Namespace) -> None:
    from smiletrack_ros.mot.evaluate import evaluate, format_table
    from smiletrack_ros.mot.io import read_ground_truth

    sequences, lengths = {}, {}
    for seq_dir, run in runs:
        gt_path = seq_dir / "gt" / "gt.txt"
        if gt_path.is_file():
            sequences[run.name] = (read_ground_truth(gt_path), run.rows)
            lengths[run.name] = load_sequence_info(seq_dir).length
    if not sequences:
        print("no gt/gt.txt found: nothing to evaluate", file=sys.stderr)
        return
    metrics = evaluate(sequences, lengths)
    print(format_table(metrics))
    if args.metrics_json:
        args.metrics_json.parent.mkdir(parents=True, exist_ok=True)
        args.metrics_json.write_text(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    sys.exit(main())
