"""`ner-ray data convert`: every target reads back to the same spans; a failed conversion writes nothing."""

from __future__ import annotations

import json

import pytest

from ner_ray.cli import main
from ner_ray.data.convert import sentence_documents
from ner_ray.data.corpora import load_corpus
from ner_ray.data.document import Document, Span
from ner_ray.data.jsonl import read_instruct_jsonl


def _keys(docs):
    return {(d.id, d.text, tuple(sorted(s.key for s in d.spans))) for d in docs}


def test_sentence_documents_keep_offsets_into_the_document():
    doc = Document("7", "Cisplatin caused nephrotoxicity. Lithium causes tremor.",
                   [Span(0, 9, "Chemical"), Span(17, 31, "Disease"), Span(33, 40, "Chemical"), Span(48, 54, "Disease")])
    first, second = sentence_documents(doc)
    assert (first.id, first.text, [s.key for s in first.spans]) == (
        "7-0", "Cisplatin caused nephrotoxicity.", [(0, 9, "Chemical"), (17, 31, "Disease")])
    assert (second.id, second.meta, [s.key for s in second.spans]) == (
        "7-1", {"doc_id": "7", "offset": 33}, [(0, 7, "Chemical"), (15, 21, "Disease")])


def test_demo_to_every_format_and_back(tmp_path, capsys):
    demo = load_corpus("demo")
    sentences = {split: [s for d in docs for s in sentence_documents(d)] for split, docs in demo.splits.items()}
    for target in ("pubtator", "span-jsonl", "bio", "instruct-jsonl"):
        assert main(["data", "convert", "demo", "--to", target, "--out", str(tmp_path / target)]) == 0
    assert "train: 14 records" in capsys.readouterr().out
    for split, docs in demo.splits.items():
        assert (tmp_path / "pubtator" / f"{split}.txt").read_text() == demo.files[split].read_text()
        assert _keys(load_corpus(tmp_path / "span-jsonl" / f"{split}.jsonl").splits[split]) == _keys(sentences[split])
        bio_docs = load_corpus(tmp_path / "bio" / f"{split}.tsv").splits[split]
        # BIO keeps tokens, not spacing: compare mention strings without spaces, sentence by sentence.
        assert [sorted((d.mention(s).replace(" ", ""), s.type) for s in d.spans) for d in bio_docs] == [
            sorted((d.mention(s).replace(" ", ""), s.type) for s in d.spans) for d in sentences[split]]
        examples = read_instruct_jsonl(tmp_path / "instruct-jsonl" / f"{split}.jsonl")
        assert len(examples) == 3 * len(docs)
        assert {e.extra["task"] for e in examples} == {"chemicals", "diseases", "cid"}


def test_ncbi_instruct_uses_merged_disease_type(shared_data, tmp_path):
    assert main(["data", "convert", "ncbi_disease", "--data-dir", str(shared_data), "--split", "dev",
                 "--to", "instruct-jsonl", "--out", str(tmp_path)]) == 0
    records = [json.loads(line) for line in (tmp_path / "dev.jsonl").read_text().splitlines()]
    assert len(records) == 100 and all(r["task"] == "diseases" for r in records)


def test_output_onto_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "taken").write_text("not a folder")
    assert main(["data", "convert", "demo", "--to", "bio", "--out", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: --out {tmp_path / 'taken'}: is a file; give a folder")


def test_failed_conversion_writes_nothing(tmp_path, capsys):
    source = tmp_path / "plain.txt"
    source.write_text("1|t|No entities at all.\n1|a|\n\n")
    out = tmp_path / "out"
    assert main(["data", "convert", str(source), "--to", "instruct-jsonl", "--out", str(out)]) == 2
    assert "no Chemical or Disease spans" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("split", ["dev", "test"])
def test_ncbi_span_jsonl_round_trip(shared_data, tmp_path, split):
    corpus = load_corpus("ncbi_disease", data_dir=shared_data, splits=(split,))
    assert main(["data", "convert", "ncbi_disease", "--data-dir", str(shared_data), "--split", split,
                 "--to", "span-jsonl", "--out", str(tmp_path)]) == 0
    back = load_corpus(tmp_path / f"{split}.jsonl").splits[split]
    expected = [s for d in corpus.splits[split] for s in sentence_documents(d)]
    assert _keys(back) == _keys(expected)
    assert sum(len(d.spans) for d in back) == sum(len(d.spans) for d in corpus.splits[split])
