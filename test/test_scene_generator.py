"""The synthetic scene: determinism, ground truth consistency, the detector model, MOT export."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

from smiletrack_ros.mot.io import iter_frames, load_sequence_info, read_detections, read_ground_truth
from smiletrack_ros.scene import SceneConfig, SceneConfigError, generate_scene, write_mot_sequence
from smiletrack_ros.scene.detector_model import detection_probability

SMALL = dict(width=160, height=120, num_frames=12)


def _frames(**overrides):
    return list(generate_scene(SceneConfig(**{**SMALL, **overrides})).frames())


def _same(a, b) -> bool:
    return (a.index == b.index and np.array_equal(a.image, b.image)
            and np.array_equal(a.truth.ids, b.truth.ids) and np.array_equal(a.truth.boxes, b.truth.boxes)
            and np.array_equal(a.truth.visibility, b.truth.visibility)
            and np.array_equal(a.truth.detection_ids, b.truth.detection_ids)
            and np.array_equal(a.detections.boxes, b.detections.boxes)
            and np.array_equal(a.detections.scores, b.detections.scores))


def test_same_seed_gives_identical_frames_and_replays():
    scene = generate_scene(SceneConfig(**SMALL, seed=7, camera_pan=30.0))
    assert inspect.isgenerator(scene.frames())
    first, again = list(scene.frames()), list(scene.frames())
    other_instance = _frames(seed=7, camera_pan=30.0)
    assert [f.index for f in first] == list(range(1, 13))
    assert all(_same(a, b) for a, b in zip(first, again, strict=True))
    assert all(_same(a, b) for a, b in zip(first, other_instance, strict=True))


def test_another_seed_gives_another_scene():
    a, b = _frames(seed=1)[0], _frames(seed=2)[0]
    assert not np.array_equal(a.image, b.image)


def test_detector_settings_leave_images_and_truth_alone():
    plain, noisy = _frames(seed=3), _frames(seed=3, det_false_positives=5.0, det_box_noise=0.2)
    for a, b in zip(plain, noisy, strict=True):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.truth.boxes, b.truth.boxes)
    assert sum(len(f.detections) for f in noisy) > sum(len(f.detections) for f in plain)


@pytest.mark.parametrize("field,value", [
    ("num_people", 0), ("num_people", 301), ("width", 10), ("num_frames", 0), ("fps", 0.0),
    ("fps", float("nan")), ("seed", -1), ("person_height", (0.5, 0.2)), ("ground_band", (0.5,)),
    ("det_recall", 1.5), ("det_score_low", 0.95), ("det_half_visibility", 1.0), ("det_box_noise", -0.1),
    ("det_amodal_noise", -0.1), ("det_amodal_noise", 1.5),
    ("num_people", True), ("width", 64.5),
])
def test_bad_config_names_the_field(field, value):
    with pytest.raises(SceneConfigError, match=field):
        SceneConfig(**{field: value})


def test_config_accepts_lists_for_pairs_and_numpy_numbers():
    assert SceneConfig(person_height=[0.1, 0.4]).person_height == (0.1, 0.4)
    cfg = SceneConfig(num_people=np.int64(5), fps=np.float32(30.0))
    assert type(cfg.num_people) is int and cfg.num_people == 5 and type(cfg.fps) is float


def test_truth_and_detections_are_consistent():
    cfg = SceneConfig(width=200, height=150, num_people=12, num_frames=40, seed=5, det_false_positives=1.0)
    total_fp = 0
    for frame in generate_scene(cfg).frames():
        t, d = frame.truth, frame.detections
        assert frame.image.shape == (150, 200, 3) and frame.image.dtype == np.uint8
        assert len(np.unique(t.ids)) == len(t.ids)
        assert np.all((t.visibility >= 0) & (t.visibility <= 1))
        assert np.all(t.boxes[:, 2:] > t.boxes[:, :2])
        visible = t.visibility > 0
        # every listed person overlaps the image; those with visible pixels do by construction
        assert np.all((t.boxes[visible, 2] > 0) & (t.boxes[visible, 0] < 200)
                      & (t.boxes[visible, 3] > 0) & (t.boxes[visible, 1] < 150))
        assert np.all(d.boxes[:, :2] >= 0) and np.all(d.boxes[:, 2] <= 200) and np.all(d.boxes[:, 3] <= 150)
        assert np.all(d.boxes[:, 2:] > d.boxes[:, :2])
        assert np.all((d.scores > 0) & (d.scores < 1)) and np.all(d.class_ids == 0)
        assert len(t.detection_ids) == len(d)
        total_fp += int(np.sum(t.detection_ids == -1))
        for box, source in zip(d.boxes, t.detection_ids, strict=True):
            if source < 0:
                continue
            k = int(np.flatnonzero(t.ids == source)[0])
            assert t.visibility[k] > 0, "a hidden person was detected"
            g = t.boxes[k]
            inter = np.clip(np.minimum(box[2:], g[2:]) - np.maximum(box[:2], g[:2]), 0, None).prod()
            assert inter > 0, "a detection does not overlap the person it came from"
    assert total_fp > 10


def test_isolated_people_inside_the_image_are_fully_visible():
    checked = 0
    for frame in _frames(num_people=4, num_frames=30, seed=11, width=320, height=240):
        t = frame.truth
        for k, box in enumerate(t.boxes):
            inside = box[0] >= 0 and box[1] >= 0 and box[2] <= 320 and box[3] <= 240
            others = np.delete(t.boxes, k, axis=0)
            overlaps = np.any((np.minimum(others[:, 2], box[2]) > np.maximum(others[:, 0], box[0]))
                              & (np.minimum(others[:, 3], box[3]) > np.maximum(others[:, 1], box[1])))
            if inside and not overlaps:
                assert t.visibility[k] == pytest.approx(1.0)
                checked += 1
    assert checked > 20


def test_misses_and_low_scores_grow_with_occlusion():
    cfg = SceneConfig(width=240, height=180, num_people=40, num_frames=50, seed=2, det_false_positives=0.0)
    vis, found, score = [], [], []
    for frame in generate_scene(cfg).frames():
        t, d = frame.truth, frame.detections
        by_id = dict(zip(t.detection_ids.tolist(), d.scores.tolist(), strict=True))
        for i, v in zip(t.ids.tolist(), t.visibility.tolist(), strict=True):
            vis.append(v)
            found.append(i in by_id)
            score.append(by_id.get(i, np.nan))
    vis, found, score = np.array(vis), np.array(found), np.array(score)
    bins = [(0.0, 0.2), (0.2, 0.5), (0.5, 0.8), (0.8, 1.01)]
    rates = [found[(vis >= lo) & (vis < hi)].mean() for lo, hi in bins]
    means = [np.nanmean(score[(vis >= lo) & (vis < hi) & found]) for lo, hi in bins[1:]]
    assert all(np.sum((vis >= lo) & (vis < hi)) > 50 for lo, hi in bins)
    assert rates == sorted(rates) and rates[0] < 0.2 and rates[-1] > 0.9
    assert means == sorted(means) and means[0] < 0.5 < means[-1]
    assert detection_probability(np.array([0.0]), cfg)[0] == 0.0


def test_partly_hidden_people_get_full_body_boxes_with_uncertain_hidden_edges():
    """A detector trained on full-body (MOT-style) boxes predicts the whole person: for a partly
    hidden person the box covers the hidden part too, and the hidden edges are the uncertain ones."""
    from smiletrack_ros.scene.detector_model import amodal_boxes

    cfg = SceneConfig(width=400, height=300, det_box_noise=0.02)
    full = np.tile([[100.0, 50.0, 140.0, 170.0]], (4000, 1))
    visible = full.copy()
    visible[:, 0] = 130.0  # the left three quarters hidden (behind a pillar)
    boxes = amodal_boxes(full, visible, cfg, np.random.default_rng(0))
    error = boxes - full
    np.testing.assert_allclose(error.mean(axis=0), 0.0, atol=0.3)  # unbiased: the full extent, not the visible part
    std = error.std(axis=0)
    assert std[0] == pytest.approx(0.02 * 40 + 0.2 * 30, rel=0.08)  # inferred edge: box noise + 0.2 x hidden 30 px
    np.testing.assert_allclose(std[1:], [0.02 * 120, 0.02 * 40, 0.02 * 120], rtol=0.08)  # seen edges: box noise
    cut = amodal_boxes(np.array([[-30.0, 10.0, 20.0, 110.0]]), np.array([[0.0, 10.0, 20.0, 110.0]]),
                       SceneConfig(width=400, height=300, det_box_noise=0.0), np.random.default_rng(0))
    np.testing.assert_allclose(cut, [[0.0, 10.0, 20.0, 110.0]])  # outside the image is clipped, not inferred


def test_detections_of_half_hidden_people_cover_the_full_body():
    from smiletrack_ros.scene.detector_model import simulate_detections

    cfg = SceneConfig(width=400, height=300, det_false_positives=0.0)
    n = 2000
    full = np.tile([[100.0, 50.0, 150.0, 200.0]], (n, 1))
    visible = full.copy()
    visible[:, 0] = 120.0  # the left 60% behind a pillar
    dets, sources = simulate_detections(full, visible, np.full(n, 0.4), np.arange(n), (150.0, 300.0, 60.0, 150.0),
                                        cfg, np.random.default_rng(1))
    assert 0.3 * n < len(dets) < 0.8 * n  # 40% visible: found about half the time
    b = dets.boxes
    inter = np.clip(np.minimum(b[:, 2:], full[0, 2:]) - np.maximum(b[:, :2], full[0, :2]), 0, None).prod(axis=1)
    iou = inter / (np.prod(b[:, 2:] - b[:, :2], axis=1) + 50.0 * 150.0 - inter)
    assert np.median(iou) > 0.8  # a box of the visible part alone would score 0.4
    assert np.all(sources >= 0)


def test_camera_pan_moves_the_backdrop():
    pan = _frames(camera_pan=25.0, fps=25.0, image_noise=0.0, num_frames=2, width=200, height=160)
    still = _frames(camera_pan=0.0, fps=25.0, image_noise=0.0, num_frames=2, width=200, height=160)
    sky = 30  # rows above every person's head (horizon at 0.25 of the height)
    a, b = pan[0].image[:sky], pan[1].image[:sky]
    assert np.array_equal(a[:, 1:], b[:, :-1]) and not np.array_equal(a, b)
    assert np.array_equal(still[0].image[:sky], still[1].image[:sky])


def test_crowd_density_reaches_300_people():
    frame = next(generate_scene(SceneConfig(num_people=300, num_frames=1, person_height=(0.08, 0.2))).frames())
    assert len(frame.truth) > 200
    assert np.mean(frame.truth.visibility < 0.5) > 0.2  # a real crowd occludes


def test_crowd_config_shrinks_people_to_keep_them_visible():
    assert SceneConfig.crowd(8).person_height == SceneConfig().person_height
    dense = SceneConfig.crowd(300, width=640, height=480, num_frames=1, seed=3)
    assert dense.num_people == 300 and dense.person_height[1] < 0.2 and dense.width == 640
    frame = next(generate_scene(dense).frames())
    assert np.sum(frame.truth.detection_ids >= 0) > 0.6 * len(frame.truth) > 150
    with pytest.raises(SceneConfigError, match="occupancy"):
        SceneConfig.crowd(10, occupancy=0.0)


def test_write_mot_sequence_reads_back_with_mot_io(tmp_path):
    scene = generate_scene(SceneConfig(**SMALL, seed=4, det_false_positives=1.0))
    out = write_mot_sequence(scene, tmp_path / "SYN-01")
    frames = list(scene.frames())
    info = load_sequence_info(out)
    assert (info.name, info.length, info.width, info.height, info.frame_rate) == ("SYN-01", 12, 160, 120, 25.0)
    gt = read_ground_truth(out / "gt" / "gt.txt")
    dets = read_detections(out / "det" / "det.txt")
    for f in frames:
        g = gt.frame(f.index)
        order = np.argsort(g.ids)
        assert np.array_equal(g.ids[order], np.sort(f.truth.ids))
        np.testing.assert_allclose(g.boxes[order], f.truth.boxes[np.argsort(f.truth.ids)], atol=0.01)
        np.testing.assert_allclose(g.visibility[order], f.truth.visibility[np.argsort(f.truth.ids)], atol=1e-5)
        assert np.array_equal(g.conf[order] > 0, f.truth.visibility[np.argsort(f.truth.ids)] > 0)
        assert np.all(g.classes == 1)
        if len(f.detections):
            np.testing.assert_allclose(dets[f.index].boxes, f.detections.boxes, atol=0.01)
            np.testing.assert_allclose(dets[f.index].scores, f.detections.scores, atol=1e-4)
        else:
            assert f.index not in dets
    images = dict(iter_frames(out))
    assert sorted(images) == list(range(1, 13))
    errors = [np.abs(images[5].astype(int) - f.image).mean() for f in frames]
    assert int(np.argmin(errors)) == 4 and errors[4] < 8.0  # JPEG at quality 95


@pytest.mark.parametrize("pan", [0.0, 300.0, -300.0])
def test_the_crowd_stays_in_view_whatever_the_pan(pan):
    frames = _frames(num_people=10, num_frames=60, seed=1, camera_pan=pan)
    on_image = [len(f.truth) for f in frames]
    assert np.mean(on_image) > 7 and min(on_image) >= 4
    ids = set().union(*(f.truth.ids.tolist() for f in frames))
    assert len(ids) > 10  # people leave and new identities come in


def test_people_wear_distinct_textured_clothes():
    from smiletrack_ros.scene.walkers import Crowd

    kinds = set()
    for seed in range(5):
        crowd = Crowd(SceneConfig(num_people=8, seed=seed), np.random.default_rng(seed))
        shirts = np.array([w.look.shirt_colour for w in crowd.walkers])
        distance = np.linalg.norm(shirts[:, None] - shirts[None], axis=2) + 1e9 * np.eye(8)
        assert distance.min() > 40  # BGR units: clearly different shirts side by side
        kinds |= {w.look.shirt.kind for w in crowd.walkers} | {w.look.trousers.kind for w in crowd.walkers}
    assert kinds == {"solid", "stripes", "checks", "noise"}


def test_truth_scores_perfectly_against_itself_in_trackeval():
    """The scene's ground truth, fed back as tracker output, is a perfect run for TrackEval;
    a tracker that swaps two identities half-way is not."""
    from smiletrack_ros.mot.evaluate import evaluate
    from smiletrack_ros.scene import collect_ground_truth

    frames = _frames(num_people=6, num_frames=20, seed=8)
    gt = collect_ground_truth((f.index, f.truth) for f in frames)
    visible = gt.pedestrians()
    rows = np.column_stack([visible.frames, visible.ids, visible.boxes, np.ones(len(visible))])
    perfect = evaluate({"syn": (gt, rows)}, {"syn": 20})["syn"]
    assert perfect["HOTA"] == pytest.approx(100.0) and perfect["MOTA"] == pytest.approx(100.0)
    a, b = np.unique(visible.ids)[:2]
    swapped = rows.copy()
    late = swapped[:, 0] > 10
    swapped[late & (rows[:, 1] == a), 1], swapped[late & (rows[:, 1] == b), 1] = b, a
    assert evaluate({"syn": (gt, swapped)}, {"syn": 20})["syn"]["IDF1"] < 100.0
