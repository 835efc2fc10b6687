"""Entity and relation scores: exact three-document fixtures, and strict scores equal seqeval's on perturbed real tags."""

from __future__ import annotations

import functools
import json
import warnings
from collections import Counter

import pytest
from conftest import SHARED_DATA, needs_shared
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from seqeval.metrics import (
    classification_report,
    f1_score,
    precision_score,
    recall_score,
)

from ner_ray.data.conll import read_bio, split_whitespace
from ner_ray.data.document import Document, Relation, Span
from ner_ray.data.tagging import spans_to_tags, tags_to_spans
from ner_ray.metrics import (
    PRF,
    EntityCounts,
    count_entities,
    count_relations,
    count_spans,
    entity_scores,
    evaluate_entities,
    evaluate_relations,
)

C, D = "Chemical", "Disease"
GOLD = [
    Document("d1", "aspirin causes liver damage", [Span(0, 7, C), Span(15, 27, D)],
             [Relation("C1", "D1", "CID"), Relation("C2", "D1", "CID")]),
    Document("d2", "lithium is nephrotoxic", [Span(0, 5, C), Span(10, 20, D)]),
    Document("d3", "pain", [Span(0, 4, D)], [Relation("C9", "D9", "CID")]),
]
PRED = [  # d3 has no prediction: its mention is a false negative
    Document("d2", "lithium is nephrotoxic", [Span(0, 5, D), Span(10, 20, D), Span(30, 35, C)]),
    Document("d1", "aspirin causes liver damage", [Span(0, 7, C), Span(15, 20, D), Span(0, 7, C)],
             [Relation("C1", "D1", "CID"), Relation("C3", "D1", "CID"), Relation("C2", "D1", "OTHER")]),
]


def test_strict_counts_and_scores():
    counts = count_entities(GOLD, PRED)
    assert counts.gold == Counter({C: 2, D: 3}) and counts.pred == Counter({C: 2, D: 3})
    scores = entity_scores(counts)
    assert scores["micro"] == PRF(0.4, 0.4, pytest.approx(0.4), 2, 3, 3)
    assert scores["per_type"] == {C: PRF(0.5, 0.5, 0.5, 1, 1, 1), D: PRF(1 / 3, 1 / 3, pytest.approx(1 / 3), 1, 2, 2)}


def test_untyped_and_overlap():
    assert count_entities(GOLD, PRED, "untyped").prf() == PRF(0.6, 0.6, pytest.approx(0.6), 3, 2, 2)
    overlap = entity_scores(count_entities(GOLD, PRED, "overlap"))
    # d1's Disease 15-20 overlaps gold 15-27; d2's Disease 0-5 overlaps only a Chemical
    assert overlap["micro"] == PRF(0.6, 0.6, pytest.approx(0.6), 3, 2, 2)
    assert overlap["per_type"][D] == PRF(2 / 3, 2 / 3, pytest.approx(2 / 3), 2, 1, 1)


def test_overlap_is_not_one_to_one():
    one_gold_two_pred = count_spans([Span(0, 10, "X")], [Span(0, 3, "X"), Span(5, 10, "X")], "overlap")
    assert one_gold_two_pred.prf() == PRF(1.0, 1.0, 1.0, 2, 0, 0)
    two_gold_one_pred = count_spans([Span(0, 3, "X"), Span(5, 10, "X")], [Span(0, 10, "X")], "overlap")
    assert two_gold_one_pred.prf() == PRF(1.0, 1.0, 1.0, 1, 0, 0)
    touching = count_spans([Span(0, 3, "X")], [Span(3, 5, "X")], "overlap")  # end-exclusive: no shared character
    assert touching.prf() == PRF(0.0, 0.0, 0.0, 0, 1, 1)


def test_per_sample_counts_add_up_to_the_corpus_counts():
    by_id = {d.id: d for d in PRED}
    for mode in ("strict", "untyped", "overlap"):
        per_doc = [count_spans(g.spans, by_id[g.id].spans if g.id in by_id else [], mode) for g in GOLD]
        assert sum(per_doc, EntityCounts()) == count_entities(GOLD, PRED, mode)


def test_zero_denominators_give_zero():
    assert count_spans([], []).prf() == PRF(0.0, 0.0, 0.0, 0, 0, 0)
    assert count_spans([Span(0, 1, "X")], []).prf() == PRF(0.0, 0.0, 0.0, 0, 0, 1)
    assert count_spans([], [Span(0, 1, "X")]).prf() == PRF(0.0, 0.0, 0.0, 0, 1, 0)


def test_evaluate_entities_is_plain_json():
    result = evaluate_entities(GOLD, PRED)
    assert json.loads(json.dumps(result)) == result
    assert result["f1"] == pytest.approx(0.4) and result["tp"] == 2 and result["fn"] == 3
    assert result["per_type"][C] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "tp": 1, "fp": 1, "fn": 1}
    assert result["untyped"]["precision"] == 0.6 and "per_type" not in result["untyped"]
    assert result["overlap"]["per_type"][C]["f1"] == 0.5


def test_document_pairing_errors_and_repeated_ids():
    with pytest.raises(ValueError, match="predicted document 'zz' is not a gold document id"):
        count_entities(GOLD, [Document("zz", "", [])])
    with pytest.raises(ValueError, match=r"predicted document 'd1' occurs more often than in gold \(1\)"):
        count_entities(GOLD, [PRED[1], PRED[1]])
    with pytest.raises(ValueError, match="did you mean 'strict'"):
        count_entities(GOLD, PRED, mode="strikt")
    # NCBI-disease train repeats a PMID: the k-th gold copy pairs with the k-th predicted one
    gold = [Document("p", "x y", [Span(0, 1, "X")]), Document("p", "x y", [Span(2, 3, "X")])]
    pred = [Document("p", "x y", [Span(0, 1, "X")]), Document("p", "x y", [Span(0, 1, "X")])]
    assert count_entities(gold, pred).prf() == PRF(0.5, 0.5, 0.5, 1, 1, 1)
    assert count_entities(gold, pred[:1]).prf() == PRF(1.0, 0.5, pytest.approx(2 / 3), 1, 0, 1)


def test_relations():
    counts = count_relations(GOLD, PRED)
    assert counts.prf() == PRF(0.5, 1 / 3, pytest.approx(0.4), 1, 1, 2)
    assert evaluate_relations(GOLD, PRED) == counts.prf().as_dict()
    every_type = count_relations(GOLD, PRED, type=None)
    assert every_type.types == ["CID", "OTHER"] and every_type.prf("OTHER") == PRF(0.0, 0.0, 0.0, 0, 1, 0)


# --- strict scores equal seqeval's default mode -------------------------------------------------

BIO_FILES = [
    "bc5cdr/BC5CDR-IOB/train.tsv", "bc5cdr/BC5CDR-IOB/devel.tsv", "bc5cdr/BC5CDR-IOB/test.tsv",
    "ncbi_disease/conll/train.tsv", "ncbi_disease/conll/devel.tsv", "ncbi_disease/conll/test.tsv",
]


@functools.cache
def shared_sentences() -> tuple[tuple[str, ...], ...]:
    """Gold tag sequences of every sentence of the six shared BIO files (read once per session)."""
    sentences = []
    for name in BIO_FILES:
        for doc in read_bio(SHARED_DATA / name):
            sentences.append(tuple(spans_to_tags(split_whitespace(doc.text), doc.spans).tags))
    return tuple(sentences)


TYPES = ["Chemical", "Disease", "Gene"]  # Gene occurs in no gold file: a type only predictions have
TAG = st.sampled_from(["O"] + [f"{p}-{t}" for p in "BI" for t in TYPES])


@st.composite
def perturbed(draw, tags: tuple[str, ...]) -> list[str]:
    """Gold tags with random replacements, a shift and a dropped mention; invalid sequences included."""
    tags = list(tags)
    for _ in range(draw(st.integers(0, 4))):
        tags[draw(st.integers(0, len(tags) - 1))] = draw(TAG)
    shift = draw(st.integers(-2, 2))
    if shift > 0:
        tags = ["O"] * shift + tags[:-shift] if shift < len(tags) else ["O"] * len(tags)
    elif shift < 0:
        tags = tags[-shift:] + ["O"] * min(-shift, len(tags))
    begins = [i for i, t in enumerate(tags) if t.startswith("B-")]
    if begins and draw(st.booleans()):
        i = draw(st.sampled_from(begins))
        tags[i] = "O"
        while i + 1 < len(tags) and tags[i + 1].startswith("I-"):
            i += 1
            tags[i] = "O"
    return tags


@st.composite
def gold_and_predictions(draw):
    sentences = shared_sentences()
    picked = draw(st.lists(st.integers(0, len(sentences) - 1), min_size=1, max_size=4))
    gold, pred = [], []
    for i in picked:
        tags = sentences[i]
        gold_tags = draw(perturbed(tags)) if draw(st.integers(0, 4)) == 0 else list(tags)
        gold.append(gold_tags)
        pred.append(draw(perturbed(tags)))
    return gold, pred


def as_documents(tag_lists: list[list[str]]) -> list[Document]:
    docs = []
    for n, tags in enumerate(tag_lists):
        text = " ".join("w" * (1 + i % 3) for i in range(len(tags)))
        docs.append(Document(f"s{n}", text, tags_to_spans(split_whitespace(text), tags)))
    return docs


@needs_shared
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gold_and_predictions())
def test_strict_scores_equal_seqeval(sample):
    y_true, y_pred = sample
    counts = count_entities(as_documents(y_true), as_documents(y_pred), "strict")
    scores = entity_scores(counts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns on zero denominators; both sides give 0.0
        expected = (precision_score(y_true, y_pred), recall_score(y_true, y_pred), f1_score(y_true, y_pred))
        report = classification_report(y_true, y_pred, output_dict=True)
    micro = scores["micro"]
    assert (micro.precision, micro.recall, micro.f1) == pytest.approx(expected, abs=1e-9)
    per_type = {k: v for k, v in report.items() if not k.endswith(" avg")}
    assert sorted(per_type) == sorted(scores["per_type"])
    for kind, row in per_type.items():
        ours = scores["per_type"][kind]
        assert (ours.precision, ours.recall, ours.f1) == pytest.approx(
            (row["precision"], row["recall"], row["f1-score"]), abs=1e-9
        )
        assert ours.tp + ours.fn == row["support"]
