"""Weight files: our safetensors + card, the official checkpoint format, and every
way a file can be wrong (corrupt, truncated, wrong architecture, hostile)."""
import json
import os
import pickle

import numpy as np
import pytest
import torch

from smiletrack_ros.embedding import Embedder, ModelCard, SLMNet, SlmSpec, WeightsError, load_weights, save_weights
from smiletrack_ros.embedding.weights import DEFAULT_WEIGHTS, card_path


@pytest.fixture(scope="module")
def resnet_net():
    torch.manual_seed(1)
    net = SLMNet(SlmSpec(backbone="resnet18")).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so a lost buffer would show
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net


def same_outputs(a: SLMNet, b: SLMNet, atol: float = 1e-5) -> bool:
    x = torch.rand(2, 3, 64, 32, generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        return torch.allclose(a.eval()(x), b.eval()(x), atol=atol)


def test_safetensors_round_trip_with_card(tmp_path, resnet_net):
    path = tmp_path / "w.safetensors"
    card = ModelCard(spec=resnet_net.spec, name="t", training={"data": ["x"]}, metrics={"auc": 0.9})
    save_weights(resnet_net, path, card)
    net, loaded = load_weights(path)
    assert loaded == card
    assert same_outputs(net, resnet_net)


def test_fp16_storage_halves_the_file_and_stays_close(tmp_path, resnet_net):
    full, half = tmp_path / "f.safetensors", tmp_path / "h.safetensors"
    save_weights(resnet_net, full, ModelCard(spec=resnet_net.spec))
    save_weights(resnet_net, half, ModelCard(spec=resnet_net.spec, storage_dtype="float16"))
    assert half.stat().st_size < 0.6 * full.stat().st_size
    net, _ = load_weights(half)
    assert next(net.parameters()).dtype == torch.float32
    assert same_outputs(net, resnet_net, atol=5e-3)


def test_card_flip_average_round_trip_and_older_cards_without_it(tmp_path, resnet_net):
    path = tmp_path / "w.safetensors"
    save_weights(resnet_net, path, ModelCard(spec=resnet_net.spec, flip_average=True))
    assert load_weights(path)[1].flip_average is True
    data = json.loads(card_path(path).read_text())
    assert data["inference"] == {"flip_average": True}
    del data["inference"]
    card_path(path).write_text(json.dumps(data))
    assert load_weights(path)[1].flip_average is False
    for bad in ({"flip_average": 1}, {"flip": True}, []):
        card_path(path).write_text(json.dumps({**data, "inference": bad}))
        with pytest.raises(WeightsError, match="flip_average|inference"):
            load_weights(path)


def test_missing_card_and_bad_card_fields(tmp_path, resnet_net):
    path = tmp_path / "w.safetensors"
    save_weights(resnet_net, path, ModelCard(spec=resnet_net.spec))
    data = json.loads(card_path(path).read_text())
    data["input"]["channel_order"] = "yuv"
    card_path(path).write_text(json.dumps(data))
    with pytest.raises(WeightsError, match="channel_order"):
        load_weights(path)
    card_path(path).unlink()
    with pytest.raises(WeightsError, match="model card not found"):
        load_weights(path)


def test_wrong_architecture_names_the_keys(tmp_path, resnet_net):
    path = tmp_path / "w.safetensors"
    save_weights(resnet_net, path, ModelCard(spec=SlmSpec(backbone="mobilenet_v2")))
    with pytest.raises(WeightsError, match=r"w\.safetensors.*missing keys: backbone\.0\.0\.weight.*unexpected keys"):
        load_weights(path)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_or_truncated_safetensors(tmp_path, resnet_net, damage):
    path = tmp_path / "w.safetensors"
    save_weights(resnet_net, path, ModelCard(spec=resnet_net.spec))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x00" * 64)
    with pytest.raises(WeightsError, match="w.safetensors: not a readable safetensors file"):
        load_weights(path)


def official_state(net: SLMNet, prefix: str = "module.") -> dict:
    """Our weights laid out as the official model names them, with the layers it
    defines but never runs."""
    state = {}
    for key, value in net.state_dict().items():
        state[prefix + ("resnet." + key[len("backbone."):] if key.startswith("backbone.") else key)] = value.clone()
    state[prefix + "resnet.layer4.0.conv1.weight"] = torch.zeros(512, 256, 3, 3)
    state[prefix + "resnet.fc.weight"] = torch.zeros(1000, 512)
    state[prefix + "conv1.con1x1.weight"] = torch.zeros(128, 64, 1, 1)
    return state


@pytest.mark.parametrize("prefix,old_torch", [("module.", False), ("", True)])
def test_official_checkpoint_loads(tmp_path, resnet_net, prefix, old_torch):
    path = tmp_path / "official.pth"
    state = official_state(resnet_net, prefix)
    if old_torch:  # saved before BatchNorm counted its steps
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save({"model_G_state_dict": state, "epoch_id": 42}, path)
    net, card = load_weights(path)
    assert card.training["epoch_id"] == 42
    for epoch in (float("inf"), float("nan"), True):   # issue 16.7: a label, never a start-up traceback
        torch.save({"model_G_state_dict": state, "epoch_id": epoch}, path)
        assert load_weights(path)[1].training["epoch_id"] is None
    assert card.spec.channel_order == "bgr" and card.spec.mean == (0.0, 0.0, 0.0)
    assert same_outputs(net, resnet_net)
    emb = Embedder(weights=path, device="cpu", warmup=False)
    out = emb(np.zeros((50, 40, 3), np.uint8), np.array([[0, 0, 20, 50]], np.float32))
    assert out.shape == (1, 128)


def test_official_checkpoint_strict_about_unknown_and_missing_keys(tmp_path, resnet_net):
    state = official_state(resnet_net)
    state["module.extra_head.weight"] = torch.zeros(3)
    del state["module.conv_pred.bias"]
    path = tmp_path / "official.pth"
    torch.save({"model_G_state_dict": state}, path)
    with pytest.raises(WeightsError, match=r"official\.pth.*missing keys: conv_pred\.bias.*unexpected keys: "
                                           r"extra_head\.weight"):
        load_weights(path)
    torch.save({"weights": state}, path)
    with pytest.raises(WeightsError, match="model_G_state_dict"):
        load_weights(path)


class _Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("wrap", ["plain_pickle", "torch_save"])
def test_hostile_pickle_runs_nothing(tmp_path, wrap):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"model_G_state_dict": {"x": _Hostile(marker)}}
    if wrap == "plain_pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, path)
    with pytest.raises(WeightsError, match="evil.pth: refused or unreadable"):
        load_weights(path)
    with pytest.raises(WeightsError):
        Embedder(weights=path, device="cpu", warmup=False)
    assert not marker.exists()


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(WeightsError, match="nothere.pth: weights file not found"):
        load_weights(tmp_path / "nothere.pth")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(WeightsError, match="junk.pt"):
        load_weights(junk)


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="default weights not built yet")
def test_shipped_default_weights_load_and_are_small():
    assert DEFAULT_WEIGHTS.stat().st_size <= 12 * 1024 * 1024
    card = ModelCard.read(card_path(DEFAULT_WEIGHTS))
    assert card.training and card.metrics
    emb = Embedder(device="cpu", warmup=False)
    out = emb(np.zeros((100, 60, 3), np.uint8), np.array([[5, 5, 40, 95]], np.float32))
    assert out.shape == (1, 128) and np.isclose(np.linalg.norm(out), 1.0, atol=1e-5)
