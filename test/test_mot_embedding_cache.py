"""Embedding reuse across offline runs: served only for identical boxes and weights."""
import numpy as np
import pytest

from smiletrack_ros.mot.embedding_cache import CachedEmbedder, weights_id


class CountingEmbedder:
    """A deterministic appearance function (box geometry -> unit vector) that counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, image, boxes):
        self.calls += 1
        v = np.column_stack([boxes, np.full(len(boxes), image.mean())]).astype(np.float32) + 1.0
        return v / np.linalg.norm(v, axis=1, keepdims=True)


IMAGE = np.full((20, 30, 3), 7, np.uint8)
BOXES = np.array([[1, 2, 5, 9], [3, 3, 8, 8]], np.float32)


def test_reuses_only_identical_boxes_across_instances(tmp_path):
    inner = CountingEmbedder()
    cache = CachedEmbedder(inner, tmp_path / "c.npz", "w1")
    cache.frame = 1
    first = cache(IMAGE, BOXES)
    cache.frame = 2
    cache(IMAGE, BOXES[:1])
    cache.save()
    again = CachedEmbedder(inner, tmp_path / "c.npz", "w1")
    again.frame = 1
    np.testing.assert_array_equal(again(IMAGE, BOXES), first)
    assert inner.calls == 2 and again.hits == 1
    again.frame = 2
    moved = BOXES[:1] + 0.5
    np.testing.assert_allclose(again(IMAGE, moved), inner(IMAGE, moved))
    assert again.misses == 1


def test_other_weights_invalidate_the_file(tmp_path):
    inner = CountingEmbedder()
    cache = CachedEmbedder(inner, tmp_path / "c.npz", "w1")
    cache.frame = 1
    cache(IMAGE, BOXES)
    cache.save()
    other = CachedEmbedder(inner, tmp_path / "c.npz", "w2")
    other.frame = 1
    other(IMAGE, BOXES)
    assert other.misses == 1 and inner.calls == 2


def test_frame_must_be_set_and_weights_id_tracks_the_file(tmp_path):
    with pytest.raises(RuntimeError, match="frame"):
        CachedEmbedder(CountingEmbedder(), tmp_path / "c.npz", "w")(IMAGE, BOXES)
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"abc")
    before = weights_id(path)
    path.write_bytes(b"abcd")
    assert weights_id(path) != before
