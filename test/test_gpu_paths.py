"""The GPU code paths: ONNX Runtime's providers chosen from the device setting (TensorRT, CUDA,
CPU), and, where a CUDA device is here, fp16 models, pinned uploads and the CUDA providers giving
what the CPU gives. Without CUDA the device tests skip with the reason."""
import numpy as np
import pytest

from smiletrack_ros.detection.config import DetectorConfigError
from smiletrack_ros.devices import ONNX_CPU, ONNX_CUDA, ONNX_TENSORRT, onnx_providers

torch = pytest.importorskip("torch")
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here (the GPU paths run on one)")


def test_providers_follow_the_device_setting_and_what_the_runtime_has():
    cpu_only, gpu, trt = [ONNX_CPU], [ONNX_CUDA, ONNX_CPU], [ONNX_TENSORRT, ONNX_CUDA, ONNX_CPU]
    assert onnx_providers("cpu", trt) == ([ONNX_CPU], "cpu")
    assert onnx_providers("auto", cpu_only) == ([ONNX_CPU], "cpu")
    assert onnx_providers("auto", gpu) == ([(ONNX_CUDA, {"device_id": 0}), ONNX_CPU], "cuda:0")
    providers, device = onnx_providers("cuda:1", trt, fp16=True)
    assert device == "cuda:1" and providers == [(ONNX_TENSORRT, {"device_id": 1, "trt_fp16_enable": True}),
                                                (ONNX_CUDA, {"device_id": 1}), ONNX_CPU]
    with pytest.raises(DetectorConfigError, match=r"^device: 'cuda': this ONNX Runtime has no CUDAExecutionProvider"):
        onnx_providers("cuda", cpu_only, DetectorConfigError)


@CUDA
def test_slm_in_fp16_on_cuda_matches_the_cpu(torch_one_thread):
    from smiletrack_ros.embedding import build_embedder
    from smiletrack_ros.embedding.config import EmbedderConfig
    from smiletrack_ros.embedding.crops import image_to_tensor

    image = np.random.default_rng(0).integers(0, 256, (240, 320, 3), np.uint8)
    boxes = np.array([[10, 10, 60, 150], [100, 20, 160, 200]], np.float32)
    gpu = build_embedder(EmbedderConfig(backend="slm", device="cuda", precision="fp16"))
    cpu = build_embedder(EmbedderConfig(backend="slm", device="cpu"))
    assert gpu.dtype == torch.float16
    cosine = (gpu(image, boxes) * cpu(image, boxes)).sum(1)
    assert cosine.min() > 0.99
    uploaded = image_to_tensor(image, torch.device("cuda"), torch.float16)
    assert uploaded.is_cuda and uploaded.dtype == torch.float16 and uploaded.shape == (1, 3, 240, 320)


@CUDA
def test_onnx_models_on_the_cuda_provider_match_the_cpu(shared_dir):
    ort = pytest.importorskip("onnxruntime")
    if ONNX_CUDA not in ort.get_available_providers():
        pytest.skip("this ONNX Runtime has no CUDAExecutionProvider (onnxruntime-gpu)")
    import cv2

    from smiletrack_ros.detection import build_detector
    from smiletrack_ros.detection.config import DetectorConfig

    weights = shared_dir / "models" / "yolox_nano.onnx"
    image = cv2.VideoCapture(str(shared_dir / "data" / "MOT15" / "TUD-Campus" / "TUD-Campus.mp4")).read()[1]
    found = {device: build_detector(DetectorConfig.from_mapping({"backend": "onnx", "weights": str(weights),
                                                                 "device": device}))(image)
             for device in ("cpu", "cuda")}
    assert len(found["cuda"]) == len(found["cpu"]) > 0
    np.testing.assert_allclose(found["cuda"].boxes, found["cpu"].boxes, atol=1.0)
