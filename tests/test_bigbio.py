"""BigBio KB datasets: exact documents from a three-record dataset saved with `save_to_disk`,
relations mapped back from mention level, the offline-hub error, and BC5CDR in BigBio shape."""

from __future__ import annotations

import collections
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED_DATA, needs_shared

from ner_ray.data.bigbio import documents_from_bigbio, load_bigbio
from ner_ray.data.document import Document, ParseReport, Relation, Span
from ner_ray.data.pubtator import read_pubtator
from ner_ray.errors import DataFormatError

datasets = pytest.importorskip("datasets")


_S, _I = datasets.Value("string"), datasets.Value("int32")
_NORM = [{"db_name": _S, "db_id": _S}]
KB_FEATURES = datasets.Features({
    "id": _S,
    "document_id": _S,
    "passages": [{"id": _S, "type": _S, "text": [_S], "offsets": [[_I]]}],
    "entities": [{"id": _S, "type": _S, "text": [_S], "offsets": [[_I]], "normalized": _NORM}],
    "events": [{"id": _S, "type": _S, "trigger": {"text": [_S], "offsets": [[_I]]},
                "arguments": [{"role": _S, "ref_id": _S}]}],
    "coreferences": [{"id": _S, "entity_ids": [_S]}],
    "relations": [{"id": _S, "type": _S, "arg1_id": _S, "arg2_id": _S, "normalized": _NORM}],
})


def _entity(eid, kind, texts, offsets, *ids):
    return {"id": eid, "type": kind, "text": texts, "offsets": offsets,
            "normalized": [{"db_name": "MESH", "db_id": i} for i in ids]}


def _relation(rid, arg1, arg2, kind="CID"):
    return {"id": rid, "type": kind, "arg1_id": arg1, "arg2_id": arg2, "normalized": []}


def _record(rid, doc_id, passages, entities=(), relations=()):
    return {"id": rid, "document_id": doc_id, "events": [], "coreferences": [],
            "passages": [{"id": f"{rid}p{i}", "type": kind, "text": [text], "offsets": [[start, start + len(text)]]}
                         for i, (kind, start, text) in enumerate(passages)],
            "entities": list(entities), "relations": list(relations)}


RECORDS = [
    _record("0", "10", [("title", 0, "Aspirin causes ulcers."), ("abstract", 23, "No ulcers.")],
            [_entity("e1", "Chemical", ["Aspirin"], [[0, 7]], "D001241"),
             _entity("e2", "Disease", ["ulcers"], [[15, 21]], "D014456"),
             _entity("e3", "Disease", ["ulcers"], [[26, 32]], "D014456")],
            # BigBio expands one CID pair to every pair of mentions
            [_relation("r1", "e1", "e2"), _relation("r2", "e1", "e3")]),
    _record("1", "20", [("abstract", 0, "Renal and hepatic failure after cisplatin.")],
            [_entity("e4", "Disease", ["Renal and hepatic failure"], [[0, 25]], "D051437", "D048550"),
             _entity("e5", "Disease", ["Renal", "failure"], [[0, 5], [18, 25]], "D051437"),
             _entity("e6", "Disease", ["hepatic failure"], [[10, 25]], "D048550"),
             _entity("e7", "Chemical", ["cisplatin"], [[32, 41]], "D002945")],
            # only (cisplatin, D051437) holds; the composite e4 also carries D048550, but e6 is unrelated
            [_relation("r3", "e7", "e4"), _relation("r4", "e7", "e5")]),
    _record("2", "30", [("title", 0, "Nothing."), ("abstract", 10, "Really.")],
            [], [_relation("r5", "x", "y")]),
]
EXPECTED = [
    Document("10", "Aspirin causes ulcers. No ulcers.",
             [Span(0, 7, "Chemical", "D001241"), Span(15, 21, "Disease", "D014456"),
              Span(26, 32, "Disease", "D014456")],
             [Relation("D001241", "D014456", "CID")], {"title_end": 22, "bigbio_id": "0"}),
    Document("20", "Renal and hepatic failure after cisplatin.",
             [Span(0, 25, "Disease", "D051437|D048550"),
              Span(0, 25, "Disease", "D051437", surface="Renal failure", note="fragments 0-5,18-25"),
              Span(10, 25, "Disease", "D048550"), Span(32, 41, "Chemical", "D002945")],
             [Relation("D002945", "D051437", "CID")], {"bigbio_id": "1"}),
    Document("30", "Nothing.  Really.", [], [], {"title_end": 8, "bigbio_id": "2"}),
]


def test_documents_from_a_saved_dataset_dict(tmp_path):
    ds = datasets.Dataset.from_list(RECORDS, features=KB_FEATURES)
    datasets.DatasetDict({"train": ds, "validation": ds.select([2])}).save_to_disk(str(tmp_path / "kb"))
    report = ParseReport()
    assert load_bigbio(tmp_path / "kb", "train", report=report) == EXPECTED
    assert report.counts == collections.Counter({"discontinuous_merged": 1, "relations_skipped": 1})
    assert load_bigbio(str(tmp_path / "kb"), "validation") == EXPECTED[2:]
    with pytest.raises(ValueError, match="no split 'test'; valid: train, validation"):
        load_bigbio(tmp_path / "kb", "test")


def test_a_saved_dataset_is_a_corpus_of_format_bigbio(tmp_path):
    from ner_ray.config import StudyConfig
    from ner_ray.data.corpora import load_corpus
    from ner_ray.train.data import load_documents

    ds = datasets.Dataset.from_list(RECORDS, features=KB_FEATURES)
    datasets.DatasetDict({"train": ds, "validation": ds.select([2])}).save_to_disk(str(tmp_path / "kb"))
    corpus = load_corpus(tmp_path / "kb", fmt="bigbio")
    assert corpus.splits == {"train": EXPECTED, "dev": EXPECTED[2:]}  # BigBio's validation is our dev; no test split
    assert corpus.reports["train"].counts["discontinuous_merged"] == 1
    # a study reads it with data.format: bigbio, and has no test split to score
    config = StudyConfig().with_updates({"data.corpus": str(tmp_path / "kb"), "data.format": "bigbio"})
    splits, types = load_documents(config)
    assert set(splits) == {"train", "dev"} and types == ("Chemical", "Disease")
    with pytest.raises(ValueError, match="reads a whole dataset, not one file"):
        from ner_ray.data.formats import read_documents

        read_documents(tmp_path / "kb", fmt="bigbio")


def test_documents_from_a_saved_single_split(tmp_path):
    datasets.Dataset.from_list(RECORDS, features=KB_FEATURES).save_to_disk(str(tmp_path / "one"))
    assert load_bigbio(tmp_path / "one", "train") == EXPECTED


def test_columnar_nested_lists_read_the_same():
    def columnar(rows):
        keys = list(rows[0]) if rows else []
        return {k: [row[k] for row in rows] for k in keys}

    record = dict(RECORDS[1])
    record["entities"] = columnar([{**e, "normalized": columnar(e["normalized"])} for e in record["entities"]])
    record["relations"] = columnar(record["relations"])
    assert documents_from_bigbio([record]) == [EXPECTED[1]]


def test_entity_text_mismatch_is_an_error_unless_lenient():
    bad = dict(RECORDS[0], entities=[_entity("e1", "Chemical", ["Aspirin"], [[1, 8]], "D001241")])
    with pytest.raises(DataFormatError, match="kb: record 0 \\(document_id '10'\\): entity 'e1' says 'Aspirin' "
                       "but its offsets cover 'spirin ' \\(lenient=True"):
        documents_from_bigbio([bad], source="kb")
    report = ParseReport()
    assert documents_from_bigbio([bad], lenient=True, report=report)[0].spans == []
    assert report.counts["offset_mismatches"] == 1


def test_overlapping_passages_are_an_error():
    bad = _record("9", "90", [("title", 0, "Overlap."), ("abstract", 5, "x")])
    with pytest.raises(DataFormatError, match="record 0 \\(document_id '90'\\): passage text at 5 overlaps"):
        documents_from_bigbio([bad])


def test_unreachable_hub_is_a_clear_value_error():
    # offline mode makes the failure immediate (no network retries); the message must say what to do
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    code = (
        "from ner_ray.data.bigbio import load_bigbio\n"
        "try:\n    load_bigbio('bigbio/bc5cdr', 'train')\n"
        "except ValueError as err:\n    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert "could not load 'bigbio/bc5cdr' (config 'bc5cdr_bigbio_kb', split 'train')" in out.stdout
    assert "pass that folder's path instead" in out.stdout


def _as_bigbio(doc: Document) -> dict:
    """A PubTator document in BigBio KB shape, relations expanded to mention pairs as BigBio's bc5cdr does."""
    title_end = doc.meta["title_end"]
    entities = [
        _entity(f"e{i}", s.type, [doc.mention(s)], [[s.start, s.end]], *_ids(s.concept))
        for i, s in enumerate(doc.spans)
    ]
    index = collections.defaultdict(list)
    for entity in entities:
        for norm in entity["normalized"]:
            index[norm["db_id"]].append(entity["id"])
    relations = [_relation(f"r{n}", a, b) for n, (a, b) in enumerate(
        pair for rel in doc.relations for pair in itertools.product(index[rel.head], index[rel.tail]))]
    passages = [("title", 0, doc.text[:title_end]), ("abstract", title_end + 1, doc.text[title_end + 1 :])]
    return _record(doc.id, doc.id, passages, entities, relations)


def _ids(concept: str) -> list[str]:
    return [] if concept == "-1" else concept.split("|")


@needs_shared
@pytest.mark.parametrize("split", ["Training", "Development", "Test"])
def test_bc5cdr_in_bigbio_shape_maps_back(split):
    docs = read_pubtator(SHARED_DATA / "bc5cdr" / f"CDR_{split}Set.PubTator.txt")
    back = documents_from_bigbio([_as_bigbio(d) for d in docs])
    extra = []
    for doc, got in zip(docs, back):
        assert (got.id, got.text, got.meta["title_end"]) == (doc.id, doc.text, doc.meta["title_end"])
        assert [(s.key, s.concept) for s in got.spans] == [(s.key, "|".join(_ids(s.concept))) for s in doc.spans]
        assert set(doc.relations) <= set(got.relations), doc.id
        # a pair can only be added through an id that never occurs outside multi-id (composite) mentions
        alone = {s.concept for s in doc.spans if "|" not in s.concept}
        for rel in set(got.relations) - set(doc.relations):
            assert rel.head not in alone or rel.tail not in alone, (doc.id, rel)
            extra.append(rel)
    assert len(extra) < 0.02 * sum(len(d.relations) for d in docs)
