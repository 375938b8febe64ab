"""Detection metrics on hand-made cases, and the evaluation tool on real data (YOLOX-Nano)."""
import json

import numpy as np
import pytest

from smiletrack_ros.boxes import iou_matrix
from smiletrack_ros.cli import eval_detector
from smiletrack_ros.detection.evaluation import DetectionTally, match_frame

GT = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32)


def test_iou_matrix():
    ious = iou_matrix(np.array([[0, 0, 10, 10], [5, 0, 15, 10], [40, 40, 41, 41]]), GT)
    np.testing.assert_allclose(ious, [[1, 0], [1 / 3, 0], [0, 0]])


def test_greedy_matching_prefers_higher_scores_and_matches_once():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 0, 30, 10]], np.float32)
    assert match_frame(boxes, np.array([0.5, 0.9, 0.7]), GT, 0.5).tolist() == [False, True, True]


def test_recall_precision_and_ap():
    tally = DetectionTally(0.5)
    # frame 1: a hit (0.9) and a false positive (0.8); frame 2: a hit (0.6), one gt box missed
    tally.add(np.array([[0, 0, 10, 10], [50, 50, 60, 60]], np.float32), np.array([0.9, 0.8]), GT[:1])
    tally.add(np.array([[20, 0, 30, 10]], np.float32), np.array([0.6]), GT)
    assert tally.n_gt == 3 and tally.frames == 2
    assert tally.at(0.85) == (pytest.approx(1 / 3), 1.0, 1)
    assert tally.at(0.5) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    # PR points: (1/3, 1), (1/3, 1/2), (2/3, 2/3) -> envelope area 1/3 * 1 + 1/3 * 2/3
    assert tally.average_precision() == pytest.approx(1 / 3 + 2 / 9)
    assert tally.best_recall(0.9) == (pytest.approx(1 / 3), 1.0, pytest.approx(0.9))
    assert tally.best_recall(0.6) == (pytest.approx(2 / 3), pytest.approx(2 / 3), pytest.approx(0.6))
    assert np.isnan(DetectionTally().average_precision())


def test_yolox_nano_on_tud(shared_dir, tmp_path, capsys):
    """Trained weights on real data: every 5th frame of TUD-Campus and TUD-Stadtmitte."""
    out = tmp_path / "eval.json"
    seqs = [str(shared_dir / "data" / "MOT15" / s) for s in ("TUD-Campus", "TUD-Stadtmitte")]
    rc = eval_detector.main(seqs + ["--weights", str(shared_dir / "models" / "yolox_nano.onnx"), "--every", "5",
                                    "--nms-iou", "0.6", "--device", "cpu", "--json", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "combined" in printed and "ms/frame" in printed
    combined = json.loads(out.read_text())["results"][-1]
    assert combined["sequence"] == "combined" and combined["gt_boxes"] > 250
    at03 = combined["thresholds"]["0.3"]
    assert at03["recall"] >= 0.78 and at03["precision"] >= 0.78
    assert combined["ap50"] >= 0.78
    assert combined["ms_per_frame"] > 0


def test_public_detections_through_the_external_backend(shared_dir, tmp_path):
    """The det file's boxes reach the frame they belong to, also when frames are skipped."""
    from smiletrack_ros.mot.io import read_detections, read_ground_truth

    seq = shared_dir / "data" / "MOT15" / "TUD-Campus"
    out = tmp_path / "ext.json"
    assert eval_detector.main([str(seq), "--backend", "external", "--every", "5", "--json", str(out)]) == 0
    result = json.loads(out.read_text())["results"][0]
    dets = read_detections(seq / "det" / "det.txt", min_score=0.05)
    gt = read_ground_truth(seq / "gt" / "gt.txt").pedestrians()
    expected = DetectionTally(0.5)
    for k in range(1, 72, 5):
        d = dets.get(k)
        boxes, scores = (d.boxes, d.scores) if d is not None else (np.zeros((0, 4)), np.zeros(0))
        keep = scores > 0.05
        expected.add(boxes[keep], scores[keep], gt.boxes[gt.frames == k])
    assert result["frames"] == expected.frames == 15
    assert result["ap50"] == pytest.approx(expected.average_precision())
