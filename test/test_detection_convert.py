"""Safe conversion of pickled PRBNet/YOLOv7-style checkpoints, and strict weight loading."""
import builtins
import os
import pickle
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
from torch import nn

from smiletrack_ros.cli import convert_prb
from smiletrack_ros.detection import PrbConfig
from smiletrack_ros.detection.prb import heads, modules
from smiletrack_ros.detection.prb.checkpoint import UnsafeCheckpointError, extract_model, read_checkpoint
from smiletrack_ros.detection.prb.detector import PRBDetector
from smiletrack_ros.detection.prb.network import PRBNet
from smiletrack_ros.detection.prb.variants import variant_spec
from smiletrack_ros.detection.prb.weights import WeightsMismatchError, load_weights, save_weights

SPEC = variant_spec("prb-2py-elan-640", nc=2, width_multiple=0.125)


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
    wider = PRBNet(variant_spec("prb-2py-elan-640", nc=2, width_multiple=0.25))
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
