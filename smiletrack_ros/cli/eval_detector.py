"""Evaluate a detector on MOT sequences: person recall / precision / AP at IoU 0.5, ms/frame.

    python -m smiletrack_ros.cli.eval_detector SEQ_DIR [SEQ_DIR ...] \\
        --backend onnx --weights yolox_nano.onnx [--thresholds 0.1 0.3 0.5] [--json out.json] \\
        [--tiles 2x1 --tile-overlap 0.2] [--flip] [--merge wbf --merge-iou 0.65] [--cpu-threads 1]

Frames come from the sequence's img1/ or its .mp4; ground truth from gt/gt.txt
(MOTChallenge-scored rows only). Timing covers the detector call alone (decode of
the frame excluded) and skips the first frame (warm-up).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from smiletrack_ros.detection import DetectorConfig, DetectorConfigError, build_detector
from smiletrack_ros.detection.evaluation import DetectionTally
from smiletrack_ros.detection.external import ExternalDetector
from smiletrack_ros.mot.io import iter_frames, read_ground_truth

DEFAULT_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


def evaluate_sequence(detector, seq_dir: Path, iou: float, every: int, max_frames: int | None):
    gt = read_ground_truth(seq_dir / "gt" / "gt.txt").pedestrians()
    tally = DetectionTally(iou)
    times = []
    for k, image in iter_frames(seq_dir):
        if (k - 1) % every:
            continue
        if max_frames is not None and tally.frames >= max_frames:
            break
        if isinstance(detector, ExternalDetector):
            detector.select(k)
        start = time.perf_counter()
        dets = detector(image)
        times.append(time.perf_counter() - start)
        tally.add(dets.boxes, dets.scores, gt.boxes[gt.frames == k])
    return tally, times


def report(name: str, tally: DetectionTally, times: list[float], thresholds, target_precision: float) -> dict:
    steady = times[1:] if len(times) > 1 else times
    rows = {f"{t:g}": dict(zip(("recall", "precision", "detections"), tally.at(t), strict=True)) for t in thresholds}
    result = {"sequence": name, "frames": tally.frames, "gt_boxes": tally.n_gt,
              "ap50": tally.average_precision(), "ms_per_frame": 1000 * float(np.mean(steady)) if steady else None,
              "thresholds": rows}
    recall, precision, threshold = tally.best_recall(target_precision)
    result["best_recall_at_precision"] = {"min_precision": target_precision, "recall": recall,
                                          "precision": precision, "score_threshold": threshold}
    ms = "n/a" if result["ms_per_frame"] is None else f"{result['ms_per_frame']:.1f}"
    print(f"{name}: {tally.frames} frames, {tally.n_gt} gt boxes, AP@{tally.iou_threshold:g} "
          f"{result['ap50']:.3f}, {ms} ms/frame")
    for t, r in rows.items():
        print(f"  score >= {t:>4}: recall {r['recall']:.3f}  precision {r['precision']:.3f}  "
              f"({r['detections']} boxes)")
    print(f"  highest recall with precision >= {target_precision:g}: recall {recall:.3f}  precision "
          f"{precision:.3f}  at score >= {threshold:.3f}")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sequences", nargs="+", type=Path, help="MOT sequence folders (with gt/gt.txt)")
    p.add_argument("--backend", default="onnx", choices=("prb", "onnx", "openvino", "external"))
    p.add_argument("--weights", help=".onnx model, OpenVINO .xml, PRB .safetensors, or (external) a det.txt")
    p.add_argument("--architecture", default="prb-2py-e6e-1280")
    p.add_argument("--input-size", type=int)
    p.add_argument("--layout", default="auto")
    p.add_argument("--score-threshold", type=float, default=0.05, help="detector's own lowest score kept")
    p.add_argument("--nms-iou", type=float, help="NMS IoU (default: DetectorConfig's, 0.7 as SMILEtrack)")
    p.add_argument("--device", default="auto")
    p.add_argument("--tiles", help="test-time tiles 'CxR' (columns x rows) besides the full frame")
    p.add_argument("--tile-overlap", type=float, help="share of a tile's side overlapping its neighbour")
    p.add_argument("--flip", action="store_true", help="also run the mirror image of every view")
    p.add_argument("--merge", choices=("nms", "wbf"), help="how the views' boxes are combined")
    p.add_argument("--merge-iou", type=float, help="IoU at which boxes of different views are one object")
    p.add_argument("--cpu-threads", type=int, help="ONNX Runtime intra-op threads (default: every core)")
    p.add_argument("--iou", type=float, default=0.5, help="IoU for a true positive")
    p.add_argument("--thresholds", type=float, nargs="+", default=DEFAULT_THRESHOLDS)
    p.add_argument("--target-precision", type=float, default=0.8,
                   help="also report the highest recall reachable at this precision")
    p.add_argument("--every", type=int, default=1, help="evaluate every N-th frame")
    p.add_argument("--max-frames", type=int, help="frames per sequence at most")
    p.add_argument("--json", type=Path, help="write the figures here")
    a = p.parse_args(argv)
    if a.every < 1:
        p.error("--every must be >= 1")
    try:
        settings = dict(backend=a.backend, weights=a.weights, architecture=a.architecture, input_size=a.input_size,
                        layout=a.layout, score_threshold=a.score_threshold, nms_iou=a.nms_iou, device=a.device,
                        tiles=a.tiles, tile_overlap=a.tile_overlap, flip=a.flip, merge=a.merge,
                        merge_iou=a.merge_iou, cpu_threads=a.cpu_threads)
        config = DetectorConfig.from_mapping({k: v for k, v in settings.items() if v is not None})
        results, total, all_times = [], None, []
        for seq in a.sequences:
            if a.backend == "external":
                config = config.replace(weights=str(seq / "det" / "det.txt")) if a.weights is None else config
            detector = build_detector(config)
            tally, times = evaluate_sequence(detector, seq, a.iou, a.every, a.max_frames)
            results.append(report(seq.name, tally, times, a.thresholds, a.target_precision))
            total = tally if total is None else total.merged(tally)
            all_times += times[1:] if len(times) > 1 else times
    except (DetectorConfigError, ValueError, OSError) as err:
        print(f"eval_detector: {err}", file=sys.stderr)
        return 1
    if len(a.sequences) > 1:
        results.append(report("combined", total, [0.0] + all_times, a.thresholds, a.target_precision))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"config": vars(a) | {"sequences": [str(s) for s in a.sequences],
                                                             "json": str(a.json)}, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
