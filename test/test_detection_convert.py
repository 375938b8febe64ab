"""Conversion of official checkpoints: safe reading of pickled PRBNet/YOLOv7-style files,
re-parameterisation of training graphs (aux heads, implicit layers, RepConv) to the deploy
graph with the same lead-head output, and strict weight loading."""
import builtins
import importlib.util
import os
import pickle
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from smiletrack_ros.cli import convert_prb
from smiletrack_ros.detection import PrbConfig
from smiletrack_ros.detection.prb import heads, modules
from smiletrack_ros.detection.prb.checkpoint import UnsafeCheckpointError, extract_model, read_checkpoint
from smiletrack_ros.detection.prb.detector import PRBDetector
from smiletrack_ros.detection.prb.heads import Detect, IAuxDetect, IDetect
from smiletrack_ros.detection.prb.modules import Conv, FusedConv, RepConv
from smiletrack_ros.detection.prb.network import PRBNet
from smiletrack_ros.detection.prb.network import architecture_key as architecture
from smiletrack_ros.detection.prb.reparam import deploy_spec, fuse, to_deploy
from smiletrack_ros.detection.prb.variants import variant_spec
from smiletrack_ros.detection.prb.weights import WeightsMismatchError, load_weights, save_weights

SPEC = variant_spec("prb-fpn-csp-640", nc=2, width_multiple=0.125)


@pytest.fixture
def official_classes(monkeypatch):
    """Fake ``models.yolo`` / ``models.common`` modules, alive only during the test, so
    that our network pickles under the original PRBNet class paths."""
    pkg, yolo, common = (types.ModuleType(n) for n in ("models", "models.yolo", "models.common"))
    pkg.yolo, pkg.common = yolo, common
    for name, mod in (("models", pkg), ("models.yolo", yolo), ("models.common", common)):
        monkeypatch.setitem(sys.modules, name, mod)
    classes = {}
    for source in (modules, heads):
        for name, cls in vars(source).items():
            if isinstance(cls, type) and issubclass(cls, nn.Module) and cls.__module__ == source.__name__:
                target = yolo if source is heads else common
                classes[cls] = type(name, (cls,), {"__module__": target.__name__})
                setattr(target, name, classes[cls])
    classes[PRBNet] = type("Model", (PRBNet,), {"__module__": "models.yolo"})
    yolo.Model = classes[PRBNet]
    return classes


def _as_official(net: PRBNet, classes) -> nn.Module:
    for m in net.modules():
        if type(m) in classes:
            m.__class__ = classes[type(m)]
    net.head._grids.clear()
    return net


def _save_official_checkpoint(path, classes, seed=0):
    torch.manual_seed(seed)
    net = PRBNet(SPEC).eval()
    for m in net.modules():  # non-trivial BatchNorm statistics, so a mix-up would show
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    reference = PRBNet(SPEC).eval()
    reference.load_state_dict({k: v.half().float() if v.is_floating_point() else v
                               for k, v in net.state_dict().items()})
    checkpoint = {"epoch": -1, "best_fitness": np.float64(0.61), "training_results": "x",
                  "model": _as_official(net, classes).half(), "ema": None, "optimizer": None}
    torch.save(checkpoint, path)
    return reference


def test_converts_an_official_style_checkpoint(tmp_path, official_classes):
    ckpt = tmp_path / "prb.pt"
    reference = _save_official_checkpoint(ckpt, official_classes)
    tensors, spec = extract_model(read_checkpoint(ckpt))
    assert spec["width_multiple"] == 0.125 and spec["nc"] == 2
    assert set(tensors) == set(reference.state_dict())
    assert tensors["model.1.conv.weight"].dtype == torch.float16

    out = tmp_path / "prb.safetensors"
    assert convert_prb.main([str(ckpt), str(out)]) == 0
    assert out.is_file() and out.with_suffix(".yaml").is_file()
    det = PRBDetector(PrbConfig(weights=str(out), device="cpu", input_size=128))
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(det.net(x), reference(x), rtol=1e-4, atol=1e-4)


def test_checkpoint_without_the_fake_modules_still_reads(tmp_path, official_classes, monkeypatch):
    ckpt = tmp_path / "prb.pt"
    _save_official_checkpoint(ckpt, official_classes)
    for name in ("models", "models.yolo", "models.common"):
        monkeypatch.delitem(sys.modules, name)
    model = read_checkpoint(ckpt)["model"]
    assert type(model).__name__ == "Model" and "models.yolo.Model" in repr(model)


class _Exploit:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("via_torch_zip", [False, True])
@pytest.mark.parametrize("make", [
    lambda marker: (os.system, (f"touch {marker}",)),
    lambda marker: (builtins.eval, (f"open({str(marker)!r}, 'w').close()",)),
    lambda marker: (subprocess.call, (["touch", str(marker)],)),
    lambda marker: (builtins.exec, (f"open({str(marker)!r}, 'w').close()",)),
], ids=["os.system", "builtins.eval", "subprocess.call", "builtins.exec"])
def test_refuses_pickles_that_run_code(tmp_path, make, via_torch_zip):
    marker = tmp_path / "pwned"
    func, args = make(marker)
    payload = {"model": _Exploit(func, args), "epoch": 1}
    path = tmp_path / "evil.pt"
    if via_torch_zip:
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    name = f"{func.__module__}.{func.__name__}"
    with pytest.raises(UnsafeCheckpointError, match=name.replace(".", r"\.")):
        read_checkpoint(path)
    assert convert_prb.main([str(path), str(tmp_path / "out.safetensors")]) == 1
    assert not marker.exists()
    assert not (tmp_path / "out.safetensors").exists()


def test_strict_load_names_the_mismatched_keys(tmp_path):
    torch.manual_seed(0)
    small = PRBNet(SPEC)
    path, _ = save_weights(small.state_dict(), SPEC, tmp_path / "w.safetensors")
    load_weights(PRBNet(SPEC), path)  # same architecture: fine
    wider = PRBNet(variant_spec("prb-fpn-csp-640", nc=2, width_multiple=0.25))
    with pytest.raises(WeightsMismatchError, match=r"shape mismatch \(\d+\): .*weights \(8,\) vs network \(16,\)"):
        load_weights(wider, path)
    state = small.state_dict()
    state["model.999.extra"] = torch.zeros(1)
    del state["model.1.bn.bias"]
    path2, _ = save_weights(state, SPEC, tmp_path / "w2.safetensors")
    with pytest.raises(WeightsMismatchError, match=r"missing \(1\): \['model\.1\.bn\.bias'\].*unexpected "
                                                   r"\(1\): \['model\.999\.extra'\]"):
        load_weights(PRBNet(SPEC), path2)
    pickled = tmp_path / "w.pt"
    pickled.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="convert_prb"):
        load_weights(PRBNet(SPEC), pickled)


# ---- re-parameterisation to the deploy graph ------------------------------------------

REF = Path(__file__).resolve().parents[1].parent / "shared" / "prb-reference"
# every training config with its official deploy form
TRAINING_TO_DEPLOY = {"training/yolov7": "deploy/yolov7", "training/yolov7x": "deploy/yolov7x",
                      "training/yolov7-tiny": "deploy/yolov7-tiny", "training/yolov7-w6": "deploy/yolov7-w6",
                      "training/yolov7-e6": "deploy/yolov7-e6", "training/yolov7-d6": "deploy/yolov7-d6",
                      "training/yolov7-e6e": "deploy/yolov7-e6e",
                      "training/PRB_Series/PRB-FPN-ELAN": "deploy/PRB-FPN",
                      "training/PRB_Series/PRB-FPN6-3PY": "deploy/PRB-FPN6-3PY"}


def randomise(net: nn.Module, seed: int = 0) -> nn.Module:
    """Trained-looking statistics: small running variances (eps matters), non-trivial implicit layers."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if not t.is_floating_point() or name.endswith(("anchors", "anchor_grid")):
                continue
            r = torch.rand(t.shape, generator=g)
            if name.endswith("running_var"):
                t.copy_(r * 0.01 + 0.005)
            elif name.endswith("running_mean") or name.endswith("bias"):
                t.copy_(r * 0.2 - 0.1)
            elif name.endswith("implicit"):
                t.copy_(r * 0.1 + (0.95 if ".im." in name else -0.05))
            elif t.dim() == 1:  # BatchNorm scale: about 1 over the running std, activations stay O(1)
                t.copy_(r * 0.1 + 0.05)
            else:
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) * (1.0 / fan_in ** 0.5))
    return net.eval()


def assert_same_output(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-4) -> None:
    assert a.shape == b.shape
    assert (a[..., 4:] - b[..., 4:]).abs().max() < tol
    assert ((a[..., :4] - b[..., :4]).abs() / a[..., :4].abs().clamp(min=1.0)).max() < tol


def e6e_training_spec(width: float) -> dict:
    """The E6E MOT variant's training graph: 4 auxiliary convs from the second pyramid and an
    IAuxDetect over lead + aux inputs (PRBNet's 2PY training layout)."""
    spec = variant_spec("prb-2py-e6e-1280", nc=2, width_multiple=width)
    lead_row = spec["head"].pop()
    n = len(spec["backbone"]) + len(spec["head"])
    aux_sources = {124: 320, 120: 640, 116: 960, 113: 1280}
    spec["head"] += [[src, 1, "Conv", [c, 1, 1]] for src, c in aux_sources.items()]
    spec["head"].append([lead_row[0] + list(range(n, n + 4)), 1, "IAuxDetect", ["nc", "anchors"]])
    return spec


def test_e6e_training_graph_becomes_the_deploy_variant():
    training = randomise(PRBNet(e6e_training_spec(0.125)))
    assert isinstance(training.head, IAuxDetect) and training.head.nl == 4
    assert {f"model.{len(training.model) - 1}.m2.{i}.weight" for i in range(4)} <= set(training.state_dict())
    deployed = to_deploy(training).eval()
    assert type(deployed.head) is Detect
    # the aux convs and the aux head branches are gone; what stays is our deploy variant
    assert architecture(deployed.yaml) == architecture(variant_spec("prb-2py-e6e-1280", nc=2, width_multiple=0.125))
    assert not any(".m2." in k or ".ia." in k or ".im." in k for k in deployed.state_dict())
    x = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        want = training(x)
        assert_same_output(want, deployed(x))
        fused = fuse(deployed)
        assert not any(isinstance(m, (Conv, nn.BatchNorm2d)) for m in fused.modules())
        assert_same_output(want, fused(x))


def test_prb_fpn_csp_fuses_to_the_same_output():
    net = randomise(PRBNet(variant_spec("prb-fpn-csp-640", nc=3, width_multiple=0.25)), seed=1)
    assert deploy_spec(net.yaml)["head"] == net.yaml["head"]  # already the deploy graph
    x = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        want = net(x)
        fused = fuse(net)
        assert all(isinstance(m, FusedConv) for m in fused.model if m.type == "Conv")
        assert_same_output(want, fused(x))


def test_repconv_and_implicit_head_fold_exactly():
    """RepConv with and without its identity branch (c1 == c2 and stride 1), grouped too,
    and an IDetect head whose ia / im fold into the convs."""
    spec = {"nc": 1, "anchors": [[10, 13, 16, 30, 33, 23]],
            "backbone": [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "RepConv", [16, 3, 1]],
                         [-1, 1, "RepConv", [32, 3, 2]], [-1, 1, "RepConv", [32, 3, 1, None, 4]]],
            "head": [[[3], 1, "IDetect", ["nc", "anchors"]]]}
    net = randomise(PRBNet(spec), seed=2)
    assert net.model[1].rbr_identity is not None and net.model[2].rbr_identity is None
    assert isinstance(net.head, IDetect)
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        want = net(x)
        deployed = to_deploy(net).eval()
        assert_same_output(want, deployed(x))
        fused = fuse(deployed)
        assert not any(isinstance(m, RepConv) for m in fused.modules())
        assert_same_output(want, fused(x), tol=1e-5)


@pytest.fixture(scope="module")
def fill():
    if not (REF / "fill.py").is_file():
        pytest.skip(f"prb-reference not found at {REF}")
    spec = importlib.util.spec_from_file_location("prb_reference_fill", REF / "fill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cfg(name: str) -> dict:
    return yaml.safe_load((REF / "cfg" / f"{name}.yaml").read_text())


@pytest.mark.parametrize("training", sorted(TRAINING_TO_DEPLOY))
def test_training_configs_map_to_their_official_deploy_configs(fill, training):
    assert architecture(deploy_spec(_cfg(training))) == architecture(_cfg(TRAINING_TO_DEPLOY[training]))


@pytest.mark.parametrize("name", ["smiletrack/training/yolov7-PRB-2PY-e6e", "deploy/PRB-FPN-CSP",
                                  "training/PRB_Series/PRB-FPN-ELAN"])
def test_deployed_and_fused_official_networks_reproduce_the_official_output(fill, name):
    """The official training network (filled by the reference rule), deployed and fused,
    still gives the official network's output."""
    net = PRBNet(_cfg(name)).eval()
    fill.fill_(net)
    ref = np.load(REF / "outputs" / f"{name.replace('/', '__')}.npz")
    with torch.no_grad():
        fused = fuse(to_deploy(net).eval())
        out = fused(fill.make_input(int(ref["input_size"])))[0].double()
    rows, want = out[torch.from_numpy(ref["row_idx"])], torch.from_numpy(ref["rows"]).double()
    assert_same_output(want, rows)


def test_converts_an_official_training_checkpoint_to_the_deploy_network(tmp_path, official_classes):
    """A checkpoint as official training writes it: whole modules at the official class paths,
    fp16, ``model`` and ``ema`` (the EMA weights are the ones to use), the training graph with
    auxiliary heads and implicit layers. The converted deploy file gives the lead-head output
    of the unconverted network."""
    spec = e6e_training_spec(0.125)
    ema, model = randomise(PRBNet(spec), seed=3), randomise(PRBNet(spec), seed=4)
    reference = PRBNet(spec).eval()
    reference.load_state_dict({k: v.half().float() if v.is_floating_point() else v
                               for k, v in ema.state_dict().items()})
    ckpt = tmp_path / "e6e_training.pt"
    torch.save({"epoch": 299, "best_fitness": np.float64(0.7), "training_results": None, "updates": 1000,
                "model": _as_official(model, official_classes).half(),
                "ema": _as_official(ema, official_classes).half(), "optimizer": None}, ckpt)
    out, onnx_path = tmp_path / "e6e.safetensors", tmp_path / "e6e.onnx"
    assert convert_prb.main([str(ckpt), str(out), "--onnx", str(onnx_path), "--onnx-size", "128"]) == 0
    from safetensors import safe_open

    with safe_open(str(out), framework="pt") as f:
        keys = set(f.keys())
        assert f.get_tensor("model.1.conv.weight").dtype == torch.float32
    assert not any(".m2." in k or ".ia." in k or ".im." in k for k in keys)
    det = PRBDetector(PrbConfig(weights=str(out), device="cpu", input_size=128))
    assert type(det.net.head) is Detect and det.net.head.nl == 4
    x = torch.rand(2, 3, 128, 128)
    with torch.no_grad():
        want = reference(x)
        assert_same_output(want, det.net(x))
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert_same_output(want, torch.from_numpy(session.run(None, {"images": x.numpy()})[0]))
