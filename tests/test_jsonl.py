"""Span JSONL (seed 002) and instruct JSONL (seed 003): exact lines for a three-document fixture,
file:line errors for every kind of bad record, and write→read round trips on the shared corpora."""

from __future__ import annotations

import json

import pytest
from conftest import SHARED_DATA, needs_shared

from ner_ray.data.document import Document, ParseReport, Span
from ner_ray.data.jsonl import (
    InstructExample,
    format_instruct_jsonl,
    format_span_jsonl,
    parse_instruct_jsonl,
    parse_span_jsonl,
    read_instruct_jsonl,
    read_span_jsonl,
    write_instruct_jsonl,
    write_span_jsonl,
)
from ner_ray.data.pubtator import read_pubtator
from ner_ray.errors import DataFormatError

DOCS = [
    Document("a", "Aspirin causes ulcers.", [Span(15, 21, "Disease", "D014456"), Span(0, 7, "Chemical", "D001241")]),
    Document("b", "No entities here."),
    # U+2028 is a line break to str.splitlines but not to JSONL
    Document("c", "Naïve\u2028cisplatin toxicity", [Span(6, 24, "Disease"), Span(6, 15, "Chemical")]),
]
EXPECTED = (
    '{"task": "NER", "input": "<NER> Aspirin causes ulcers.", "target": "<TAG> 0-7 ; 15-21", "doc_id": "a", '
    '"dataset": "bc5cdr", "spans": [[0, 7, "Chemical"], [15, 21, "Disease"]]}\n'
    '{"task": "NER", "input": "<NER> No entities here.", "target": "<TAG>", "doc_id": "b", '
    '"dataset": "bc5cdr", "spans": []}\n'
    '{"task": "NER", "input": "<NER> Naïve\u2028cisplatin toxicity", "target": "<TAG> 6-15 ; 6-24", "doc_id": "c", '
    '"dataset": "bc5cdr", "spans": [[6, 15, "Chemical"], [6, 24, "Disease"]]}\n'
)


def test_format_span_jsonl_exact():
    assert format_span_jsonl(DOCS, dataset="bc5cdr") == EXPECTED


def test_parse_span_jsonl_gives_back_the_documents():
    docs = parse_span_jsonl(EXPECTED, source="x.jsonl")
    assert docs == [
        Document("a", DOCS[0].text, [Span(0, 7, "Chemical"), Span(15, 21, "Disease")], [],
                 {"dataset": "bc5cdr", "line": 1}),
        Document("b", DOCS[1].text, [], [], {"dataset": "bc5cdr", "line": 2}),
        Document("c", DOCS[2].text, [Span(6, 15, "Chemical"), Span(6, 24, "Disease")], [],
                 {"dataset": "bc5cdr", "line": 3}),
    ]


def test_seed_record_without_spans_is_untyped_and_blank_lines_are_skipped():
    text = '\n{"task": "NER", "input": "<NER> Aspirin causes ulcers.", "target": "<TAG> 15-21 ; 0-7"}\r\n\n'
    assert parse_span_jsonl(text) == [
        Document("line2", "Aspirin causes ulcers.", [Span(0, 7, "Entity"), Span(15, 21, "Entity")], [],
                 {"dataset": "", "line": 2}),
    ]


def test_write_and_read_span_jsonl(tmp_path):
    path = write_span_jsonl(tmp_path / "out" / "spans.jsonl", DOCS, dataset="bc5cdr")
    assert path.read_text(encoding="utf-8") == EXPECTED
    assert read_span_jsonl(path) == parse_span_jsonl(EXPECTED, source=str(path))


GOOD = {"task": "NER", "input": "<NER> Aspirin causes ulcers.", "target": "<TAG> 0-7", "doc_id": "a"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"input": "<NER> x", "target": "<TAG>"', "not valid JSON"),
        ('["<NER> x", "<TAG>"]', "expected a JSON object per line, got list"),
        ('{"input": "<NER> x"}', "missing key 'target'"),
        ('{"input": "<NER> x", "target": 3}', "key 'target' must be a string, got int"),
        ('{"input": "<NER> x", "target": "<TAG>", "doc_id": 7}', "key 'doc_id' must be a string"),
        ('{"input": "x", "target": "<TAG>"}', "'input' must start with '<NER> '"),
        ('{"task": "RE", "input": "<NER> x", "target": "<TAG>"}', "task 'RE': span JSONL records have task 'NER'"),
        (json.dumps({**GOOD, "target": "<TAG> 7-0"}), r"invalid items \(reversed x1\)"),
        (json.dumps({**GOOD, "target": "<TAG> 0-99"}), r"out_of_range x1.*0 <= s < e <= 22"),
        (json.dumps({**GOOD, "target": "0-7"}), r"missing_tag x1"),
        (json.dumps({**GOOD, "target": "<TAG> 0-7 ; 0-7"}), r"duplicate x1"),
        (json.dumps({**GOOD, "spans": [[0, 8, "Chemical"]]}), "disagree with target"),
        (json.dumps({**GOOD, "spans": [[0, 7]]}), r"'spans' item \[0, 7\]: expected \[start, end, type\]"),
        (json.dumps({**GOOD, "spans": [[0, "7", "Chemical"]]}), "expected \\[start, end, type\\]"),
    ],
)
def test_bad_span_record_is_an_error_at_its_line(line, message):
    text = json.dumps(GOOD) + "\n" + line + "\n"
    with pytest.raises(DataFormatError, match=message) as err:
        parse_span_jsonl(text, source="gold.jsonl")
    assert str(err.value).startswith("gold.jsonl:2: ")


def test_lenient_skips_records_with_bad_spans_but_not_malformed_lines():
    text = "\n".join([json.dumps(GOOD), json.dumps({**GOOD, "target": "<TAG> 7-0"}), json.dumps(GOOD)])
    report = ParseReport()
    docs = parse_span_jsonl(text, source="g.jsonl", lenient=True, report=report)
    assert [d.meta["line"] for d in docs] == [1, 3]
    assert report.counts["skipped_records"] == 1 and report.notes[0].startswith("g.jsonl:2: ")
    with pytest.raises(DataFormatError, match="g.jsonl:2: missing key 'target'"):
        parse_span_jsonl(json.dumps(GOOD) + '\n{"input": "<NER> x"}', source="g.jsonl", lenient=True)


EXAMPLES = [
    InstructExample("List the chemicals.\n\nText: Aspirin.", "Aspirin", {"task": "chemicals", "doc_id": "1"}),
    InstructExample("List the diseases.\n\nText: None.", "none"),
    InstructExample("Pairs?\u2028", "a | b\nc | d", {"n": 2, "nested": {"k": [1]}}),
]
EXPECTED_INSTRUCT = (
    '{"prompt": "List the chemicals.\\n\\nText: Aspirin.", "completion": "Aspirin", '
    '"task": "chemicals", "doc_id": "1"}\n'
    '{"prompt": "List the diseases.\\n\\nText: None.", "completion": "none"}\n'
    '{"prompt": "Pairs?\u2028", "completion": "a | b\\nc | d", "n": 2, "nested": {"k": [1]}}\n'
)


def test_instruct_jsonl_exact_and_round_trip(tmp_path):
    assert format_instruct_jsonl(EXAMPLES) == EXPECTED_INSTRUCT
    path = write_instruct_jsonl(tmp_path / "instruct.jsonl", EXAMPLES)
    assert path.read_text(encoding="utf-8") == EXPECTED_INSTRUCT
    assert read_instruct_jsonl(path) == EXAMPLES


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"prompt": "p"}', "missing key 'completion' \\(a record needs 'prompt', 'completion'\\)"),
        ('{"completion": "c"}', "missing key 'prompt'"),
        ('{"prompt": ["p"], "completion": "c"}', "key 'prompt' must be a string, got list"),
        ('"just a string"', "expected a JSON object per line, got str"),
        ("{prompt: 1}", "not valid JSON \\(Expecting property name enclosed in double quotes at column 2\\)"),
    ],
)
def test_bad_instruct_record_is_an_error_at_its_line(line, message):
    text = '{"prompt": "p", "completion": "c"}\n\n' + line
    with pytest.raises(DataFormatError, match=message) as err:
        parse_instruct_jsonl(text, source="i.jsonl")
    assert str(err.value).startswith("i.jsonl:3: ")


def test_an_invalid_example_leaves_the_existing_file_untouched(tmp_path):
    path = write_instruct_jsonl(tmp_path / "i.jsonl", EXAMPLES[:1])
    with pytest.raises(ValueError, match="may not hold \\['prompt'\\]"):
        write_instruct_jsonl(path, [*EXAMPLES, InstructExample("p", "c", {"prompt": "again"})])
    assert path.read_text(encoding="utf-8") == EXPECTED_INSTRUCT.split("\n")[0] + "\n"
    assert [p.name for p in tmp_path.iterdir()] == ["i.jsonl"]


CORPORA = [
    ("bc5cdr", "bc5cdr/CDR_TrainingSet.PubTator.txt"),
    ("bc5cdr", "bc5cdr/CDR_DevelopmentSet.PubTator.txt"),
    ("bc5cdr", "bc5cdr/CDR_TestSet.PubTator.txt"),
    ("ncbi_disease", "ncbi_disease/NCBItrainset_corpus.txt"),
    ("ncbi_disease", "ncbi_disease/NCBIdevelopset_corpus.txt"),
    ("ncbi_disease", "ncbi_disease/NCBItestset_corpus.txt"),
]


@needs_shared
@pytest.mark.parametrize(("dataset", "name"), CORPORA)
def test_span_jsonl_round_trip_on_shared_corpora(tmp_path, dataset, name):
    docs = read_pubtator(SHARED_DATA / name)
    path = write_span_jsonl(tmp_path / "spans.jsonl", docs, dataset=dataset)
    back = read_span_jsonl(path)
    assert len(back) == len(docs) == sum(1 for line in path.read_text(encoding="utf-8").split("\n") if line)
    for doc, got in zip(docs, back):
        assert (got.id, got.text, got.meta["dataset"]) == (doc.id, doc.text, dataset)
        assert [s.key for s in got.spans] == sorted({s.key for s in doc.spans})
