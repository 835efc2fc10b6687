"""BIO TSV reader/writer: exact fixtures, error lines, and byte-exact round trips of the shared files."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from conftest import SHARED_DATA, needs_shared

from ner_ray.data.conll import (
    format_bio,
    parse_bio,
    read_bio,
    split_whitespace,
    split_words,
    write_bio,
)
from ner_ray.data.document import Document, ParseReport, Span
from ner_ray.errors import DataFormatError

THREE = (
    "Naloxone\tB-Chemical\nreverses\tO\nclonidine\tB-Chemical\n-\tO\ninduced\tO\nhypotension\tB-Disease\n.\tO\n\n"
    "No\tO\nentities\tO\n\n"
    "acute\tB-Disease\nrenal\tI-Disease\nfailure\tI-Disease\n\n"
)


def test_parse_bio_three_sentences():
    docs = parse_bio(THREE, source="corpus/train.tsv")
    assert [d.id for d in docs] == ["train-00000", "train-00001", "train-00002"]
    assert docs[0].text == "Naloxone reverses clonidine - induced hypotension ."
    assert [(s.key, docs[0].mention(s)) for s in docs[0].spans] == [
        ((0, 8, "Chemical"), "Naloxone"),
        ((18, 27, "Chemical"), "clonidine"),
        ((38, 49, "Disease"), "hypotension"),
    ]
    assert docs[1].text == "No entities" and docs[1].spans == []
    assert [s.key for s in docs[2].spans] == [(0, 19, "Disease")]
    assert [d.meta["line"] for d in docs] == [1, 9, 12]


def test_format_bio_reproduces_three_sentences():
    assert format_bio(parse_bio(THREE)) == THREE


def test_parse_bio_odd_chunks_follow_seqeval_and_are_reported():
    text = "a\tI-X\nb\tI-X\nc\tB-Y\nd\tI-X\ne\tO\nf\tB-X\n"  # no final blank line
    report = ParseReport()
    (doc,) = parse_bio(text, source="odd.tsv", report=report)
    assert doc.id == "odd-00000"
    assert [(doc.mention(s), s.type) for s in doc.spans] == [("a b", "X"), ("c", "Y"), ("d", "X"), ("f", "X")]
    assert report.counts == Counter(i_without_b=2)
    assert report.notes == [
        "odd.tsv:1: I-X starts a mention (no B-X before it)",
        "odd.tsv:4: I-X starts a mention (no B-X before it)",
    ]
    # written back, a chunk always starts with B-
    assert format_bio([doc]) == "a\tB-X\nb\tI-X\nc\tB-Y\nd\tB-X\ne\tO\nf\tB-X\n\n"


def test_parse_bio_blank_lines_and_crlf():
    text = "\n\nx\tB-A\r\ny\tO\r\n\r\n  \n\n\nz\tO\r\n"
    docs = parse_bio(text, source="<string>")
    assert [(d.id, d.text, [s.key for s in d.spans]) for d in docs] == [
        ("<string>-00000", "x y", [(0, 1, "A")]),
        ("<string>-00001", "z", []),
    ]
    assert parse_bio("") == [] and parse_bio("\n\n") == []


@pytest.mark.parametrize(
    "line, message",
    [
        ("token", "expected 'token<TAB>tag', found 1 tab-separated field(s)"),
        ("token\tPOS\tO", "expected 'token<TAB>tag', found 3 tab-separated field(s)"),
        ("\tO", "empty token"),
        ("to ken\tO", "holds whitespace"),
        ("token\tB-", "tag 'B-' is not O, B-<type> or I-<type>"),
        ("token\tE-Chemical", "tag 'E-Chemical' is not O"),
        ("token\to", "tag 'o' is not O"),
    ],
)
def test_parse_bio_malformed_line_names_file_and_line(line, message):
    text = f"a\tO\n\nb\tO\n{line}\nc\tO\n"
    with pytest.raises(DataFormatError) as err:
        parse_bio(text, source="data/bad.tsv")
    assert str(err.value).startswith("data/bad.tsv:4: ")
    assert message in str(err.value)
    report = ParseReport()
    docs = parse_bio(text, source="data/bad.tsv", lenient=True, report=report)
    assert [d.text for d in docs] == ["a", "b c"]
    assert report.counts == Counter(skipped_lines=1)
    assert report.notes[0].startswith("data/bad.tsv:4: ") and report.notes[0].endswith("; line skipped")


def test_a_byte_order_mark_is_not_part_of_the_first_token(tmp_path):
    from ner_ray.data.conll import read_bio

    path = tmp_path / "bom.tsv"
    path.write_bytes(b"\xef\xbb\xbfAspirin\tB-Chemical\nhelps\tO\n")
    report = ParseReport()
    (doc,) = read_bio(path, report=report)
    assert doc.text == "Aspirin helps" and doc.mention(doc.spans[0]) == "Aspirin"
    assert report.counts["bom_removed"] == 1


def test_read_bio_names_the_file(tmp_path):
    path = tmp_path / "devel.tsv"
    path.write_bytes(b"a\tO\nb\tB-X\n\xff\tO\n")
    with pytest.raises(DataFormatError, match=r"devel.tsv:3: not valid UTF-8"):
        read_bio(path)
    path.write_text("a\tO\nb\tB-X\n\n", encoding="utf-8")
    (doc,) = read_bio(path)
    assert doc.id == "devel-00000" and [s.key for s in doc.spans] == [(2, 3, "X")]


def test_format_bio_reports_misaligned_and_overlapping_spans(tmp_path):
    doc = Document("d1", "Ca2+ and 5-HT6  induce", [
        Span(0, 2, "Chemical"),  # ends inside the token "Ca2+"
        Span(9, 14, "Chemical"),
        Span(9, 11, "Chemical"),  # nested in the previous one
    ])
    empty = Document("d2", "   ", [])
    report = ParseReport()
    text = format_bio([doc, empty], report=report)
    assert text == "Ca2+\tB-Chemical\nand\tO\n5-HT6\tB-Chemical\ninduce\tO\n\n"
    assert report.counts == Counter(misaligned=1, overlapping=1, empty_documents=1)
    assert report.notes == [
        "d1: Chemical 0-2 'Ca' is misaligned",
        "d1: Chemical 9-11 '5-' is overlapping",
        "d2: no tokens; not written",
    ]
    path = tmp_path / "out" / "x.tsv"
    report = ParseReport()
    assert write_bio(path, [doc], report=report) == 2
    assert path.read_text(encoding="utf-8") == text and report.counts["misaligned"] == 1


def test_format_bio_with_a_tokenizer():
    doc = Document("d", "Ca2+ and 5-HT6", [Span(0, 2, "Chemical"), Span(9, 13, "Chemical")])

    def tokenize(text):  # split off digits and punctuation as well as whitespace
        return [m.span() for m in re.finditer(r"[A-Za-z]+|\d+|[^\sA-Za-z\d]", text)]

    report = ParseReport()
    text = format_bio([doc], tokenize=tokenize, report=report)
    assert text == "Ca\tB-Chemical\n2\tO\n+\tO\nand\tO\n5\tB-Chemical\n-\tI-Chemical\nHT\tI-Chemical\n6\tO\n\n"
    assert report.counts == Counter()
    with pytest.raises(ValueError, match=r"document d: token 'Ca2\+ and' \(0-8\).*holds whitespace"):
        format_bio([doc], tokenize=lambda text: [(0, 8)])
    with pytest.raises(ValueError, match="holds whitespace"):
        format_bio([Document("t", "a b", [Span(0, 1, "Two words")])])


def test_split_whitespace():
    assert split_whitespace(" a\tbc\u00a0d \n") == [(1, 2), (3, 5), (6, 7)]


BIO_COUNTS = {  # /work/shared/data/README.md: sentences, tokens, mentions by type
    "bc5cdr/BC5CDR-IOB/train.tsv": (4560, 118_170, {"Chemical": 5203, "Disease": 4182}),
    "bc5cdr/BC5CDR-IOB/devel.tsv": (4581, 117_453, {"Chemical": 5347, "Disease": 4246}),
    "bc5cdr/BC5CDR-IOB/test.tsv": (4797, 124_750, {"Chemical": 5385, "Disease": 4424}),
    "ncbi_disease/conll/train.tsv": (5432, 136_086, {"Disease": 5145}),
    "ncbi_disease/conll/devel.tsv": (923, 23_969, {"Disease": 787}),
    "ncbi_disease/conll/test.tsv": (940, 24_497, {"Disease": 960}),
}


@needs_shared
@pytest.mark.parametrize("name", sorted(BIO_COUNTS))
def test_shared_bio_files_round_trip_byte_exact(name, tmp_path):
    path = SHARED_DATA / name
    report = ParseReport()
    docs = read_bio(path, report=report)
    sentences, tokens, mentions = BIO_COUNTS[name]
    assert len(docs) == sentences
    assert sum(len(split_whitespace(d.text)) for d in docs) == tokens
    assert Counter(s.type for d in docs for s in d.spans) == mentions
    assert report.counts == Counter()  # README: no I- tag starts a mention
    assert len({d.id for d in docs}) == sentences and docs[0].id == f"{path.stem}-00000"
    out = tmp_path / path.name
    assert write_bio(out, docs) == 0
    assert out.read_bytes() == path.read_bytes()


def test_split_words_cuts_punctuation_and_entity_boundaries():
    text = "Ca2+ and 5-HT6 rose."
    assert [text[s:e] for s, e in split_words(text)] == ["Ca2", "+", "and", "5", "-", "HT6", "rose", "."]
    spans = [Span(0, 2, "Chemical"), Span(9, 13, "Chemical")]
    assert [text[s:e] for s, e in split_words(text, spans)] == ["Ca", "2", "+", "and", "5", "-", "HT", "6", "rose", "."]
