"""rosbag2 files through rosbags: scene -> bag -> numpy round trips, tracks -> MOT, CLI, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from smiletrack_ros.bags import (
    BagError,
    BagWriter,
    MessageContentError,
    TrackBoxes,
    bag_info,
    build_typestore,
    frame_stamp_ns,
    read_detections,
    read_frames,
    read_images,
    read_tracks,
    tracks_to_mot,
    write_scene_bag,
    write_video_bag,
)
from smiletrack_ros.bags.messages import (
    DETECTION_ARRAY,
    IMAGE,
    TRACK_ARRAY,
    detections_message,
    header,
    image_message,
    tracks_from_message,
    tracks_message,
)
from smiletrack_ros.bags.typestore import EXTRA_PACKAGES, find_msg_dir
from smiletrack_ros.cli import bag_tools
from smiletrack_ros.mot.io import read_results
from smiletrack_ros.scene import SceneConfig, generate_scene

TINY = SceneConfig(width=96, height=72, num_people=5, num_frames=8, fps=20.0, seed=9, det_false_positives=1.0,
                   person_height=(0.25, 0.6))


@pytest.fixture(scope="module")
def tiny_frames():
    return list(generate_scene(TINY).frames())


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_scene_bag_round_trip(tmp_path, tiny_frames, storage):
    path = tmp_path / "scene_bag"
    start = 1_700_000_000_123_456_789
    counts = write_scene_bag(generate_scene(TINY), path, start_ns=start, frame_id="cam0", storage=storage)
    assert counts == {"/camera/image_raw": 8, "/detections": 8}
    stamps = [frame_stamp_ns(k, 20.0, start) for k in range(1, 9)]
    assert stamps[1] - stamps[0] == 50_000_000

    images = list(read_images(path))
    assert [i.stamp_ns for i in images] == stamps and {i.frame_id for i in images} == {"cam0"}
    for got, frame in zip(images, tiny_frames, strict=True):
        assert got.image.dtype == np.uint8 and np.array_equal(got.image, frame.image)

    detections = list(read_detections(path))
    assert [d.stamp_ns for d in detections] == stamps
    for got, frame in zip(detections, tiny_frames, strict=True):
        np.testing.assert_allclose(got.detections.boxes, frame.detections.boxes, atol=1e-3)
        np.testing.assert_allclose(got.detections.scores, frame.detections.scores, atol=1e-6)
        assert np.array_equal(got.detections.class_ids, frame.detections.class_ids)

    info = bag_info(path)
    assert info.message_count == 16 and info.start_ns == start
    assert {(t.name, t.msgtype, t.count) for t in info.topics} == {
        ("/camera/image_raw", "sensor_msgs/msg/Image", 8), ("/detections", "vision_msgs/msg/Detection2DArray", 8)}


@pytest.mark.parametrize("compress", [False, True])
def test_mcap_decodes_with_an_independent_reader(tmp_path, tiny_frames, compress):
    """mcap-ros2-support decodes the bag from its embedded schemas alone (zstd chunks too)."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    path = tmp_path / "bag"
    write_scene_bag(generate_scene(TINY), path, compress=compress)
    assert all(np.array_equal(a.image, f.image) for a, f in zip(read_images(path), tiny_frames, strict=True))
    (mcap_file,) = path.glob("*.mcap")
    with mcap_file.open("rb") as stream:
        messages = [(channel.topic, msg) for _, channel, _, msg in
                    make_reader(stream, decoder_factories=[DecoderFactory()]).iter_decoded_messages()]
    images = [m for topic, m in messages if topic == "/camera/image_raw"]
    arrays = [m for topic, m in messages if topic == "/detections"]
    assert len(images) == len(arrays) == 8
    first = images[0]
    assert (first.encoding, first.height, first.width, first.step) == ("bgr8", 72, 96, 288)
    assert np.array_equal(np.frombuffer(bytes(first.data), np.uint8).reshape(72, 96, 3), tiny_frames[0].image)
    det = arrays[3].detections[0]
    box = tiny_frames[3].detections.boxes[0]
    assert det.bbox.center.position.x == pytest.approx((box[0] + box[2]) / 2, abs=1e-3)
    assert det.bbox.size_y == pytest.approx(box[3] - box[1], abs=1e-3)
    assert det.results[0].hypothesis.score == pytest.approx(tiny_frames[3].detections.scores[0], abs=1e-6)
    assert det.id == "" and arrays[3].header.stamp.nanosec == 150_000_000


def test_read_frames_pairs_images_with_late_detections(tmp_path, tiny_frames):
    """Detections logged 3 frames after their image (a live recording) still pair by header stamp;
    an image whose detections never came gets None."""
    path = tmp_path / "live_dets"
    lag = 150_000_000
    with BagWriter(path) as bag:
        for f in tiny_frames:
            stamp = frame_stamp_ns(f.index, TINY.fps)
            bag.write_image("/camera/image_raw", stamp, f.image)
            if f.index != 4:
                msg = detections_message(f.detections, stamp, "camera")
                bag.write("/detections", DETECTION_ARRAY, stamp + lag, msg)
    frames = list(read_frames(path, detections_topic="/detections", max_lag_ns=2 * lag))
    assert [f.stamp_ns for f in frames] == [frame_stamp_ns(k, TINY.fps) for k in range(1, 9)]
    for got, truth in zip(frames, tiny_frames, strict=True):
        assert np.array_equal(got.image, truth.image)
        if truth.index == 4:
            assert got.detections is None
        else:
            np.testing.assert_allclose(got.detections.scores, truth.detections.scores, atol=1e-6)
    too_short = list(read_frames(path, detections_topic="/detections", max_lag_ns=lag // 2))
    assert len(too_short) == 8 and all(f.detections is None for f in too_short)
    assert all(f.detections is None for f in read_frames(path))


def _truth_tracks(frame) -> TrackBoxes:
    t = frame.truth
    return TrackBoxes(ids=t.ids, boxes=t.boxes, scores=t.visibility, class_ids=np.zeros(len(t), np.int64))


def test_tracks_bag_to_mot_numbers_frames_by_image_stamps(tmp_path, tiny_frames):
    path = tmp_path / "tracks_bag"
    with BagWriter(path) as bag:
        for f in tiny_frames:
            stamp = frame_stamp_ns(f.index, TINY.fps, 5_000_000_000)
            bag.write_image("/camera/image_raw", stamp, f.image)
            bag.write_detections("/detections", stamp, f.detections)
            if f.index not in (2, 5):  # frames where the node published nothing
                bag.write_tracks("/smiletrack/tracks", stamp, _truth_tracks(f))
    out = tmp_path / "res" / "tracks.txt"
    rows = tracks_to_mot(path, out)
    table = read_results(out)
    expected = [(f.index, i, *b, v) for f in tiny_frames if f.index not in (2, 5)
                for i, b, v in zip(f.truth.ids, f.truth.boxes, f.truth.visibility, strict=True)]
    expected = np.array(sorted(expected, key=lambda r: (r[0], r[1])))
    assert rows == len(expected) == len(table)
    np.testing.assert_array_equal(table[:, :2], expected[:, :2])
    np.testing.assert_allclose(table[:, 2:6], expected[:, 2:6], atol=0.011)
    np.testing.assert_allclose(table[:, 6], expected[:, 6], atol=1e-4)
    assert 2 not in table[:, 0] and 5 not in table[:, 0]

    got = list(read_tracks(path))
    assert len(got) == 6 and np.array_equal(np.sort(got[0].tracks.ids), np.sort(tiny_frames[0].truth.ids))


def test_tracks_to_mot_without_images_uses_fps_or_order(tmp_path, tiny_frames):
    with BagWriter(tmp_path / "only_tracks") as bag:
        for f in tiny_frames[2:]:
            bag.write_tracks("/tracks", frame_stamp_ns(f.index, TINY.fps, 10**9), _truth_tracks(f))
    path = next((tmp_path / "only_tracks").glob("*.mcap"))  # a bare .mcap file also opens
    tracks_to_mot(path, tmp_path / "fps.txt", fps=TINY.fps, start_ns=10**9)
    assert np.unique(read_results(tmp_path / "fps.txt")[:, 0]).tolist() == [3, 4, 5, 6, 7, 8]
    tracks_to_mot(path, tmp_path / "order.txt")
    assert np.unique(read_results(tmp_path / "order.txt")[:, 0]).tolist() == [1, 2, 3, 4, 5, 6]


def test_track_array_topic_converts_too(tmp_path):
    store = build_typestore()
    t = store.types
    bbox = t["vision_msgs/msg/BoundingBox2D"](
        center=t["vision_msgs/msg/Pose2D"](position=t["vision_msgs/msg/Point2D"](x=50.0, y=40.0), theta=0.0),
        size_x=20.0, size_y=60.0)
    track = t["smiletrack_ros/msg/Track"](
        id=42, class_id="0", score=0.75, state=1, bbox=bbox, velocity_x=1.0, velocity_y=0.0, age=3, hits=3,
        frames_since_update=0, appearance_similarity=float("nan"), detection_index=0,
        ground_status=0, ground_refusal=1, ground_x=0.0, ground_y=0.0, ground_velocity_x=0.0, ground_velocity_y=0.0,
        ground_covariance=np.zeros(16), ground_height=float("nan"))
    with BagWriter(tmp_path / "ta", typestore=store) as bag:
        msg = t[TRACK_ARRAY](header=header(store, 0, "camera"), tracks=[track])
        bag.write("/tracks_full", TRACK_ARRAY, 0, msg)
        bag.write_tracks("/tracks", 0, TrackBoxes(np.array([7]), np.array([[0, 0, 5, 5]], np.float32),
                                                  np.array([0.5], np.float32), np.array([0])))
    tracks_to_mot(tmp_path / "ta", tmp_path / "ta.txt", tracks_topic="/tracks_full")
    np.testing.assert_allclose(read_results(tmp_path / "ta.txt"), [[1, 42, 40, 10, 60, 70, 0.75]], atol=1e-3)
    tracks_to_mot(tmp_path / "ta", tmp_path / "default.txt")  # the node's two outputs: /tracks wins
    np.testing.assert_allclose(read_results(tmp_path / "default.txt"), [[1, 7, 0, 0, 5, 5, 0.5]], atol=1e-3)

    # A node with class_names publishes names: they read back with the same names, and only with them.
    named = track.__class__(**{**{f: getattr(track, f) for f in track.__dataclass_fields__}, "class_id": "person"})
    with BagWriter(tmp_path / "named", typestore=store) as bag:
        bag.write("/tracks_full", TRACK_ARRAY, 0, t[TRACK_ARRAY](header=header(store, 0, "camera"), tracks=[named]))
    with pytest.raises(MessageContentError, match="'person'.*class_names"):
        tracks_to_mot(tmp_path / "named", tmp_path / "named.txt")
    (back,) = read_tracks(tmp_path / "named", class_names=["bicycle", "person"])
    assert back.tracks.class_ids.tolist() == [1] and back.tracks.ids.tolist() == [42]
    assert tracks_to_mot(tmp_path / "named", tmp_path / "named.txt", class_names=["person"]) == 1


def test_real_tracker_outputs_record_and_convert(tmp_path, tiny_frames):
    from smiletrack_ros.tracking import SmileTracker, TrackerConfig

    tracker = SmileTracker(TrackerConfig.from_preset("bytetrack"), frame_rate=TINY.fps)
    published = 0
    with BagWriter(tmp_path / "live") as bag:
        for f in tiny_frames:
            outs = tracker.update(f.detections.boxes, f.detections.scores, f.detections.class_ids)
            stamp = frame_stamp_ns(f.index, TINY.fps)
            bag.write_image("/image", stamp, f.image)
            bag.write_tracks("/tracks", stamp, outs)
            published += len(outs)
    assert published > 0
    assert tracks_to_mot(tmp_path / "live", tmp_path / "live.txt") == published


def test_video_and_image_folder_to_bag(tmp_path, tiny_frames):
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for f in tiny_frames:
        cv2.imwrite(str(folder / f"{f.index:04d}.png"), f.image)
    assert write_video_bag(folder, tmp_path / "from_folder", fps=10.0, max_frames=5) == 5
    images = list(read_images(tmp_path / "from_folder"))
    assert [i.stamp_ns for i in images] == [k * 100_000_000 for k in range(5)]
    assert all(np.array_equal(i.image, f.image) for i, f in zip(images, tiny_frames, strict=False))
    with pytest.raises(BagError, match="fps"):
        write_video_bag(folder, tmp_path / "no_fps")

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 12.5, (96, 72))
    for f in tiny_frames:
        writer.write(f.image)
    writer.release()
    assert write_video_bag(video, tmp_path / "from_video") == 8
    stamps = [i.stamp_ns for i in read_images(tmp_path / "from_video")]
    assert stamps[1] == 80_000_000  # the video's own 12.5 fps


def test_errors_name_the_problem(tmp_path, tiny_frames):
    path = tmp_path / "bag"
    write_scene_bag(generate_scene(TINY), path)
    with pytest.raises(BagError, match="exists"):
        write_scene_bag(generate_scene(TINY), path)
    with pytest.raises(BagError, match="/nope"):
        list(read_images(path, "/nope"))
    with pytest.raises(BagError, match="expected one of"):
        list(read_images(path, "/detections"))
    with pytest.raises(BagError, match="not found"):
        bag_info(tmp_path / "missing")
    with pytest.raises(ValueError, match="mcap"):
        BagWriter(tmp_path / "db", storage="sqlite3", compress=True)
    with BagWriter(tmp_path / "two") as bag:
        bag.write_image("/a", 0, tiny_frames[0].image)
        bag.write_image("/b", 0, tiny_frames[0].image)
        with pytest.raises(BagError, match="already carries"):
            bag.write_detections("/a", 1, tiny_frames[0].detections)
    with pytest.raises(BagError, match="candidates"):
        list(read_images(tmp_path / "two"))
    writer = BagWriter(tmp_path / "closed").open()
    writer.write_image("/a", 0, tiny_frames[0].image)
    writer.close()
    with pytest.raises(BagError, match="not opened"):
        writer.write_image("/a", 1, tiny_frames[0].image)
    assert [i.stamp_ns for i in read_images(tmp_path / "closed")] == [0]


def test_cli_from_scene_info_and_to_mot(tmp_path, capsys):
    bag = tmp_path / "cli_bag"
    assert bag_tools.main(["from-scene", str(bag), "--width", "96", "--height", "72", "--frames", "4",
                           "--people", "3", "--storage", "sqlite3", "--start", "2.5"]) == 0
    assert bag_tools.main(["info", str(bag)]) == 0
    out = capsys.readouterr().out
    assert "/camera/image_raw  sensor_msgs/msg/Image  4" in out and "(from 2.500 s)" in out
    # the only Detection2DArray topic holds detections without track ids
    assert bag_tools.main(["to-mot", str(bag), str(tmp_path / "x.txt")]) == 1
    assert "track id" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bag_tools.main(["from-scene", str(tmp_path / "bad"), "--people", "0"])


def test_typestore_hashes_match_the_rosidl_build():
    """Where the interface packages are installed (rosidl writes a .json beside each .msg),
    rosbags' RIHS01 hashes equal rosidl's."""
    store = build_typestore()
    checked = 0
    for package in EXTRA_PACKAGES:
        for description in find_msg_dir(package).glob("*.json"):
            name = f"{package}/msg/{description.stem}"
            hashes = json.loads(description.read_text())["type_hashes"]
            expected = next(h["hash_string"] for h in hashes if h["type_name"] == name)
            assert store.hash_rihs01(name) == expected
            checked += 1
    if not checked:
        pytest.skip("the .msg files in use are not a rosidl install (no .json type descriptions)")


def test_cli_mot_sequence_folder_with_det_file(tmp_path):
    """make_scene's MOT folder back into a bag: img1/ + det.txt -> images and detections per frame."""
    from smiletrack_ros.scene import write_mot_sequence

    scene = generate_scene(TINY)
    seq = write_mot_sequence(scene, tmp_path / "SYN")
    bag = tmp_path / "seq_bag"
    assert bag_tools.main(["from-video", str(seq / "img1"), str(bag), "--fps", "20",
                           "--det-file", str(seq / "det" / "det.txt")]) == 0
    frames = list(read_frames(bag, detections_topic="/detections"))
    assert len(frames) == 8
    for got, truth in zip(frames, scene.frames(), strict=True):
        np.testing.assert_allclose(got.detections.boxes, truth.detections.boxes, atol=0.011)
        assert np.abs(got.image.astype(int) - truth.image).mean() < 8.0


def test_real_video_with_public_detections(tmp_path, shared_dir):
    """TUD-Campus (mp4 + ACF det.txt with unbounded scores) -> bag, first 10 frames."""
    from smiletrack_ros.mot.io import read_detections as read_det_file

    seq = shared_dir / "data" / "MOT15" / "TUD-Campus"
    bag = tmp_path / "tud"
    assert bag_tools.main(["from-video", str(seq / "TUD-Campus.mp4"), str(bag), "--max-frames", "10",
                           "--det-file", str(seq / "det" / "det.txt"), "--score-rescale", "logistic"]) == 0
    dets = read_det_file(seq / "det" / "det.txt", rescale="logistic")
    frames = list(read_frames(bag, detections_topic="/detections"))
    first = frames[0].stamp_ns                                   # now, not 0 (ROS: 0 = unset)
    assert first > 0 and [f.stamp_ns - first for f in frames] == [k * 40_000_000 for k in range(10)]  # 25 fps
    assert frames[0].image.shape == (480, 640, 3)
    for k, f in enumerate(frames, start=1):
        np.testing.assert_allclose(f.detections.boxes, dets[k].boxes, atol=1e-3)
        np.testing.assert_allclose(f.detections.scores, dets[k].scores, atol=1e-6)


def test_compressed_images_decode(tmp_path, tiny_frames):
    import cv2

    from smiletrack_ros.bags.messages import COMPRESSED_IMAGE

    store = build_typestore()
    with BagWriter(tmp_path / "jpeg", typestore=store) as bag:
        for f in tiny_frames[:3]:
            stamp = frame_stamp_ns(f.index, TINY.fps)
            _, png = cv2.imencode(".png", f.image)
            msg = store.types[COMPRESSED_IMAGE](header=header(store, stamp, "camera"), format="png",
                                                data=np.frombuffer(png.tobytes(), np.uint8))
            bag.write("/camera/image_raw/compressed", COMPRESSED_IMAGE, stamp, msg)
    got = list(read_images(tmp_path / "jpeg"))
    assert len(got) == 3 and all(np.array_equal(g.image, f.image) for g, f in zip(got, tiny_frames, strict=False))


def test_cdr_is_interchangeable_with_rclpy(tmp_path, tiny_frames):
    """Our serialised messages deserialise in rclpy's generated types and vice versa."""
    serialization = pytest.importorskip("rclpy.serialization")
    vision_msgs = pytest.importorskip("vision_msgs.msg")
    from sensor_msgs.msg import Image

    store = build_typestore()
    frame = tiny_frames[2]
    raw = store.serialize_cdr(image_message(store, frame.image, 123_000_000_456, "cam"), IMAGE)
    image = serialization.deserialize_message(bytes(raw), Image)
    assert (image.header.stamp.sec, image.header.stamp.nanosec, image.header.frame_id) == (123, 456, "cam")
    assert np.array_equal(np.asarray(image.data, np.uint8).reshape(72, 96, 3), frame.image)

    raw = tracks_message(_truth_tracks(frame), 1, "cam")
    tracks = serialization.deserialize_message(bytes(raw), vision_msgs.Detection2DArray)
    assert [d.id for d in tracks.detections] == [str(i) for i in frame.truth.ids]
    assert tracks.detections[0].bbox.size_x == pytest.approx(frame.truth.boxes[0, 2] - frame.truth.boxes[0, 0])

    back = store.deserialize_cdr(serialization.serialize_message(tracks), DETECTION_ARRAY)
    decoded = tracks_from_message(back, DETECTION_ARRAY)
    assert np.array_equal(decoded.ids, frame.truth.ids)
    np.testing.assert_allclose(decoded.boxes, frame.truth.boxes, atol=1e-3)



def test_cli_stamps_start_now_not_at_zero(tmp_path, capsys):
    """ROS reads a zero stamp as unset: from-video / from-scene stamp the first frame now by default
    (as a camera driver would) and refuse --start 0."""
    import time

    from smiletrack_ros.scene import write_mot_sequence

    seq = write_mot_sequence(generate_scene(TINY), tmp_path / "SYN")
    before = time.time_ns()
    assert bag_tools.main(["from-video", str(seq / "img1"), str(tmp_path / "now"), "--fps", "20"]) == 0
    stamps = [i.stamp_ns for i in read_images(tmp_path / "now")]
    assert before - 10**9 <= stamps[0] <= time.time_ns() and stamps[1] - stamps[0] == 50_000_000
    with pytest.raises(SystemExit) as info:
        bag_tools.main(["from-video", str(seq / "img1"), str(tmp_path / "zero"), "--fps", "20", "--start", "0"])
    assert info.value.code == 2
    assert "unset" in capsys.readouterr().err
