"""The shipped demo corpus: found as package data, strict PubTator, both types and CID relations, our own sentences."""

from __future__ import annotations

import importlib.resources
from collections import Counter

import pytest
from conftest import SHARED_DATA, needs_shared

from ner_ray.data.chunking import split_sentences
from ner_ray.data.document import Document, ParseReport
from ner_ray.data.pubtator import format_pubtator, read_pubtator
from ner_ray.data.textio import read_text

DEMO = importlib.resources.files("ner_ray") / "data" / "demo"
SPLITS = ("train", "dev", "test")


def _read(split: str) -> tuple[list[Document], ParseReport, str]:
    report = ParseReport()
    with importlib.resources.as_file(DEMO / f"{split}.txt") as path:
        return read_pubtator(path, report=report), report, read_text(path)


def _sentences(docs: list[Document]) -> list[str]:
    return [doc.text[s:e] for doc in docs for s, e in split_sentences(doc.text, doc.spans)]


@pytest.mark.parametrize("split", SPLITS)
def test_split_parses_strictly_with_both_types_and_relations(split):
    docs, report, raw = _read(split)
    assert docs and report.counts == Counter(), report.notes
    assert all(not doc.check_offsets() for doc in docs)
    assert format_pubtator(docs) == raw  # written in the canonical layout, so it round-trips byte for byte
    assert {s.type for doc in docs for s in doc.spans} == {"Chemical", "Disease"}
    assert sum(len(doc.relations) for doc in docs) >= 1
    for doc in docs:
        types = {s.concept: s.type for s in doc.spans}
        assert len(set(doc.relations)) == len(doc.relations), doc.id
        for rel in doc.relations:
            assert (rel.type, types.get(rel.head), types.get(rel.tail)) == ("CID", "Chemical", "Disease"), (doc.id, rel)


def test_corpus_size_and_consistent_ids():
    read = {split: _read(split)[0] for split in SPLITS}
    docs = [doc for split in SPLITS for doc in read[split]]
    assert len(_sentences(docs)) >= 60
    assert len({doc.id for doc in docs}) == len(docs)
    assert len(read["train"]) > len(read["dev"]) and len(read["train"]) > len(read["test"])
    concept_of: dict[str, set[str]] = {}
    type_of: dict[str, set[str]] = {}
    for doc in docs:
        for span in doc.spans:
            concept_of.setdefault(doc.mention(span).lower(), set()).add(span.concept)
            type_of.setdefault(span.concept, set()).add(span.type)
    assert {m: c for m, c in concept_of.items() if len(c) > 1} == {}
    assert {c: t for c, t in type_of.items() if len(t) > 1} == {}
    assert all(c.startswith(("D", "DEMO")) for c in type_of)
    assert (DEMO / "README.md").is_file()


@needs_shared
def test_no_sentence_comes_from_the_shared_corpora():
    files = sorted((SHARED_DATA / "bc5cdr").glob("CDR_*.PubTator.txt"))
    files += sorted((SHARED_DATA / "ncbi_disease").glob("NCBI*set_corpus.txt"))
    assert len(files) == 6
    shared_docs = [doc for path in files for doc in read_pubtator(path)]
    ours = [doc for split in SPLITS for doc in _read(split)[0]]
    shared = set(_sentences(shared_docs))
    assert [s for s in _sentences(ours) if s in shared] == []
    # Nor any title, compared whole (a title without a final period joins the abstract's first sentence).
    shared_titles = {doc.text[: doc.meta["title_end"]] for doc in shared_docs}
    assert [doc.id for doc in ours if doc.text[: doc.meta["title_end"]] in shared_titles] == []
