"""The synthetic occlusion bench's extra scoring: people under a fifth visible are ignored
(MOTChallenge distractors), neither a miss when not tracked nor a false positive when tracked."""
import numpy as np
import pytest

pytest.importorskip("trackeval")

from bench.suite.occlusion import IGNORED_BELOW, _score  # noqa: E402

FRAMES = 10
SEEN = np.array([100.0, 100.0, 140.0, 200.0])
HIDDEN = np.array([300.0, 100.0, 340.0, 200.0])  # behind a pillar: 10% of the body shows


def truth() -> np.ndarray:
    return np.array([[f, pid, *box, vis] for f in range(1, FRAMES + 1)
                     for pid, box, vis in ((1, SEEN, 1.0), (2, HIDDEN, 0.1))])


def tracked(*boxes: np.ndarray) -> np.ndarray:
    return np.array([[f, tid, *box, 0.9] for f in range(1, FRAMES + 1) for tid, box in enumerate(boxes, 1)])


def test_a_hidden_person_counts_as_missed_in_the_main_table_and_not_in_the_extra_one():
    only_seen = tracked(SEEN)
    assert _score(truth(), only_seen, 1, FRAMES)["IDF1"] == pytest.approx(100 * 2 * 10 / 30)
    assert _score(truth(), only_seen, 1, FRAMES, IGNORED_BELOW)["IDF1"] == pytest.approx(100.0)


def test_a_box_on_an_ignored_person_is_no_false_positive():
    both = tracked(SEEN, HIDDEN)
    assert _score(truth(), both, 1, FRAMES)["IDF1"] == pytest.approx(100.0)
    assert _score(truth(), both, 1, FRAMES, IGNORED_BELOW)["IDF1"] == pytest.approx(100.0)
