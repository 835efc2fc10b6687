"""Instruct view (seed 003): exact examples for three tiny documents, the never-raising completion
parsers, and every nameable CID relation of BC5CDR train appearing in its completion."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import SHARED_DATA, needs_shared

from ner_ray.data.document import Document, Relation, Span
from ner_ray.data.instruct import (
    INSTRUCTIONS,
    align_mentions,
    build_instruct_examples,
    concept_ids,
    concepts_by_name,
    normalise,
    parse_cid_pairs,
    parse_entity_list,
)
from ner_ray.data.jsonl import InstructExample
from ner_ray.data.pubtator import read_pubtator

TEXT1 = "Aspirin causes ulcers. No ulcers with aspirin or Aspirin."
DOC1 = Document(
    "1", TEXT1,
    # out of text order on purpose: completions follow the text
    [Span(38, 45, "Chemical", "D001241"), Span(0, 7, "Chemical", "D001241"), Span(15, 21, "Disease", "D014456"),
     Span(26, 32, "Disease", "D014456"), Span(49, 56, "Chemical", "D001241")],
    [Relation("D001241", "D014456", "CID")],
)
TEXT2 = "Renal and hepatic failure after cisplatin or NaCl."
DOC2 = Document(
    "2", TEXT2,
    [Span(0, 25, "Disease", "D051437|D048550"), Span(32, 41, "Chemical", "D002945"), Span(45, 49, "Chemical", "-1")],
    # the second and third relations name the same pair through the composite; D000001 has no mention
    [Relation("D002945", "D048550", "CID"), Relation("D002945", "D051437", "CID"),
     Relation("D000001", "D051437", "CID"), Relation("D002945", "D051437", "other")],
)
DOC3 = Document("3", "Nothing to see.")


def _prompt(task: str, text: str) -> str:
    return f"{INSTRUCTIONS[task]}\n\nText: {text}"


def test_examples_exact():
    assert build_instruct_examples(DOC1) == [
        InstructExample(_prompt("chemicals", TEXT1), "Aspirin; aspirin", {"task": "chemicals", "doc_id": "1"}),
        InstructExample(_prompt("diseases", TEXT1), "ulcers", {"task": "diseases", "doc_id": "1"}),
        InstructExample(_prompt("cid", TEXT1), "Aspirin | ulcers", {"task": "cid", "doc_id": "1", "cid_unnamed": 0}),
    ]
    assert [e.completion for e in build_instruct_examples(DOC2)] == [
        "cisplatin; NaCl", "Renal and hepatic failure", "cisplatin | Renal and hepatic failure",
    ]
    assert build_instruct_examples(DOC2, tasks=("cid",))[0].extra["cid_unnamed"] == 1
    assert [(e.extra["task"], e.completion) for e in build_instruct_examples(DOC3, tasks=("diseases", "cid"))] == [
        ("diseases", "none"), ("cid", "none"),
    ]


def test_unknown_task_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown instruct task 'genes'; valid: chemicals, diseases, cid"):
        build_instruct_examples(DOC1, tasks=("genes",))


@pytest.mark.parametrize(
    ("completion", "entities", "invalid"),
    [
        ("Aspirin; aspirin", ["Aspirin", "aspirin"], {}),
        ("  None \n", [], {}),
        ("", [], {}),
        ("a;; b\nc; a;", ["a", "b", "c"], {"empty": 2, "duplicate": 1}),
        (None, [], {"malformed": 1}),
        (42, [], {"malformed": 1}),
    ],
)
def test_parse_entity_list(completion, entities, invalid):
    counts = Counter()
    assert parse_entity_list(completion, counts) == entities
    assert +counts == Counter(invalid)


@pytest.mark.parametrize(
    ("completion", "pairs", "invalid"),
    [
        ("Aspirin | ulcers", [("Aspirin", "ulcers")], {}),
        ("a | b\nc|d ; a | b", [("a", "b"), ("c", "d")], {"duplicate": 1}),
        ("none", [], {}),
        ("a | b\n\nc\n | d\nx | y | z", [("a", "b")], {"empty": 1, "malformed": 3}),
        (["a | b"], [], {"malformed": 1}),
    ],
)
def test_parse_cid_pairs(completion, pairs, invalid):
    counts = Counter()
    assert parse_cid_pairs(completion, counts) == pairs
    assert +counts == Counter(invalid)


def test_every_task_answers_in_one_format_items_joined_by_semicolons():
    doc = Document("4", "Lithium and haloperidol caused tremor.", [
        Span(0, 7, "Chemical", "D008094"), Span(12, 23, "Chemical", "D006220"), Span(31, 37, "Disease", "D014202")],
        [Relation("D008094", "D014202", "CID"), Relation("D006220", "D014202", "CID")])
    chemicals, _, cid = build_instruct_examples(doc)
    assert chemicals.completion == "Lithium; haloperidol" and cid.completion == "Lithium | tremor; haloperidol | tremor"
    assert parse_cid_pairs(cid.completion) == [("Lithium", "tremor"), ("haloperidol", "tremor")]


def test_mentions_align_to_every_occurrence_on_word_boundaries_outermost_first():
    text = "Peripheral neuropathy; neuropathy after NO, not NOS. CISPLATIN and cisplatin."
    spans, missing = align_mentions(["neuropathy", "Peripheral neuropathy", "NO", "cisplatin", "gout"], text, "Disease")
    assert [(text[s.start:s.end], s.type) for s in spans] == [
        ("Peripheral neuropathy", "Disease"), ("neuropathy", "Disease"), ("NO", "Disease"), ("cisplatin", "Disease")]
    assert missing == ["gout"]  # "NO" inside "NOS" is no occurrence; the exact "cisplatin" wins over case-folding
    spans, _ = align_mentions(["Cisplatin"], text, "Chemical")  # no exact occurrence: case-insensitive ones
    assert [text[s.start:s.end] for s in spans] == ["CISPLATIN", "cisplatin"]


def test_names_map_to_concepts_exactly_then_normalised():
    index = concepts_by_name(DOC2, "Disease")
    assert concept_ids("Renal and hepatic failure", index) == {"D051437", "D048550"}
    assert concept_ids(" renal  and HEPATIC failure.", index) == {"D051437", "D048550"}
    assert concept_ids("NaCl", concepts_by_name(DOC2, "Chemical")) == set()  # a mention without an id maps to nothing
    assert concept_ids("gout", index) == set() and normalise("  Acute\nRenal Failure. ") == "acute renal failure"


def test_parsers_read_back_what_the_builder_writes():
    chemicals, diseases, cid = build_instruct_examples(DOC2)
    assert parse_entity_list(chemicals.completion) == ["cisplatin", "NaCl"]
    assert parse_entity_list(diseases.completion) == ["Renal and hepatic failure"]
    assert parse_cid_pairs(cid.completion) == [("cisplatin", "Renal and hepatic failure")]


@needs_shared
def test_bc5cdr_train_every_nameable_relation_is_in_its_completion():
    docs = read_pubtator(SHARED_DATA / "bc5cdr" / "CDR_TrainingSet.PubTator.txt")
    unnamed, checked = [], 0
    for doc in docs:
        first: dict[str, str] = {}
        for span in sorted(doc.spans, key=lambda s: s.start):
            for concept in span.concept.split("|"):
                first.setdefault(concept, doc.text[span.start : span.end])
        chemicals, diseases, cid = build_instruct_examples(doc)
        pairs = set(parse_cid_pairs(cid.completion))
        for rel in doc.relations:
            if rel.head in first and rel.tail in first:
                assert (first[rel.head], first[rel.tail]) in pairs, (doc.id, rel)
                checked += 1
            else:
                unnamed.append((doc.id, rel.head, rel.tail))
        assert cid.extra["cid_unnamed"] == sum(1 for u in unnamed if u[0] == doc.id)
        for example, kind in ((chemicals, "Chemical"), (diseases, "Disease")):
            in_order = sorted(doc.spans, key=lambda s: s.start)
            expected = list(dict.fromkeys(doc.mention(s) for s in in_order if s.type == kind))
            assert parse_entity_list(example.completion) == expected
    assert checked + len(unnamed) == 1038
    # a relation whose chemical or disease id has no mention cannot be named; in these files every
    # id of every CID relation has a mention (measured), so any unnamed relation is a builder bug
    assert not unnamed, f"{len(unnamed)} CID relations have an id without a mention: {unnamed}"
