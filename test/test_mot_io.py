"""MOTChallenge file handling: round trips, conventions, frame sources."""
import math

import cv2
import numpy as np
import pytest

from smiletrack_ros.mot.io import (
    MotFormatError,
    iter_frames,
    load_sequence_info,
    read_detections,
    read_ground_truth,
    read_results,
    rescale_scores,
    track_rows,
    write_detections,
    write_ground_truth,
    write_results,
)

SEQINFO = "[Sequence]\nname=Seq-1\nimDir=img1\nframeRate=25\nseqLength=3\nimWidth=32\nimHeight=24\nimExt=.png\n"


def _rows(rng, n=40):
    x1y1 = rng.uniform(0, 500, (n, 2))
    wh = rng.uniform(5, 80, (n, 2))
    return np.column_stack([rng.integers(1, 9, n), rng.integers(1, 6, n), x1y1, x1y1 + wh,
                            rng.uniform(0, 1, n)])


def test_results_round_trip(tmp_path):
    rows = np.round(_rows(np.random.default_rng(0)), 2)
    rows[:, 6] = np.round(rows[:, 6], 4)
    assert write_results(tmp_path / "sub" / "r.txt", rows) == len(rows)
    back = read_results(tmp_path / "sub" / "r.txt")
    np.testing.assert_allclose(back, rows, atol=0.011)
    first = (tmp_path / "sub" / "r.txt").read_text().splitlines()[0].split(",")
    assert len(first) == 10 and first[7:] == ["-1", "-1", "-1"]
    w = float(first[4])
    assert w == pytest.approx(rows[0, 4] - rows[0, 2], abs=0.011)


def test_write_results_rejects_bad_rows(tmp_path):
    with pytest.raises(ValueError, match="7 values"):
        write_results(tmp_path / "r.txt", np.zeros((3, 6)))
    with pytest.raises(ValueError, match="non-finite"):
        write_results(tmp_path / "r.txt", [[1, 1, 0, 0, np.nan, 1, 1]])
    assert write_results(tmp_path / "empty.txt", []) == 0
    assert read_results(tmp_path / "empty.txt").shape == (0, 7)


def test_track_rows_from_track_outputs():
    class T:  # the TrackOutput fields track_rows reads
        def __init__(self, tid, box, score):
            self.track_id, self.box, self.score = tid, np.asarray(box, np.float32), score

    assert track_rows(7, [T(3, [1, 2, 3, 4], 0.5)]) == [(7, 3, 1.0, 2.0, 3.0, 4.0, 0.5)]


def test_detections_group_by_frame_and_convert_boxes(tmp_path):
    path = tmp_path / "det.txt"
    path.write_text("2,-1,10,20,30,40,0.9,-1,-1,-1\n1,-1,0,0,5,5,0.2,-1,-1,-1\n2,-1,1,1,2,2,0.4,-1,-1,-1\n")
    dets = read_detections(path)
    assert sorted(dets) == [1, 2]
    np.testing.assert_allclose(dets[2].boxes[0], [10, 20, 40, 60])
    assert dets[2].boxes.dtype == np.float32 and dets[2].class_ids.dtype == np.int64
    np.testing.assert_allclose(dets[2].scores, [0.9, 0.4])
    assert sorted(read_detections(path, min_score=0.3)) == [2]
    assert len(read_detections(path, min_score=0.3)[2]) == 2


def test_detections_round_trip(tmp_path):
    path = tmp_path / "det.txt"
    path.write_text("3,-1,10.5,20,30,40,0.91234,-1,-1,-1\n1,-1,0,0,5,5,0.2,-1,-1,-1\n3,-1,1,1,2,2,0.4,-1,-1,-1\n")
    dets = read_detections(path)
    assert write_detections(tmp_path / "again.txt", dets) == 3
    back = read_detections(tmp_path / "again.txt")
    assert sorted(back) == sorted(dets)
    for k in dets:
        np.testing.assert_allclose(back[k].boxes, dets[k].boxes, atol=0.006)
        np.testing.assert_allclose(back[k].scores, dets[k].scores, atol=1e-5)


def test_detections_seven_columns_and_empty(tmp_path):
    (tmp_path / "d7.txt").write_text("1,-1,1,2,3,4,1\n")
    assert len(read_detections(tmp_path / "d7.txt")[1]) == 1
    (tmp_path / "e.txt").write_text("")
    assert read_detections(tmp_path / "e.txt") == {}


def test_detection_scores_outside_unit_range_need_a_rescale(tmp_path):
    path = tmp_path / "acf.txt"
    path.write_text("1,-1,0,0,5,5,-3.0,-1,-1,-1\n1,-1,0,0,5,5,45.5,-1,-1,-1\n2,-1,0,0,5,5,10,-1,-1,-1\n")
    with pytest.raises(MotFormatError, match="rescale"):
        read_detections(path)
    mm = read_detections(path, rescale="minmax")
    np.testing.assert_allclose(mm[1].scores, [0.0, 1.0])
    assert mm[2].scores[0] == pytest.approx(13 / 48.5)
    lg = read_detections(path, rescale="logistic")
    assert lg[2].scores[0] == pytest.approx(1 / (1 + math.exp(-10)))
    with pytest.raises(ValueError, match="rescale must be one of"):
        rescale_scores(np.ones(2), "sigmoid")


@pytest.mark.parametrize("text, message", [("1,2,3\n", "columns"), ("a,b,c,d,e,f,g\n", "numeric"),
                                            ("1,-1,nan,0,5,5,0.5\n", "non-finite")])
def test_bad_detection_files_name_the_problem(tmp_path, text, message):
    (tmp_path / "bad.txt").write_text(text)
    with pytest.raises(MotFormatError, match=message):
        read_detections(tmp_path / "bad.txt")
    with pytest.raises(MotFormatError, match="not found"):
        read_detections(tmp_path / "missing.txt")


def test_ground_truth_conventions_round_trip(tmp_path):
    (tmp_path / "mot15.txt").write_text("1,1,10,10,20,40,1,-1,-1,-1\n2,1,12,10,20,40,1,-1,-1,-1\n")
    (tmp_path / "mot17.txt").write_text("1,1,10,10,20,40,1,1,0.8\n1,2,50,10,20,40,0,1,1\n1,3,90,10,20,40,1,7,1\n")
    g15 = read_ground_truth(tmp_path / "mot15.txt")
    assert not g15.mot17 and (g15.classes == -1).all() and len(g15.pedestrians()) == 2
    g17 = read_ground_truth(tmp_path / "mot17.txt")
    assert g17.mot17 and g17.visibility[0] == pytest.approx(0.8)
    assert g17.pedestrians().ids.tolist() == [1]
    for g, name in ((g15, "a.txt"), (g17, "b.txt")):
        write_ground_truth(tmp_path / name, g)
        back = read_ground_truth(tmp_path / name)
        assert back.mot17 == g.mot17
        for field in ("frames", "ids", "boxes", "conf", "classes", "visibility"):
            np.testing.assert_allclose(getattr(back, field), getattr(g, field))


def test_sequence_info_and_image_folder(tmp_path):
    (tmp_path / "seqinfo.ini").write_text(SEQINFO)
    info = load_sequence_info(tmp_path)
    assert (info.name, info.frame_rate, info.length, info.width, info.height) == ("Seq-1", 25.0, 3, 32, 24)
    (tmp_path / "img1").mkdir()
    for k in (1, 2, 3):
        cv2.imwrite(str(tmp_path / "img1" / f"{k:06d}.png"), np.full((24, 32, 3), k * 10, np.uint8))
    frames = list(iter_frames(tmp_path, start=2))
    assert [k for k, _ in frames] == [2, 3]
    assert frames[0][1].shape == (24, 32, 3) and frames[0][1][0, 0, 0] == 20
    assert [k for k, _ in iter_frames(tmp_path, 1, 3)] == [1, 2]


def test_video_frames_are_one_based(tmp_path):
    seq = tmp_path / "Vid"
    seq.mkdir()
    writer = cv2.VideoWriter(str(seq / "Vid.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for k in range(5):
        writer.write(np.full((48, 64, 3), 40 * k, np.uint8))
    writer.release()
    frames = list(iter_frames(seq, start=3))
    assert [k for k, _ in frames] == [3, 4, 5]
    assert abs(int(frames[0][1].mean()) - 80) <= 3


def test_missing_sources_name_the_problem(tmp_path):
    with pytest.raises(MotFormatError, match="seqinfo.ini"):
        load_sequence_info(tmp_path)
    (tmp_path / "seqinfo.ini").write_text("[Sequence]\nname=x\n")
    with pytest.raises(MotFormatError, match="frameRate"):
        load_sequence_info(tmp_path)
    with pytest.raises(MotFormatError, match="no img1"):
        next(iter_frames(tmp_path / "nothing"))
    with pytest.raises(ValueError, match="1-based"):
        next(iter_frames(tmp_path, start=0))


def test_shared_sequences_load(shared_dir):
    campus = shared_dir / "data" / "MOT15" / "TUD-Campus"
    info = load_sequence_info(campus)
    assert (info.frame_rate, info.length, info.width, info.height) == (25.0, 71, 640, 480)
    gt = read_ground_truth(campus / "gt" / "gt.txt")
    assert len(gt) == 359 and len(np.unique(gt.ids)) == 8 and not gt.mot17
    dets = read_detections(campus / "det" / "det.txt")
    assert 1 in dets and all(0 <= d.scores.min() and d.scores.max() <= 1 for d in dets.values())
    k, image = next(iter_frames(campus, start=71))
    assert k == 71 and image.shape == (480, 640, 3) and image.dtype == np.uint8


def test_mot17_pedestrian_filter_on_mini(shared_dir):
    seq = shared_dir / "data" / "MOT17-mini" / "train" / "MOT17-02-FRCNN"
    gt = read_ground_truth(seq / "gt" / "gt.txt")
    assert gt.mot17 and len(gt) == 156 and len(np.unique(gt.ids)) == 39
    peds = gt.pedestrians()
    assert (peds.classes == 1).all() and (peds.conf == 1).all()
    assert len(peds) < len(gt) and 0 < len(np.unique(peds.ids)) < 39
    assert [k for k, _ in iter_frames(seq)] == [1, 2, 3, 4]
    assert len(read_detections(seq / "det" / "det.txt", min_score=0.5)) > 0
