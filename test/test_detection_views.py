"""Test-time views (tiles, flips): geometry, exact mapping back, seam duplicates, batching, settings."""
import itertools

import numpy as np
import pytest

from smiletrack_ros.detection import DetectorConfig, DetectorConfigError, ExternalConfig, PrbConfig
from smiletrack_ros.detection.views import MultiViewDetector, View, ViewBoxes, merge_wbf, plan_views, tile_spans
from smiletrack_ros.detections import Detections
from smiletrack_ros.ros.settings import ParameterError, detector_config


class ColourBackend:
    """Finds solid rectangles by colour: channel 0 holds an object id (0 = background), the box
    is the id's pixel extent in the image it is given, the score id / 100. It sees only the
    pixels of each crop, so tiles cut and flips mirror what it finds, as with a real network."""

    def __init__(self):
        self.batches = []

    def detect_batch(self, images):
        self.batches.append([im.shape for im in images])
        out = []
        for image in images:
            ids = [int(i) for i in np.unique(image[..., 0]) if i]
            boxes = []
            for i in ids:
                ys, xs = np.nonzero(image[..., 0] == i)
                boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
            out.append(Detections(np.asarray(boxes, np.float32).reshape(-1, 4),
                                  np.asarray(ids, np.float32) / 100, np.zeros(len(ids), np.int64)))
        return out


def _scene(height, width, rects):
    image = np.zeros((height, width, 3), np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(rects, start=1):
        image[y1:y2, x1:x2, 0] = 80 + i
    return image


def _detector(**kw):
    config = DetectorConfig.from_mapping(kw)
    backend = ColourBackend()
    return MultiViewDetector(backend, config), backend


@pytest.mark.parametrize("length,count,overlap", [(640, 2, 0.2), (480, 2, 0.2), (640, 3, 0.25), (481, 3, 0.0),
                                                  (97, 4, 0.4), (480, 1, 0.3)])
def test_tiles_cover_the_axis_with_the_stated_overlap(length, count, overlap):
    spans = tile_spans(length, count, overlap)
    assert len(spans) == count and spans[0][0] == 0 and spans[-1][1] == length
    sizes = {b - a for a, b in spans}
    assert len(sizes) == 1, "every tile has the same size, so they letterbox alike"
    size = sizes.pop()
    for (a0, a1), (b0, _) in itertools.pairwise(spans):
        assert b0 <= a1, "no gap between neighbours"
        assert a1 - b0 >= overlap * size - 1, "neighbours share at least the stated overlap"
        assert b0 > a0


def test_view_plan_full_frame_first_then_tiles_each_with_its_mirror():
    views = plan_views(480, 640, (2, 2), 0.2, flip=True)
    assert len(views) == 2 * (1 + 4)
    assert views[0] == View(0, 0, 640, 480) and views[1] == View(0, 0, 640, 480, flipped=True)
    covered = np.zeros((480, 640), bool)
    for v in views[2:]:
        covered[v.y0:v.y1, v.x0:v.x1] = True
    assert covered.all()
    assert plan_views(480, 640, None, 0.2, flip=False) == [View(0, 0, 640, 480)]


def test_boxes_map_back_exactly_from_shifted_and_mirrored_views():
    boxes = np.array([[10, 20, 30, 60], [0, 0, 356, 480]], np.float32)
    shifted = View(284, 100, 640, 480)
    np.testing.assert_array_equal(shifted.to_frame(boxes), boxes + [284, 100, 284, 100])
    mirrored = View(284, 0, 640, 480, flipped=True)   # 356 wide: x -> 356 - x, then shifted
    np.testing.assert_array_equal(mirrored.to_frame(boxes), [[284 + 326, 20, 284 + 346, 60], [284, 0, 640, 480]])
    image = _scene(480, 640, [(400, 50, 420, 90)])
    found = ColourBackend().detect_batch([mirrored.crop(image)])[0]
    np.testing.assert_array_equal(mirrored.to_frame(found.boxes), [[400, 50, 420, 90]])


def test_seam_cut_only_at_edges_inside_the_frame():
    left, right = View(0, 0, 356, 480), View(284, 0, 640, 480)
    in_left = np.array([[0, 10, 40, 100],       # at the frame's left edge: a real edge, kept
                        [300, 10, 356, 100],    # ends at the right seam: cut
                        [284, 10, 320, 100]], np.float32)
    in_right = np.array([[284, 10, 320, 100],   # starts at the left seam: cut
                         [300, 10, 356, 100],
                         [600, 10, 640, 100]], np.float32)   # at the frame's right edge: kept
    assert left.seam_cut(in_left, 640, 480).tolist() == [False, True, False]
    assert right.seam_cut(in_right, 640, 480).tolist() == [True, False, False]
    assert not View(0, 0, 640, 480).seam_cut(np.concatenate([in_left, in_right]), 640, 480).any()


# 2x1 tiles of 640x480 at overlap 0.2: x 0..356 and 284..640
RECTS = [(0, 200, 40, 300),       # touches the frame edge inside the left tile only
         (300, 100, 340, 220),    # inside the overlap: found whole by the full frame and both tiles
         (120, 300, 520, 420),    # wider than the overlap: both tiles cut it, only the full frame has it whole
         (560, 20, 590, 60)]      # right tile only


@pytest.mark.parametrize("merge", ["nms", "wbf"])
@pytest.mark.parametrize("flip", [False, True])
def test_tiles_and_flips_return_each_object_once_and_exactly(merge, flip):
    det, backend = _detector(tiles="2x1", tile_overlap=0.2, flip=flip, merge=merge, merge_iou=0.7)
    out = det(_scene(480, 640, RECTS))
    order = np.argsort(out.boxes[:, 0] * 1000 + out.boxes[:, 1])
    expected = sorted(RECTS, key=lambda r: r[0] * 1000 + r[1])
    np.testing.assert_allclose(out.boxes[order], expected, atol=1e-4)
    assert len(backend.batches) == 1 and len(backend.batches[0]) == (6 if flip else 3), "one batch of all views"
    assert backend.batches[0][1 if not flip else 2] == (480, 356, 3)


def test_two_by_two_tiles_merge_across_the_horizontal_seam():
    rects = [(100, 200, 140, 280), (400, 60, 620, 420)]   # in the vertical overlap; cut by both seams
    det, backend = _detector(tiles="2x2", tile_overlap=0.25, merge="nms", merge_iou=0.7)
    out = det(_scene(480, 640, rects))
    assert sorted(map(tuple, out.boxes.tolist())) == sorted(rects)
    assert len(backend.batches[0]) == 5


def test_wbf_averages_matched_boxes_and_scores_over_the_views_that_could_see_them():
    views = [View(0, 0, 100, 100), View(0, 0, 100, 100, flipped=True)]
    found = ViewBoxes(np.array([[0, 0, 10, 10], [2, 0, 12, 10], [50, 50, 60, 60]], np.float32),
                      np.array([0.8, 0.4, 0.6], np.float32), np.zeros(3, np.int64), np.array([0, 1, 0]))
    out = merge_wbf(found, views, iou=0.5)
    assert len(out) == 2
    np.testing.assert_allclose(out.boxes[0], [0.8 / 1.2, 0, 10 + 0.8 / 1.2, 10], atol=1e-5)
    np.testing.assert_allclose(out.scores, [0.6, 0.3], atol=1e-6)   # (0.8 + 0.4) / 2; 0.6 seen by 1 of 2
    other_class = ViewBoxes(found.boxes[:2], found.scores[:2], np.array([0, 1]), found.view[:2])
    assert len(merge_wbf(other_class, views, iou=0.5)) == 2


def test_final_threshold_and_cap_apply_after_merging():
    det, _ = _detector(tiles="2x1", flip=True, merge="wbf", max_detections=2)
    out = det(_scene(480, 640, RECTS))
    assert len(out) == 2 and np.all(np.diff(out.scores) <= 0)
    det, _ = _detector(flip=True, merge="wbf", score_threshold=0.825)   # scores 0.81 .. 0.84 by id
    np.testing.assert_allclose(det(_scene(480, 640, RECTS)).scores, [0.84, 0.83], atol=1e-6)
    with pytest.raises(ValueError, match="uint8"):
        det(np.zeros((48, 64, 3), np.float32))


@pytest.mark.parametrize("field,value", [("tiles", "2"), ("tiles", "0x2"), ("tiles", "2x1x1"), ("tiles", 2),
                                         ("tile_overlap", 0.5), ("tile_overlap", -0.1), ("flip", 1),
                                         ("merge", "mean"), ("merge_iou", 0.0), ("cpu_threads", -1),
                                         ("cpu_threads", True)])
def test_bad_view_settings_name_the_field(field, value):
    with pytest.raises(DetectorConfigError, match=rf"^{field}: ") as info:
        DetectorConfig.from_mapping({field: value})
    assert info.value.field == field


def test_view_settings_validate_and_reach_the_node_parameters():
    assert PrbConfig().tile_grid is None and not PrbConfig().multi_view and not ExternalConfig().multi_view
    assert PrbConfig(tiles="1x1").tile_grid is None
    assert PrbConfig(tiles="3x2").tile_grid == (3, 2)
    with pytest.raises(DetectorConfigError, match=r"^flip: .*external"):
        DetectorConfig.from_mapping({"backend": "external", "flip": True})
    with pytest.raises(DetectorConfigError, match=r"^tiles: .*external"):
        DetectorConfig.from_mapping({"backend": "external", "tiles": "2x1"})
    config = detector_config({"detector.tiles": "2x1", "detector.flip": True, "detector.merge": "wbf"})
    assert config.tile_grid == (2, 1) and config.flip and config.merge == "wbf"
    with pytest.raises(ParameterError) as info:
        detector_config({"detector.tiles": "2by1"})
    assert info.value.name == "detector.tiles"
