"""Every embedder backend behind one interface: shapes, unit norms, batch-size invariance,
the shared host-array crop path (OpenCV, against roi_align), the typed config and its errors
(named fields), strict OSNet loading, ONNX export parity, corrupt model files and hostile sidecar cards."""
import dataclasses
import importlib.util
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from smiletrack_ros.embedding import EmbedderConfig, EmbedderConfigError, WeightsError, build_embedder
from smiletrack_ros.embedding.crops import clip_boxes, crop_boxes, crop_inputs
from smiletrack_ros.embedding.onnx_embedder import export_onnx
from smiletrack_ros.embedding.osnet import OSNET_CHANNELS, OSNet, load_osnet
from smiletrack_ros.embedding.preprocessing import IMAGENET_REID, RAW_BGR_REID, Preprocessing
from smiletrack_ros.errors import SettingError

BOXES = np.array([[10, 20, 60, 150], [100, 10, 180, 200], [-20, -10, 15, 40], [150, 100, 400, 300],
                  [50, 50, 50, 50]], np.float32)
ONNX_RUNTIMES = ("onnxruntime",) + (("openvino",) if importlib.util.find_spec("openvino") else ())
# Boxes whose 256 x 128 crops sample on OpenCV's 1/32-pixel grid: the host-array path cuts the
# torch path's pixels exactly, so comparing the two compares the networks.
GRID_BOXES = np.array([[10, 20, 74, 148], [100, 10, 164, 234], [0, 0, 32, 64], [160, 48, 320, 240],
                       [50, 50, 58, 66]], np.float32)


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def osnet_untrained():
    return build_embedder(EmbedderConfig(backend="osnet", weights=None, seed=3))


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory, osnet_untrained):
    path = tmp_path_factory.mktemp("onnx") / "osnet_untrained.onnx"
    return export_onnx(osnet_untrained.osnet, path, (256, 128))


def unit_rows(x: np.ndarray) -> bool:
    return x.dtype == np.float32 and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)


# ---- the host-array crop path (OpenCV) ---------------------------------------------------------
BGR_RAW = Preprocessing(height=48, width=24, channel_order="bgr", scale=1.0, mean=(0, 0, 0), std=(1, 1, 1))


def _roi_align_crops(img: np.ndarray, rois: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    return crop_boxes(torch.from_numpy(img).permute(2, 0, 1)[None].float(), rois, size).numpy()


def test_opencv_crops_equal_the_torch_roi_align_crops_on_its_sample_grid():
    """OpenCV samples on a 1/32-pixel grid: boxes whose samples lie on it give roi_align's values
    exactly (an off-by-half-a-pixel placement would not), any box within the grid's error bound."""
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
    on_grid = torch.tensor([[0, 0, 24, 48], [10, 5, 58, 77], [106, 42, 130, 90], [3.5, 7.25, 27.5, 55.25]])
    assert np.abs(crop_inputs(img, on_grid.numpy(), BGR_RAW) - _roi_align_crops(img, on_grid, (48, 24))).max() < 1e-3
    boxes = np.concatenate([rng.uniform(-30, 150, (40, 2)), rng.uniform(-30, 150, (40, 2))], 1).astype(np.float32)
    rois = clip_boxes(torch.from_numpy(boxes), 130, 90)
    ours = crop_inputs(img, rois.numpy(), BGR_RAW)
    assert ours.shape == (40, 3, 48, 24) and ours.dtype == np.float32
    steps = [np.abs(np.diff(img.astype(np.float32), axis=a)) for a in (0, 1)]    # neighbour differences
    diff = np.abs(ours - _roi_align_crops(img, rois, (48, 24)))
    assert diff.max() <= (steps[0].max() + steps[1].max()) / 64 + 1e-3    # each axis within 1/64 pixel
    assert diff.mean() <= (steps[0].mean() + steps[1].mean()) / 64


def test_opencv_crops_are_normalised_like_the_torch_path():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (60, 50, 3), dtype=np.uint8)
    rois = torch.tensor([[0.0, 0.0, 24.0, 60.0], [20.0, 12.0, 44.0, 60.0]])     # samples on the grid
    pre = IMAGENET_REID.merged(height=48, width=24)
    raw = _roi_align_crops(img, rois, (48, 24))[:, ::-1] / 255.0                 # RGB, 0..1
    want = (raw - np.reshape(pre.mean, (1, 3, 1, 1))) / np.reshape(pre.std, (1, 3, 1, 1))
    assert np.abs(crop_inputs(img, rois.numpy(), pre) - want).max() < 1e-4
    assert crop_inputs(img, rois.numpy(), pre, np.float16).dtype == np.float16
    assert crop_inputs(img, np.zeros((0, 4), np.float32), pre).shape == (0, 3, 48, 24)


def test_preprocessing_planes_order_scale_and_normalise():
    image = np.zeros((2, 2, 3), np.uint8)
    image[..., 0] = 255  # pure blue (BGR)
    x = IMAGENET_REID.planes(image)
    assert x.shape == (3, 2, 2) and x.dtype == np.float32
    assert np.allclose(x[2], (1 - 0.406) / 0.225) and np.allclose(x[0], -0.485 / 0.229)
    assert np.allclose(RAW_BGR_REID.planes(image)[0], 255)


# ---- config --------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,field", [
    ({"backend": "tensorrt"}, "backend"), ({"device": "gpu"}, "device"), ({"precision": "int8"}, "precision"),
    ({"max_batch": 0}, "max_batch"), ({"max_batch": True}, "max_batch"),
    ({"backend": "osnet", "weights": None, "input_height": 1 << 40}, "input_height"),
    ({"backend": "osnet", "weights": None, "input_width": True}, "input_width"),
    ({"backend": "osnet", "weights": None, "channel_order": "bgra"}, "channel_order"),
    ({"backend": "osnet", "weights": None, "scale": 0.0}, "scale"),
    ({"backend": "osnet", "weights": None, "mean": (1, 2)}, "mean"),
    ({"backend": "osnet", "weights": None, "std": (1, 0, 1)}, "std"), ({"backend": "onnx", "weights": None}, "weights"),
    ({"backend": "osnet"}, "weights"), ({"input_height": 256}, "input_height"),
    ({"backend": "onnx", "weights": "m.onnx", "flip_average": True}, "flip_average"),
    ({"threads": -1}, "threads"), ({"runtime": "tensorrt"}, "runtime"),
    ({"backend": "onnx", "weights": "m.onnx", "runtime": "torch"}, "runtime"),
    ({"backend": "openvino", "weights": "m.xml", "runtime": "torch"}, "runtime"),
    ({"precision": "bf16", "runtime": "onnxruntime"}, "precision"),
    ({"precision": "bf16", "runtime": "torch"}, "precision"),
    ({"parallel_calls": 0}, "parallel_calls"),
])
def test_config_errors_name_the_field(kwargs, field):
    with pytest.raises(EmbedderConfigError) as info:
        EmbedderConfig(**kwargs)
    assert isinstance(info.value, SettingError) and info.value.field == field
    assert str(info.value).startswith(field)


def test_from_mapping_reads_the_node_parameters():
    cfg = EmbedderConfig.from_mapping({"embedder.enabled": True, "embedder.backend": "onnx",
                                       "embedder.weights": "m.onnx", "embedder.device": "cpu",
                                       "embedder.fp16": False, "embedder.input_height": 0,
                                       "embedder.channel_order": "", "embedder.mean": [], "embedder.std": [],
                                       "embedder.scale": 0.0, "embedder.flip_average": "card"})
    assert (cfg.backend, cfg.weights, cfg.precision, cfg.input_height, cfg.mean, cfg.flip_average) == \
        ("onnx", "m.onnx", "fp32", None, None, None)
    assert EmbedderConfig.from_mapping({"embedder.weights": ""}).weights == "default"
    assert EmbedderConfig.from_mapping({"backend": "osnet", "weights": "w.pth", "mean": [0.5, 0.5, 0.5]}).mean == \
        (0.5, 0.5, 0.5)
    with pytest.raises(EmbedderConfigError, match="weights: only the slm backend ships default weights"):
        EmbedderConfig.from_mapping({"embedder.backend": "onnx", "embedder.weights": ""})
    for params in ({"embedder.fp16": True, "embedder.bf16": True}, {"embedder.bf16": True, "embedder.fp16": False}):
        assert EmbedderConfig.from_mapping(params).precision == "bf16"       # bf16 wins, in either order
    assert EmbedderConfig.from_mapping({"embedder.bf16": False, "embedder.fp16": False}).precision == "fp32"
    with pytest.raises(EmbedderConfigError, match="^bf16: must be true or false"):
        EmbedderConfig.from_mapping({"embedder.bf16": "yes"})
    with pytest.raises(EmbedderConfigError, match="^colour: unknown embedder setting"):
        EmbedderConfig.from_mapping({"embedder.colour": "rgb"})


# ---- osnet ---------------------------------------------------------------------------------
def test_osnet_shapes_norms_and_batch_invariance(image, osnet_untrained):
    out = osnet_untrained(image, BOXES)
    assert out.shape == (5, 512) and unit_rows(out)
    one = build_embedder(EmbedderConfig(backend="osnet", weights=None, seed=3, max_batch=1, warmup=False))
    assert np.allclose(one(image, BOXES), out, atol=1e-5)
    assert np.allclose(osnet_untrained(image, BOXES[1:2]), out[1:2], atol=1e-5)
    assert osnet_untrained(image, np.zeros((0, 4))).shape == (0, 512)


@pytest.mark.parametrize("variant", sorted(OSNET_CHANNELS))
def test_every_osnet_width_round_trips_through_a_torchreid_style_state_dict(tmp_path, variant):
    net = OSNet(variant, num_classes=7).eval()
    path = tmp_path / f"osnet_{variant}.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    loaded = load_osnet(path).eval()
    assert loaded.variant == variant and loaded.classifier.out_features == 7
    x = torch.rand(2, 3, 64, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def test_osnet_strict_loading_names_the_keys(tmp_path):
    state = OSNet("x0_25").state_dict()
    broken = dict(state)
    broken.pop("conv3.0.gate.fc1.bias")
    broken["conv9.extra.weight"] = torch.zeros(1)
    broken["conv5.conv.weight"] = torch.zeros(128, 64, 1, 1)
    path = tmp_path / "broken.pth"
    torch.save(broken, path)
    with pytest.raises(WeightsError) as info:
        load_osnet(path)
    message = str(info.value)
    for needle in (str(path), "missing keys: conv3.0.gate.fc1.bias", "unexpected keys: conv9.extra.weight",
                   "conv5.conv.weight (128, 64, 1, 1) != (128, 128, 1, 1)"):
        assert needle in message
    torch.save(state, path)
    with pytest.raises(WeightsError, match="holds OSNet x0_25, not the configured variant x1_0"):
        load_osnet(path, variant="x1_0")


def test_osnet_refuses_pickled_code_and_non_state_dicts(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("executed!",))

    hostile = tmp_path / "hostile.pth"
    torch.save({"conv1.conv.weight": Boom()}, hostile, _use_new_zipfile_serialization=True)
    with pytest.raises(WeightsError, match="refused or unreadable"):
        load_osnet(hostile)
    (tmp_path / "list.pth").write_bytes(b"")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="not a state dict"):
        load_osnet(tmp_path / "list.pth")
    torch.save({"fc.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="not an OSNet state dict"):
        load_osnet(tmp_path / "other.pth")


# ---- onnx ----------------------------------------------------------------------------------
def test_our_onnx_export_gives_the_torch_embeddings(image, osnet_untrained, onnx_export):
    onnx = build_embedder(EmbedderConfig(backend="onnx", weights=str(onnx_export)))
    assert onnx.batch is None and onnx.dim == 512 and onnx.preprocessing == IMAGENET_REID
    out = onnx(image, GRID_BOXES)
    assert out.shape == (5, 512) and unit_rows(out)
    assert np.abs(out - osnet_untrained(image, GRID_BOXES)).max() < 1e-4
    one = build_embedder(EmbedderConfig(backend="onnx", weights=str(onnx_export), max_batch=1, warmup=False))
    assert np.allclose(one(image, BOXES), onnx(image, BOXES), atol=1e-5)


@pytest.mark.parametrize("backend, weights", [("slm", "default"), ("osnet", None)])
def test_the_onnxruntime_runtime_gives_the_torch_runtimes_embeddings(image, backend, weights):
    """The same network and weights, exported in memory: equal within float rounding."""
    config = EmbedderConfig(backend=backend, weights=weights, device="cpu", threads=1, warmup=False)
    torch_run = build_embedder(dataclasses.replace(config, runtime="torch"))
    onnx_run = build_embedder(config)             # auto: onnxruntime on the CPU
    assert (torch_run.runtime, onnx_run.runtime) == ("torch", "onnxruntime")
    assert np.abs(onnx_run(image, BOXES) - torch_run(image, BOXES)).max() < 1e-5
    pairs = [(image, BOXES[:2]), (image[:100], BOXES[2:])]
    want = np.concatenate([torch_run(*pair) for pair in pairs])
    assert np.abs(np.concatenate(onnx_run.embed_many(pairs)) - want).max() < 1e-5


def test_onnxruntime_runtime_is_the_cpus_only():
    from smiletrack_ros.embedding.embedder import embedder_runtime

    assert embedder_runtime("auto", torch.device("cuda", 0)) == "torch"
    assert embedder_runtime("auto", torch.device("cpu"), "bf16") == "openvino"
    for runtime in ("onnxruntime", "openvino"):
        with pytest.raises(EmbedderConfigError, match=f"^runtime: {runtime} runs the torch embedders on the CPU only"):
            embedder_runtime(runtime, torch.device("cuda", 0))
    with pytest.raises(EmbedderConfigError, match="^precision: bf16 runs on the CPU only"):
        embedder_runtime("auto", torch.device("cuda", 0), "bf16")


@pytest.mark.parametrize("backend, weights", [("slm", "default"), ("osnet", None)])
def test_the_openvino_runtime_runs_the_torch_networks_in_fp32_and_bf16(image, backend, weights):
    """fp32 in OpenVINO gives torch's embeddings within float rounding; bf16 (AMX / AVX512-BF16
    units, or fp32 where the CPU has none) stays within 1e-3 in cosine of them; several calls at
    once (the node's split) each get their own infer request."""
    pytest.importorskip("openvino", reason="openvino is an optional extra ([openvino])")
    config = EmbedderConfig(backend=backend, weights=weights, device="cpu", threads=1, warmup=False, seed=3)
    want = build_embedder(dataclasses.replace(config, runtime="torch"))(image, BOXES)
    fp32 = build_embedder(dataclasses.replace(config, runtime="openvino"))
    assert fp32.runtime == "openvino" and np.abs(fp32(image, BOXES) - want).max() < 1e-4
    bf16 = build_embedder(dataclasses.replace(config, precision="bf16", parallel_calls=2))   # auto: openvino
    got = bf16(image, BOXES)
    assert bf16.runtime == "openvino" and unit_rows(got) and (got * want).sum(1).min() > 0.999
    with ThreadPoolExecutor(2) as pool:
        parts = list(pool.map(lambda rows: bf16(image, BOXES[rows]), [slice(0, 2), slice(2, 5)] * 2))
    assert all(np.array_equal(a, b) for a, b in zip(parts[:2], parts[2:], strict=True))
    assert np.abs(np.concatenate(parts[:2]) - got).max() < 1e-2


def test_fixed_batch_onnx_model_is_fed_padded_chunks(tmp_path, image, osnet_untrained):
    path = export_onnx(osnet_untrained.osnet, tmp_path / "fixed.onnx", (256, 128), dynamic_batch=False)
    fixed = build_embedder(EmbedderConfig(backend="onnx", weights=str(path), warmup=False, runtime="onnxruntime"))
    assert fixed.batch == 2
    assert np.abs(fixed(image, GRID_BOXES) - osnet_untrained(image, GRID_BOXES)).max() < 1e-4


def test_fixed_model_input_size_wins_and_contradicting_it_is_an_error(onnx_export):
    with pytest.raises(EmbedderConfigError, match="^input_height: the model's input is fixed at 256, not 224"):
        build_embedder(EmbedderConfig(backend="onnx", weights=str(onnx_export), input_height=224))


def test_sidecar_card_sets_the_preprocessing(tmp_path, image, onnx_export):
    model = tmp_path / "carded.onnx"
    model.write_bytes(onnx_export.read_bytes())
    card = {"format": "smiletrack_ros/reid-model", "version": 1, "name": "t", "embedding_dim": 512,
            "input": {"channel_order": "bgr", "scale": 1.0, "mean": [0, 0, 0], "std": [255, 255, 255]}}
    model.with_suffix(".json").write_text(json.dumps(card))
    emb = build_embedder(EmbedderConfig(backend="onnx", weights=str(model), warmup=False))
    assert emb.preprocessing.channel_order == "bgr" and emb.preprocessing.std == (255.0,) * 3
    overridden = build_embedder(EmbedderConfig(backend="onnx", weights=str(model), channel_order="rgb",
                                               warmup=False))
    assert overridden.preprocessing.channel_order == "rgb"
    assert not np.allclose(emb(image, BOXES), overridden(image, BOXES), atol=1e-3)


def reid_card(**fields) -> str:
    return json.dumps({"format": "smiletrack_ros/reid-model", "version": 1, **fields})


@pytest.mark.parametrize("card,needle", [
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
    (reid_card(metrics={"a": json.loads("[" * 20 + "1" + "]" * 20)}), "nested too deeply"),
    (reid_card(embedding_dim=2 ** 40), "embedding_dim: must be an int in 1..8192"),
    (reid_card(embedding_dim=True), "embedding_dim: must be an int in 1..8192, got True"),
    (reid_card(embedding_dim=256), "embedding_dim: the card says 256, the model gives 512"),
    (reid_card(input={"height": 1 << 40}), "input_height"),
    (reid_card(input={"mean": "abc"}), "mean"),
    (json.dumps({"format": "other"}), "format"),
    ("{not json", "unreadable model card"),
])
def test_hostile_sidecar_cards_are_clear_errors(tmp_path, onnx_export, card, needle):
    model = tmp_path / "m.onnx"
    model.write_bytes(onnx_export.read_bytes())
    model.with_suffix(".json").write_text(card)
    with pytest.raises(WeightsError, match=needle) as info:
        build_embedder(EmbedderConfig(backend="onnx", weights=str(model), warmup=False))
    assert str(model.with_suffix(".json")) in str(info.value) or "m.onnx" in str(info.value)


@pytest.mark.parametrize("content,needle", [
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 921616\n", "git-lfs pointer"),
    (b"", "implausible model file size"),
    (b"\x08\x07\x12\x04junk" * 10, "not a loadable ONNX model"),
    ("truncated", "not a loadable ONNX model"),
])
def test_corrupt_onnx_files_are_clear_errors_naming_the_file(tmp_path, onnx_export, content, needle):
    path = tmp_path / "bad.onnx"
    path.write_bytes(onnx_export.read_bytes()[:5000] if content == "truncated" else content)
    for runtime in ONNX_RUNTIMES:
        with pytest.raises(WeightsError, match=needle) as info:
            build_embedder(EmbedderConfig(backend="onnx", weights=str(path), runtime=runtime))
        assert str(path) in str(info.value)
    with pytest.raises(WeightsError, match="model file not found"):
        build_embedder(EmbedderConfig(backend="onnx", weights=str(tmp_path / "absent.onnx")))


@pytest.mark.parametrize("model", ["untrained", "osnet_x0_25_msmt17.onnx"])
def test_the_openvino_runtime_gives_onnxruntimes_embeddings(request, image, onnx_export, model):
    """The same .onnx file read by OpenVINO (fp32, also where the CPU has bf16 units), as the
    node runs it by default when OpenVINO is installed; several calls at once (the node's split)."""
    pytest.importorskip("openvino", reason="openvino is an optional extra ([openvino])")
    path = onnx_export if model == "untrained" else request.getfixturevalue("shared_dir") / "models/reid" / model
    config = EmbedderConfig(backend="onnx", weights=str(path), threads=1, parallel_calls=2, warmup=False)
    ort_run = build_embedder(dataclasses.replace(config, runtime="onnxruntime"))
    ov_run = build_embedder(config)                              # auto: openvino on the CPU
    assert ov_run.name.endswith("@openvino") and ov_run.preprocessing == ort_run.preprocessing == IMAGENET_REID
    want = ort_run(image, BOXES)
    assert np.abs(ov_run(image, BOXES) - want).max() < 1e-4
    with ThreadPoolExecutor(2) as pool:                          # one infer request per thread
        parts = list(pool.map(lambda rows: ov_run(image, BOXES[rows]), [slice(0, 2), slice(2, 5)] * 3))
    assert np.abs(np.concatenate(parts[:2]) - want).max() < 1e-4
    assert all(np.array_equal(a, b) for a, b in zip(parts[:2] * 3, parts, strict=True))


def test_onnx_model_with_an_oversized_input_is_refused_before_allocating(tmp_path):
    path = export_onnx(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()),
                       tmp_path / "huge.onnx", (4096, 16))
    for runtime in ONNX_RUNTIMES:
        with pytest.raises(WeightsError, match=r"input_height: must be an int in 1..1024, got 4096"):
            build_embedder(EmbedderConfig(backend="onnx", weights=str(path), runtime=runtime))


@pytest.mark.skipif("CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers(),
                    reason="checks the error without the CUDA provider")
def test_onnx_cuda_request_without_the_cuda_provider_is_a_clear_error(onnx_export):
    with pytest.raises(EmbedderConfigError, match="^device: 'cuda:0': this ONNX Runtime has no CUDAExecutionProvider"):
        build_embedder(EmbedderConfig(backend="onnx", weights=str(onnx_export), device="cuda:0"))


# ---- the shared models (skip without ../shared) ------------------------------------------
@pytest.mark.parametrize("name", ["osnet_x0_25_msmt17.pth", "osnet_x0_25_market1501.pth"])
def test_torch_osnet_loads_the_torchreid_state_dicts_and_exports_to_onnx(shared_dir, tmp_path, image, name):
    path = shared_dir / "models" / "reid" / name
    torch_emb = build_embedder({"backend": "osnet", "weights": str(path)})
    assert torch_emb.osnet.variant == "x0_25" and torch_emb.dim == 512
    out = torch_emb(image, BOXES)
    assert out.shape == (5, 512) and unit_rows(out)
    exported = export_onnx(torch_emb.osnet, tmp_path / "ours.onnx", (256, 128))
    onnx = build_embedder({"backend": "onnx", "weights": str(exported)})
    assert np.abs(onnx(image, GRID_BOXES) - torch_emb(image, GRID_BOXES)).max() < 1e-4


def test_the_shared_boxmot_onnx_export_runs(shared_dir, image):
    emb = build_embedder({"backend": "onnx", "weights": str(shared_dir / "models/reid/osnet_x0_25_msmt17.onnx")})
    assert emb.dim == 512 and emb.batch is None and emb.preprocessing.size == (256, 128)
    out = emb(image, BOXES)
    assert out.shape == (5, 512) and unit_rows(out)


def test_opencv_crops_keep_the_embeddings_of_real_frames(shared_dir):
    """OpenCV's crops against roi_align's exact samples, through the shared OSNet export, on real
    TUD-Stadtmitte frames with their det.txt boxes (measured: min cosine 0.9996 over 232 crops)."""
    import cv2

    from smiletrack_ros.mot.io import read_detections

    seq = shared_dir / "data" / "MOT15" / "TUD-Stadtmitte"
    emb = build_embedder({"backend": "onnx", "weights": str(shared_dir / "models/reid/osnet_x0_25_msmt17.onnx")})
    pre, dets = emb.preprocessing, read_detections(seq / "det" / "det.txt")
    capture = cv2.VideoCapture(str(seq / "TUD-Stadtmitte.mp4"))
    cosines = []
    for frame in range(1, 41):
        ok, image = capture.read()
        assert ok
        if frame % 8 or frame not in dets:
            continue
        rois = clip_boxes(torch.from_numpy(dets[frame].boxes.astype(np.float32)), image.shape[1], image.shape[0])
        raw = _roi_align_crops(image, rois, pre.size)[:, ::-1] * pre.scale
        exact = (raw - np.reshape(pre.mean, (1, 3, 1, 1))) / np.reshape(pre.std, (1, 3, 1, 1))
        want = emb._forward(np.ascontiguousarray(exact, np.float32))
        want /= np.linalg.norm(want, axis=1, keepdims=True)
        cosines.extend((emb(image, dets[frame].boxes) * want).sum(axis=1))
    assert len(cosines) >= 10 and min(cosines) > 0.999 and np.mean(cosines) > 0.9999


@pytest.mark.parametrize("model", ["person-reidentification-retail-0288", "person-reidentification-retail-0286"])
def test_openvino_intel_reid_models(shared_dir, image, model):
    pytest.importorskip("openvino", reason="openvino is an optional extra ([openvino])")
    path = shared_dir / "models" / "openvino" / f"{model}.xml"
    emb = build_embedder({"backend": "openvino", "weights": str(path), "precision": "fp32"})
    assert emb.dim == 256 and emb.preprocessing == RAW_BGR_REID
    out = emb(image, BOXES)
    assert out.shape == (5, 256) and unit_rows(out)
    one = build_embedder({"backend": "openvino", "weights": str(path), "precision": "fp32", "max_batch": 1})
    assert np.allclose(one(image, BOXES), out, atol=1e-4)


def test_openvino_refuses_cuda_and_corrupt_ir(tmp_path):
    pytest.importorskip("openvino", reason="openvino is an optional extra ([openvino])")
    bad = tmp_path / "bad.xml"
    bad.write_text("<net><layers>")
    with pytest.raises(WeightsError, match="not a loadable OpenVINO IR model") as info:
        build_embedder({"backend": "openvino", "weights": str(bad)})
    assert str(bad) in str(info.value)
    with pytest.raises(EmbedderConfigError, match="^device: 'cuda': OpenVINO runs on Intel devices"):
        build_embedder({"backend": "openvino", "weights": str(bad), "device": "cuda"})


# ---- GPU ---------------------------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (fp16 path)")
def test_osnet_cuda_fp16_matches_cpu_fp32(image, osnet_untrained):
    gpu = build_embedder(EmbedderConfig(backend="osnet", weights=None, seed=3, device="cuda:0"))
    assert gpu.dtype == torch.float16
    assert np.abs(gpu(image, BOXES) - osnet_untrained(image, BOXES)).max() < 2e-2


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_torch_backends_refuse_cuda_and_fp16_without_cuda():
    with pytest.raises(EmbedderConfigError, match="^device: .*CUDA is not available"):
        build_embedder(EmbedderConfig(backend="osnet", weights=None, device="cuda:0"))
    with pytest.raises(EmbedderConfigError, match="^precision: fp16 needs a CUDA device"):
        build_embedder(EmbedderConfig(backend="osnet", weights=None, device="cpu", precision="fp16"))
