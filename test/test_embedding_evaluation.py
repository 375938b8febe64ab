"""Appearance metrics on known answers, baselines, and (with ../shared) the shipped
weights against the colour-histogram baseline on held-out TUD-Campus."""
import numpy as np
import pytest

from smiletrack_ros.embedding.baselines import HsvHistogramEmbedder
from smiletrack_ros.embedding.metrics import score_embeddings
from smiletrack_ros.embedding.weights import DEFAULT_WEIGHTS


def test_pair_auc_and_rank1_on_known_embeddings():
    ids = np.array([0, 0, 1, 1])
    frames = np.array([0, 20, 0, 20])
    perfect = np.array([[1.0, 0], [1, 0], [0, 1], [0, 1]])
    s = score_embeddings(perfect, ids, frames)
    assert (s.pair_auc, s.rank1, s.positives, s.negatives, s.queries) == (1.0, 1.0, 2, 4, 4)
    swapped = np.array([[1.0, 0], [0, 1], [0, 1], [1, 0]])  # each crop looks like the other person
    s = score_embeddings(swapped, ids, frames)
    # both positives score 0; negatives score 1, 1, 0, 0: 0 wins + 2 ties of 8 comparisons
    assert s.pair_auc == 0.25 and s.rank1 == 0.0
    # ties count half, as in the Mann-Whitney statistic
    assert score_embeddings(np.ones((4, 2)), ids, frames).pair_auc == 0.5


def test_pairs_and_rank1_stay_within_a_group_and_respect_the_frame_gap():
    ids = np.array([0, 0, 1, 1])
    frames = np.array([0, 5, 0, 30])
    emb = np.array([[1.0, 0], [1, 0], [0, 1], [0, 1]])
    s = score_embeddings(emb, ids, frames, groups=np.array([0, 0, 1, 1]), min_frame_gap=10)
    assert (s.positives, s.negatives) == (2, 0)  # no cross-group pairs
    assert s.queries == 2  # ids 0's crops are only 5 frames apart: no rank-1 query for them


def test_hsv_histogram_separates_colours():
    image = np.zeros((100, 100, 3), np.uint8)
    image[:, :50] = (0, 0, 200)    # red half (BGR)
    image[:, 50:] = (200, 0, 0)    # blue half
    boxes = np.array([[0, 0, 25, 100], [25, 0, 50, 100], [50, 0, 100, 100], [-10, -10, 5, 5]], np.float32)
    out = HsvHistogramEmbedder()(image, boxes)
    assert out.shape == (4, 256)
    sim = out @ out.T
    assert sim[0, 1] > 0.99 and sim[0, 2] < 0.01
    assert np.isclose(np.linalg.norm(out[3]), 1.0)


@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="default weights not built yet")
def test_shipped_weights_beat_colour_histogram_on_held_out_tud_campus(shared_dir):
    from smiletrack_ros.embedding import Embedder
    from smiletrack_ros.embedding.evaluation import evaluate_sequence

    seq = shared_dir / "data" / "MOT15" / "TUD-Campus"
    results = {r.name: r for r in evaluate_sequence(seq, {"slm": Embedder(device="cpu"),
                                                          "hsv": HsvHistogramEmbedder()})}
    assert results["slm"].crops == 359
    # Measured 0.817 (distilled from OpenVINO 0286; the previous weights 0.806, HSV 0.789);
    # issue 14's target of 0.90 is not reached yet.
    assert results["slm"].scores.pair_auc >= 0.81
    assert results["slm"].scores.pair_auc > results["hsv"].scores.pair_auc
