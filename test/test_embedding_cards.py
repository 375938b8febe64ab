"""Issue 16.7 for the SLM model card: a hostile or careless card (deeply nested JSON, an
embedding size of 2^40 or ``true``, a huge file) is a clear error naming the file and the
field, raised before anything is allocated; never a RecursionError or a MemoryError."""
import json

import pytest

from smiletrack_ros.embedding import Embedder, ModelCard, SLMNet, SlmSpec, WeightsError, save_weights
from smiletrack_ros.embedding.card import MAX_CARD_BYTES
from smiletrack_ros.embedding.weights import card_path


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "w.safetensors"
    save_weights(SLMNet(SlmSpec()), path, ModelCard(spec=SlmSpec()))
    return path


def with_card(tmp_path, saved, text: str):
    path = tmp_path / "w.safetensors"
    path.write_bytes(saved.read_bytes())
    card_path(path).write_text(text)
    return path


def edited(saved, **changes) -> str:
    card = json.loads(card_path(saved).read_text())
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        card[section][key] = value
    return json.dumps(card)


@pytest.mark.parametrize("change,needle", [
    ({"architecture__embedding_dim": 2 ** 40}, "embedding_dim: must be an int in 1..8192, got 1099511627776"),
    ({"architecture__embedding_dim": True}, "embedding_dim: must be an int in 1..8192, got True"),
    ({"architecture__embedding_dim": 0}, "embedding_dim"),
    ({"input__height": 2 ** 40}, "input_height"),
    ({"input__width": True}, "input_width"),
    ({"input__mean": "abc"}, "mean: needs 3 numbers"),
    ({"input__std": [1, 1, float("inf")]}, "std: needs 3 finite positive numbers"),
])
def test_implausible_card_fields_name_the_field(tmp_path, saved, change, needle):
    path = with_card(tmp_path, saved, edited(saved, **change))
    with pytest.raises(WeightsError, match=needle) as info:
        Embedder(weights=str(path), warmup=False)
    assert str(card_path(path)) in str(info.value)


@pytest.mark.parametrize("text", ["[" * 200000 + "]" * 200000, '{"a": ' * 50 + "1" + "}" * 50])
def test_deeply_nested_card_is_a_clear_error(tmp_path, saved, text):
    path = with_card(tmp_path, saved, text)
    with pytest.raises(WeightsError, match="nested too deeply") as info:
        Embedder(weights=str(path), warmup=False)
    assert str(card_path(path)) in str(info.value)


def test_oversized_card_is_refused_unread(tmp_path, saved):
    path = with_card(tmp_path, saved, " " * (MAX_CARD_BYTES + 1))
    with pytest.raises(WeightsError, match="at most 1048576 bytes"):
        Embedder(weights=str(path), warmup=False)


def test_the_shipped_card_passes_the_bounds():
    from smiletrack_ros.embedding.weights import DEFAULT_WEIGHTS

    assert ModelCard.read(card_path(DEFAULT_WEIGHTS)).spec.embedding_dim == 128
