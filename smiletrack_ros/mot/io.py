"""MOTChallenge sequence, detection, ground-truth and result files.

Boxes leave this module as x1, y1, x2, y2 pixels (the package convention); the
files store top-left x, y, w, h. Frames are 1-based as in the files.
"""
from __future__ import annotations

import configparser
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from smiletrack_ros.boxes import xywh_to_xyxy
from smiletrack_ros.detections import Detections

ScoreRescale = Literal["none", "minmax", "logistic"]
SCORE_RESCALES: tuple[str, ...] = ("none", "minmax", "logistic")


class MotFormatError(ValueError):
    """A MOTChallenge file is missing or does not have the expected layout."""


@dataclass(frozen=True)
class SequenceInfo:
    name: str
    frame_rate: float
    length: int
    width: int
    height: int
    im_dir: str = "img1"
    im_ext: str = ".jpg"


def load_sequence_info(seq_dir: str | Path) -> SequenceInfo:
    """Read ``seq_dir/seqinfo.ini``."""
    path = Path(seq_dir) / "seqinfo.ini"
    if not path.is_file():
        raise MotFormatError(f"no seqinfo.ini in {seq_dir}")
    parser = configparser.ConfigParser()
    parser.read(path)
    if "Sequence" not in parser:
        raise MotFormatError(f"{path}: no [Sequence] section")
    sec = parser["Sequence"]
    try:
        return SequenceInfo(
            name=sec.get("name", Path(seq_dir).name),
            frame_rate=float(sec["frameRate"]),
            length=int(sec["seqLength"]),
            width=int(sec["imWidth"]),
            height=int(sec["imHeight"]),
            im_dir=sec.get("imDir", "img1"),
            im_ext=sec.get("imExt", ".jpg"),
        )
    except KeyError as err:
        raise MotFormatError(f"{path}: missing key {err.args[0]}") from None
    except ValueError as err:
        raise MotFormatError(f"{path}: {err}") from None


def _load_table(path: str | Path, allowed_columns: tuple[int, ...]) -> np.ndarray:
    """All rows of a comma-separated MOT file as float64 (N, C); (0, C) when empty."""
    path = Path(path)
    if not path.is_file():
        raise MotFormatError(f"file not found: {path}")
    text = path.read_text().strip()
    if not text:
        return np.zeros((0, allowed_columns[0]), np.float64)
    try:
        table = np.loadtxt(text.splitlines(), delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError as err:
        raise MotFormatError(f"{path}: not a numeric comma-separated table ({err})") from None
    if table.shape[1] not in allowed_columns:
        raise MotFormatError(f"{path}: {table.shape[1]} columns, expected one of {allowed_columns}")
    if not np.all(np.isfinite(table[:, :6])):
        raise MotFormatError(f"{path}: non-finite frame/id/box values")
    return table


def rescale_scores(scores: np.ndarray, method: ScoreRescale) -> np.ndarray:
    """Map raw detector confidences into [0, 1].

    ``minmax`` maps the file's lowest score to 0 and highest to 1 (keeps the
    ranking, loses the absolute level); ``logistic`` treats scores as log-odds
    (right for detectors such as ACF whose raw margins are unbounded).
    """
    scores = np.asarray(scores, np.float64)
    if method == "none":
        return scores
    if method == "minmax":
        if scores.size == 0:
            return scores
        lo, hi = float(scores.min()), float(scores.max())
        return np.ones_like(scores) if hi == lo else (scores - lo) / (hi - lo)
    if method == "logistic":
        return 1.0 / (1.0 + np.exp(-scores))
    raise ValueError(f"score rescale must be one of {SCORE_RESCALES}, got {method!r}")


def read_detections(path: str | Path, min_score: float = -math.inf,
                    rescale: ScoreRescale = "none") -> dict[int, Detections]:
    """Read a MOT det.txt (7 or 10 columns) into frame -> Detections (class 0).

    Scores must end in [0, 1]: a file whose scores fall outside it raises
    unless ``rescale`` says how to map them. ``min_score`` filters the returned
    (rescaled) scores. Frames without detections are absent from the dict.
    """
    table = _load_table(path, (7, 10))
    scores = rescale_scores(table[:, 6], rescale)
    if scores.size and (scores.min() < 0.0 or scores.max() > 1.0):
        raise MotFormatError(
            f"{path}: detection scores span [{scores.min():.4g}, {scores.max():.4g}], outside [0, 1]; "
            f"pass rescale='minmax' or 'logistic'")
    keep = scores >= min_score
    table, scores = table[keep], scores[keep]
    frames = table[:, 0].astype(np.int64)
    boxes = xywh_to_xyxy(table[:, 2:6]).astype(np.float32)
    out: dict[int, Detections] = {}
    order = np.argsort(frames, kind="stable")
    frames, boxes, scores = frames[order], boxes[order], scores[order].astype(np.float32)
    starts = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1]]) if frames.size else np.zeros(0, int)
    ends = np.r_[starts[1:], frames.size]
    for s, e in zip(starts, ends, strict=False):
        out[int(frames[s])] = Detections(boxes[s:e], scores[s:e], np.zeros(e - s, np.int64))
    return out


PEDESTRIAN_CLASS = 1
# MOT17's "distractor": neither a miss when not tracked nor a false positive when tracked (TrackEval drops both).
DISTRACTOR_CLASS = 8


@dataclass(frozen=True)
class GroundTruth:
    """One row per annotated box. ``mot17`` is True for the 9-column layout
    (conf = consider flag, class, visibility); MOT15 files carry -1 there."""

    frames: np.ndarray      # (N,) int64
    ids: np.ndarray         # (N,) int64
    boxes: np.ndarray       # (N, 4) float32 x1, y1, x2, y2
    conf: np.ndarray        # (N,) float32
    classes: np.ndarray     # (N,) int64, -1 when absent
    visibility: np.ndarray  # (N,) float32, -1 when absent
    mot17: bool = field(default=False)

    def __len__(self) -> int:
        return len(self.frames)

    def select(self, mask: np.ndarray) -> GroundTruth:
        return GroundTruth(self.frames[mask], self.ids[mask], self.boxes[mask], self.conf[mask],
                           self.classes[mask], self.visibility[mask], self.mot17)

    def pedestrians(self) -> GroundTruth:
        """The boxes MOTChallenge scores: rows with conf != 0 and, in MOT17
        files, class 1 (pedestrian) only."""
        mask = self.conf != 0
        if self.mot17:
            mask &= self.classes == PEDESTRIAN_CLASS
        return self.select(mask)

    def frame(self, k: int) -> GroundTruth:
        return self.select(self.frames == k)


def read_ground_truth(path: str | Path) -> GroundTruth:
    """Read a MOT gt.txt: MOT15 (10 columns, class/visibility -1) or MOT17 (9)."""
    table = _load_table(path, (9, 10))
    n = len(table)
    mot17 = table.shape[1] == 9
    if mot17:
        classes, visibility = table[:, 7].astype(np.int64), table[:, 8].astype(np.float32)
    else:
        classes, visibility = np.full(n, -1, np.int64), np.full(n, -1.0, np.float32)
    return GroundTruth(
        frames=table[:, 0].astype(np.int64),
        ids=table[:, 1].astype(np.int64),
        boxes=xywh_to_xyxy(table[:, 2:6]).astype(np.float32),
        conf=table[:, 6].astype(np.float32),
        classes=classes,
        visibility=visibility,
        mot17=mot17,
    )


def _find_video(seq_dir: Path) -> Path | None:
    named = seq_dir / f"{seq_dir.name}.mp4"
    if named.is_file():
        return named
    videos = sorted(seq_dir.glob("*.mp4"))
    return videos[0] if len(videos) == 1 else None


def iter_frames(seq_dir: str | Path, start: int = 1, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (1-based frame, HxWx3 uint8 BGR) for frames start <= k < stop.

    Reads ``img1/`` (seqinfo's imDir/imExt; frame numbers from the file
    names, so partial folders work) or else the sequence's single .mp4.
    """
    import cv2

    seq_dir = Path(seq_dir)
    if start < 1:
        raise ValueError(f"start must be >= 1 (frames are 1-based), got {start}")
    im_dir, im_ext = "img1", ".jpg"
    if (seq_dir / "seqinfo.ini").is_file():
        info = load_sequence_info(seq_dir)
        im_dir, im_ext = info.im_dir, info.im_ext
    folder = seq_dir / im_dir
    if folder.is_dir():
        files = sorted((int(p.stem), p) for p in folder.glob(f"*{im_ext}") if p.stem.isdigit())
        for k, p in files:
            if k < start or (stop is not None and k >= stop):
                continue
            image = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if image is None:
                raise MotFormatError(f"cannot decode image {p}")
            yield k, image
        return
    video = _find_video(seq_dir)
    if video is None:
        raise MotFormatError(f"{seq_dir}: no {im_dir}/ folder and no single .mp4 video")
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise MotFormatError(f"cannot open video {video}")
    try:
        k = 1
        while stop is None or k < stop:
            if k < start:
                ok = cap.grab()
            else:
                ok, image = cap.read()
            if not ok:
                return
            if k >= start:
                yield k, image
            k += 1
    finally:
        cap.release()


def write_detections(path: str | Path, detections: dict[int, Detections]) -> int:
    """Write frame -> Detections as a MOT det file ``frame,-1,x,y,w,h,score,-1,-1,-1``; returns the row count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w") as f:
        for frame in sorted(detections):
            dets = detections[frame]
            boxes, scores = dets.boxes.astype(np.float64), dets.scores.astype(np.float64)
            for (x1, y1, x2, y2), score in zip(boxes, scores, strict=True):
                f.write(f"{int(frame)},-1,{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{score:.5f},-1,-1,-1\n")
                count += 1
    return count


def write_results(path: str | Path, rows: Iterable[Iterable[float]] | np.ndarray) -> int:
    """Write a MOT results file ``frame,id,x,y,w,h,score,-1,-1,-1``.

    ``rows``: (frame, track_id, x1, y1, x2, y2, score) each. Returns the row count.
    """
    table = np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows, np.float64)
    if table.size == 0:
        table = np.zeros((0, 7))
    if table.ndim != 2 or table.shape[1] != 7:
        raise ValueError(f"result rows need 7 values (frame, id, x1, y1, x2, y2, score); got shape {table.shape}")
    if not np.all(np.isfinite(table)):
        raise ValueError("result rows contain non-finite values")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for frame, tid, x1, y1, x2, y2, score in table:
            f.write(f"{int(frame)},{int(tid)},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{score:.4f},-1,-1,-1\n")
    return len(table)


def read_results(path: str | Path) -> np.ndarray:
    """Read a MOT results (or MOT15 gt) file back as (N, 7) frame, id, x1, y1, x2, y2, score."""
    table = _load_table(path, (10, 9, 7))
    out = np.empty((len(table), 7), np.float64)
    out[:, :2] = table[:, :2]
    out[:, 2:6] = xywh_to_xyxy(table[:, 2:6])
    out[:, 6] = table[:, 6]
    return out


def track_rows(frame: int, tracks: Iterable) -> list[tuple[float, ...]]:
    """Result rows for one frame's ``TrackOutput``s."""
    return [(frame, t.track_id, *map(float, t.box), t.score) for t in tracks]


def write_ground_truth(path: str | Path, gt: GroundTruth) -> None:
    """Write ``gt`` in its own convention (MOT17: 9 columns, MOT15: 10)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for k in range(len(gt)):
            x1, y1, x2, y2 = (float(v) for v in gt.boxes[k])
            head = f"{gt.frames[k]},{gt.ids[k]},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{gt.conf[k]:g}"
            tail = f"{gt.classes[k]},{gt.visibility[k]:g}" if gt.mot17 else "-1,-1,-1"
            f.write(f"{head},{tail}\n")
