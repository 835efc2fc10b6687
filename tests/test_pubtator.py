"""PubTator reader/writer: exact documents on a tiny fixture, errors with file and line, exact round trips."""

from __future__ import annotations

import pytest

from ner_ray.data.document import Document, ParseReport, Relation, Span
from ner_ray.data.pubtator import (
    format_pubtator,
    parse_pubtator,
    read_pubtator,
    write_pubtator,
)
from ner_ray.errors import DataFormatError

FIXTURE = (
    "1|t|Lithium tremor.\n"
    "1|a|Tremor followed lithium use.\n"
    "1\t0\t7\tLithium\tChemical\tD008094\n"
    "1\t8\t14\ttremor\tDisease\tD014202\n"
    "1\t16\t22\tTremor\tDisease\tD014202\n"
    "1\t32\t39\tlithium\tChemical\tD008094\n"
    "1\tCID\tD008094\tD014202\n"
    "\n"
    "2|t|Renal and hepatic failure\n"
    "2|a|\n"
    "2\t0\t25\tRenal and hepatic failure\tDisease\tD051437|D017093\trenal failure|hepatic failure\n"
    "\n"
    "3|t|No entities here.\n"
    "3|a|None at all.\n"
    "\n"
)


def test_parse_exact_documents():
    docs = parse_pubtator(FIXTURE)
    assert [d.id for d in docs] == ["1", "2", "3"]
    assert docs[0].text == "Lithium tremor. Tremor followed lithium use."
    assert docs[0].meta == {"title_end": 15}
    assert [s.key for s in docs[0].spans] == [(0, 7, "Chemical"), (8, 14, "Disease"), (16, 22, "Disease"), (32, 39, "Chemical")]
    assert docs[0].spans[0].concept == "D008094"
    assert docs[0].relations == [Relation("D008094", "D014202", "CID")]
    assert docs[1].text == "Renal and hepatic failure "
    assert docs[1].spans == [Span(0, 25, "Disease", "D051437|D017093", note="renal failure|hepatic failure")]
    assert docs[2].spans == [] and docs[2].relations == []


def test_format_is_the_inverse():
    assert format_pubtator(parse_pubtator(FIXTURE)) == FIXTURE


def test_write_is_atomic_and_exact(tmp_path):
    path = write_pubtator(tmp_path / "out" / "x.txt", parse_pubtator(FIXTURE))
    assert path.read_text() == FIXTURE
    assert [p.name for p in path.parent.iterdir()] == ["x.txt"]  # no temporary file left


def test_document_without_title_end_writes_whole_text_as_title():
    text = format_pubtator([Document("9", "A sentence.", [Span(2, 10, "Disease")])])
    assert text == "9|t|A sentence.\n9|a|\n9\t2\t10\tsentence\tDisease\n\n"
    (doc,) = parse_pubtator(text)
    assert doc.text == "A sentence. " and doc.spans == [Span(2, 10, "Disease")]


@pytest.mark.parametrize(
    ("bad", "line", "words"),
    [
        (FIXTURE.replace("1\t8\t14\ttremor\tDisease\tD014202", "1\t8\ttremor\tDisease"), 4, "tab-separated fields"),
        (FIXTURE.replace("1\t8\t14\t", "1\t8\tx\t"), 4, "integers"),
        (FIXTURE.replace("1\t32\t39\t", "1\t32\t99\t"), 6, "outside the text"),
        (FIXTURE.replace("2|a|", "2|x|"), 10, "PMID|a|abstract"),
        (FIXTURE.replace("1\tCID", "7\tCID"), 7, "PMID '7'"),
    ],
)
def test_malformed_input_names_file_and_line(bad, line, words):
    with pytest.raises(DataFormatError) as err:
        parse_pubtator(bad, source="bad.txt")
    assert err.value.line == line and str(err.value).startswith(f"bad.txt:{line}: ")
    assert words in str(err.value)


def test_mention_mismatch_strict_error_lenient_skip():
    bad = FIXTURE.replace("1\t8\t14\ttremor", "1\t8\t14\ttumour")
    with pytest.raises(DataFormatError, match=r"^bad.txt:4: mention 'tumour' != text\[8:14\] = 'tremor'"):
        parse_pubtator(bad, source="bad.txt")
    report = ParseReport()
    docs = parse_pubtator(bad, source="bad.txt", lenient=True, report=report)
    assert [s.key for s in docs[0].spans] == [(0, 7, "Chemical"), (16, 22, "Disease"), (32, 39, "Chemical")]
    assert report.counts == {"offset_mismatches": 1, "skipped_mentions": 1}
    assert report.notes[0].startswith("bad.txt:4: ")


def test_whitespace_only_mismatch_is_kept_and_reported():
    text = FIXTURE.replace("1\t8\t14\ttremor\t", "1\t8\t14\ttremor  \t")
    report = ParseReport()
    docs = parse_pubtator(text, report=report)
    assert docs[0].spans[1].key == (8, 14, "Disease") and docs[0].spans[1].surface == "tremor  "
    assert report.counts["offset_mismatches"] == 1 and "skipped_mentions" not in report.counts
    assert format_pubtator(docs) == text


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(FIXTURE.replace("Tremor followed", "Tr\u00e9mor followed").encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"latin1.txt:2: not valid UTF-8"):
        read_pubtator(path)


def test_a_byte_order_mark_is_removed_and_noted(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + FIXTURE.encode())
    report = ParseReport()
    assert read_pubtator(path, report=report) == parse_pubtator(FIXTURE)
    assert report.counts["bom_removed"] == 1 and report.notes == [f"{path}:1: a UTF-8 byte-order mark at the start of the file was removed"]


def test_a_repeated_mention_line_counts_once():
    repeated = FIXTURE.replace("1\t8\t14\ttremor\tDisease\tD014202\n", "1\t8\t14\ttremor\tDisease\tD014202\n" * 2)
    report = ParseReport()
    assert parse_pubtator(repeated, "x.txt", report=report) == parse_pubtator(FIXTURE)
    assert report.counts["duplicate_mentions"] == 1
    assert report.notes == ["x.txt:5: mention 8-14 Disease of PMID 1 repeats line 4; counted once"]


@pytest.mark.parametrize(
    "name",
    [
        "bc5cdr/CDR_TrainingSet.PubTator.txt", "bc5cdr/CDR_DevelopmentSet.PubTator.txt", "bc5cdr/CDR_TestSet.PubTator.txt",
        "ncbi_disease/NCBItrainset_corpus.txt", "ncbi_disease/NCBIdevelopset_corpus.txt", "ncbi_disease/NCBItestset_corpus.txt",
    ],
)
def test_round_trip_on_shared_corpora(shared_data, name):
    """PubTator -> Documents -> PubTator gives the file back (blank lines at the file's very start/end aside)."""
    original = (shared_data / name).read_text(encoding="utf-8")
    docs = read_pubtator(shared_data / name)
    assert format_pubtator(docs).strip("\n") == original.strip("\n")
    for doc in docs:
        assert doc.check_offsets() == []
        assert all(doc.mention(s) == (s.surface.strip() if s.surface else doc.mention(s)) for s in doc.spans)
