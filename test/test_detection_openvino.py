"""The openvino backend: SSD-style Intel detectors and YOLO-family IR exports (skipped
without the optional ``openvino`` package)."""
import warnings

import numpy as np
import pytest
import torch

from smiletrack_ros.detection import DetectorConfig, DetectorConfigError, OnnxConfig, OpenVinoConfig, build_detector

ov = pytest.importorskip("openvino", reason="the optional openvino extra is not installed")


def _to_ir(module: torch.nn.Module, example: torch.Tensor, tmp_path, name: str) -> str:
    onnx_path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, str(onnx_path), dynamo=False, opset_version=17,
                          input_names=["data"], output_names=["detection_out"])
    xml = tmp_path / f"{name}.xml"
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml))
    return str(xml)


class FixedSSD(torch.nn.Module):
    """An SSD-style model with a known output: rows [image_id, label, conf, x0, y0, x1, y1]."""

    def __init__(self, rows):
        super().__init__()
        self.register_buffer("rows", torch.tensor(rows, dtype=torch.float32).view(1, 1, -1, 7))

    def forward(self, x):
        return self.rows + 0.0 * x.mean()


def test_ssd_rows_are_decoded_to_source_pixels(tmp_path):
    rows = [[0, 1, 0.9, 0.1, 0.2, 0.3, 0.6],      # person
            [0, 2, 0.8, 0.5, 0.5, 0.6, 0.7],      # another label: filtered by classes=(0,)
            [0, 1, 0.02, 0.0, 0.0, 0.5, 0.5],     # below the score threshold
            [-1, 0, 0.0, 0.0, 0.0, 0.0, 0.0],     # the end marker
            [0, 1, 0.95, 0.0, 0.0, 1.0, 1.0]]     # after the marker: ignored
    xml = _to_ir(FixedSSD(rows), torch.zeros(1, 3, 32, 64), tmp_path, "ssd")
    det = build_detector(OpenVinoConfig(weights=xml, device="cpu"))
    assert det.layout == "ssd"
    image = np.zeros((200, 400, 3), np.uint8)  # not the model's aspect ratio: scaled per axis
    out = det(image)
    np.testing.assert_allclose(out.boxes, [[40, 40, 120, 120]], atol=0.05)
    np.testing.assert_allclose(out.scores, [0.9], atol=1e-3)  # save_model stores constants as fp16
    assert out.class_ids.tolist() == [0]
    both = build_detector(OpenVinoConfig(weights=xml, device="cpu", classes=None))(image)
    assert sorted(both.class_ids.tolist()) == [0, 1]


def test_a_yolo_family_ir_detects_as_the_onnx_model(tmp_path):
    """A PRB network exported to ONNX and converted to IR: same detections in both backends."""
    from smiletrack_ros.detection.prb.export import export_onnx
    from smiletrack_ros.detection.prb.network import PRBNet
    from smiletrack_ros.detection.prb.variants import variant_spec

    torch.manual_seed(1)
    net = PRBNet(variant_spec("prb-fpn-csp-640", nc=3, width_multiple=0.125)).eval()
    torch.nn.init.constant_(net.head.m[0].bias, 3.0)
    onnx_path = export_onnx(net, tmp_path / "prb.onnx", 128)
    model = ov.convert_model(str(onnx_path))
    model.reshape([1, 3, 128, 128])
    xml = tmp_path / "prb.xml"
    ov.save_model(model, str(xml))
    cfg = OnnxConfig(weights=str(onnx_path), device="cpu", input_size=128, classes=None,
                         max_detections=50)
    image = np.random.default_rng(2).integers(0, 255, (100, 128, 3), np.uint8)
    want = build_detector(cfg)(image)
    ir = build_detector(cfg.replace(backend="openvino", weights=str(xml)))
    assert ir.layout == "yolov5"
    got = ir(image)
    assert len(got) == len(want) > 0
    np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-2)
    np.testing.assert_allclose(got.scores, want.scores, atol=1e-4)


def test_bad_models_and_devices_are_named(tmp_path):
    bad = tmp_path / "broken.xml"
    bad.write_text("<net><layers>")
    with pytest.raises(ValueError, match="broken.xml: not a readable OpenVINO model"):
        build_detector(OpenVinoConfig(weights=str(bad), device="cpu"))
    with pytest.raises(FileNotFoundError, match="missing.xml"):
        build_detector(OpenVinoConfig(weights=str(tmp_path / "missing.xml")))
    with pytest.raises(DetectorConfigError, match="weights: the openvino backend needs"):
        DetectorConfig.from_mapping({"backend": "openvino"})
    xml = _to_ir(FixedSSD([[0, 1, 0.9, 0, 0, 1, 1]]), torch.zeros(1, 3, 16, 16), tmp_path, "ssd")
    with pytest.raises(DetectorConfigError, match="device: 'cuda:0'"):
        build_detector(OpenVinoConfig(weights=xml, device="cuda:0"))


def test_person_detection_retail_0013_finds_the_people_of_tud_campus(shared_dir):
    """Intel's person detector on the first frames of a real sequence: most people found."""
    from smiletrack_ros.detection.evaluation import DetectionTally
    from smiletrack_ros.mot.io import iter_frames, read_ground_truth

    xml = shared_dir / "models" / "openvino" / "person-detection-retail-0013.xml"
    seq = shared_dir / "data" / "MOT15" / "TUD-Campus"
    if not xml.is_file() or not seq.is_dir():
        pytest.skip("person-detection-retail-0013 or TUD-Campus not in ../shared")
    det = build_detector(OpenVinoConfig(weights=str(xml), device="cpu", cpu_threads=1))
    assert det.layout == "ssd" and (det.in_height, det.in_width) == (320, 544)
    gt = read_ground_truth(seq / "gt" / "gt.txt").pedestrians()
    tally = DetectionTally(0.5)
    for k, image in iter_frames(seq):
        if k > 8:
            break
        out = det(image)
        tally.add(out.boxes, out.scores, gt.boxes[gt.frames == k])
    recall, precision, _ = tally.at(0.5)
    assert recall > 0.7 and precision > 0.6, (recall, precision)
