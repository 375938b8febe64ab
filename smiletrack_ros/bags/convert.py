"""Whole-sequence conversions: scene or video -> bag, tracks bag -> MOT results file."""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from smiletrack_ros.bags.io import BagError, BagWriter, bag_info, image_stamps, pick_topic, read_tracks
from smiletrack_ros.bags.messages import IMAGE_TYPES
from smiletrack_ros.detections import Detections
from smiletrack_ros.mot.io import write_results
from smiletrack_ros.scene import Scene

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_IMAGE_TOPIC = "/camera/image_raw"
DEFAULT_DETECTIONS_TOPIC = "/detections"


def frame_stamp_ns(index: int, fps: float, start_ns: int = 0) -> int:
    """Header stamp of 1-based frame ``index`` at ``fps``."""
    return int(start_ns) + int(round((index - 1) * 1e9 / fps))


def write_scene_bag(scene: Scene, path: str | Path, image_topic: str = DEFAULT_IMAGE_TOPIC,
                    detections_topic: str | None = DEFAULT_DETECTIONS_TOPIC, frame_id: str = "camera",
                    start_ns: int = 0, storage: str = "mcap", compress: bool = False) -> dict[str, int]:
    """Images (bgr8) and, unless ``detections_topic`` is None, the simulated detections with
    identical stamps. Returns the message count per topic."""
    fps = scene.config.fps
    with BagWriter(path, storage, compress=compress) as bag:
        for frame in scene.frames():
            stamp = frame_stamp_ns(frame.index, fps, start_ns)
            bag.write_image(image_topic, stamp, frame.image, frame_id)
            if detections_topic:
                bag.write_detections(detections_topic, stamp, frame.detections, frame_id)
    return dict(bag.counts)


def _video_frames(source: Path) -> Iterator[np.ndarray]:
    import cv2

    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise BagError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {source}")
        for p in files:
            image = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if image is None:
                raise BagError(f"cannot decode image {p}")
            yield image
        return
    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        raise BagError(f"cannot open video {source}")
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                return
            yield image
    finally:
        capture.release()


def video_fps(source: str | Path) -> float | None:
    """The frame rate a video file declares (None for folders or when it declares none)."""
    import cv2

    source = Path(source)
    if source.is_dir():
        return None
    capture = cv2.VideoCapture(str(source))
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
    finally:
        capture.release()
    return float(fps) if fps and np.isfinite(fps) and fps > 0 else None


def write_video_bag(source: str | Path, path: str | Path, fps: float | None = None,
                    image_topic: str = DEFAULT_IMAGE_TOPIC, frame_id: str = "camera", start_ns: int = 0,
                    max_frames: int | None = None, storage: str = "mcap", compress: bool = False,
                    detections: Mapping[int, Detections] | None = None,
                    detections_topic: str = DEFAULT_DETECTIONS_TOPIC) -> int:
    """A video file or a folder of images (sorted by name) as a bag of bgr8 images stamped at
    ``fps`` (default: the video's own rate; required for folders). Returns the frame count.

    ``detections`` (1-based frame -> Detections, e.g. ``mot.io.read_detections`` of a
    det.txt) go on ``detections_topic`` with the image's stamp; frames absent from it
    get an empty array, so every image has its detections message.
    """
    source = Path(source)
    if not source.exists():
        raise BagError(f"video source not found: {source}")
    fps = fps or video_fps(source)
    if not fps or fps <= 0:
        raise BagError(f"no frame rate known for {source}: pass fps")
    count = 0
    with BagWriter(path, storage, compress=compress) as bag:
        for image in _video_frames(source):
            if max_frames is not None and count >= max_frames:
                break
            count += 1
            stamp = frame_stamp_ns(count, fps, start_ns)
            bag.write_image(image_topic, stamp, image, frame_id)
            if detections is not None:
                bag.write_detections(detections_topic, stamp, detections.get(count, Detections.empty()), frame_id)
    if count == 0:
        raise BagError(f"no frames read from {source}")
    return count


def _frame_numbers(stamps: list[int], path: Path, image_topic: str | None, fps: float | None,
                   start_ns: int | None) -> list[int]:
    """1-based frames for the track stamps: the position of the image with the same stamp when
    the bag has images; else ``(stamp - start) * fps``; else the order of distinct stamps."""
    info = bag_info(path)
    if image_topic is not None or (fps is None and info.topics_of(IMAGE_TYPES)):
        topic = pick_topic(info, IMAGE_TYPES, image_topic, "image").name
        index = {s: k for k, s in enumerate(image_stamps(path, topic), start=1)}
        missing = sorted({s for s in stamps if s not in index})
        if missing:
            raise BagError(f"{len(missing)} track stamps have no image on {topic} (first: {missing[0]} ns)")
        return [index[s] for s in stamps]
    if fps is not None:
        start = min(stamps) if start_ns is None else start_ns
        return [int(round((s - start) * fps / 1e9)) + 1 for s in stamps]
    order = {s: k for k, s in enumerate(sorted(set(stamps)), start=1)}
    return [order[s] for s in stamps]


def tracks_to_mot(path: str | Path, out_file: str | Path, tracks_topic: str | None = None,
                  image_topic: str | None = None, fps: float | None = None, start_ns: int | None = None,
                  class_names: Sequence[str] = ()) -> int:
    """Write the tracks of a bag as a MOT results file (``frame,id,x,y,w,h,score,-1,-1,-1``).

    Frame numbers follow ``_frame_numbers``; returns the number of rows written.
    """
    path = Path(path)
    if fps is not None and fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    frames = list(read_tracks(path, tracks_topic, class_names=class_names))
    numbers = _frame_numbers([f.stamp_ns for f in frames], path, image_topic, fps, start_ns) if frames else []
    rows = [np.column_stack([np.full(len(f.tracks), k), f.tracks.ids, f.tracks.boxes, f.tracks.scores])
            for k, f in zip(numbers, frames, strict=True)]
    table = np.concatenate(rows) if rows else np.zeros((0, 7))
    order = np.lexsort((table[:, 1], table[:, 0]))
    return write_results(out_file, table[order])
