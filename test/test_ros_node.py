"""The tracker node as a process over real DDS: images + external detections in, tracks out.

The node runs from the package copy this test run imported (``ros_nodes`` in conftest) with a
params file, the external detector backend and no embedder, so no model weights are needed.
Frames go in lock-step (publish, wait for that stamp's tracks) so runs are deterministic.
"""
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("smiletrack_ros.msg", reason="generated messages not installed (tools/test.sh)")
from sensor_msgs.msg import CompressedImage, Image
from smiletrack_ros.msg import Track

from smiletrack_ros.image_codec import bgr_to_raw_fields

pytestmark = [pytest.mark.ros, pytest.mark.slow]
BASE_PARAMS = {"detector.backend": "external", "embedder.enabled": False, "diagnostics_period": 0.2, "frame_rate": 10.0,
               "input_qos.depth": 5, "class_names": ["person"], "tracker.preset": "bytetrack"}


def _key(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def _walkers(k: int, occluded: bool = False) -> list:
    a = [20 + 3 * k, 40, 60 + 3 * k, 140]
    b = [260 - 3 * k, 70, 300 - 3 * k, 170]
    return [a] if occluded else [a, b]


def _ids(msg) -> list[str]:
    return sorted(d.id for d in msg.detections)


@pytest.fixture(scope="module")
def live(ros_nodes):
    node = ros_nodes.start(BASE_PARAMS)
    client = ros_nodes.client(node.domain)
    client.wait_connected(node)
    yield client, node
    client.close()
    node.stop()


def test_ids_persist_and_survive_a_short_occlusion(live):
    h, _ = live
    t0 = 100.0
    seen = [h.frame(t0 + 0.1 * k, _walkers(k)) for k in range(6)]
    ids = _ids(seen[-1])
    assert len(ids) == 2 and _ids(seen[2]) == ids
    # b vanishes for 4 frames, then comes back where it walked to
    occluded = [h.frame(t0 + 0.1 * k, _walkers(k, occluded=True)) for k in range(6, 10)]
    assert all(len(m.detections) == 1 for m in occluded)
    back = [h.frame(t0 + 0.1 * k, _walkers(k)) for k in range(10, 14)]
    assert _ids(back[-1]) == ids


def test_headers_propagate_and_track_array_agrees(live):
    h, _ = live
    t0 = 200.0
    for k in range(5):
        msg = h.frame(t0 + 0.1 * k, _walkers(k), frame_id="cam_rear")
    key = _key(msg.header)
    assert msg.header.frame_id == "cam_rear" and key == int(round((t0 + 0.4) * 1e9))
    assert all(d.header == msg.header for d in msg.detections)
    full = h.full[key]
    assert full.header == msg.header
    by_id = {str(t.id): t for t in full.tracks}
    for det in msg.detections:
        track = by_id[det.id]
        assert track.state == Track.STATE_TRACKED and track.detection_index >= 0
        assert track.class_id == det.results[0].hypothesis.class_id == "person"
        assert track.score == pytest.approx(det.results[0].hypothesis.score, abs=1e-6)
        assert track.bbox.center.position.x == pytest.approx(det.bbox.center.position.x, abs=1e-3)
        assert track.bbox.size_y == pytest.approx(det.bbox.size_y, abs=1e-3)
        assert track.hits >= 2 and track.age >= track.hits - 1
    # boxes are in source pixels: close to the published detections
    want = np.array(_walkers(4), float)
    got = sorted([d.bbox.center.position.x - d.bbox.size_x / 2 for d in msg.detections])
    np.testing.assert_allclose(got, sorted(want[:, 0]), atol=2.0)


def test_detection_index_points_into_the_received_message(live):
    h, _ = live
    t0 = 260.0
    for k in range(4):  # index 0: a box under the detector's score threshold, dropped before tracking
        boxes = [[150, 10, 170, 50], *_walkers(k)]
        msg = h.frame(t0 + 0.1 * k, boxes, scores=[0.01, 0.9, 0.9])
    full = h.full[_key(msg.header)]
    matched = sorted((t.detection_index, round(t.bbox.center.position.x)) for t in full.tracks
                     if t.state == Track.STATE_TRACKED)
    assert [i for i, _ in matched] == [1, 2]
    for index, centre_x in matched:
        assert abs(centre_x - (boxes[index][0] + boxes[index][2]) / 2) <= 2


def test_malformed_images_are_rejected_and_tracking_continues(live):
    h, node = live
    t0 = 300.0
    for k in range(4):
        good = h.frame(t0 + 0.1 * k, _walkers(k))
    ids = _ids(good)
    bad = Image(**bgr_to_raw_fields(h.scene(_walkers(4))))
    bad.step = bad.step + 7                                  # step x height != data size
    odd = Image(**bgr_to_raw_fields(h.scene(_walkers(6))))
    odd.encoding = "yuv422_yuy2"
    malformed = [(bad, "size_mismatch"), (Image(height=0, width=0, encoding="bgr8", step=0), "zero_size"),
                 (odd, "unsupported_encoding")]
    for k, (image, reason) in enumerate(malformed, start=4):
        h.send(t0 + 0.1 * k, _walkers(k), image=image)   # one at a time: the node keeps only the newest
        h.wait_count(f"rejected_{reason}", 1)
    assert node.running()
    after = [h.frame(t0 + 0.1 * k, _walkers(k)) for k in range(7, 10)]
    assert _ids(after[-1]) == ids
    diag = h.diagnostics[-1].status[0]
    assert diag.level == diag.WARN and "rejected" in diag.message
    values = h.counters
    assert {"rate_hz", "latency_ms_mean", "frames_dropped_busy", "live_tracks", "device", "detector",
            "embedder"} <= set(values)
    assert values["detector"] == "external" and values["embedder"] == "off"


def test_runtime_parameter_change_takes_effect_and_is_validated(live):
    h, _ = live
    t0 = 400.0
    for k in range(3):
        msg = h.frame(t0 + 0.1 * k, _walkers(k))
    assert len(msg.detections) == 2
    result = h.set_parameter("detector.score_threshold", 0.95)   # above every detection's 0.9
    assert result.successful, result.reason
    try:
        assert h.frame(t0 + 0.3, _walkers(3)).detections == []
        refused = h.set_parameter("tracker.alpha", 3.0)
        assert not refused.successful and "alpha" in refused.reason
        read_only = h.set_parameter("image_topic", "other")
        assert not read_only.successful
        assert h.set_parameter("publish_debug_image", True).successful
    finally:
        assert h.set_parameter("detector.score_threshold", 0.05).successful
    for k in range(4, 8):
        msg = h.frame(t0 + 0.1 * k, _walkers(k))
    assert len(msg.detections) == 2
    assert h.spin_until(lambda: any(d.header == msg.header for d in h.debug_images), 3.0)
    debug = next(d for d in h.debug_images if d.header == msg.header)
    drawn = np.frombuffer(debug.data, np.uint8).reshape(h.scene([]).shape)
    assert debug.encoding == "bgr8" and not np.array_equal(drawn, h.scene(_walkers(7)))
    assert h.set_parameter("publish_debug_image", False).successful


def test_debug_image_is_written_before_the_frames_tracks(ros_nodes):
    """Fast DDS's shared-memory transport keeps a participant's outgoing messages in one 512 KiB
    segment: a large image written right after a frame's tracks recycles their buffers before a busy
    subscriber has read them, and the reliable repair then holds them (and later ones) for 0.5-3 s.
    So the node writes the debug image first; pinned by the writer's own source timestamps."""
    from smiletrack_ros.msg import TrackArray
    from vision_msgs.msg import Detection2DArray

    written: dict[tuple[str, int], int] = {}
    with ros_nodes.connected(BASE_PARAMS | {"publish_debug_image": True}) as (h, _):
        for topic, msg_type in (("tracks", Detection2DArray), ("tracks_full", TrackArray), ("debug_image", Image)):
            h.node.create_subscription(msg_type, f"/{topic}", lambda m, info, t=topic: written.__setitem__(
                (t, _key(m.header)), info["source_timestamp"]), h.reliable)
        h.spin_until(lambda: False, 0.5)
        frames = [h.frame(600.0 + 0.1 * k, _walkers(k)) for k in range(4)]
        keys = [_key(f.header) for f in frames]
        assert h.spin_until(lambda: all((t, k) in written for t in ("tracks", "tracks_full", "debug_image")
                                        for k in keys), 3.0), sorted(written)
    for k in keys:
        assert written["debug_image", k] < written["tracks", k] < written["tracks_full", k]


def test_time_going_backwards_resets_cleanly(live):
    h, node = live
    t0 = 500.0
    for k in range(4):
        first = h.frame(t0 + 0.1 * k, _walkers(k))
    again = [h.frame(t0 - 5.0 + 0.1 * k, _walkers(k)) for k in range(4)]   # the bag loops
    assert node.running()
    assert len(again[-1].detections) == 2
    assert set(_ids(again[-1])).isdisjoint(_ids(first))             # fresh tracks, ids never reused
    h.wait_count("time_resets", 1)


def test_bad_parameter_fails_startup_naming_it(ros_nodes):
    for bad, name in (({"tracker.stage1_match_threshold": 5.0}, "tracker.stage1_match_threshold"),
                      ({"input_qos.reliability": "mostly"}, "'input_qos.reliability'")):
        node = ros_nodes.start(BASE_PARAMS | bad)
        assert node.wait_exit() == 2
        out = node.output()
        assert name in out and "invalid configuration" in out and "Traceback" not in out, out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_stop_the_node_quickly_without_traceback(ros_nodes, sig):
    node = ros_nodes.start(BASE_PARAMS)
    client = ros_nodes.client(node.domain)
    client.wait_connected(node)
    client.frame(1.0, _walkers(0))
    client.close()
    elapsed = node.stop(sig)
    assert elapsed < 1.0, f"took {elapsed:.2f} s"
    assert "Traceback" not in node.output(), node.output()
    assert node.proc.returncode == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_while_loading_exits_at_once(ros_nodes, sig):
    node = ros_nodes.start(BASE_PARAMS)
    time.sleep(0.3)                                   # still importing
    elapsed = node.stop(sig)
    assert elapsed < 1.0 and "Traceback" not in node.output(), node.output()
    assert node.proc.returncode in (0, 128 + sig)


def test_installed_executable_runs_with_its_own_interpreter(ros_nodes):
    """lib/smiletrack_ros/tracker_node, where launch_ros looks for it, started as launch_ros does
    (exec, no interpreter named) with no venv on PATH: its first line must name the venv's python."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        executable = Path(get_package_prefix("smiletrack_ros")) / "lib" / "smiletrack_ros" / "tracker_node"
    except PackageNotFoundError:
        pytest.skip("smiletrack_ros not installed on AMENT_PREFIX_PATH (tools/setup_env.sh installs it)")
    params = ros_nodes.params_file(BASE_PARAMS | {"output_qos.depth": 0})
    node = ros_nodes.start(command=[str(executable), "--ros-args", "--params-file", str(params)],
                           env={"PATH": "/usr/bin:/bin"})
    assert node.wait_exit() == 2, node.output()
    assert "'output_qos.depth'" in node.output() and "Traceback" not in node.output()


def test_compressed_images_with_sim_time(ros_nodes):
    """use_sim_time without any /clock: tracking follows the image stamps, diagnostics still flow."""
    node = ros_nodes.start(BASE_PARAMS | {"compressed": True, "use_sim_time": True})
    h = ros_nodes.client(node.domain)
    h.wait_connected(node, compressed=True)

    def jpeg(k):
        ok, data = cv2.imencode(".jpg", h.scene(_walkers(k)))
        return CompressedImage(format="jpeg", data=data.tobytes())

    for k in range(4):
        msg = h.frame(10.0 + 0.1 * k, _walkers(k), image=jpeg(k))
    ids = _ids(msg)
    assert len(ids) == 2
    h.send(10.4, _walkers(4), image=CompressedImage(format="jpeg", data=b"\xff\xd8garbage"))
    h.wait_count("rejected_corrupt_compressed", 1)
    assert _ids(h.frame(10.5, _walkers(5), image=jpeg(5))) == ids
    node.stop()


def test_namespaced_cameras_one_with_the_slm_embedder(ros_nodes, tmp_path):
    """Two cameras = two namespaced nodes with the same relative topics; camera a runs the real SLM
    embedder (untrained weights written here, so no shipped file is needed)."""
    torch = pytest.importorskip("torch")
    from smiletrack_ros.embedding import ModelCard, SLMNet, SlmSpec, save_weights

    torch.manual_seed(0)
    weights = tmp_path / "slm_test.safetensors"
    save_weights(SLMNet(SlmSpec()), weights, ModelCard(spec=SlmSpec(), name="untrained-test"))
    domain = ros_nodes.new_domain()
    slm = {"embedder.enabled": True, "embedder.weights": str(weights), "embedder.device": "cpu",
           "tracker.preset": "paper"}
    nodes = {"/cam_a": ros_nodes.start(BASE_PARAMS | slm, domain=domain, namespace="/cam_a"),
             "/cam_b": ros_nodes.start(BASE_PARAMS, domain=domain, namespace="/cam_b")}
    clients = {ns: ros_nodes.client(domain, ns) for ns in nodes}
    for ns, h in clients.items():
        h.wait_connected(nodes[ns])
    for k in range(5):
        a = clients["/cam_a"].frame(20.0 + 0.1 * k, _walkers(k))
        b = clients["/cam_b"].frame(30.0 + 0.1 * k, _walkers(k, occluded=True))
    assert len(a.detections) == 2 and len(b.detections) == 1
    assert _ids(b) == ["1"] and _ids(a) == ["1", "2"]          # separate trackers, separate ids
    full = clients["/cam_a"].full[_key(a.header)]
    assert all(0.0 <= t.appearance_similarity <= 1.0 for t in full.tracks if t.state == Track.STATE_TRACKED)
    ha, hb = clients["/cam_a"], clients["/cam_b"]
    assert ha.spin_until(lambda: "slm" in ha.counters.get("embedder", ""), 5.0)
    assert ha.counters["device"] == "cpu"
    assert hb.spin_until(lambda: bool(hb.counters), 5.0) and hb.counters["embedder"] == "off"
    for node in nodes.values():
        node.stop()


def test_node_processes_import_the_package_this_run_imported(ros_nodes):
    """Under ``python -m pytest`` from a checkout the node must run the checkout's code, not the
    installed copy (and under tools/test.sh the installed copy): the same file either way."""
    import smiletrack_ros

    probe = [sys.executable, "-c", "import smiletrack_ros, smiletrack_ros.msg; print(smiletrack_ros.__file__)"]
    done = subprocess.run(probe, env=ros_nodes.env(ros_nodes.new_domain()), cwd=ros_nodes.workdir,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).resolve() == Path(smiletrack_ros.__file__).resolve()


def test_every_parameter_is_readable_and_a_dump_loads_back(live, ros_nodes):
    """GetParameters answers for every declared name (the tracker.* fields included, issue 15
    defect 2), and the values written as a params file, as `ros2 param dump` does, start an
    identical node."""
    from rclpy.parameter import parameter_value_to_python

    h, _ = live
    assert len(h.get_parameters(["image_topic", "tracker.alpha"])) == 2
    names = h.list_parameters()
    assert {"tracker.alpha", "tracker.high_threshold", "detector.stamp_tolerance", "frame_rate"} <= set(names)
    values = dict(zip(names, (parameter_value_to_python(v) for v in h.get_parameters(names)), strict=True))
    assert values["tracker.preset"] == "bytetrack" and values["tracker.high_threshold"] == 0.6
    assert values["tracker.appearance_gate"] == -2.0                    # None in the bytetrack preset
    # reloaded without class_names: its empty-list default must be readable too
    again = ros_nodes.start({k: v for k, v in values.items() if k != "class_names"})
    client = ros_nodes.client(again.domain)
    client.wait_connected(again)
    reloaded = dict(zip(names, (parameter_value_to_python(v) for v in client.get_parameters(names)), strict=True))
    assert reloaded == values | {"class_names": []}
    client.close()
    again.stop()


def test_compressed_topic_follows_the_remapped_image_topic(ros_nodes):
    """`-r image:=/camera/image_raw` with compressed: true subscribes to /camera/image_raw/compressed
    (image_transport's convention; issue 15 defect 3)."""
    node = ros_nodes.start(BASE_PARAMS | {"compressed": True}, ros_args=("-r", "image:=/camera/image_raw"))
    h = ros_nodes.client(node.domain, image_topic="/camera/image_raw")
    h.wait_connected(node, compressed=True)
    ok, data = cv2.imencode(".jpg", h.scene(_walkers(0)))
    assert ok
    h.frame(1.0, _walkers(0), image=CompressedImage(format="jpeg", data=data.tobytes()))   # tracks came back
    assert "/camera/image_raw/compressed" in node.output()
    node.stop()


@pytest.mark.parametrize("name, value", [
    ("frame_rate", float("inf")), ("frame_rate", float("nan")), ("diagnostics_period", float("inf")),
    ("detector.stamp_tolerance", float("inf")), ("detector.stamp_tolerance", 1e300), ("input_qos.depth", 10**6),
])
def test_non_finite_or_out_of_range_settings_are_refused_at_start(ros_nodes, name, value):
    """Issue 16 item 7: the documented message and exit 2, no traceback."""
    node = ros_nodes.start(BASE_PARAMS | {name: value})
    assert node.wait_exit() == 2, node.output()
    out = node.output()
    assert f"invalid configuration: parameter '{name}'" in out and "Traceback" not in out, out


def test_descriptors_show_the_validated_limits(live):
    h, _ = live
    rate, depth, gate = h.describe_parameters(["frame_rate", "input_qos.depth", "tracker.appearance_gate"])
    assert (rate.floating_point_range[0].from_value, rate.floating_point_range[0].to_value) == (0.1, 1000.0)
    assert "finite" in rate.additional_constraints and rate.read_only
    assert (depth.integer_range[0].from_value, depth.integer_range[0].to_value) == (1, 1000)
    assert "none (no gate)" in gate.additional_constraints and not gate.read_only
    assert not h.set_parameter("tracker.alpha", float("nan")).successful


def test_embedder_backends_are_node_parameters(ros_nodes, shared_dir):
    """embedder.backend + embedder.weights pick the appearance model: the OSNet ONNX export tracks
    with appearance (the embedder named in /diagnostics); a bad backend or a model file of the
    wrong kind refuses the configuration, naming the parameter."""
    onnx = shared_dir / "models" / "reid" / "osnet_x0_25_msmt17.onnx"
    if not onnx.is_file():
        pytest.skip(f"{onnx} not found")
    params = BASE_PARAMS | {"embedder.enabled": True, "embedder.backend": "onnx", "embedder.weights": str(onnx),
                            "embedder.device": "cpu", "embedder.threads": 1, "tracker.preset": "reid"}
    node = ros_nodes.start(params)
    client = ros_nodes.client(node.domain)
    client.wait_connected(node)
    seen = [client.frame(300.0 + 0.1 * k, _walkers(k)) for k in range(4)]
    assert len(_ids(seen[-1])) == 2 and _ids(seen[-1]) == _ids(seen[1])
    counters = client.fresh_counters()
    assert counters["embedder"].startswith("onnx:osnet_x0_25_msmt17.onnx"), counters["embedder"]
    node.stop()
    for bad, name in (({"embedder.backend": "clip"}, "embedder.backend"),
                      ({"embedder.weights": str(shared_dir / "models" / "yolox_nano.onnx")}, "embedder.")):
        refused = ros_nodes.start(params | bad)
        assert refused.wait_exit() == 2
        out = refused.output()
        assert name in out and "invalid configuration" in out and "Traceback" not in out, out
