"""TrackEval scoring on real ground truth (skips without ../shared) and on synthetic tracks."""
import numpy as np
import pytest

from smiletrack_ros.mot.evaluate import COMBINED, evaluate, evaluate_files, format_table
from smiletrack_ros.mot.io import GroundTruth, read_ground_truth, read_results, write_results


def _as_result(gt: GroundTruth, ids=None) -> np.ndarray:
    return np.column_stack([gt.frames, gt.ids if ids is None else ids, gt.boxes, np.ones(len(gt))])


def _swap_second_half(gt: GroundTruth) -> np.ndarray:
    ids = gt.ids.copy()
    a, b = np.unique(gt.ids)[:2]
    late = gt.frames > np.median(gt.frames)
    ids[late & (gt.ids == a)], ids[late & (gt.ids == b)] = b, a
    return ids


def _synthetic_gt(frames=30, people=3) -> GroundTruth:
    f, i = np.meshgrid(np.arange(1, frames + 1), np.arange(1, people + 1), indexing="ij")
    f, i = f.ravel(), i.ravel()
    x = 100.0 * i + 2.0 * f
    boxes = np.column_stack([x, np.full_like(x, 50), x + 40, np.full_like(x, 150)]).astype(np.float32)
    n = len(f)
    return GroundTruth(f, i, boxes, np.ones(n, np.float32), np.full(n, -1), np.full(n, -1.0, np.float32))


def test_perfect_and_swapped_synthetic():
    gt = _synthetic_gt()
    res = evaluate({"perfect": (gt, _as_result(gt)), "swapped": (gt, _as_result(gt, _swap_second_half(gt)))})
    assert res["perfect"]["HOTA"] == pytest.approx(100.0) and res["perfect"]["IDSW"] == 0
    assert res["swapped"]["IDF1"] < 90 and res["swapped"]["IDSW"] >= 2
    assert res["swapped"]["MOTA"] < 100 and res["swapped"]["DetA"] == pytest.approx(100.0)
    assert res[COMBINED]["GT_Dets"] == 2 * len(gt)
    assert "perfect" in format_table(res)


def test_missing_and_false_boxes_lower_detection_metrics():
    gt = _synthetic_gt()
    rows = _as_result(gt)
    drop = rows[:, 1] == 1
    extra = rows[drop].copy()
    extra[:, 1] = 99
    extra[:, 2:6] += [300, 200, 300, 200]
    res = evaluate({"s": (gt, np.concatenate([rows[~drop], extra]))})["s"]
    assert res["FN"] == drop.sum() and res["FP"] == drop.sum()
    assert res["MOTA"] == pytest.approx(100.0 * (1 - 2 * drop.sum() / len(gt)))
    assert res["DetA"] < 70


def test_invalid_results_are_named():
    gt = _synthetic_gt()
    rows = _as_result(gt)
    with pytest.raises(ValueError, match="outside the evaluated"):
        evaluate({"s": (gt, rows)}, num_frames={"s": 10})
    with pytest.raises(ValueError, match="twice in one frame"):
        evaluate({"s": (gt, np.concatenate([rows, rows[:1]]))})
    with pytest.raises(ValueError, match="no sequences"):
        evaluate({})


def test_gt_as_tracker_scores_100_on_tud_campus(shared_dir, tmp_path):
    seq = shared_dir / "data" / "MOT15" / "TUD-Campus"
    gt = read_ground_truth(seq / "gt" / "gt.txt")
    write_results(tmp_path / "perfect.txt", _as_result(gt))
    write_results(tmp_path / "swapped.txt", _as_result(gt, _swap_second_half(gt)))
    gt_path = seq / "gt" / "gt.txt"
    res = evaluate_files({"perfect": (gt_path, tmp_path / "perfect.txt"),
                          "swapped": (gt_path, tmp_path / "swapped.txt")})
    perfect, swapped = res["perfect"], res["swapped"]
    for key in ("HOTA", "DetA", "AssA", "MOTA", "IDF1"):
        assert perfect[key] == pytest.approx(100.0)
    assert perfect["IDSW"] == 0 and perfect["GT_Dets"] == 359 and perfect["GT_IDs"] == 8
    assert swapped["IDF1"] < perfect["IDF1"] - 1 and swapped["AssA"] < 100 and swapped["IDSW"] >= 1


def test_mot17_evaluates_pedestrians_only(shared_dir):
    seq = shared_dir / "data" / "MOT17-mini" / "train" / "MOT17-02-FRCNN"
    gt = read_ground_truth(seq / "gt" / "gt.txt")
    peds = gt.pedestrians()
    res = evaluate({"peds": (gt, _as_result(peds)), "all": (gt, _as_result(gt))}, num_frames={"peds": 4, "all": 4})
    assert res["peds"]["HOTA"] == pytest.approx(100.0) and res["peds"]["MOTA"] == pytest.approx(100.0)
    assert res["peds"]["GT_Dets"] == len(peds) and res["peds"]["GT_IDs"] == len(np.unique(peds.ids))
    # Boxes on distractor classes are forgiven, boxes on other non-pedestrian classes are false positives.
    distractor = np.isin(gt.classes, [2, 7, 8, 12])
    other = (gt.classes != 1) & ~distractor
    assert res["all"]["FP"] == other.sum() + ((gt.classes == 1) & (gt.conf == 0)).sum()


def _write_mot15(path, frames, ids, boxes_xywh, decimals=3):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{f},{i},{','.join(f'{v:.{decimals}f}' for v in b)},1,-1,-1,-1\n"
                            for f, i, b in zip(frames, ids, boxes_xywh, strict=True)))


def _unrounded_pair(tmp_path, gt_ids=(1, 2, 3)):
    """MOT15 gt and results with 3-decimal boxes (TrackEval reads every digit)."""
    rng = np.random.default_rng(5)
    frames = np.repeat(np.arange(1, 31), len(gt_ids))
    ids = np.tile(np.asarray(gt_ids), 30)
    boxes = np.column_stack([rng.uniform(0, 400, len(frames)), rng.uniform(0, 200, len(frames)),
                             rng.uniform(20, 60, len(frames)), rng.uniform(60, 150, len(frames))])
    gt, res = tmp_path / "Seq" / "gt" / "gt.txt", tmp_path / "res" / "Seq.txt"
    _write_mot15(gt, frames, ids, boxes)
    swapped = np.where(frames > 15, ids[::-1], ids)  # identities swap half way
    _write_mot15(res, frames, swapped, boxes + rng.normal(0, 2.0, boxes.shape))
    return gt, res


def _trackeval_on(gt, res):
    """The reference: TrackEval's own Evaluator on the files themselves."""
    import trackeval

    quiet = {"PRINT_RESULTS": False, "PRINT_CONFIG": False, "TIME_PROGRESS": False, "OUTPUT_SUMMARY": False,
             "OUTPUT_DETAILED": False, "PLOT_CURVES": False, "LOG_ON_ERROR": None}
    data = {"GT_FOLDER": str(gt.parents[2]), "TRACKERS_FOLDER": str(res.parents[1]), "TRACKERS_TO_EVAL": ["t"],
            "TRACKER_SUB_FOLDER": "", "BENCHMARK": "MOT15", "SKIP_SPLIT_FOL": True, "SEQ_INFO": {"Seq": 30},
            "PRINT_CONFIG": False}
    metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR({"PRINT_CONFIG": False}),
               trackeval.metrics.Identity({"PRINT_CONFIG": False})]
    out, _ = trackeval.Evaluator(quiet).evaluate([trackeval.datasets.MotChallenge2DBox(data)], metrics)
    return out["MotChallenge2DBox"]["t"]["Seq"]["pedestrian"]


def test_files_score_exactly_as_trackeval_scores_them(tmp_path):
    gt, res = _unrounded_pair(tmp_path / "ours", gt_ids=(7, 100_000_000, 42))
    ref_gt, ref_res = tmp_path / "ref" / "gt" / "Seq" / "gt" / "gt.txt", tmp_path / "ref" / "trackers" / "t" / "Seq.txt"
    _unrounded_pair(tmp_path / "small", gt_ids=(1, 3, 2))  # the same boxes, ids small but in the same order
    ref_gt.parent.mkdir(parents=True)
    ref_res.parent.mkdir(parents=True)
    (tmp_path / "small" / "Seq" / "gt" / "gt.txt").rename(ref_gt)
    (tmp_path / "small" / "res" / "Seq.txt").rename(ref_res)
    ref = _trackeval_on(ref_gt, ref_res)
    ours = evaluate_files({"Seq": (gt, res)}, use_seqinfo=False)["Seq"]
    assert ours["HOTA"] == 100.0 * float(np.mean(ref["HOTA"]["HOTA"]))
    assert ours["LocA"] == 100.0 * float(np.mean(ref["HOTA"]["LocA"]))
    assert ours["MOTA"] == 100.0 * ref["CLEAR"]["MOTA"] and ours["IDF1"] == 100.0 * ref["Identity"]["IDF1"]
    assert (ours["IDSW"], ours["FP"], ours["FN"]) == (ref["CLEAR"]["IDSW"], ref["CLEAR"]["CLR_FP"],
                                                      ref["CLEAR"]["CLR_FN"])
    # what the old rounded rewrite gave: the same file through arrays and 2-decimal MOT text scores differently
    rounded = evaluate({"Seq": (read_ground_truth(gt), read_results(res))}, {"Seq": 30})["Seq"]
    assert rounded["LocA"] != ours["LocA"]


def test_a_sequence_over_the_memory_budget_is_refused_by_name(tmp_path, capsys):
    from smiletrack_ros.cli import evaluate_mot

    ids = np.arange(1, 301)
    boxes = np.column_stack([ids * 3.0, np.zeros(300), np.full(300, 10.0), np.full(300, 20.0)])
    gt, res = tmp_path / "Seq" / "gt" / "gt.txt", tmp_path / "res" / "Seq.txt"
    _write_mot15(gt, np.ones(300, int), ids, boxes)
    _write_mot15(res, np.ones(300, int), ids, boxes)
    # 300 gt ids x 300 tracker ids, 90000 box pairs in frame 1: ~23 MB
    with pytest.raises(ValueError, match=r"sequence Seq: scoring would need ~0.0 GiB \(300 gt ids x 300 tracker ids"):
        evaluate_files({"Seq": (gt, res)}, max_bytes=10e6)
    assert evaluate_files({"Seq": (gt, res)}, max_bytes=30e6)["Seq"]["HOTA"] == pytest.approx(100.0)
    assert evaluate_mot.main([str(tmp_path / "Seq"), "--results", str(tmp_path / "res"),
                              "--max-memory-gib", "0.01"]) == 2
    assert "90000 box pairs in one frame" in capsys.readouterr().err
