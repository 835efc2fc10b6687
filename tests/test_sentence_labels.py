"""Sentence-level CID labels (seed 004): exact labels on tiny documents with given sentence bounds."""

from __future__ import annotations

import pytest

from ner_ray.data.document import Document, Relation, Span
from ner_ray.data.sentence_labels import label_cid_sentences, label_sentences

#       0         1         2         3         4         5         6         7         8
#       0123456789012345678901234567890123456789012345678901234567890123456789012345678901234
TEXT = "Aspirin causes ulcers. Ulcers hurt. Cisplatin and renal and hepatic failure. Aspirin."
ASPIRIN, ULCERS, CISPLATIN, COMPOSITE = "D001241", "D014456", "D002945", "D051437|D048550"
DOC = Document(
    "1", TEXT,
    [
        Span(0, 7, "Chemical", ASPIRIN), Span(15, 21, "Disease", ULCERS), Span(23, 29, "Disease", ULCERS),
        Span(36, 45, "Chemical", CISPLATIN), Span(50, 75, "Disease", COMPOSITE), Span(77, 84, "Chemical", ASPIRIN),
    ],
    [Relation(ASPIRIN, ULCERS, "CID"), Relation(CISPLATIN, "D048550", "CID")],
)
SENTENCES = [(0, 22), (23, 35), (36, 76), (77, 85)]


def test_labels_exact():
    assert [TEXT[s:e] for s, e in SENTENCES][2] == "Cisplatin and renal and hepatic failure."
    # 1: aspirin + ulcers; 0: ulcers alone; 1: cisplatin + a composite holding D048550; 0: aspirin alone
    assert label_cid_sentences(DOC, SENTENCES) == [1, 0, 1, 0]


def test_only_relations_of_the_asked_type_count():
    doc = DOC.with_spans(DOC.spans)
    doc.relations = [Relation(ASPIRIN, ULCERS, "other")]
    assert label_cid_sentences(doc, SENTENCES) == [0, 0, 0, 0]
    assert label_cid_sentences(doc, SENTENCES, relation_type="other") == [1, 0, 0, 0]


def test_a_mention_cut_by_the_splitter_counts_in_both_sentences():
    # a bad split inside "ulcers" (15-21): both halves still see the disease
    assert label_cid_sentences(DOC, [(0, 18), (18, 35), (35, 36), (36, 36)]) == [1, 0, 0, 0]
    assert label_cid_sentences(DOC, [(0, 18), (18, 84)]) == [1, 1]


def test_no_relations_or_no_sentences():
    assert label_cid_sentences(Document("2", TEXT, DOC.spans), SENTENCES) == [0, 0, 0, 0]
    assert label_cid_sentences(DOC, []) == []


@pytest.mark.parametrize("bounds", [(-1, 5), (10, 5), (0, 86)])
def test_bounds_outside_the_text_are_rejected(bounds):
    with pytest.raises(ValueError, match=r"document 1: sentence bounds .* must satisfy 0 <= start <= end <= 85"):
        label_cid_sentences(DOC, [(0, 22), bounds])


def test_has_entity_labels_and_task_dispatch():
    doc = Document("d", "Aspirin helps. Nothing here. Fever fell.", [Span(0, 7, "Chemical"), Span(29, 34, "Disease")])
    bounds = [(0, 14), (15, 28), (29, 40)]
    assert label_sentences(doc, bounds, "has_entity") == [1, 0, 1]
    assert label_sentences(doc, bounds, "cid") == [0, 0, 0]
    with pytest.raises(ValueError, match="valid: cid, has_entity"):
        label_sentences(doc, bounds, "relation")
    with pytest.raises(ValueError, match="sentence bounds"):
        label_sentences(doc, [(0, 99)], "has_entity")
