"""Read and write rosbag2 files (mcap or sqlite3) with the pure-Python rosbags library.

Readers accept a bag folder (with metadata.yaml) or a single .mcap/.db3 file and
use the definitions the bag embeds, falling back to ``build_typestore()``.
Messages come out in log-time order; writers log each message at its header
stamp.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.rosbag2.errors import ReaderError, WriterError
from rosbags.typesys.store import Typestore

from smiletrack_ros.bags.messages import (
    DETECTION_ARRAY,
    IMAGE,
    IMAGE_TYPES,
    TRACK_ARRAY,
    TRACK_TYPES,
    TrackBoxes,
    detections_from_message,
    detections_message,
    image_from_message,
    image_message,
    stamp_to_ns,
    tracks_from_message,
    tracks_message,
)
from smiletrack_ros.bags.typestore import build_typestore
from smiletrack_ros.detections import Detections

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


class BagError(RuntimeError):
    """A bag that cannot be opened or read, or lacks the topic asked for."""


# what rosbags' readers raise on a truncated or garbled file besides their own error types
# (e.g. an mcap holding only its magic: TypeError from reading past the end)
_CORRUPT_FILE_ERRORS = (AnyReaderError, ReaderError, TypeError, ValueError, IndexError, KeyError, EOFError,
                        struct.error, UnicodeDecodeError)


class StampedImage(NamedTuple):
    stamp_ns: int       # header stamp
    image: np.ndarray   # HxWx3 uint8 BGR
    frame_id: str


class StampedDetections(NamedTuple):
    stamp_ns: int
    detections: Detections
    frame_id: str


class BagFrame(NamedTuple):
    stamp_ns: int
    image: np.ndarray
    frame_id: str
    detections: Detections | None


class StampedTracks(NamedTuple):
    stamp_ns: int
    tracks: TrackBoxes
    frame_id: str


class BagWriter:
    """Writes images, detections and tracks to a new bag; one topic keeps one message type.

    Use it as a context manager (``with BagWriter(path) as bag: bag.write_image(...)``),
    or call ``open()`` and ``close()`` when the writer lives in a node.
    """

    def __init__(self, path: str | Path, storage: str = "mcap", typestore: Typestore | None = None,
                 compress: bool = False):
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {sorted(STORAGES)}, got {storage!r}")
        if compress and storage != "mcap":
            raise ValueError("compress needs mcap storage (zstd-compressed chunks)")
        self.path = Path(path)
        self.store = typestore or build_typestore()
        try:
            self._writer = Writer(self.path, version=9, storage_plugin=STORAGES[storage])
        except WriterError as err:
            raise BagError(str(err)) from None
        if compress:
            self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def open(self) -> BagWriter:
        try:
            self._writer.open()
        except WriterError as err:
            raise BagError(str(err)) from None
        return self

    def close(self) -> None:
        """Finish the file and write metadata.yaml (a bag never closed lacks it)."""
        self._writer.close()

    def __enter__(self) -> BagWriter:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def write(self, topic: str, msgtype: str, stamp_ns: int, msg: Any) -> None:
        """``msg``: a rosbags message object of ``msgtype``, or its CDR bytes."""
        connection = self._connections.get(topic)
        if connection is not None and connection.msgtype != msgtype:
            raise BagError(f"topic {topic} already carries {connection.msgtype}, cannot write {msgtype}")
        try:
            if connection is None:
                connection = self._writer.add_connection(topic, msgtype, typestore=self.store)
                self._connections[topic] = connection
                self.counts[topic] = 0
            data = msg if isinstance(msg, bytes) else self.store.serialize_cdr(msg, msgtype)
            self._writer.write(connection, int(stamp_ns), data)
        except WriterError as err:  # e.g. not opened, or already closed
            raise BagError(f"{self.path}: {err}") from None
        self.counts[topic] += 1

    def write_image(self, topic: str, stamp_ns: int, image_bgr: np.ndarray, frame_id: str = "camera") -> None:
        self.write(topic, IMAGE, stamp_ns, image_message(self.store, image_bgr, stamp_ns, frame_id))

    def write_detections(self, topic: str, stamp_ns: int, detections: Detections, frame_id: str = "camera") -> None:
        self.write(topic, DETECTION_ARRAY, stamp_ns, detections_message(detections, stamp_ns, frame_id))

    def write_tracks(self, topic: str, stamp_ns: int, tracks: TrackBoxes | list, frame_id: str = "camera") -> None:
        """``tracks``: a ``TrackBoxes`` or the tracker's ``TrackOutput`` list."""
        boxes = tracks if isinstance(tracks, TrackBoxes) else TrackBoxes.from_tracks(tracks)
        self.write(topic, DETECTION_ARRAY, stamp_ns, tracks_message(boxes, stamp_ns, frame_id))


@dataclass(frozen=True)
class TopicInfo:
    name: str
    msgtype: str
    count: int


@dataclass(frozen=True)
class BagInfo:
    path: Path
    topics: tuple[TopicInfo, ...]
    start_ns: int
    end_ns: int
    message_count: int

    def topics_of(self, msgtypes: tuple[str, ...]) -> list[TopicInfo]:
        return [t for t in self.topics if t.msgtype in msgtypes]


def _open(path: str | Path, typestore: Typestore | None) -> AnyReader:
    path = Path(path)
    if not path.exists():
        raise BagError(f"bag not found: {path}")
    try:
        reader = AnyReader([path], default_typestore=typestore or build_typestore())
        reader.open()
    except _CORRUPT_FILE_ERRORS as err:
        raise BagError(f"cannot open bag {path}: {err or type(err).__name__} (not a readable rosbag2 "
                       f"mcap/sqlite3 bag, or a truncated one)") from None
    return reader


def bag_info(path: str | Path) -> BagInfo:
    reader = _open(path, None)
    try:
        topics = tuple(TopicInfo(name, info.msgtype or "?", info.msgcount)
                       for name, info in sorted(reader.topics.items()))
        return BagInfo(Path(path), topics, reader.start_time, reader.end_time, reader.message_count)
    finally:
        reader.close()


def pick_topic(info: BagInfo, msgtypes: tuple[str, ...], topic: str | None, what: str,
               prefer: str | None = None) -> TopicInfo:
    """The topic named ``topic`` (checked), else the only one of ``msgtypes``, else the only
    such topic whose name contains ``prefer``."""
    if topic is not None:
        for t in info.topics:
            if t.name == topic:
                if t.msgtype not in msgtypes:
                    raise BagError(f"{topic} in {info.path} is {t.msgtype}, expected one of {msgtypes}")
                return t
        raise BagError(f"no topic {topic} in {info.path}; topics: {[t.name for t in info.topics]}")
    candidates = info.topics_of(msgtypes)
    if len(candidates) > 1 and prefer:
        candidates = [t for t in candidates if prefer in t.name] or candidates
    if len(candidates) != 1:
        found = [t.name for t in candidates] or "none"
        raise BagError(f"cannot choose the {what} topic of {info.path} (candidates: {found}); name it")
    return candidates[0]


def pick_tracks_topic(info: BagInfo, topic: str | None = None) -> TopicInfo:
    """``topic`` (checked), else what the node records: the one Detection2DArray topic named
    *track*, else the one TrackArray topic, else the only topic of either type."""
    if topic is not None:
        return pick_topic(info, TRACK_TYPES, topic, "tracks")
    for candidates in ([t for t in info.topics_of((DETECTION_ARRAY,)) if "track" in t.name],
                       info.topics_of((TRACK_ARRAY,)), info.topics_of(TRACK_TYPES)):
        if len(candidates) == 1:
            return candidates[0]
    found = [t.name for t in info.topics_of(TRACK_TYPES)] or "none"
    raise BagError(f"cannot choose the tracks topic of {info.path} (candidates: {found}); name it")


def _stream(path: str | Path, topics: list[str],
            typestore: Typestore | None = None) -> Iterator[tuple[str, str, int, Any]]:
    """(topic, msgtype, log time ns, message) for ``topics`` in log-time order."""
    reader = _open(path, typestore)
    count = 0
    try:
        connections = [c for c in reader.connections if c.topic in topics]
        messages = reader.messages(connections=connections)
        while True:
            try:
                item = next(messages, None)
                if item is None:
                    return
                connection, log_time, raw = item
                msg = reader.deserialize(raw, connection.msgtype)
            except _CORRUPT_FILE_ERRORS as err:
                where = f"message {count + 1} of {topics}"
                raise BagError(f"{path}: {where} cannot be read: {err or type(err).__name__}") from None
            count += 1
            yield connection.topic, connection.msgtype, log_time, msg
    finally:
        reader.close()


def image_stamps(path: str | Path, topic: str | None = None) -> list[int]:
    """Header stamps of an image topic, without decoding the pixels."""
    chosen = pick_topic(bag_info(path), IMAGE_TYPES, topic, "image").name
    return [stamp_to_ns(msg.header.stamp) for _, _, _, msg in _stream(path, [chosen])]


def read_images(path: str | Path, topic: str | None = None,
                typestore: Typestore | None = None) -> Iterator[StampedImage]:
    """Yield each image of ``topic`` (default: the bag's only image topic) as BGR with its header stamp."""
    chosen = pick_topic(bag_info(path), IMAGE_TYPES, topic, "image").name
    for _, msgtype, _, msg in _stream(path, [chosen], typestore):
        yield StampedImage(stamp_to_ns(msg.header.stamp), image_from_message(msg, msgtype), msg.header.frame_id)


def read_detections(path: str | Path, topic: str | None = None, typestore: Typestore | None = None,
                    class_names: Sequence[str] = ()) -> Iterator[StampedDetections]:
    """``class_names``: the names by class index the writer used, when its class_ids are names."""
    chosen = pick_topic(bag_info(path), (DETECTION_ARRAY,), topic, "detections", prefer="detect").name
    for _, _, _, msg in _stream(path, [chosen], typestore):
        yield StampedDetections(stamp_to_ns(msg.header.stamp), detections_from_message(msg, class_names),
                                msg.header.frame_id)


def read_tracks(path: str | Path, topic: str | None = None, typestore: Typestore | None = None,
                class_names: Sequence[str] = ()) -> Iterator[StampedTracks]:
    """Tracks from a Detection2DArray (with ids) or TrackArray topic (default: ``pick_tracks_topic``);
    ``class_names`` as for ``read_detections``."""
    chosen = pick_tracks_topic(bag_info(path), topic).name
    for _, msgtype, _, msg in _stream(path, [chosen], typestore):
        yield StampedTracks(stamp_to_ns(msg.header.stamp), tracks_from_message(msg, msgtype, class_names),
                            msg.header.frame_id)


def read_frames(path: str | Path, image_topic: str | None = None, detections_topic: str | None = None,
                max_lag_ns: int = 1_000_000_000, typestore: Typestore | None = None) -> Iterator[BagFrame]:
    """Images paired with the detections of the same header stamp, for offline pipeline runs.

    Detections may be logged up to ``max_lag_ns`` after their image (a live
    recording logs them when the detector finishes); an image whose detections
    have not appeared by then comes out with ``detections=None``, as does every
    image when ``detections_topic`` is None. Detections without an image are dropped.
    """
    info = bag_info(path)
    images = pick_topic(info, IMAGE_TYPES, image_topic, "image").name
    topics = [images]
    if detections_topic is not None:
        topics.append(pick_topic(info, (DETECTION_ARRAY,), detections_topic, "detections").name)
    waiting: dict[int, tuple[np.ndarray, str, int]] = {}  # stamp -> image, frame_id, log time
    found: dict[int, tuple[Detections, int]] = {}           # stamp -> detections, log time

    def ready(now: int | None) -> Iterator[BagFrame]:
        for stamp in sorted(waiting):
            image, frame_id, logged = waiting[stamp]
            if detections_topic is not None and stamp not in found and now is not None and now - logged <= max_lag_ns:
                return
            del waiting[stamp]
            detections = found.pop(stamp, (None, 0))[0]
            yield BagFrame(stamp, image, frame_id, detections)

    for topic, msgtype, log_time, msg in _stream(path, topics, typestore):
        stamp = stamp_to_ns(msg.header.stamp)
        if topic == images:
            waiting[stamp] = (image_from_message(msg, msgtype), msg.header.frame_id, log_time)
        else:
            found[stamp] = (detections_from_message(msg), log_time)
        yield from ready(log_time)
        for s in [s for s, (_, logged) in found.items() if log_time - logged > max_lag_ns and s not in waiting]:
            del found[s]
    yield from ready(None)
