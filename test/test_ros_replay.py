"""replay_bag: a scene bag replayed into the live node over DDS, its tracks recorded and made a MOT file."""
import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("smiletrack_ros.msg", reason="generated messages not installed (tools/test.sh)")
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image

from smiletrack_ros.bags import bag_info, read_images, read_tracks, write_scene_bag
from smiletrack_ros.cli.replay_bag import ReplayOptions, header_stamp_ns, main, replay
from smiletrack_ros.mot.io import read_results
from smiletrack_ros.scene import SceneConfig, generate_scene

pytestmark = [pytest.mark.ros, pytest.mark.slow]
FRAMES, FPS = 16, 10.0


@pytest.fixture(scope="module")
def scene_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("replay") / "scene_bag"
    config = SceneConfig(width=320, height=240, num_people=3, num_frames=FRAMES, fps=FPS, seed=3)
    write_scene_bag(generate_scene(config), path, start_ns=5_000_000_000)
    return path


@pytest.fixture(scope="module")
def node(ros_nodes):
    proc = ros_nodes.start({
        "image_topic": "/camera/image_raw", "detector.backend": "external", "embedder.enabled": False,
        "input_qos.reliability": "reliable", "input_qos.depth": 10, "frame_rate": FPS})
    yield proc.domain
    proc.stop(timeout=10)
    assert "Traceback" not in proc.output(), proc.output()


def test_header_stamp_read_from_raw_cdr():
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_700_000_123, 987_654_321
    assert header_stamp_ns(serialize_message(msg)) == 1_700_000_123_987_654_321


def test_lockstep_replay_records_every_frame_and_writes_mot(scene_bag, node, tmp_path):
    record, mot = tmp_path / "tracks_bag", tmp_path / "tracks.txt"
    stats = replay(scene_bag, ReplayOptions(lockstep=True, domain_id=node), record=record, mot=mot)
    image_stamps = [s.stamp_ns for s in read_images(scene_bag)]
    assert stats.images == stats.detections == FRAMES and stats.image_stamps == image_stamps
    assert stats.answered == FRAMES
    topics = {t.name: t.msgtype for t in bag_info(record).topics}
    assert topics == {"/tracks": "vision_msgs/msg/Detection2DArray",
                      "/tracks_full": "smiletrack_ros/msg/TrackArray"}
    recorded = list(read_tracks(record, "/tracks"))
    assert [r.stamp_ns for r in recorded] == image_stamps
    assert all(r.frame_id == "camera" for r in recorded)
    rows = read_results(mot)
    assert set(rows[:, 0].astype(int)) <= set(range(1, FRAMES + 1)) and len(rows) > FRAMES
    # three walkers with near-perfect simulated detections keep a handful of ids
    ids_per_frame = [len(r.tracks) for r in recorded[2:]]
    assert max(ids_per_frame) <= 4 and len(np.unique(rows[:, 1])) <= 6


def test_rate_replay_paces_by_the_bag(scene_bag, node, tmp_path):
    stats = replay(scene_bag, ReplayOptions(rate=2.0, domain_id=node, drain_s=1.0))
    assert stats.images == FRAMES
    assert stats.wall_s >= (FRAMES - 1) / FPS / 2.0 * 0.9
    assert stats.answered >= 1


def test_cli_reports_problems_without_traceback(scene_bag, tmp_path, capsys):
    assert main([str(tmp_path / "missing_bag"), "--wait-node", "0"]) == 1
    assert "bag not found" in capsys.readouterr().err
    assert main([str(tmp_path / "missing_bag"), "--mot", str(tmp_path / "x.txt")]) == 1
    assert "--mot needs --record" in capsys.readouterr().err
    taken = tmp_path / "taken"
    taken.mkdir()
    assert main([str(scene_bag), "--record", str(taken)]) == 1
    assert "exists" in capsys.readouterr().err
