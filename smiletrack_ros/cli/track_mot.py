"""Run the tracker over MOTChallenge sequences and write MOT result files.

Detections come from the sequence's det file (default ``SEQ/det/det.txt``) or
from a detector model. Appearance is on as in the node: the shipped SLM
weights, or any embedder backend (``--embedder BACKEND:WEIGHTS``, as the node's
``embedder.backend`` / ``embedder.weights``), whenever the preset matches on
appearance; ``--no-embedder`` runs motion only. Frames come from ``img1/`` or the sequence
video. The preset, the overrides and every det file are checked before any
model loads.

    python -m smiletrack_ros.cli.track_mot SEQ_DIR [SEQ_DIR ...] --out OUT_DIR \
        [--preset paper] [--set name=value ...] [--det-file 'dets/{sequence}.txt'] [--eval] \
        [--embedder onnx:osnet_x0_25_msmt17.onnx] [--embeddings-cache DIR]
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
from smiletrack_ros.mot.embedding_cache import CachedEmbedder, cache_file, file_digest, weights_id
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

# The tracker's cost matrices grow with the square of one frame's boxes (5000 boxes: 1.5 GB).
MAX_FRAME_DETECTIONS = 5000


@dataclass
class SequencePlan:
    """One sequence, checked before any model loads."""

    seq_dir: Path
    name: str
    frame_rate: float
    length: int
    det_file: Path | None                      # None: the detector model finds the boxes
    detections: dict[int, Detections] | None


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
    embedder_id: str = ""     # names the embedder and its model files (the embedding cache's key)
    embedder_name: str = ""   # for the log line


def tracker_config(args: argparse.Namespace):
    """The preset with its ``--set`` overrides, validated (before any model loads)."""
    from smiletrack_ros.tracking import TrackerConfig

    return TrackerConfig.from_preset(args.preset, **parse_overrides(args.set))


def det_files(args: argparse.Namespace) -> list[Path | None]:
    """Each sequence's det file: one ``--det-file`` per sequence, one with ``{sequence}`` (the
    folder name) for all, or none (``SEQ/det/det.txt``; None with a detector model)."""
    given = args.det_file or []
    if args.detector:
        return [None] * len(args.sequences)
    if not given:
        return [seq / "det" / "det.txt" for seq in args.sequences]
    if len(given) == 1 and "{sequence}" in given[0]:
        return [Path(given[0].replace("{sequence}", seq.name)) for seq in args.sequences]
    return [Path(g) for g in given]


def plan_sequence(seq_dir: Path, det_file: Path | None, args: argparse.Namespace) -> SequencePlan:
    info = load_sequence_info(seq_dir)
    detections = None
    if det_file is not None:
        detections = read_detections(det_file, min_score=args.det_min_score, rescale=args.score_rescale)
        crowded = [(k, len(d)) for k, d in detections.items() if len(d) > args.max_detections]
        if crowded:
            raise ValueError(f"{det_file}: frame {crowded[0][0]} has {crowded[0][1]} detections, over the limit of "
                             f"{args.max_detections} (--max-detections; the tracker's memory grows with its square)")
    return SequencePlan(seq_dir, info.name, args.frame_rate or info.frame_rate, info.length, det_file, detections)


def set_threads(threads: int) -> None:
    """Torch's CPU threads for the models (its default of one per core ran 2.5x slower than 1 here)."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


def build_pipeline(config, detector: Any, embedder: Any, frame_rate: float):
    """A fresh Pipeline per sequence (track ids restart at 1 in each file)."""
    from smiletrack_ros.pipeline import Pipeline
    from smiletrack_ros.tracking import SmileTracker

    return Pipeline(detector, embedder, SmileTracker(config, frame_rate=frame_rate))


def load_detector(args: argparse.Namespace):
    if args.detector is None:
        return None
    from smiletrack_ros.detection import build_detector
    from smiletrack_ros.detection.config import DetectorConfig

    config = DetectorConfig.from_mapping({"backend": args.detector, "weights": args.detector_weights,
                                          "device": args.device, "score_threshold": args.detector_score})
    return build_detector(config)


def embedder_spec(args: argparse.Namespace) -> str:
    """``--embedder`` (BACKEND[:WEIGHTS]), or ``slm:W`` for ``--embedder-weights W``."""
    return args.embedder if args.embedder_weights is None else f"slm:{args.embedder_weights}"


def load_embedder(args: argparse.Namespace, config) -> tuple[Any, str, str]:
    """The embedder, an id of it and its model files, and its name; none when appearance is off."""
    if args.no_embedder or not config.use_appearance:
        return None, "", ""
    from smiletrack_ros.embedding import DEFAULT_WEIGHTS, EmbedderConfig, build_embedder

    embedder_config = EmbedderConfig.from_spec(embedder_spec(args), device=args.device, threads=args.threads)
    weights = embedder_config.weights
    if weights is None:
        return build_embedder(embedder_config), f"{embedder_config.backend}:untrained", "untrained"
    embedder = build_embedder(embedder_config)
    backend, path = embedder_config.backend, Path(DEFAULT_WEIGHTS if weights == "default" else weights)
    files = [path, *(p for p in (path.with_suffix(".bin"), path.with_suffix(".json")) if p != path and p.is_file())]
    model_id = f"{backend}:" + ",".join(weights_id(f) for f in files)
    return embedder, model_id, path.name if backend == "slm" else f"{backend}:{path.name}"


def embedding_cache(plan: SequencePlan, args: argparse.Namespace, embedder_id: str) -> Path:
    """DIR/<sequence>-<digest>.npz, the digest naming the detections the embeddings are for and the
    embedder (backend and model files): each sequence, detection source and embedder has its own file."""
    if plan.det_file is not None:
        source = f"file:{file_digest(plan.det_file)}:{args.det_min_score}:{args.score_rescale}"
    else:
        source = f"detector:{args.detector}:{weights_id(args.detector_weights)}:{args.detector_score}"
    return cache_file(args.embeddings_cache, plan.name, f"{source}|embedder:{embedder_id}")


def track_sequence(plan: SequencePlan, args: argparse.Namespace, models: Models, config) -> SequenceRun:
    embedder = models.embedder
    if embedder is not None and args.embeddings_cache:
        embedder = CachedEmbedder(embedder, embedding_cache(plan, args, models.embedder_id), models.embedder_id)
    pipeline = build_pipeline(config, models.detector, embedder, plan.frame_rate)
    rows: list[tuple[float, ...]] = []
    track_ms: list[float] = []
    stop = args.stop if args.stop is not None else plan.length + 1
    frames = iter_frames(plan.seq_dir, args.start, stop)
    if not args.quiet:
        from tqdm import tqdm

        frames = tqdm(frames, total=max(0, min(stop, plan.length + 1) - args.start), desc=plan.name, unit="frame",
                      file=sys.stderr)
    empty = Detections.empty()
    used: dict[int, Detections] = {}
    for frame, image in frames:
        given = None if plan.detections is None else plan.detections.get(frame, empty)
        if isinstance(embedder, CachedEmbedder):
            embedder.frame = frame
        result = pipeline.process(image, (frame - 1) / plan.frame_rate, detections=given)
        used[frame] = result.detections
        track_ms.append(result.timings["track"])
        rows.extend(track_rows(frame, result.tracks))
    if isinstance(embedder, CachedEmbedder):
        embedder.save()
    table = np.asarray(rows, np.float64).reshape(-1, 7)
    if args.interpolate:
        table = interpolate_tracks(table, InterpolationConfig(max_gap=args.max_gap, min_length=args.min_length))
    table = filter_boxes(table, args.min_box_area, args.max_aspect)
    return SequenceRun(plan.name, table, len(track_ms), track_ms, used)


def _positive(kind: type):
    def parse(text: str):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m smiletrack_ros.cli.track_mot", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("sequences", nargs="+", type=Path, help="MOTChallenge sequence folders (seqinfo.ini, img1/ or .mp4)")
    p.add_argument("--out", type=Path, required=True, help="folder for the <sequence>.txt result files")
    p.add_argument("--preset", default="paper", help="tracker preset: paper, official or bytetrack")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a TrackerConfig field (repeatable)")
    det = p.add_argument_group("detections")
    det.add_argument("--det-file", action="append", metavar="PATH",
                     help="detections file (default: SEQ/det/det.txt): once per sequence, in order, or once with "
                          "'{sequence}' standing for each sequence folder's name")
    det.add_argument("--det-min-score", type=float, default=-math.inf, help="drop det-file rows scoring lower")
    det.add_argument("--score-rescale", choices=SCORE_RESCALES, default="none",
                     help="map det-file scores into [0, 1]: per-file min-max, or logistic for log-odds scores")
    det.add_argument("--detector", choices=("onnx", "prb"), help="run a detector instead of reading a det file")
    det.add_argument("--detector-weights", help="detector weights (.onnx / .safetensors)")
    det.add_argument("--detector-score", type=float, default=0.05, help="detector score threshold")
    det.add_argument("--max-detections", type=_positive(int), default=MAX_FRAME_DETECTIONS,
                     help="refuse det files with more boxes than this in one frame")
    app = p.add_argument_group("appearance")
    app.add_argument("--embedder", default="slm", metavar="BACKEND[:WEIGHTS]",
                     help="the appearance embedder, used when the preset matches on appearance: slm (the shipped "
                          "SLM), slm:PATH.safetensors, osnet:PATH.pth, onnx:PATH.onnx, openvino:PATH.xml")
    app.add_argument("--embedder-weights", metavar="PATH", help="SLM weights: the same as --embedder slm:PATH")
    app.add_argument("--no-embedder", action="store_true", help="motion only: no appearance embeddings")
    app.add_argument("--embeddings-cache", type=Path, metavar="DIR",
                     help="reuse embeddings across runs over the same detections "
                          "(DIR/<sequence>-<digest of the detections>.npz)")
    p.add_argument("--device", default="auto", help="device for the models: auto, cpu, cuda[:N]")
    p.add_argument("--threads", type=_positive(int), default=1,
                   help="torch CPU threads (its default of one per core ran 2.5x slower than 1 on 2 cores)")
    p.add_argument("--frame-rate", type=_positive(float),
                   help="frames per second the tracker assumes (default: seqinfo.ini's frameRate)")
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
    if args.detector and not args.detector_weights:
        parser.error("--detector needs --detector-weights")
    if args.detector and args.det_file:
        parser.error("--detector and --det-file are alternatives: give one")
    if args.embedder_weights is not None and args.embedder != "slm":
        parser.error("--embedder and --embedder-weights are alternatives: give one")
    given = args.det_file or []
    if len(given) > 1 or (given and "{sequence}" not in given[0] and len(args.sequences) > 1):
        if len(given) != len(args.sequences):
            parser.error(f"--det-file: {len(given)} files for {len(args.sequences)} sequences; give one per "
                         "sequence or one containing '{sequence}'")
    try:
        config = tracker_config(args)
        plans = [plan_sequence(seq, det, args) for seq, det in zip(args.sequences, det_files(args), strict=True)]
        set_threads(args.threads)
        models = Models(load_detector(args), *load_embedder(args, config))
        appearance = (f"appearance from {models.embedder_name}" if models.embedder is not None
                      else "motion only" + (" (--no-embedder)" if args.no_embedder else f" (preset {args.preset})"))
        print(f"preset {args.preset}, {appearance}, {args.threads} torch thread(s)")
        runs = []
        for plan in plans:
            run = track_sequence(plan, args, models, config)
            write_results(args.out / f"{run.name}.txt", run.rows)
            if args.save_detections:
                write_detections(args.save_detections / f"{run.name}.txt", run.detections)
            ms = np.asarray(run.track_ms) if run.track_ms else np.zeros(1)
            print(f"{run.name}: {run.frames} frames at {plan.frame_rate:g} fps "
                  f"({'--frame-rate' if args.frame_rate else 'seqinfo.ini'}), {len(run.rows)} boxes, "
                  f"{len(np.unique(run.rows[:, 1]))} tracks, tracker update mean {ms.mean():.3f} ms "
                  f"p99 {np.percentile(ms, 99):.3f} ms -> {args.out / (run.name + '.txt')}")
            runs.append((plan.seq_dir, run))
        if args.eval:
            report_metrics(runs, args)
    except (ValueError, MotFormatError, OSError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def report_metrics(runs: list[tuple[Path, SequenceRun]], args: argparse.Namespace) -> None:
    """TrackEval on the written result files against the sequences' own gt files."""
    from smiletrack_ros.mot.evaluate import evaluate_files, format_table

    pairs = {run.name: (seq_dir / "gt" / "gt.txt", args.out / f"{run.name}.txt") for seq_dir, run in runs
             if (seq_dir / "gt" / "gt.txt").is_file()}
    if not pairs:
        print("no gt/gt.txt found: nothing to evaluate", file=sys.stderr)
        return
    metrics = evaluate_files(pairs)
    print(format_table(metrics))
    if args.metrics_json:
        args.metrics_json.parent.mkdir(parents=True, exist_ok=True)
        args.metrics_json.write_text(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    sys.exit(main())
