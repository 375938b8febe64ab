"""Distilling a teacher into the SLM: the losses, the batches of unlabelled crops, the
teacher cache, and a tiny real run (synthetic scene, an ONNX teacher) that lowers the
distillation loss on held-out identities and resumes."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from smiletrack_ros.cli import make_scene, train_slm
from smiletrack_ros.embedding import Embedder, EmbedderConfigError
from smiletrack_ros.embedding.distill import kl_loss, similarity_loss, teacher_config, window_batches
from smiletrack_ros.embedding.onnx_embedder import export_onnx
from smiletrack_ros.embedding.training import TrainConfig, train

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("scene") / "SYN-01"
    assert make_scene.main([str(root), "--people", "5", "--frames", "14", "--width", "320", "--height", "240",
                            "--person-height", "0.4", "0.55", "--seed", "2"]) == 0
    return root


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A colour-layout teacher (the mean normalised colour of 4 x 2 cells), exported to ONNX:
    deterministic, and it tells the synthetic people apart by their clothes."""
    path = tmp_path_factory.mktemp("teacher") / "colour_layout.onnx"
    export_onnx(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d((4, 2)), torch.nn.Flatten()), path, (256, 128))
    return f"onnx:{path}"


def test_losses_are_zero_when_the_student_agrees_and_positive_otherwise():
    gen = torch.Generator().manual_seed(0)
    t = F.normalize(torch.randn(8, 16, generator=gen), dim=1)
    s = F.normalize(torch.randn(8, 16, generator=gen), dim=1)
    assert similarity_loss(t, t) == 0 and similarity_loss(s, t) > 0.05
    assert kl_loss(t, t, 0.1).abs() < 1e-6 and kl_loss(s, t, 0.1) > 0.1


def test_window_batches_stay_in_one_sequence_and_window():
    seqs = np.repeat([0, 1], 50)
    frames = np.tile(np.repeat(np.arange(10), 5), 2)
    for batch in window_batches(seqs, frames, 8, 3, 20, np.random.default_rng(0)):
        assert len(np.unique(seqs[batch])) == 1 and np.ptp(frames[batch]) < 3 and len(set(batch)) == len(batch)


def test_teacher_spec_errors_name_the_setting():
    for spec in ("openvino", "osnet:untrained", "tensorrt:x.engine"):
        with pytest.raises(EmbedderConfigError, match="^teacher"):
            teacher_config(spec)
    with pytest.raises(EmbedderConfigError, match="^unlabelled"):
        TrainConfig(sequences=("a",), out_dir="x", unlabelled=("b",))


@pytest.mark.parametrize("kind", ["kl", "feature"])
def test_a_tiny_distillation_run_lowers_its_loss_and_resumes(scene, teacher, tmp_path, kind):
    out = tmp_path / "run"
    cfg = TrainConfig(sequences=(str(scene),), out_dir=str(out), backbone="resnet18", epochs=3, batches_per_epoch=4,
                      p=3, k=3, lr=1e-3, val_fraction=0.4, min_height=20, teacher=teacher, distill=kind,
                      triplet_weight=0.0, unlabelled=(str(scene),), unlabelled_min_score=0.0, seed=1)
    history = train(cfg, progress=False)
    card = json.loads((out / "last.json").read_text())
    initial = card["training"]["initial_val_distill_loss"]
    assert history[-1]["val_distill_loss"] < initial  # the held-out identities agree better with the teacher
    assert card["training"]["data"]["unlabelled_crops"] > 0
    assert (out / "teacher_labelled.npz").is_file() and (out / "teacher_unlabelled.npz").is_file()
    resumed = train(TrainConfig(**{**cfg.__dict__, "epochs": 4}), progress=False)  # cache hit, resumes at 3
    assert [e["epoch"] for e in resumed] == [1, 2, 3, 4] and resumed[:3] == history


def test_train_slm_cli_distils_and_exports(scene, teacher, tmp_path):
    export = tmp_path / "w.safetensors"
    rc = train_slm.main(["--seq", str(scene), "--out", str(tmp_path / "run"), "--backbone", "resnet18",
                         "--epochs", "1", "--batches-per-epoch", "1", "--p", "2", "--k", "2", "--val-fraction",
                         "0.4", "--min-height", "20", "--teacher", teacher, "--distill", "similarity",
                         "--export", str(export), "--no-progress"])
    assert rc == 0
    card = json.loads(export.with_suffix(".json").read_text())
    assert card["training"]["config"]["teacher"] == teacher and card["training"]["config"]["distill"] == "similarity"
    emb = Embedder(weights=export, device="cpu", warmup=False)
    assert emb(np.zeros((60, 40, 3), np.uint8), np.array([[0, 0, 20, 50]])).shape == (1, 128)
