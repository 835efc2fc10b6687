"""data.subsample: an integer N keeps the first N training documents, a fraction in (0, 1) keeps that share drawn
with train.seed (in corpus order, a different draw per seed); dev and test are never subsampled; anything else is
a config error naming the key."""

from __future__ import annotations

import pytest
from test_config import load_error, write

from ner_ray.config import StudyConfig
from ner_ray.train.data import load_documents


def train_ids(**data) -> tuple[list[str], dict[str, int]]:
    splits, _ = load_documents(StudyConfig().with_updates({f"data.{k}": v for k, v in data.items() if k != "seed"}
                                                          | {"train.seed": data.get("seed", 0)}))
    return [doc.id for doc in splits["train"]], {k: len(v) for k, v in splits.items()}


def test_an_integer_keeps_the_first_documents_and_a_fraction_a_seeded_share():
    everything, sizes = train_ids()
    first, _ = train_ids(subsample=5)
    assert first == everything[:5]
    half, half_sizes = train_ids(subsample=0.5, seed=1)
    assert len(half) == round(len(everything) * 0.5) and half == [i for i in everything if i in set(half)]  # corpus order
    assert half_sizes["dev"] == sizes["dev"] and half_sizes["test"] == sizes["test"]  # only train is subsampled
    assert train_ids(subsample=0.5, seed=1)[0] == half  # the same seed draws the same documents
    assert train_ids(subsample=0.5, seed=2)[0] != half  # another seed, another draw
    assert len(train_ids(subsample=0.001)[0]) == 1  # never an empty training set


@pytest.mark.parametrize(("value", "message"), [
    ("1.5", "1.5: a share of the training documents lies strictly between 0 and 1"),
    ("0.0", "0.0: a share of the training documents lies strictly between 0 and 1"),
    ("0", "0 documents: give N >= 1, a fraction in (0, 1), or null for all"),
    ("true", "data.subsample"),
])
def test_anything_else_is_an_error_naming_the_key(tmp_path, value, message):
    path = write(tmp_path, f"name: s\ndata:\n  subsample: {value}\n")
    error = load_error(path)
    assert f"{path}:3: data.subsample" in error and message in error
