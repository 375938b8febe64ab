"""The main job's tool on a short scene: bag -> live node -> recorded tracks, video and scores."""
import re

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("smiletrack_ros.msg", reason="generated messages not installed (tools/test.sh)")
pytest.importorskip("cv2")
import cv2

from smiletrack_ros.cli import demo

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_demo_on_a_short_scene(tmp_path, capsys):
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--frames", "20", "--people", "3", "--seed", "1", "--no-embedder"]) == 0
    printed = capsys.readouterr().out
    assert "tracks for 20 images (0 not answered" in printed
    video = cv2.VideoCapture(str(out / "tracks.mp4"))
    frames = 0
    while video.read()[0]:
        frames += 1
    assert frames == 20
    hota, idf1 = (float(v) for v in re.search(r"HOTA ([\d.]+)\s+IDF1 ([\d.]+)", printed).groups())
    assert 40.0 < hota <= 100.0 and 40.0 < idf1 <= 100.0, printed
    assert (out / "tracks.txt").stat().st_size > 0 and (out / "node.log").exists()


def test_video_mode_needs_detector_weights(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        demo.main(["--out", str(tmp_path), "--video", "clip.mp4"])
    assert info.value.code == 2 and "--detector-weights" in capsys.readouterr().err


def test_parameter_overrides_are_read_as_yaml():
    overrides = ["tracker.appearance_gate=0.8", "detector.classes=[0, 2]", "publish_debug_image=true"]
    expected = {"tracker.appearance_gate": 0.8, "detector.classes": [0, 2], "publish_debug_image": True}
    assert demo.parse_overrides(overrides) == expected
    with pytest.raises(ValueError, match="PARAM=VALUE"):
        demo.parse_overrides(["tracker.alpha"])
