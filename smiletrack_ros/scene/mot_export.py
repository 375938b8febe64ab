"""Write a scene as a MOTChallenge sequence folder (img1/, gt/gt.txt, det/det.txt, seqinfo.ini)."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from smiletrack_ros.mot.io import PEDESTRIAN_CLASS, GroundTruth, write_ground_truth, write_results
from smiletrack_ros.scene.scene import FrameTruth, Scene


def _seqinfo_text(name: str, scene: Scene) -> str:
    cfg = scene.config
    rate = int(cfg.fps) if float(cfg.fps).is_integer() else cfg.fps
    return (f"[Sequence]\nname={name}\nimDir=img1\nframeRate={rate}\nseqLength={cfg.num_frames}\n"
            f"imWidth={cfg.width}\nimHeight={cfg.height}\nimExt=.jpg\n")


def collect_ground_truth(truths: Iterable[tuple[int, FrameTruth]]) -> GroundTruth:
    """``mot.io.GroundTruth`` (MOT17 layout) of (1-based frame, FrameTruth) pairs, for evaluation
    without files. A person hidden entirely (visibility 0) gets conf 0, which MOTChallenge
    scoring ignores."""
    parts = [(np.full(len(t), k, np.int64), t.ids, t.boxes, t.visibility) for k, t in truths]
    if not parts:
        parts = [(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4), np.float32), np.zeros(0, np.float32))]
    frames, ids, boxes, visibility = (np.concatenate(col) for col in zip(*parts, strict=True))
    return GroundTruth(frames=frames, ids=ids.astype(np.int64), boxes=boxes.reshape(-1, 4).astype(np.float32),
                       conf=(visibility > 0).astype(np.float32),
                       classes=np.full(len(frames), PEDESTRIAN_CLASS, np.int64),
                       visibility=visibility.astype(np.float32), mot17=True)


def write_mot_sequence(scene: Scene, out_dir: str | Path, name: str | None = None,
                       jpeg_quality: int = 95) -> Path:
    """Render ``scene`` into ``out_dir`` (created; existing files of the same names are replaced).

    gt.txt uses the 9-column MOT17 layout (conf, class 1 = pedestrian,
    visibility; see ``collect_ground_truth``) so the visibility survives
    ``mot.io.read_ground_truth``. det.txt is ``frame,-1,x,y,w,h,score,-1,-1,-1``.
    """
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in [1, 100], got {jpeg_quality}")
    out = Path(out_dir)
    images = out / "img1"
    images.mkdir(parents=True, exist_ok=True)
    truths: list[tuple[int, FrameTruth]] = []
    det_rows: list[np.ndarray] = []
    for frame in scene.frames():
        path = images / f"{frame.index:06d}.jpg"
        if not cv2.imwrite(str(path), frame.image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]):
            raise OSError(f"cannot write {path}")
        truths.append((frame.index, frame.truth))
        d = frame.detections
        det_rows.append(np.column_stack([np.full(len(d), frame.index), np.full(len(d), -1),
                                         d.boxes, d.scores]).reshape(-1, 7))
    write_ground_truth(out / "gt" / "gt.txt", collect_ground_truth(truths))
    write_results(out / "det" / "det.txt", np.concatenate(det_rows))
    (out / "seqinfo.ini").write_text(_seqinfo_text(name or out.name, scene))
    return out
