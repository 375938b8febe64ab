"""Training: the loss, PK batches, augmentation, and a tiny real run that lowers its
loss, writes loadable checkpoints and resumes."""
import json

import numpy as np
import pytest
import torch

from smiletrack_ros.embedding import load_weights
from smiletrack_ros.embedding.dataset import Augmenter, CropSettings, IdentityCrops, pk_batches, split_by_identity
from smiletrack_ros.embedding.errors import EmbedderConfigError
from smiletrack_ros.embedding.slm import SLMNet, SlmSpec
from smiletrack_ros.embedding.training import (
    IdentityClassifier,
    SplitBackbone,
    TrainConfig,
    batch_hard_triplet_loss,
    train,
)

SETTINGS = CropSettings(height=64, width=32, margin=0.125)


def synthetic_crops(n_ids: int = 6, per_id: int = 5, seed: int = 0) -> IdentityCrops:
    """Each identity: a person-like figure with its own shirt and trouser colours,
    seen with noise and small shifts."""
    rng = np.random.default_rng(seed)
    h, w = SETTINGS.context_size
    crops, ids, frames = [], [], []
    for i in range(n_ids):
        shirt, trousers = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        for j in range(per_id):
            img = rng.integers(0, 60, (h, w, 3)).astype(np.float32)
            dy, dx = rng.integers(-2, 3, 2)
            img[10 + dy:h // 2 + dy, 6 + dx:w - 6 + dx] = shirt
            img[h // 2 + dy:h - 10 + dy, 8 + dx:w - 8 + dx] = trousers
            img += rng.normal(0, 12, img.shape)
            crops.append(np.clip(img, 0, 255).astype(np.uint8))
            ids.append(i)
            frames.append(j * 20)
    tensor = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
    return IdentityCrops(tensor, np.array(ids), np.zeros(len(ids), np.int64), np.array(frames), ("synthetic",),
                         SETTINGS)


def test_batch_hard_triplet_loss_values():
    e = torch.nn.functional.normalize(torch.tensor([[1.0, 0], [1, 0.1], [0, 1], [0.1, 1]]), dim=1)
    ids = torch.tensor([0, 0, 1, 1])
    assert float(batch_hard_triplet_loss(e, ids, margin=0.3)) == 0.0  # positives close, negatives far
    swapped = torch.tensor([0, 1, 0, 1])
    assert float(batch_hard_triplet_loss(e, swapped, margin=0.3)) > 1.0


def test_imprinted_identity_classifier_agrees_with_the_features():
    gen = torch.Generator().manual_seed(0)
    centres = torch.eye(5, 16)                       # five people, orthogonal appearances
    ids = np.repeat(np.array([3, 7, 11, 12, 40]), 4)
    emb = torch.nn.functional.normalize(centres.repeat_interleave(4, 0) + 0.1 * torch.randn(20, 16, generator=gen),
                                        dim=1)
    classifier = IdentityClassifier(ids, 16)
    chance = float(classifier.loss(emb, ids).detach())
    assert abs(chance - np.log(5)) < 1e-5          # all-zero class vectors: uniform softmax
    classifier.imprint(emb, ids)
    assert torch.allclose(classifier.weight.norm(dim=1), torch.ones(5))
    imprinted = float(classifier.loss(emb, ids).detach())
    assert imprinted < chance < float(classifier.loss(emb, ids[::-1].copy()).detach())


def test_pk_batches_and_identity_split():
    crops = synthetic_crops(n_ids=10, per_id=3)
    rng = np.random.default_rng(0)
    batches = list(pk_batches(crops.ids, p=4, k=4, n_batches=3, rng=rng))
    assert len(batches) == 3
    for b in batches:
        ids, counts = np.unique(crops.ids[b], return_counts=True)
        assert len(ids) == 4 and (counts == 4).all()
    train_set, val_set = split_by_identity(crops, 0.3, seed=0)
    assert not set(train_set.ids) & set(val_set.ids)
    assert len(np.unique(val_set.ids)) == 3 and len(train_set) + len(val_set) == len(crops)


def test_sequence_batches_take_each_batch_from_one_sequence_and_share_them_out():
    ids = np.repeat(np.arange(12), 3)
    sequences = np.where(ids < 10, 0, 1)       # 10 people in one scene, 2 in the other
    rng = np.random.default_rng(0)
    batches = list(pk_batches(ids, p=4, k=2, n_batches=400, rng=rng, sequences=sequences))
    scenes = [np.unique(sequences[b]) for b in batches]
    assert all(len(s) == 1 for s in scenes)
    small = [b for b, s in zip(batches, scenes, strict=True) if s[0] == 1]
    assert 150 < len(small) < 250                      # uniform over scenes, not over people
    assert all(len(np.unique(ids[b])) == 2 and len(b) == 4 for b in small)  # P capped at the scene's people
    with pytest.raises(ValueError, match="in some sequence"):
        next(pk_batches(np.arange(4), 2, 2, 1, rng, sequences=np.array([0, 0, 1, 1])))


def test_augmenter_outputs_network_size_and_is_seeded():
    crops = synthetic_crops(n_ids=2, per_id=2).crops
    aug = Augmenter(SETTINGS)
    a = aug(crops, torch.Generator().manual_seed(3))
    b = aug(crops, torch.Generator().manual_seed(3))
    assert a.shape == (4, 3, 64, 32) and torch.equal(a, b)
    assert 0 <= float(a.min()) and float(a.max()) <= 255
    assert aug.plain(crops).shape == (4, 3, 64, 32)


@pytest.mark.parametrize("backbone,n_frozen", [("mobilenet_v2", 5), ("resnet18", 4)])
def test_split_backbone_composes_to_the_whole(backbone, n_frozen):
    torch.manual_seed(0)
    net = SLMNet(SlmSpec(backbone=backbone)).eval()
    split = SplitBackbone(net, n_frozen)
    x = torch.rand(2, 3, 64, 32) * 255
    with torch.no_grad():
        assert torch.allclose(split.embed_from_frozen(split.frozen_features(x)), net(x), atol=1e-5)
    assert not any(p.requires_grad for p in split.frozen.parameters())


@pytest.mark.parametrize("backbone,freeze_blocks,cached_views,lr", [("resnet18", 0, 0, 5e-4),
                                                                      ("mobilenet_v2", 4, 2, 1e-3)])
def test_tiny_training_run_lowers_its_loss_and_resumes(tmp_path, backbone, freeze_blocks, cached_views, lr):
    torch.set_num_threads(1)
    crops = synthetic_crops()
    cfg = TrainConfig(sequences=("synthetic",), out_dir=str(tmp_path), backbone=backbone, normalise="none",
                      freeze_blocks=freeze_blocks, cached_views=cached_views, epochs=3,
                      batches_per_epoch=4, p=4, k=4, lr=lr, val_fraction=0.34, seed=0)
    history = train(cfg, crops=crops, progress=False)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["loss"] < history[0]["loss"]
    net, card = load_weights(tmp_path / "best.safetensors")
    assert card.spec.input_height == 64 and card.training["epochs_done"] >= 1
    assert "val_pair_auc" in card.metrics["validation"]
    # resume: more epochs continue from the saved state, earlier history kept
    longer = train(TrainConfig(**{**cfg.__dict__, "epochs": 4}), crops=crops, progress=False)
    assert longer[:3] == history and longer[3]["epoch"] == 4
    assert len(json.loads((tmp_path / "history.json").read_text())) == 4


def test_identity_loss_sequence_batches_and_flip_average_run_resume_and_mark_the_card(tmp_path):
    torch.set_num_threads(1)
    base = synthetic_crops(n_ids=8)
    crops = IdentityCrops(base.crops, base.ids, base.ids % 2, base.frames, ("a", "b"), SETTINGS)
    cfg = TrainConfig(sequences=("a", "b"), out_dir=str(tmp_path), backbone="resnet18", normalise="none", epochs=2,
                      batches_per_epoch=4, p=4, k=4, lr=5e-4, val_fraction=0.5, seed=0, sequence_batches=True,
                      id_loss_weight=0.5, flip_average=True)
    history = train(cfg, crops=crops, progress=False)
    assert history[-1]["loss"] < history[0]["loss"]
    _, card = load_weights(tmp_path / "best.safetensors")
    assert card.flip_average is True and card.training["config"]["id_loss_weight"] == 0.5
    assert "classifier" in torch.load(tmp_path / "last_state.pt", weights_only=True)
    longer = train(TrainConfig(**{**cfg.__dict__, "epochs": 3}), crops=crops, progress=False)
    assert longer[:2] == history and longer[2]["epoch"] == 3
    plain = {**cfg.__dict__, "out_dir": str(tmp_path / "plain"), "epochs": 1, "batches_per_epoch": 1}
    train(TrainConfig(**{**plain, "id_loss_weight": 0.0}), crops=crops, progress=False)
    with pytest.raises(EmbedderConfigError, match="id_loss_weight: the run"):
        train(TrainConfig(**{**plain, "epochs": 2}), crops=crops, progress=False)


def test_train_config_errors_name_the_field():
    with pytest.raises(EmbedderConfigError, match="cached_views"):
        TrainConfig(sequences=("x",), out_dir="o", cached_views=2)
    with pytest.raises(EmbedderConfigError, match="id_loss_weight"):
        TrainConfig(sequences=("x",), out_dir="o", id_loss_weight=-1)
    with pytest.raises(EmbedderConfigError, match="min_visibility"):
        TrainConfig(sequences=("x",), out_dir="o", min_visibility=1.5)
    with pytest.raises(EmbedderConfigError, match="init_weights"):
        TrainConfig(sequences=("x",), out_dir="o", backbone="resnet18", init_weights="w.pt")


def test_warm_start_from_slm_weights_uses_their_card(tmp_path):
    from smiletrack_ros.embedding import ModelCard, save_weights

    torch.manual_seed(0)
    spec = SlmSpec(backbone="resnet18", input_height=64, input_width=32, channel_order="rgb")
    path = tmp_path / "start.safetensors"
    save_weights(SLMNet(spec), path, ModelCard(spec=spec))
    cfg = TrainConfig(sequences=("x",), out_dir=str(tmp_path / "run"), backbone="resnet18", init_weights=str(path))
    assert cfg.warm_start and cfg.spec() == spec
    with pytest.raises(EmbedderConfigError, match="init_weights: .* holds a resnet18 SLM"):
        TrainConfig(sequences=("x",), out_dir="o", backbone="mobilenet_v2", init_weights=str(path)).spec()
