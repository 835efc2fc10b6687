"""ner_ray.inference without Ray: evaluation windows come from the text alone (identical with and without the
gold spans, on every document of the shared corpora), an entity a window boundary cuts is a counted miss,
the model never sees gold through `evaluate`, and a text-generating plugin family scores in process."""

from __future__ import annotations

import pytest
from conftest import SHARED_DATA, needs_shared

from ner_ray.config import StudyConfig
from ner_ray.data.document import Document, Relation, Span
from ner_ray.data.pubtator import read_pubtator
from ner_ray.inference.encode import evaluation_windows, training_windows
from ner_ray.inference.evaluate import evaluate, score_documents, strip_gold


@pytest.fixture(scope="module")
def minilm_family():
    """token_cls on MiniLM's tokenizer with 128-token windows (only its tokenizer is loaded)."""
    from ner_ray.registry import FAMILIES

    config = StudyConfig().with_updates({"data.max_length": 128})
    return FAMILIES.get("token_cls")(config, ("Chemical", "Disease"))


def window_keys(result) -> list[tuple[int, str]]:
    return [(w.start, w.text) for w in result.windows]


@needs_shared
def test_evaluation_windows_are_the_same_with_and_without_the_gold(minilm_family):
    crossing_by_file = {}
    files = sorted((SHARED_DATA / "bc5cdr").glob("CDR_*.PubTator.txt")) + sorted((SHARED_DATA / "ncbi_disease").glob("NCBI*set_corpus.txt"))
    assert len(files) == 6
    for path in files:
        crossing = 0
        for doc in read_pubtator(path):
            with_gold = evaluation_windows(doc, minilm_family)
            assert window_keys(with_gold) == window_keys(evaluation_windows(strip_gold(doc), minilm_family)), doc.id
            placed = {s.shifted(w.start).key for w in with_gold.windows for s in w.spans}
            assert placed | {s.key for s in with_gold.crossing} == {s.key for s in doc.spans}
            crossing += len(with_gold.crossing)
        crossing_by_file[path.name] = crossing
    # Gold entities that a 128-token evaluation window cuts: misses by construction (training windows avoid them).
    # (measured: 1, in BC5CDR dev; none in either test split)
    assert sum(crossing_by_file.values()) <= 5, crossing_by_file


def test_a_gold_entity_cut_by_a_window_boundary_is_a_counted_miss(minilm_family):
    # NCBI-disease has "(G6PD; EC 1. 1. 1. 49) deficiency" as one mention: the splitter breaks at "1. 1." by the
    # text alone. Training windows keep the entity whole; evaluation windows do not know it is there.
    text = "Patients lack glucose-6-phosphate dehydrogenase (G6PD; EC 1. 1. 1. 49) deficiency. They were treated."
    start = text.index("glucose")
    doc = Document("d1", text, [Span(start, text.index(". They"), "Disease")])
    assert len(training_windows(doc, minilm_family).windows[0].spans) == 1
    family = minilm_family.__class__(minilm_family.config.with_updates({"data.max_length": 16}), minilm_family.types)
    result = evaluation_windows(doc, family)
    assert result.crossing == doc.spans and len(result.windows) > 1
    predicted = Document("d1", text, [], [], {"windows": [{"start": w.start, "end": w.end} for w in result.windows]})
    scores = score_documents([doc], [predicted])
    assert scores["gold_crossing_windows"] == 1 and scores["fn"] == 1


def test_evaluate_hands_the_model_no_gold():
    gold = [Document("d1", "Aspirin caused asthma.", [Span(0, 7, "Chemical"), Span(15, 21, "Disease")],
                     [Relation("D1", "D2", "CID")], {"title_end": 8})]
    seen = []

    def predict(documents):
        seen.extend(documents)
        return [d.with_spans([Span(0, 7, "Chemical")]) for d in documents]

    scores, predicted = evaluate(predict, gold)
    assert [(d.spans, d.relations, d.meta) for d in seen] == [([], [], {"title_end": 8})]
    assert (scores["tp"], scores["fp"], scores["fn"]) == (1, 0, 1) and scores["documents"] == 1


def test_a_text_family_plugin_trains_and_scores_in_process(text_family):
    import torch

    from ner_ray.inference.predict import document_predictor
    from ner_ray.registry import FAMILIES
    from ner_ray.train.data import prepare_data

    config = StudyConfig().with_updates({"model.name": "bytes", "model.family": "gazetteer_text", "data.max_length": 64})
    assert "gazetteer_text" in FAMILIES
    data = prepare_data(config)
    family, model = data.family, data.family.build()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    losses = []
    for start in range(0, len(data.train), 8):
        loss, _ = family.loss(model, family.collate([e.features for e in data.train[start:start + 8]]))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss))
    assert losses[-1] < losses[0] and model.mentions
    scores, predicted = evaluate(document_predictor(family, model), data.test_documents, family.extra_metrics)
    assert scores["tp"] > 0 and scores["invalid_items"] == 0
    assert all(len(doc.meta["windows"]) >= 1 for doc in predicted)
