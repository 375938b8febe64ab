"""Shared test set-up: DDS isolation, the optional ../shared data, and the one way tests
start the tracker node (``ros_nodes``) and talk to it (``ros_nodes.client``)."""
from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

# Keep DDS traffic on this machine and away from other test processes: a domain
# id per pytest process, chosen before any test imports rclpy.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SMILETRACK_SHARED", REPO.parent / "shared"))
NODE_NAME = "smiletrack_tracker"
SCENE_SIZE = (240, 320)   # height, width of the client's drawn frames


def _import_bench() -> None:
    """Make the checkout's bench/ (not installed) importable as ``bench``, by its path.

    A sys.path entry for the checkout would do it too, but would also put the
    checkout's smiletrack_ros ahead of the installed copy that tools/test.sh tests.
    """
    if importlib.util.find_spec("bench") is not None:  # python -m pytest from the root: found already
        return
    spec = importlib.util.spec_from_file_location("bench", REPO / "bench" / "__init__.py",
                                                  submodule_search_locations=[str(REPO / "bench")])
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module
    spec.loader.exec_module(module)


_import_bench()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (docs, data, models); tests needing it skip cleanly without it."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"shared data not found at {SHARED} (set SMILETRACK_SHARED)")
    return SHARED


@pytest.fixture(scope="module")
def torch_one_thread():
    """Small torch workloads (tiny convolutions, short trainings) run far faster on one thread on a
    machine shared with other jobs; the module's fixtures and tests run with it, then it is undone."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def constant_onnx_model() -> Callable[..., str]:
    """``build(path, output, size)``: writes an ONNX detector whose single output is the constant
    ``output`` for a (1, 3, size, size) input, so a backend's decode sees exactly these numbers."""
    pytest.importorskip("onnx")
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def build(path: Path, output: np.ndarray, size: int) -> str:
        const = helper.make_node("Constant", [], ["raw"], value=numpy_helper.from_array(output.astype(np.float32)))
        ident = helper.make_node("Identity", ["raw"], ["output"])
        graph = helper.make_graph(
            [const, ident], "constant_detector",
            [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, list(output.shape))])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.save(model, str(path))
        return str(path)

    return build


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


@pytest.fixture(scope="session")
def image_bombs() -> dict[str, bytes]:
    """Decompression bombs, tiny on disk (issue 16.1): ``jpeg``, 631 bytes: a real 8x8 JPEG whose
    frame header is rewritten to 30000x30000 (2.7 GB decoded); ``png``, 17.6 KB: a valid 1-bit
    grey PNG of 12000x12000 zeros (432 MB decoded as BGR)."""
    import cv2
    import numpy as np

    ok, enc = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 50])
    jpeg = bytearray(enc.tobytes())
    struct.pack_into(">HH", jpeg, jpeg.index(b"\xff\xc0") + 5, 30000, 30000)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    side = 12000
    row = b"\x00" * (1 + (side + 7) // 8)
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
           + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return {"jpeg": bytes(jpeg), "png": png}


# ---- the node as a process ---------------------------------------------------------------
@dataclass
class NodeProcess:
    """One started node (or ``ros2 launch``): its process, domain, namespace and log file."""

    proc: subprocess.Popen
    domain: int
    namespace: str
    log: Path

    @property
    def fqn(self) -> str:
        return f"{self.namespace}/{NODE_NAME}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_exit(self, timeout: float = 60.0) -> int:
        """The exit status of a node expected to end by itself (e.g. a refused configuration)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"node still running after {timeout} s: {self.output()[-2000:]}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 5.0) -> float:
        """Signals the process group as a launcher would; returns the seconds it took to exit.
        Fails the test if it needs SIGKILL."""
        if not self.running():
            return 0.0
        start = time.monotonic()
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            pytest.fail(f"node did not stop within {timeout} s after {sig!r}: {self.output()[-2000:]}")
        return time.monotonic() - start


class NodeLauncher:
    """Starts node processes from the same copy of the package this test run imported
    (a checkout under ``python -m pytest``, the installed copy under tools/test.sh), each on a
    domain of its own with discovery limited to localhost; stops whatever is left at the end."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self._domains = itertools.count(int(os.environ["ROS_DOMAIN_ID"]))
        self._started: list[NodeProcess] = []
        self._clients: list[RosClient] = []
        self._names = itertools.count()

    def new_domain(self) -> int:
        return next(self._domains) % 200 + 1

    def env(self, domain: int) -> dict[str, str]:
        from smiletrack_ros.ros.process import same_package_env

        return same_package_env(dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                                     PYTHONUNBUFFERED="1"))

    def params_file(self, params: dict[str, Any]) -> Path:
        path = self.workdir / f"params_{next(self._names)}.yaml"
        path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
        return path

    def start(self, params: dict[str, Any] | None = None, *, domain: int | None = None, namespace: str = "",
              ros_args: tuple[str, ...] = (), command: list[str] | None = None,
              env: dict[str, str] | None = None) -> NodeProcess:
        """``python -m smiletrack_ros.ros --ros-args --params-file <params> [-r __ns:=ns] ros_args``,
        or ``command`` (e.g. ``ros2 launch ...``) in the same environment (plus ``env``)."""
        from smiletrack_ros.ros.process import node_command

        domain = self.new_domain() if domain is None else domain
        if command is None:
            args = ["--params-file", str(self.params_file(params or {}))]
            args += ["-r", f"__ns:={namespace}"] if namespace else []
            command = node_command(*args, *ros_args)
        log = self.workdir / f"node_{next(self._names)}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(command, cwd=self.workdir, env=self.env(domain) | (env or {}), stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        node = NodeProcess(proc, domain, namespace, log)
        self._started.append(node)
        return node

    def client(self, domain: int, namespace: str = "", **kw: Any) -> RosClient:
        client = RosClient(domain, namespace, **kw)
        self._clients.append(client)
        return client

    @contextlib.contextmanager
    def connected(self, params: dict[str, Any], **wait: Any) -> Iterator[tuple[RosClient, NodeProcess]]:
        """A node started with ``params`` and a client connected to it (``wait``: the options of
        ``RosClient.wait_connected``); the client is closed and the node stopped on exit."""
        node = self.start(params)
        client = self.client(node.domain)
        try:
            client.wait_connected(node, **wait)
            yield client, node
        finally:
            client.close()
            node.stop()

    def close(self) -> None:
        for client in self._clients:
            client.close()
        for node in self._started:
            if node.running():
                os.killpg(node.proc.pid, signal.SIGKILL)
                node.proc.wait()


@pytest.fixture(scope="session")
def ros_nodes(tmp_path_factory):
    pytest.importorskip("rclpy")
    pytest.importorskip("smiletrack_ros.msg", reason="generated messages not installed (tools/setup_env.sh)")
    launcher = NodeLauncher(tmp_path_factory.mktemp("nodes"))
    yield launcher
    launcher.close()


class Ros2Tools:
    """The ROS 2 command-line tools (``ros2 launch``, ``ros2 param`` ...) built by tools/setup_env.sh
    from ../shared/ros2-tools, run as subprocesses in a node's environment (same domain, the
    package copy this run imported first on PYTHONPATH, the installed package on AMENT_PREFIX_PATH)."""

    def __init__(self, target: Path, launcher: NodeLauncher):
        self.target, self.launcher = target, launcher
        self.site = next(target.glob("lib/python3*/site-packages"))

    def env(self, domain: int) -> dict[str, str]:
        env = self.launcher.env(domain)
        join = os.pathsep.join
        env["PATH"] = join([str(self.target / "bin"), str(Path(sys.executable).parent), env.get("PATH", "")])
        env["PYTHONPATH"] = join([env["PYTHONPATH"], str(self.site)])
        env["AMENT_PREFIX_PATH"] = join([p for p in (env.get("AMENT_PREFIX_PATH"), str(self.target)) if p])
        env["LD_LIBRARY_PATH"] = join([p for p in (str(self.target / "lib"), env.get("LD_LIBRARY_PATH")) if p])
        return env

    def launch(self, *args: str, domain: int | None = None, env: dict[str, str] | None = None) -> NodeProcess:
        """``ros2 launch ARGS`` in its own process group, as a user starts it."""
        domain = self.launcher.new_domain() if domain is None else domain
        return self.launcher.start(command=[str(self.target / "bin" / "ros2"), "launch", *args], domain=domain,
                                   env=self.env(domain) | (env or {}))

    def run(self, *args: str, domain: int, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """``ros2 ARGS`` (e.g. ``param get /smiletrack_tracker image_topic``) to completion."""
        return subprocess.run([str(self.target / "bin" / "ros2"), *args], env=self.env(domain), capture_output=True,
                              text=True, timeout=timeout, cwd=self.launcher.workdir)


@pytest.fixture(scope="session")
def ros2_tools(ros_nodes) -> Ros2Tools:
    """Skips without the tool set (tools/setup_env.sh builds it when ../shared/ros2-tools exists)."""
    target = Path(os.environ.get("SMILETRACK_ROS2_TOOLS", REPO / ".venv-ros2-tools"))
    if not (target / "bin" / "ros2").is_file():
        pytest.skip(f"ROS 2 launch tools not built at {target} (tools/setup_env.sh builds them from ../shared)")
    return Ros2Tools(target, ros_nodes)


def stamp_key(header: Any) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


class RosClient:
    """The test side of a node: publishes images (+ external detections, camera_info, /clock),
    collects tracks, full tracks, debug images, the node's diagnostics and any other output
    (``collect``), and calls its parameter services."""

    def __init__(self, domain: int, namespace: str = "", *, image_topic: str | None = None):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image
        from smiletrack_ros.msg import TrackArray
        from vision_msgs.msg import Detection2DArray

        from smiletrack_ros.ros.ground_settings import camera_info_beside

        self.namespace, self.fqn = namespace, f"{namespace}/{NODE_NAME}"
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("smiletrack_test_client", context=self.context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.reliable = reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        image_topic = image_topic or f"{namespace}/image"
        self.image_pub = self.node.create_publisher(Image, image_topic, reliable)
        self.compressed_pub = self.node.create_publisher(CompressedImage, f"{image_topic}/compressed", reliable)
        self.camera_info_pub = self.node.create_publisher(CameraInfo, camera_info_beside(image_topic), reliable)
        self.det_pub = self.node.create_publisher(Detection2DArray, f"{namespace}/detections", reliable)
        self._clock_pub: Any = None
        self.last_stamp = 0.0       # the newest stamp ``send`` used
        self.tracks: dict[int, Any] = {}
        self.full: dict[int, Any] = {}
        self.debug_images: list[Any] = []
        self.diagnostics: list[Any] = []
        self.counters: dict[str, str] = {}
        self.node.create_subscription(Detection2DArray, f"{namespace}/tracks",
                                      lambda m: self.tracks.__setitem__(stamp_key(m.header), m), reliable)
        self.node.create_subscription(TrackArray, f"{namespace}/tracks_full",
                                      lambda m: self.full.__setitem__(stamp_key(m.header), m), reliable)
        self.node.create_subscription(Image, f"{namespace}/debug_image", self.debug_images.append, reliable)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self._closed = False

    def _on_diagnostics(self, msg: Any) -> None:
        for status in msg.status:
            if status.hardware_id == self.fqn:     # several nodes share /diagnostics
                self.diagnostics.append(msg)
                self.counters = {kv.key: kv.value for kv in status.values}

    # ---- spinning ---------------------------------------------------------------------
    def spin_until(self, condition: Callable[[], Any], timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if condition():
                return True
            self.executor.spin_once(timeout_sec=0.02)
        return bool(condition())

    def wait_connected(self, node: NodeProcess, *, compressed: bool = False, detections: bool = True,
                       camera_info: bool = False, timeout: float = 30.0) -> None:
        """Until the node subscribes to our inputs (``camera_info`` too when asked) and publishes
        its outputs (fails if it exits)."""
        image_pub = self.compressed_pub if compressed else self.image_pub
        ok = self.spin_until(lambda: not node.running() or (
            image_pub.get_subscription_count() > 0
            and (not detections or self.det_pub.get_subscription_count() > 0)
            and (not camera_info or self.camera_info_pub.get_subscription_count() > 0)
            and self.node.count_publishers(f"{self.namespace}/tracks") > 0
            and self.node.count_publishers(f"{self.namespace}/tracks_full") > 0), timeout)
        if not ok or not node.running():
            node.stop()
            pytest.fail(f"node did not come up (exit {node.proc.poll()}): {node.output()[-3000:]}")
        self.spin_until(lambda: False, 0.3)

    # ---- inputs -----------------------------------------------------------------------
    @staticmethod
    def header(stamp: float, frame_id: str = "cam"):
        from std_msgs.msg import Header

        header = Header(frame_id=frame_id)
        header.stamp.sec, header.stamp.nanosec = int(stamp), int(round((stamp % 1) * 1e9))
        return header

    @staticmethod
    def scene(boxes) -> np.ndarray:
        """A flat frame with each box filled in its own colour."""
        image = np.full((*SCENE_SIZE, 3), 60, np.uint8)
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            image[int(y1):int(y2), int(x1):int(x2)] = (40 * i + 80, 200 - 50 * i, 120)
        return image

    @staticmethod
    def detection_array(header: Any, boxes, scores=None, class_names=("person",)):
        """A Detection2DArray of class-0 ``boxes`` (scores default 0.9), by the package's one encoder."""
        from smiletrack_ros.detections import Detections
        from smiletrack_ros.ros.messages import detection_array_message

        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.full(len(boxes), 0.9, np.float32) if scores is None else np.asarray(scores, np.float32)
        return detection_array_message(header, Detections(boxes, scores, np.zeros(len(boxes), np.int64)), class_names)

    def send(self, stamp: float | None, boxes=(), *, image=None, dets=None, frame_id: str = "cam", scores=None,
             send_image: bool = True, send_dets: bool = True, header: Any = None, camera_info: Any = None) -> Any:
        """Publishes one frame: its ``camera_info`` when given, its detections (``dets`` or ``boxes``)
        and ``image`` (an Image/CompressedImage message or a BGR array; default the drawn scene),
        all with ``header`` (default: ``stamp``, ``frame_id``); returns the header used."""
        from sensor_msgs.msg import CompressedImage, Image

        from smiletrack_ros.image_codec import bgr_to_raw_fields

        if header is None:
            header = self.header(stamp, frame_id)
            self.last_stamp = max(self.last_stamp, stamp)
        if camera_info is not None:
            camera_info.header = header
            self.camera_info_pub.publish(camera_info)
        if send_dets:
            msg = dets if dets is not None else self.detection_array(header, boxes, scores)
            msg.header = header
            self.det_pub.publish(msg)
        if send_image:
            image = self.scene(boxes) if image is None else image
            msg = image if isinstance(image, (Image, CompressedImage)) else Image(**bgr_to_raw_fields(image))
            msg.header = header
            (self.compressed_pub if isinstance(msg, CompressedImage) else self.image_pub).publish(msg)
        return header

    def frame(self, stamp: float, boxes=(), timeout: float = 3.0, **kw: Any) -> Any:
        """Publishes one frame and waits for its tracks and full tracks (one resend if DDS lost it)."""
        for _ in range(2):
            key = stamp_key(self.send(stamp, boxes, **kw))
            self.tracks.pop(key, None)
            self.full.pop(key, None)
            if self.spin_until(lambda k=key: k in self.tracks and k in self.full, timeout):
                return self.tracks[key]
        pytest.fail(f"no tracks for stamp {stamp}")

    key = staticmethod(stamp_key)

    def publish_clock(self, sec: int) -> None:
        """One /clock message (for a node on ``use_sim_time``), once the node subscribes to it."""
        from rosgraph_msgs.msg import Clock

        if self._clock_pub is None:
            self._clock_pub = self.node.create_publisher(Clock, "/clock", 10)
        assert self.spin_until(lambda: self._clock_pub.get_subscription_count() > 0, 5.0), "no /clock subscriber"
        clock = Clock()
        clock.clock.sec = sec
        self._clock_pub.publish(clock)

    def collect(self, msg_type: Any, name: str, header_of: Callable[[Any], Any] = lambda m: m.header) -> dict[int, Any]:
        """Messages of the node's output ``name`` (beside tracks), by the stamp of ``header_of(msg)``;
        returns once the subscription has met the node's publisher (up to 5 s)."""
        out: dict[int, Any] = {}
        sub = self.node.create_subscription(msg_type, f"{self.namespace}/{name}",
                                            lambda m: out.__setitem__(stamp_key(header_of(m)), m), self.reliable)
        self.spin_until(lambda: sub.get_publisher_count() > 0, 5.0)
        return out

    @staticmethod
    def ids(msg: Any) -> list[str]:
        return sorted(d.id for d in msg.detections)

    # ---- diagnostics ------------------------------------------------------------------
    def count(self, key: str) -> int:
        return int(self.counters.get(key, 0))

    def fresh_counters(self, timeout: float = 3.0) -> dict[str, str]:
        """The counters of the next diagnostics message (published after everything sent so far)."""
        self.counters = {}
        assert self.spin_until(lambda: bool(self.counters), timeout), "no diagnostics"
        return self.counters

    def wait_count(self, key: str, at_least: int, timeout: float = 5.0) -> None:
        assert self.spin_until(lambda: self.count(key) >= at_least, timeout), (key, at_least, str(self.counters))

    # ---- parameters -------------------------------------------------------------------
    def _call(self, srv_type: Any, service: str, request: Any, timeout: float = 5.0) -> Any:
        client = self.node.create_client(srv_type, f"{self.fqn}/{service}")
        try:
            assert client.wait_for_service(timeout_sec=timeout), f"no {self.fqn}/{service}"
            future = client.call_async(request)
            assert self.spin_until(future.done, timeout), f"{service} did not answer"
            return future.result()
        finally:
            self.node.destroy_client(client)

    def set_parameter(self, name: str, value: Any) -> Any:
        """The SetParametersResult of one change."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        return self._call(SetParameters, "set_parameters", request).results[0]

    def get_parameters(self, names: list[str]) -> list[Any]:
        """The ParameterValue messages GetParameters returns for ``names``."""
        from rcl_interfaces.srv import GetParameters

        return list(self._call(GetParameters, "get_parameters", GetParameters.Request(names=names)).values)

    def list_parameters(self) -> list[str]:
        from rcl_interfaces.srv import ListParameters

        return list(self._call(ListParameters, "list_parameters", ListParameters.Request()).result.names)

    def describe_parameters(self, names: list[str]) -> list[Any]:
        from rcl_interfaces.srv import DescribeParameters

        request = DescribeParameters.Request(names=names)
        return list(self._call(DescribeParameters, "describe_parameters", request).descriptors)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.node.destroy_node()
            self.context.try_shutdown()
