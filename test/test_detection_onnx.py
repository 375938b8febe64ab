"""ONNX backend: decode of each export layout on tiny models with known outputs."""
import math

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
import onnx
from onnx import TensorProto, helper, numpy_helper

from smiletrack_ros.detection import (
    DetectorConfig,
    DetectorConfigError,
    OnnxConfig,
    PrbConfig,
    build_detector,
)
from smiletrack_ros.detection.postprocess import detect_layout

SIZE = 64
NC = 2
POINTS = (SIZE // 8) ** 2 + (SIZE // 16) ** 2 + (SIZE // 32) ** 2  # 84 anchor points
IMAGE = np.zeros((64, 128, 3), np.uint8)  # letterboxed to 32x64 inside the 64x64 canvas: scale 0.5


@pytest.fixture
def constant_model(constant_onnx_model):
    """This file's input size by default."""
    return lambda path, output, size=SIZE: constant_onnx_model(path, output, size)


def _detector(path, **kw):
    kw.setdefault("classes", None)
    return build_detector(OnnxConfig(weights=path, device="cpu", **kw))


def test_yolox_raw_grid_decode(tmp_path, constant_model):
    raw = np.zeros((1, POINTS, 5 + NC), np.float32)
    # stride-8 cell (gx=3, gy=1): centre ((3+0.5)*8, (1+0.5)*8) = (28, 12), w 32, h 16
    raw[0, 1 * 8 + 3] = [0.5, 0.5, math.log(4), math.log(2), 0.9, 0.8, 0.1]
    # stride-16 cell (gx=1, gy=0) of class 1: centre (24, 8), w = h = 16
    raw[0, 64 + 1] = [0.5, 0.5, 0.0, 0.0, 0.5, 0.1, 0.6]
    det = _detector(constant_model(tmp_path / "yolox.onnx", raw))
    assert det.layout == "yolox" and det.pad_mode == "corner" and det.channel_order == "bgr"
    out = det(IMAGE)
    order = np.argsort(out.class_ids)
    np.testing.assert_allclose(out.boxes[order], [[24, 8, 88, 40], [32, 0, 64, 32]], atol=1e-3)
    np.testing.assert_allclose(out.scores[order], [0.72, 0.30], atol=1e-6)
    assert out.class_ids[order].tolist() == [0, 1]
    only_person = _detector(tmp_path / "yolox.onnx", classes=(0,))(IMAGE)
    assert only_person.class_ids.tolist() == [0]


def test_yolov5_layout_with_nms(tmp_path, constant_model):
    rows = np.zeros((1, 3 * POINTS, 5 + NC), np.float32)
    rows[0, 0] = [32, 32, 20, 40, 0.9, 0.9, 0.0]    # canvas (22, 12)-(42, 52), score 0.81
    rows[0, 1] = [33, 32, 20, 40, 0.9, 0.5, 0.0]    # near-duplicate, lower score: suppressed
    rows[0, 2] = [33, 32, 20, 40, 0.9, 0.0, 0.7]    # same place, other class: kept (class-offset NMS)
    rows[0, 3] = [10, 10, 4, 4, 0.04, 0.9, 0.0]     # below the score threshold
    det = _detector(constant_model(tmp_path / "v5.onnx", rows), score_threshold=0.05, nms_iou=0.5)
    assert det.layout == "yolov5" and det.pad_mode == "center"
    out = det(IMAGE)
    assert len(out) == 2
    # centre padding: the 32x64 image sits at rows 16..48 of the canvas
    np.testing.assert_allclose(out.boxes[0], [44, 0, 84, 64], atol=1e-3)
    np.testing.assert_allclose(out.scores, [0.81, 0.63], atol=1e-6)
    assert out.class_ids.tolist() == [0, 1]


def test_yolov8_layout_has_no_objectness(tmp_path, constant_model):
    out = np.zeros((1, 4 + NC, POINTS), np.float32)
    out[0, :, 5] = [32, 24, 16, 16, 0.0, 0.85]
    out[0, :, 6] = [32, 24, 16, 16, 0.3, 0.0]
    det = _detector(constant_model(tmp_path / "v8.onnx", out))
    assert det.layout == "yolov8"
    res = det(IMAGE)
    np.testing.assert_allclose(res.boxes, [[48, 0, 80, 32], [48, 0, 80, 32]], atol=1e-3)
    np.testing.assert_allclose(res.scores, [0.85, 0.3], atol=1e-6)
    assert res.class_ids.tolist() == [1, 0]


def test_layout_setting_overrides_detection(tmp_path, constant_model):
    rows = np.zeros((1, POINTS, 5 + NC), np.float32)  # looks like YOLOX by its size
    rows[0, 0] = [32, 32, 16, 16, 1.0, 1.0, 0.0]
    path = constant_model(tmp_path / "ambiguous.onnx", rows)
    assert _detector(path).layout == "yolox"
    forced = _detector(path, layout="yolov5")
    np.testing.assert_allclose(forced(IMAGE).boxes, [[48, 16, 80, 48]], atol=1e-3)


def test_undecidable_layout_names_the_setting(tmp_path, constant_model):
    with pytest.raises(ValueError, match="OnnxConfig.layout"):
        _detector(constant_model(tmp_path / "odd.onnx", np.zeros((1, 50, 7), np.float32)))
    with pytest.raises(ValueError, match=r"\(B, N, C\)"):
        detect_layout((3, 4), 64, (8, 16, 32))


def test_bad_inputs_and_settings(tmp_path, constant_model):
    path = constant_model(tmp_path / "m.onnx", np.zeros((1, POINTS, 7), np.float32))
    det = _detector(path)
    with pytest.raises(ValueError, match="uint8"):
        det(IMAGE.astype(np.float32))
    with pytest.raises(ValueError, match="HxWx3"):
        det(IMAGE[..., 0])
    with pytest.raises(DetectorConfigError, match="input_size"):
        _detector(path, input_size=128)
    with pytest.raises(FileNotFoundError):
        _detector(str(tmp_path / "missing.onnx"))
    with pytest.raises(DetectorConfigError, match="weights"):
        OnnxConfig()
    with pytest.raises(DetectorConfigError, match="nms_iou"):
        PrbConfig(nms_iou=0.0)
    with pytest.raises(DetectorConfigError, match="device"):
        PrbConfig(device="gpu0")
    with pytest.raises(DetectorConfigError, match="unknown detector setting"):
        DetectorConfig.from_mapping({"score_thresh": 0.1})


def test_yolox_nano_on_a_real_frame(shared_dir):
    from smiletrack_ros.mot.io import iter_frames, read_ground_truth

    seq = shared_dir / "data" / "MOT15" / "TUD-Stadtmitte"
    det = build_detector(OnnxConfig(weights=str(shared_dir / "models" / "yolox_nano.onnx"),
                                        device="cpu", nms_iou=0.6))
    assert (det.layout, det.input_size) == ("yolox", 416)
    _, image = next(iter_frames(seq, start=1, stop=2))
    out = det(image)
    gt = read_ground_truth(seq / "gt" / "gt.txt").pedestrians().frame(1)
    from smiletrack_ros.boxes import iou_matrix

    confident = out.boxes[out.scores >= 0.3]
    best = iou_matrix(gt.boxes, confident).max(1)
    assert (best >= 0.5).mean() >= 0.7, best
    assert set(out.class_ids.tolist()) == {0}


def _nanodet_model(path, maps):
    nodes, outputs = [], []
    for i, arr in enumerate(maps):
        nodes.append(helper.make_node("Constant", [], [f"out{i}"], value=numpy_helper.from_array(arr)))
        outputs.append(helper.make_tensor_value_info(f"out{i}", TensorProto.FLOAT, list(arr.shape)))
    graph = helper.make_graph(nodes, "nanodet_like",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
                              outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


def test_nanodet_maps_matched_by_shape(tmp_path):
    cls = [np.zeros((1, (SIZE // s) ** 2, NC), np.float32) for s in (8, 16, 32)]
    reg = [np.zeros((1, (SIZE // s) ** 2, 32), np.float32) for s in (8, 16, 32)]
    # stride-16 cell (x=1, y=2), centre (24, 40); each side's 8 bins put all mass on bin 1 (left,
    # top) or bin 2 (right, bottom): distances 16 and 32 px
    sides = np.full((4, 8), -30.0, np.float32)
    sides[0, 1] = sides[1, 1] = sides[2, 2] = sides[3, 2] = 30.0
    reg[1][0, 2 * 4 + 1] = sides.reshape(-1)
    cls[1][0, 2 * 4 + 1] = [0.7, 0.2]
    shuffled = [reg[2], cls[0], reg[0], cls[2], reg[1], cls[1]]  # exports do not keep a fixed order
    det = _detector(_nanodet_model(tmp_path / "nanodet.onnx", shuffled))
    assert det.layout == "nanodet" and det.pad_mode == "stretch"
    out = det(IMAGE)  # 64x128 stretched to 64x64: x scales by 2, y by 1
    np.testing.assert_allclose(out.boxes, [[16, 24, 112, 64]], atol=1e-2)
    np.testing.assert_allclose(out.scores, [0.7], atol=1e-6)
    with pytest.raises(ValueError, match="pair"):
        _detector(_nanodet_model(tmp_path / "bad.onnx", [reg[0], cls[1], reg[1], cls[2]]))


def test_nanodet_on_a_real_frame(shared_dir):
    from smiletrack_ros.boxes import iou_matrix
    from smiletrack_ros.mot.io import iter_frames, read_ground_truth

    seq = shared_dir / "data" / "MOT15" / "TUD-Stadtmitte"
    det = build_detector(OnnxConfig(weights=str(shared_dir / "models" / "nanodet_m.onnx"),
                                        device="cpu", nms_iou=0.6))
    assert det.layout == "nanodet"
    _, image = next(iter_frames(seq, start=1, stop=2))
    out = det(image)
    gt = read_ground_truth(seq / "gt" / "gt.txt").pedestrians().frame(1)
    best = iou_matrix(gt.boxes, out.boxes[out.scores >= 0.3]).max(1)
    assert (best >= 0.5).mean() >= 0.6, best


def _dynamic_batch_model(path, output: np.ndarray):
    """``output`` (1, N, C) broadcast to every image of a free batch axis (0 x the input's sum)."""
    axes = numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes")
    last = numpy_helper.from_array(np.array([3], np.int64), "last")
    zero = numpy_helper.from_array(np.zeros(1, np.float32), "zero")
    const = numpy_helper.from_array(output.astype(np.float32), "const")
    nodes = [helper.make_node("ReduceSum", ["images", "axes"], ["sum"], keepdims=1),
             helper.make_node("Squeeze", ["sum", "last"], ["per_image"]),
             helper.make_node("Mul", ["per_image", "zero"], ["nothing"]),
             helper.make_node("Add", ["nothing", "const"], ["output"])]
    graph = helper.make_graph(
        nodes, "batched_constant_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", output.shape[1], output.shape[2]])],
        [axes, last, zero, const])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


class _CountingSession:
    def __init__(self, session):
        self.session, self.batches = session, []

    def run(self, names, feeds):
        self.batches.append(next(iter(feeds.values())).shape[0])
        return self.session.run(names, feeds)


def test_detect_batch_runs_once_where_the_batch_axis_is_free(tmp_path, constant_model):
    raw = np.zeros((1, POINTS, 5 + NC), np.float32)
    raw[0, 1 * 8 + 3] = [0.5, 0.5, math.log(4), math.log(2), 0.9, 0.8, 0.1]
    images = [IMAGE, np.zeros((128, 64, 3), np.uint8), np.zeros((64, 64, 3), np.uint8)]
    fixed = _detector(constant_model(tmp_path / "fixed.onnx", raw))
    free = _detector(_dynamic_batch_model(tmp_path / "free.onnx", raw))
    assert not fixed.batched and free.batched
    fixed.session, free.session = _CountingSession(fixed.session), _CountingSession(free.session)
    one_by_one, together = fixed.detect_batch(images), free.detect_batch(images)
    assert fixed.session.batches == [1, 1, 1] and free.session.batches == [3]
    for a, b, image in zip(one_by_one, together, images, strict=True):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-4)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)
        assert len(a) == 1 and (a.boxes[0, 2:] <= image.shape[1::-1]).all()
    assert len({tuple(d.boxes[0]) for d in together}) == 3, "each image scaled back through its own letterbox"
