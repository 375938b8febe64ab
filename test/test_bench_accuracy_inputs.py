"""The accuracy suite's inputs: one cache file per sequence, detection source and embedder."""
from __future__ import annotations

import numpy as np
import pytest

from bench.suite.accuracy import InputMaker, Sequence
from bench.suite.models import embedder_label
from bench.suite.settings import SuiteSettings


def test_embedder_labels_name_backend_and_model():
    assert embedder_label("none") == "none"
    assert embedder_label("slm") == "slm"
    assert embedder_label("onnx:/x/osnet_x0_25_msmt17.onnx") == "onnx:osnet_x0_25_msmt17"
    assert embedder_label("osnet:/x/osnet_x0_25_msmt17.pth") == "osnet:osnet_x0_25_msmt17"
    with pytest.raises(ValueError, match="backend"):
        embedder_label("tensorrt:x.engine")


def test_settings_refuse_a_repeated_embedder_and_unknown_parts(tmp_path):
    with pytest.raises(ValueError, match="twice"):
        SuiteSettings(out_dir=tmp_path, shared_dir=None, embedders=("slm", "slm"))
    with pytest.raises(ValueError, match="accuracy-parts"):
        SuiteSettings(out_dir=tmp_path, shared_dir=None, accuracy_parts=("everything",))
    for seeds in ((), (4, 4), (-1,)):
        with pytest.raises(ValueError, match="occlusion-seeds"):
            SuiteSettings(out_dir=tmp_path, shared_dir=None, occlusion_seeds=seeds)


def test_held_out_occlusion_seeds_keep_the_two_pillar_layouts():
    """Seeds 0-3 are the scenes shown so far, unchanged; 4-7 repeat their layouts with other walkers."""
    from bench.suite.occlusion import LAYOUTS, scene_config

    assert [scene_config(s).occluders for s in range(4)] == [LAYOUTS[0], LAYOUTS[0], LAYOUTS[1], LAYOUTS[1]]
    assert [scene_config(s).occluders for s in range(4, 8)] == [scene_config(s).occluders for s in range(4)]
    assert LAYOUTS == (((0.2, 0.44), (0.6, 0.84)), ((0.29, 0.71),))


def test_each_embedder_has_its_own_cache_over_the_same_detections(shared_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    osnet = shared_dir / "models" / "reid" / "osnet_x0_25_msmt17.onnx"
    if not osnet.is_file():
        pytest.skip(f"no {osnet}")
    settings = SuiteSettings(out_dir=tmp_path, shared_dir=shared_dir, progress=False,
                             embedders=("none", "slm", "onnx:{shared}/models/reid/osnet_x0_25_msmt17.onnx"))
    maker = InputMaker(settings)
    assert maker.labels == ["none", "slm", "onnx:osnet_x0_25_msmt17"]
    folder = shared_dir / "data" / "MOT15" / "TUD-Campus"
    seq = Sequence("TUD-Campus", folder, 25.0, 3, False)
    paths = {label: maker.cache_path(seq.name, "public", label) for label in maker.labels}
    assert len(set(paths.values())) == 3
    assert maker.cache_path(seq.name, "yolox", "slm") != paths["slm"]
    caches = {label: maker.cache(seq, "public", label) for label in maker.labels}
    assert all(p.is_file() for p in paths.values())
    assert not caches["none"].has_embeddings
    assert caches["slm"].embeddings.shape[1] == 128 and caches["onnx:osnet_x0_25_msmt17"].embeddings.shape[1] == 512
    for cache in caches.values():
        np.testing.assert_array_equal(cache.boxes, caches["none"].boxes)
    again = InputMaker(settings).cache(seq, "public", "onnx:osnet_x0_25_msmt17")
    np.testing.assert_array_equal(again.embeddings, caches["onnx:osnet_x0_25_msmt17"].embeddings)
    norms = np.linalg.norm(again.embeddings, axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)
