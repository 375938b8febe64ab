"""PRB-FPN network: every variant builds, and forward/decode give the expected shapes."""
import numpy as np
import pytest
import torch

from smiletrack_ros.detection import DetectorConfigError, PrbConfig, build_detector
from smiletrack_ros.detection.prb.detector import PRBDetector
from smiletrack_ros.detection.prb.modules import ReOrg
from smiletrack_ros.detection.prb.network import PRBNet, SpecError
from smiletrack_ros.detection.prb.variants import VARIANTS, variant_spec

LEVELS = {"prb-2py-e6e-1280": (4, (8, 16, 32, 64)), "prb-fpn-csp-640": (3, (8, 16, 32))}


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def small_nets():
    torch.manual_seed(0)
    return {name: PRBNet(variant_spec(name, nc=3, width_multiple=0.125)).eval() for name in LEVELS}


def test_every_variant_is_covered():
    assert set(VARIANTS) == set(LEVELS)


@pytest.mark.parametrize("name", sorted(LEVELS))
@pytest.mark.parametrize("size", [128, 256])
def test_forward_shapes(small_nets, name, size):
    levels, strides = LEVELS[name]
    net = small_nets[name]
    assert net.head.nl == levels and net.head.stride.tolist() == list(strides)
    with torch.no_grad():
        out = net(torch.rand(2, 3, size, size))
    expected = 3 * sum((size // s) ** 2 for s in strides)
    assert out.shape == (2, expected, 5 + 3)
    assert torch.isfinite(out).all()
    assert (out[..., 4:] >= 0).all() and (out[..., 4:] <= 1).all()  # objectness, class scores are sigmoids
    assert (out[..., 2:4] > 0).all()


def test_full_width_e6e_matches_the_published_layer_graph():
    spec = variant_spec("prb-2py-e6e-1280")
    rows = spec["backbone"] + spec["head"]
    assert len(spec["backbone"]) == 112 and spec["input_size"] == 1280
    assert [rows[i][2] for i in (0, 1, 2, 23, 112, 114, 125, 134)] == [
        "ReOrg", "Conv", "DownC", "Shortcut", "SPPCSPC", "RBBlockA", "BFM", "SPPCSPC"]
    # second pyramid: shifted one level down the backbone, strides 2 and 4 to realign
    assert rows[136] == [[67, 45, 135], 1, "RBBlockA", [480, "384,1,2;192,1,4", 2, "nearest"]]
    assert rows[-1][2] == "Detect" and len(rows[-1][0]) == 4


def test_reorg_is_lossless_space_to_depth():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).view(2, 3, 4, 6)
    y = ReOrg()(x)
    assert y.shape == (2, 12, 2, 3)
    assert torch.equal(torch.sort(y.flatten(1)).values, torch.sort(x.flatten(1)).values)


def _confident_net() -> PRBNet:
    """A tiny random network made confident at stride 8, so decode, NMS and scale-back all run."""
    torch.manual_seed(1)
    net = PRBNet(variant_spec("prb-fpn-csp-640", nc=3, width_multiple=0.125)).eval()
    torch.nn.init.constant_(net.head.m[0].bias, 3.0)
    return net


def test_detector_end_to_end_on_cpu(small_nets):
    cfg = PrbConfig(device="cpu", input_size=128, classes=None, max_detections=20)
    det = PRBDetector(cfg, _confident_net())
    image = np.random.default_rng(0).integers(0, 255, (90, 160, 3), np.uint8)
    out = det(image)
    assert 0 < len(out) <= 20
    assert out.boxes.dtype == np.float32 and out.class_ids.dtype == np.int64
    assert (out.boxes[:, [0, 2]] >= 0).all() and (out.boxes[:, [0, 2]] <= 160).all()
    assert (out.boxes[:, [1, 3]] >= 0).all() and (out.boxes[:, [1, 3]] <= 90).all()
    assert np.all(np.diff(out.scores) <= 0)
    with pytest.raises(ValueError, match="multiple of the network's largest stride"):
        PRBDetector(cfg.replace(input_size=96), small_nets["prb-2py-e6e-1280"])


def test_factory_builds_prb_from_a_spec_file(tmp_path):
    import yaml

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(variant_spec("prb-fpn-csp-640", nc=1, width_multiple=0.125)))
    det = build_detector(PrbConfig(architecture=str(path), device="cpu", input_size=64))
    assert isinstance(det, PRBDetector) and det.net.nc == 1 and det.input_size == 64
    assert len(det(np.zeros((48, 64, 3), np.uint8)).boxes.shape) == 2


def test_bad_specs_and_devices_are_named():
    spec = variant_spec("prb-fpn-csp-640", width_multiple=0.125)
    spec["head"][3] = [-1, 1, "Focus", [64]]
    with pytest.raises(SpecError, match="unsupported module 'Focus'"):
        PRBNet(spec)
    spec["head"][3] = [-1, 1, "Conv", ["wide", 1, 1]]
    with pytest.raises(SpecError, match="layer 14: channel count must be a positive int, got 'wide'"):
        PRBNet(spec)
    spec["head"][3] = [-1, 1, "Conv", [64, "nn.LeakyReLU(__import__('os'))"]]
    with pytest.raises(SpecError, match="arguments must be literals"):
        PRBNet(spec)
    spec["head"][3] = [-1, 1, "Conv", [64, 3, 1, None, 1, "os.system('x')"]]
    with pytest.raises(SpecError, match="layer 14 .*TypeError"):  # an unknown string stays a string, never runs
        PRBNet(spec)
    with pytest.raises(ValueError, match="unknown PRB variant"):
        variant_spec("prb-9py")
    if not torch.cuda.is_available():
        with pytest.raises(DetectorConfigError, match="CUDA is not available"):
            build_detector(PrbConfig(device="cuda:0", architecture="prb-fpn-csp-640"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_on_cuda(small_nets):
    det = PRBDetector(PrbConfig(device="cuda", input_size=128, classes=None),
                      PRBNet(variant_spec("prb-fpn-csp-640", nc=3, width_multiple=0.125)))
    assert det.half and next(det.net.parameters()).dtype == torch.float16
    out = det(np.zeros((100, 120, 3), np.uint8))
    assert out.boxes.dtype == np.float32


def test_missing_weights_file_is_named(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(ValueError, match="weights not found: .*nope.safetensors"):
        build_detector(PrbConfig(weights=str(missing), architecture="prb-fpn-csp-640",
                                      device="cpu"))


@pytest.mark.parametrize("name", sorted(LEVELS))
def test_onnx_export_equals_torch_with_a_dynamic_batch(tmp_path, small_nets, name):
    """The exported deploy graph (fused, decode included) gives torch's output, batch 1 and 3."""
    ort = pytest.importorskip("onnxruntime")
    from smiletrack_ros.detection.prb.export import export_onnx

    net = small_nets[name]
    path = export_onnx(net, tmp_path / f"{name}.onnx", 128)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[0] == "batch"
    for batch in (1, 3):
        x = torch.rand(batch, 3, 128, 128)
        with torch.no_grad():
            want = net(x).numpy()
        got = session.run(None, {"images": x.numpy()})[0]
        assert got.shape == want.shape
        np.testing.assert_allclose(got[..., 4:], want[..., 4:], atol=1e-5)
        np.testing.assert_allclose(got[..., :4], want[..., :4], rtol=1e-4, atol=1e-3)


def test_the_onnx_backend_runs_an_exported_prb_model(tmp_path):
    """The same network through both backends (torch letterbox on the device vs OpenCV on
    the host, the shared decode/NMS): identical detections; the ONNX backend reads the
    export as its yolov5 (YOLOv5/v7/PRB) layout."""
    pytest.importorskip("onnxruntime")
    from smiletrack_ros.detection.prb.export import export_onnx

    net = _confident_net()
    path = export_onnx(net, tmp_path / "prb.onnx", 128)
    cfg = PrbConfig(device="cpu", input_size=128, classes=None, max_detections=50)
    image = np.random.default_rng(3).integers(0, 255, (128, 96, 3), np.uint8)  # padding only, no resize
    torch_out = PRBDetector(cfg, net)(image)
    onnx_det = build_detector(cfg.replace(backend="onnx", weights=str(path)))
    assert onnx_det.layout == "yolov5" and onnx_det.batched
    onnx_out = onnx_det(image)
    assert len(torch_out) == len(onnx_out) > 0
    np.testing.assert_allclose(onnx_out.boxes, torch_out.boxes, atol=1e-2)
    np.testing.assert_allclose(onnx_out.scores, torch_out.scores, atol=1e-4)
    assert onnx_out.class_ids.tolist() == torch_out.class_ids.tolist()


def test_detect_batch_is_one_forward_pass_matching_single_calls():
    det = PRBDetector(PrbConfig(device="cpu", input_size=64, classes=None, max_detections=5),
                      _confident_net())
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 255, (48, 64, 3), np.uint8), rng.integers(0, 255, (64, 40, 3), np.uint8)]
    calls = []
    hook = det.net.register_forward_hook(lambda _m, inputs, _o: calls.append(inputs[0].shape[0]))
    together = det.detect_batch(images)
    hook.remove()
    assert calls == [2]
    for image, batched in zip(images, together, strict=True):
        single = det(image)
        np.testing.assert_allclose(batched.boxes, single.boxes, atol=1e-3)
        np.testing.assert_allclose(batched.scores, single.scores, atol=1e-5)
