"""The train_slm and eval_appearance command-line tools on a tiny MOT sequence."""
import json

import cv2
import numpy as np
import pytest

from smiletrack_ros.cli import eval_appearance, train_slm
from smiletrack_ros.embedding import Embedder

COLOURS = [(30, 30, 220), (220, 40, 40), (40, 200, 40), (200, 200, 40)]


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    """10 frames, 160x120: four differently dressed 'people' walking right."""
    root = tmp_path_factory.mktemp("seq") / "TINY-01"
    (root / "img1").mkdir(parents=True)
    (root / "gt").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for k in range(1, 11):
        image = rng.integers(90, 130, (120, 160, 3), dtype=np.uint8)
        for i, colour in enumerate(COLOURS):
            x, y = 4 + 36 * i + k, 20 + 10 * (i % 2)
            image[y:y + 25, x:x + 20] = colour
            image[y + 25:y + 50, x + 2:x + 18] = (60, 60, 60)
            rows.append(f"{k},{i + 1},{x},{y},20,50,1,-1,-1,-1")
        cv2.imwrite(str(root / "img1" / f"{k:06d}.jpg"), image)
    (root / "gt" / "gt.txt").write_text("\n".join(rows) + "\n")
    return root


def test_eval_appearance_scores_untrained_slm_and_hsv(sequence, tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = eval_appearance.main(["--seq", str(sequence), "--weights", "untrained", "--device", "cpu",
                               "--min-frame-gap", "5", "--json", str(out)])
    assert rc == 0
    results = {r["name"]: r for r in json.loads(out.read_text())["results"]}
    assert set(results) == {"slm:untrained", "hsv_histogram"}
    assert results["hsv_histogram"]["crops"] == 40 and results["hsv_histogram"]["pair_auc"] > 0.9
    assert 0 <= results["slm:untrained"]["pair_auc"] <= 1
    assert "hsv_histogram" in capsys.readouterr().out


def test_eval_appearance_scores_both_flip_settings(sequence, tmp_path):
    out = tmp_path / "r.json"
    rc = eval_appearance.main(["--seq", str(sequence), "--weights", "untrained", "--device", "cpu", "--no-hsv",
                               "--flip-average", "both", "--max-frames", "4", "--json", str(out)])
    assert rc == 0
    results = {r["name"]: r for r in json.loads(out.read_text())["results"]}
    assert set(results) == {"slm:untrained", "slm:untrained+flip"}
    assert all(r["crops"] == 16 and 0 <= r["pair_auc"] <= 1 for r in results.values())


def test_train_slm_runs_exports_fp16_and_the_export_loads(sequence, tmp_path):
    export = tmp_path / "w.safetensors"
    rc = train_slm.main(["--seq", str(sequence), "--out", str(tmp_path / "run"), "--backbone", "resnet18",
                         "--epochs", "1", "--batches-per-epoch", "1", "--p", "2", "--k", "2", "--val-fraction", "0.5",
                         "--flip-average", "--id-loss-weight", "0.5", "--sequence-batches", "--min-height", "20",
                         "--export", str(export), "--no-progress"])
    assert rc == 0
    card = json.loads(export.with_suffix(".json").read_text())
    assert card["storage_dtype"] == "float16" and card["training"]["data"]["sequences"] == ["TINY-01"]
    assert card["inference"] == {"flip_average": True} and card["training"]["config"]["min_height"] == 20
    emb = Embedder(weights=export, device="cpu", warmup=False)
    assert emb(np.zeros((60, 40, 3), np.uint8), np.array([[0, 0, 20, 50]])).shape == (1, 128)


def test_train_slm_reports_bad_settings(sequence, tmp_path, capsys):
    rc = train_slm.main(["--seq", str(sequence), "--out", str(tmp_path), "--backbone", "resnet18",
                         "--init-weights", "x.pt"])
    assert rc == 2 and "init_weights" in capsys.readouterr().err
