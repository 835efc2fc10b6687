"""Evaluation batches examples of like input lengths (`in_length_order`): a prediction's batches hold consecutive
lengths and its rows come back in example order with the spans of a sentence-at-a-time prediction; the Trainer's dev
examples come in that order; a causal LM is ordered by its prompt, never by its gold completion; and the predicted
documents do not depend on the order of the examples."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch
from test_export import trained_like
from test_families import build_tiny_bert, study

from ner_ray.config import StudyConfig
from ner_ray.data.corpora import load_corpus
from ner_ray.data.document import Document, Span
from ner_ray.inference.decode import predicted_documents
from ner_ray.inference.encode import encode_documents, in_length_order
from ner_ray.inference.predict import predict_rows
from ner_ray.registry import FAMILIES
from ner_ray.train.data import prepare_data


@pytest.fixture(scope="module")
def tagger(tmp_path_factory):
    """(family, a tiny LoRA tagger with random adapter and head weights, its demo dev documents, their examples)."""
    tiny = build_tiny_bert(tmp_path_factory.mktemp("length-order") / "tiny-bert")
    family, net, _ = trained_like(tiny, "token_cls", {"r": 4, "alpha": 8})
    documents = load_corpus("demo", splits=("dev",)).splits["dev"]
    return family, net, documents, encode_documents(documents, family, training=False)


def test_batches_hold_like_lengths_and_rows_come_back_in_example_order(tagger, monkeypatch):
    family, net, _, examples = tagger
    examples = list(examples)
    random.Random(0).shuffle(examples)
    lengths = [family.input_length(e.features) for e in examples]
    assert len(set(lengths)) > 3 and lengths != sorted(lengths)  # else this shows nothing
    one_at_a_time = predict_rows(family, net, examples, 1)
    batches: list[list[int]] = []
    collate = family.collate
    monkeypatch.setattr(family, "collate", lambda features: batches.append([len(f["input_ids"]) for f in features])
                        or collate(features))
    rows = predict_rows(family, net, examples, 4)
    assert [length for batch in batches for length in batch] == sorted(lengths)
    assert len(batches) == -(-len(examples) // 4)
    spans = [family.spans(e, row) for e, row in zip(examples, rows)]
    assert spans == [family.spans(e, row) for e, row in zip(examples, one_at_a_time)]
    assert sum(map(len, spans)) > 0


def test_the_trainers_dev_examples_are_in_length_order(tagger):
    family = tagger[0]
    data = prepare_data(study(family.config.model.name, "token_cls", {"r": 4}), family.tokenizer)
    lengths = [data.family.input_length(e.features) for e in data.dev]
    assert lengths == sorted(lengths) and len(set(lengths)) > 1


def test_predicted_documents_do_not_depend_on_the_order_of_the_examples(tagger):
    family, net, documents, examples = tagger
    assert max(Counter(e.doc_index for e in examples).values()) > 1  # documents of several windows
    rows = predict_rows(family, net, examples, 4)
    shuffled = list(range(len(examples)))
    random.Random(1).shuffle(shuffled)
    in_order = predicted_documents(family, documents, examples, rows)
    assert predicted_documents(family, documents, [examples[i] for i in shuffled], [rows[i] for i in shuffled]) == in_order
    assert sum(len(doc.spans) for doc in in_order) > 0


def test_a_causal_lm_is_ordered_by_its_prompt_never_by_its_gold_completion(tiny_llama):
    config = StudyConfig.model_validate({"data": {"corpus": "demo", "max_length": 160},
                                         "model": {"name": str(tiny_llama), "family": "span_gen", "lora": {"r": 4}}})
    family = FAMILIES.get("span_gen")(config, ("Chemical", "Disease"))
    listing = "Aspirin, cisplatin, asthma and gout."  # a short text with a long gold completion
    plain = "The patients were followed up for two years after the operation in the clinic."
    gold = [Span(0, 7, "Chemical"), Span(9, 18, "Chemical"), Span(20, 26, "Disease"), Span(31, 35, "Disease")]
    documents = [Document("plain", plain), Document("listing", listing, gold)]
    examples = encode_documents(documents, family, training=False)
    assert [e.window.text for e in examples] == [plain, listing]
    assert len(examples[1].features["input_ids"]) > len(examples[0].features["input_ids"])  # with its completion
    assert family.input_length(examples[1].features) < family.input_length(examples[0].features)
    assert in_length_order(examples, family) == [1, 0]
    assert torch.equal(family.collate([examples[1].features])["prompt_ids"][0],
                       torch.tensor(examples[1].features["input_ids"][: family.input_length(examples[1].features)]))
