"""The pipelined node over real DDS: the tracks of the sequential node on a recorded bag (bitwise,
with a real embedder and, with ../shared, a real detector), the newest-frame policy under overload,
clean stops and lifecycle transitions with frames in the pipeline."""
import signal
import sys

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("smiletrack_ros.msg", reason="generated messages not installed (tools/test.sh)")
from rclpy.qos import QoSProfile, ReliabilityPolicy
from smiletrack_ros.msg import TrackArray
from vision_msgs.msg import Detection2DArray

from smiletrack_ros.bags import read_frames, write_scene_bag, write_video_bag
from smiletrack_ros.cli.replay_bag import header_stamp_ns
from smiletrack_ros.scene import SceneConfig, generate_scene

pytestmark = [pytest.mark.ros, pytest.mark.slow]
FPS = 10.0
# external detections + the shipped SLM (real network, CPU, one torch thread in both modes)
SLM_PARAMS = {"pipeline.mode": "pipelined", "detector.backend": "external", "embedder.enabled": True,
              "embedder.device": "cpu", "class_names": ["person"], "frame_rate": FPS, "diagnostics_period": 0.2,
              "tracker.preset": "reid", "input_qos.reliability": "reliable", "input_qos.depth": 50,
              "threads.torch": 1}


@pytest.fixture(scope="module")
def scene_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("pipeline") / "scene_bag"
    config = SceneConfig(width=320, height=240, num_people=4, num_frames=30, fps=FPS, seed=7)
    write_scene_bag(generate_scene(config), path, start_ns=3_000_000_000)
    return list(read_frames(path, detections_topic="/detections"))


def _replay(ros_nodes, params: dict, frames, window: int) -> tuple[list[bytes], dict[str, str]]:
    """Frames into a fresh node, at most ``window`` unanswered at a time: the number of frames the
    node takes in at once, so its pipeline is full but it never drops one (one more would wait in
    its slot and could be replaced there by the next). Returns every frame's tracks + full tracks as
    the node serialised them, and its counters."""
    node = ros_nodes.start(params)
    client = ros_nodes.client(node.domain)
    raw: dict[str, dict[int, bytes]] = {"tracks": {}, "tracks_full": {}}   # the node's own bytes
    for topic, msg_type in (("tracks", Detection2DArray), ("tracks_full", TrackArray)):
        client.node.create_subscription(msg_type, f"/{topic}", lambda data, t=topic: raw[t].__setitem__(
            header_stamp_ns(data), data), QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE), raw=True)
    external = params["detector.backend"] == "external"
    client.wait_connected(node, detections=external, timeout=60)
    # lock-step blank frames first, at the bag's rate just before it: a reliable endpoint may lose the
    # first samples after discovery, and the models' first runs are slow (the same in both modes)
    first, step = frames[0].stamp_ns * 1e-9, (frames[1].stamp_ns - frames[0].stamp_ns) * 1e-9
    for k in range(3, 0, -1):
        client.frame(first - k * step, (), image=np.zeros_like(frames[0].image), send_dets=external, timeout=30)
    keys: list[int] = []

    def unanswered() -> int:
        return sum(k not in client.full or k not in client.tracks for k in keys)

    for frame in frames:
        assert client.spin_until(lambda: unanswered() < window, 60), \
            f"no answer: {client.fresh_counters()} {node.output()[-2000:]}"
        client.spin_until(lambda: False, 0.03)    # the node takes its waiting frame once it published
        dets = frame.detections
        header = client.send(frame.stamp_ns * 1e-9, () if dets is None else dets.boxes, image=frame.image,
                             scores=None if dets is None else dets.scores, frame_id=frame.frame_id,
                             send_dets=dets is not None)
        keys.append(client.key(header))
    assert client.spin_until(lambda: unanswered() == 0, 60), \
        f"{unanswered()} frames unanswered: {client.fresh_counters()} {node.output()[-2000:]}"
    assert client.spin_until(lambda: all(k in raw["tracks"] and k in raw["tracks_full"] for k in keys), 10)
    out = [raw["tracks"][k] + raw["tracks_full"][k] for k in keys]
    counters = client.fresh_counters()
    seen: dict[str, str] = {}
    for message in client.diagnostics:       # the per-period figures of every period that had frames
        seen |= _values(message, client.fqn)
    counters = seen | counters
    client.close()
    node.stop(timeout=10)
    assert "Traceback" not in node.output(), node.output()
    return out, counters


def _values(diagnostics, fqn: str) -> dict[str, str]:
    status = next(s for s in diagnostics.status if s.hardware_id == fqn)
    return {kv.key: kv.value for kv in status.values}


# pipeline settings -> (its stages, frames it takes in at once without one waiting in its slot)
PIPELINED = {"pipeline.mode": "pipelined"}         # one embed worker (the default), crops cut in two
PIPELINED_E2 = {"pipeline.mode": "pipelined", "pipeline.embed_workers": 2}
LAYOUTS = {"pipelined": (PIPELINED, "detect|track", 2), "pipelined-e2": (PIPELINED_E2, "detect|embed|track", 3)}


def _same_tracks(ros_nodes, params: dict, frames, layouts=("pipelined",)) -> None:
    reference, seq = _replay(ros_nodes, params | {"pipeline.mode": "sequential"}, frames, window=1)
    assert seq["pipeline"] == "frame" and len(set(reference)) == len(frames)
    for name in layouts:
        settings, stages, window = LAYOUTS[name]
        pipelined, pipe = _replay(ros_nodes, params | settings, frames, window=window)
        assert pipe["pipeline"] == stages
        for counters in (seq, pipe):
            assert counters["frames_processed"] == str(len(frames) + 3) and counters["frames_dropped_busy"] == "0"
        differ = [k for k, (a, b) in enumerate(zip(reference, pipelined, strict=True)) if a != b]
        assert not differ, f"{name}: tracks differ in frames {differ}"
        for key in ("latency_ms_p50", "stage_detect_ms_p99", "stage_track_ms_p50", "wait_track_ms_p99",
                    "embed_ms_p50", "track_ms_p99"):
            assert float(pipe[key]) >= 0.0, key


def test_pipelined_node_tracks_a_bag_exactly_like_the_sequential_node(ros_nodes, scene_bag):
    _same_tracks(ros_nodes, SLM_PARAMS, scene_bag, layouts=("pipelined", "pipelined-e2"))


def test_pipelined_node_with_a_real_detector_and_reid_model_matches_sequential(ros_nodes, shared_dir,
                                                                                tmp_path):
    models = shared_dir / "models"
    if not (models / "yolox_nano.onnx").is_file() or not (models / "reid" / "osnet_x0_25_msmt17.onnx").is_file():
        pytest.skip("YOLOX-Nano / OSNet ONNX models not in ../shared/models")
    bag = tmp_path / "tud_bag"
    write_video_bag(shared_dir / "data" / "MOT15" / "TUD-Campus" / "TUD-Campus.mp4", bag, fps=25.0,
                    start_ns=1_700_000_000_000_000_000, max_frames=20)
    params = {"detector.backend": "onnx", "detector.weights": str(models / "yolox_nano.onnx"),
              "detector.device": "cpu", "embedder.backend": "onnx",
              "embedder.weights": str(models / "reid" / "osnet_x0_25_msmt17.onnx"), "embedder.device": "cpu",
              "class_names": ["person"], "frame_rate": 25.0, "diagnostics_period": 0.2,
              "input_qos.reliability": "reliable", "input_qos.depth": 50}
    _same_tracks(ros_nodes, params, list(read_frames(bag)), layouts=("pipelined", "pipelined-e2"))


def _crowd(k: int) -> np.ndarray:
    """Twelve people in a row: 12 SLM crops a frame, so the node is slower than the sender."""
    x = np.arange(12, dtype=np.float32) * 24 + 2 + k % 10
    return np.stack([x, np.full(12, 40.0), x + 22, np.full(12, 150.0)], axis=1)


def _crowd_frame(client, stamp: float, k: int, **kw):
    image = np.full((240, 320, 3), 60, np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(_crowd(k).astype(int)):
        image[y1:y2, x1:x2] = (20 * i + 10, 250 - 20 * i, 120)
    return (client.frame if kw.pop("wait", False) else client.send)(stamp, _crowd(k), image=image, **kw)


def _flood(client, count: int, t0: float) -> list[int]:
    return [client.key(_crowd_frame(client, t0 + k / FPS, k)) for k in range(count)]


def test_overload_drops_and_counts_frames_and_the_newest_is_processed(ros_nodes):
    node = ros_nodes.start(SLM_PARAMS | {"sync.max_pending": 100})   # a burst of 40: every image finds its pair
    client = ros_nodes.client(node.domain)
    client.wait_connected(node)
    _crowd_frame(client, 99.9, 0, wait=True, timeout=30)     # warm: the models have run once
    keys = _flood(client, 40, 100.0)
    assert client.spin_until(lambda: keys[-1] in client.full, 30), \
        f"the newest frame was never processed: {client.fresh_counters()}"
    client.spin_until(lambda: False, 0.5)
    counters = client.fresh_counters()
    received, processed = int(counters["frames_received"]), int(counters["frames_processed"])
    dropped = int(counters["frames_dropped_busy"])
    answered = [k for k in keys if k in client.full]
    assert dropped > 0 and processed + dropped == received == 41, str(counters)
    assert len(answered) == processed - 1 and answered == sorted(answered)
    assert counters["frames_in_flight"] == "0"
    client.close()
    node.stop(timeout=10)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_node_stops_cleanly_with_frames_in_every_stage(ros_nodes, sig):
    node = ros_nodes.start(SLM_PARAMS | {"pipeline.embed_workers": 2})   # detect | embed x 2 | track
    client = ros_nodes.client(node.domain)
    client.wait_connected(node)
    _crowd_frame(client, 99.9, 0, wait=True, timeout=30)
    _flood(client, 10, 100.0)
    client.spin_until(lambda: False, 0.3)       # frames now in detect, embed and track
    seconds = node.stop(sig, timeout=5.0)
    out = node.output()
    assert node.proc.returncode == 0 and "Traceback" not in out, out[-3000:]
    assert seconds < 5.0
    client.close()


def test_lifecycle_transitions_with_frames_in_flight(ros_nodes):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState

    command = [sys.executable, "-m", "smiletrack_ros.ros", "--managed", "--ros-args", "--params-file",
               str(ros_nodes.params_file(SLM_PARAMS))]
    node = ros_nodes.start(command=command)
    client = ros_nodes.client(node.domain)

    def change(transition: int) -> None:
        reply = client._call(ChangeState, "change_state", ChangeState.Request(transition=Transition(id=transition)),
                             timeout=30)
        assert reply.success, (transition, node.output()[-2000:])

    change(Transition.TRANSITION_CONFIGURE)
    change(Transition.TRANSITION_ACTIVATE)
    client.wait_connected(node)
    _crowd_frame(client, 99.9, 0, wait=True, timeout=30)
    _flood(client, 10, 100.0)
    change(Transition.TRANSITION_DEACTIVATE)       # frames still in the pipeline
    change(Transition.TRANSITION_CLEANUP)
    change(Transition.TRANSITION_CONFIGURE)
    change(Transition.TRANSITION_ACTIVATE)
    client.wait_connected(node)
    last = [_crowd_frame(client, 200.0 + k / FPS, k, wait=True, timeout=30) for k in range(4)][-1]
    assert len(client.ids(last)) == 12, "tracking runs again after cleanup and configure"
    counters = client.fresh_counters()
    assert counters["frames_in_flight"] == "0" and counters["processing_errors"] == "0", counters
    node.stop(timeout=10)
    assert node.proc.returncode == 0 and "Traceback" not in node.output(), node.output()[-3000:]
    client.close()


def test_two_cameras_in_one_node_track_apart_on_their_own_topics(ros_nodes):
    node = ros_nodes.start(SLM_PARAMS | {"cameras": ["front", "rear/left"]})
    clients = {name: ros_nodes.client(node.domain, f"/{name}") for name in ("front", "rear/left")}
    for name, client in clients.items():
        client.fqn = f"/smiletrack_tracker/{name}"     # the node's diagnostics status for this camera
        client.wait_connected(node)

    def walkers(k: int, camera: str) -> list:
        if camera == "front":
            return [[20 + 3 * k, 40, 60 + 3 * k, 140], [260 - 3 * k, 70, 300 - 3 * k, 170]]
        return [[120, 30 + 2 * k, 170, 150 + 2 * k]]

    last = {}
    for k in range(6):
        for name, client in clients.items():
            last[name] = client.frame(300.0 + k / FPS, walkers(k, name), timeout=30)
    assert clients["front"].ids(last["front"]) == ["1", "2"]
    assert clients["rear/left"].ids(last["rear/left"]) == ["1"]     # ids count per camera
    box = last["rear/left"].detections[0].bbox
    assert (box.center.position.x, box.size_x) == pytest.approx((145.0, 50.0), abs=2.0)   # its own walker
    for name, client in clients.items():
        counters = client.fresh_counters()
        assert counters["frames_processed"] == "6" and counters["frames_dropped_busy"] == "0", (name, counters)
    for client in clients.values():
        client.close()
    node.stop(timeout=10)
    assert node.proc.returncode == 0 and "Traceback" not in node.output(), node.output()[-3000:]


def test_the_launch_files_cameras_argument_starts_one_node_for_them_all(ros2_tools, ros_nodes, repo_dir):
    config = ros_nodes.params_file(SLM_PARAMS | {"embedder.enabled": False, "tracker.preset": "bytetrack"})
    launched = ros2_tools.launch(str(repo_dir / "launch" / "tracker.launch.py"), f"config:={config}",
                                 "cameras:=front, left")
    clients = {name: ros_nodes.client(launched.domain, f"/{name}") for name in ("front", "left")}
    for client in clients.values():
        client.wait_connected(launched, timeout=60)
    boxes = {"front": [[20, 40, 60, 140], [200, 50, 240, 150]], "left": [[100, 30, 150, 150]]}
    for k in range(4):
        last = {name: client.frame(400.0 + k / FPS, boxes[name], timeout=20) for name, client in clients.items()}
    assert clients["front"].ids(last["front"]) == ["1", "2"] and clients["left"].ids(last["left"]) == ["1"]
    for client in clients.values():
        client.close()
    launched.stop(timeout=10)
    assert "Traceback" not in launched.output(), launched.output()[-3000:]
