"""Sentence bounds and token-limited windows over a document, and the way back.

`make_windows` cuts a Document into windows of at most `max_tokens` tokens along sentence bounds,
each remembering its character offset into the document (given a document without spans, from its text
alone; with spans, the cuts avoid splitting them, which only training may use); `place_spans` puts
gold spans into given windows; `merge_window_predictions` maps spans predicted per window back to
document offsets. Both directions are pure and round-trip exactly.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ner_ray.data.document import Document, ParseReport, Span

# Tokens (lower-cased, without their final period) after which a period never ends a sentence.
# Kept small on purpose: a missed break only makes a sentence longer, a false one can cut a
# sentence in two. A single capital letter ("J. Smith", "vitamin B. The") is also never a break.
ABBREVIATIONS = frozenset({
    "e.g", "i.e", "vs", "cf", "al", "etc", "approx", "dr", "prof", "mr", "mrs", "ms",
    "fig", "figs", "eq", "ref", "no", "st", "resp", "viz",
})

# A run of terminators and closing quotes/brackets, followed by whitespace.
_TERMINATOR = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s)")
_OPENERS = "([\"'\u201c\u2018"
_WORD = re.compile(r"\S+")

TokenCounter = Callable[[str], int]


def count_whitespace_tokens(text: str) -> int:
    """The default token count: whitespace-separated words."""
    return len(text.split())


def split_sentences(
    text: str, protect: Iterable[Span | tuple[int, int]] = (), report: ParseReport | None = None
) -> list[tuple[int, int]]:
    """Sentence bounds `(start, end)` (end-exclusive, without surrounding whitespace), in order.

    A sentence ends after `.`, `!` or `?` (and any closing quotes/brackets) when whitespace and an
    uppercase letter, digit or opening bracket follow, except after a token in ABBREVIATIONS or a
    single capital initial. A break that would fall inside a `protect` span is not made (pass the
    gold spans: NCBI-disease has "... (G6PD; EC 1. 1. 1. 49) deficiency" as one mention); each such
    break is noted in `report` as `sentence_break_in_entity`. "St." is an abbreviation, so "St.
    Anthony's fire" stays whole even without gold spans, as at prediction time.
    """
    protected = sorted((p.start, p.end) if isinstance(p, Span) else (p[0], p[1]) for p in protect)
    protected_starts = [a for a, _ in protected]
    breaks: list[tuple[int, int]] = []  # (end of a sentence, start of the next)
    for match in _TERMINATOR.finditer(text):
        end = match.end()
        following = _skip_space(text, end)
        if following == len(text):
            continue
        nxt = text[following]
        if not (nxt.isupper() or nxt.isdigit() or nxt in "(["):
            continue
        if _is_abbreviation(text, match.start()):
            continue
        inside = _crossing(protected, protected_starts, end, following)
        if inside is not None:
            if report is not None:
                a, b = inside
                report.note("sentence_break_in_entity",
                            f"offset {end}: no sentence break inside entity {a}-{b} {text[a:b]!r}")
            continue
        breaks.append((end, following))
    start = _skip_space(text, 0)
    if start == len(text):
        return []
    bounds = []
    for end, following in breaks:
        bounds.append((start, end))
        start = following
    bounds.append((start, len(text.rstrip())))
    return bounds


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _is_abbreviation(text: str, terminator: int) -> bool:
    """Whether the word just before the terminator at `terminator` is an abbreviation or initial."""
    i = terminator
    while i > 0 and not text[i - 1].isspace():
        i -= 1
    word = text[i:terminator].lstrip(_OPENERS)
    return word.lower() in ABBREVIATIONS or (len(word) == 1 and word.isupper())


def _crossing(protected: list[tuple[int, int]], starts: list[int], end: int, following: int):
    """The first protected span that a break between `end` and `following` would cut, or None."""
    for a, b in protected[: bisect.bisect_left(starts, following)]:
        if b > end:
            return a, b
    return None


@dataclass
class Window:
    """A piece of a document: `text == doc.text[start:start + len(text)]`, spans in window offsets."""

    doc_id: str
    index: int
    start: int
    text: str
    spans: list[Span] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.start + len(self.text)


@dataclass
class WindowResult:
    """The windows of one document, and the gold spans that no single window contains."""

    windows: list[Window]
    crossing: list[Span]


def make_windows(
    doc: Document,
    max_tokens: int,
    count_tokens: TokenCounter | None = None,
    sentence_bounds: Sequence[tuple[int, int]] | None = None,
    report: ParseReport | None = None,
    pack: bool = True,
) -> WindowResult:
    """Pack consecutive sentences greedily into windows of at most `max_tokens` tokens.

    With `pack=False` every sentence is a window of its own (cut like any sentence when too long).

    `count_tokens` counts the tokens of a text (default: whitespace words; pass a tokenizer-based
    count, without special tokens, to budget subwords). Sentences come from `sentence_bounds` or
    `split_sentences(doc.text, protect=doc.spans)`. A sentence longer than `max_tokens` is cut at
    word ends (inside a word only when one word alone is too long), moved back before an entity
    the cut would split whenever an earlier word end exists. A span that still lies across a
    window boundary (an entity longer than a window, or caller-given bounds that split it) is put
    in no window and returned in `crossing` (noted in `report` as `span_crosses_window`): training
    never sees half an entity, and the caller counts what was dropped.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive number of tokens, got {max_tokens}")
    count = count_tokens or count_whitespace_tokens
    text = doc.text
    if sentence_bounds is None:
        local = ParseReport()
        bounds = split_sentences(text, doc.spans, report=local)
        if report is not None:
            for note in local.notes:
                report.note("sentence_break_in_entity", f"{doc.id}: {note}")
    else:
        bounds = _checked_bounds(doc, sentence_bounds)

    pieces: list[tuple[int, int]] = []
    for s, e in bounds:
        if count(text[s:e]) <= max_tokens:
            pieces.append((s, e))
        else:
            pieces.extend(_cut_long(text, s, e, max_tokens, count, doc.spans))

    groups: list[tuple[int, int]] = []
    for s, e in pieces:
        if pack and groups and count(text[groups[-1][0] : e]) <= max_tokens:
            groups[-1] = (groups[-1][0], e)
        else:
            groups.append((s, e))

    windows = [Window(doc.id, i, s, text[s:e]) for i, (s, e) in enumerate(groups)]
    return place_spans(doc, windows, report)


def place_spans(doc: Document, windows: Sequence[Window], report: ParseReport | None = None) -> WindowResult:
    """The windows (ordered, from `doc`) with each of `doc`'s spans in the one window that contains it, in
    window offsets; a span that no single window contains is returned in `crossing` (noted in `report`).

    This is how evaluation windows, cut from the text alone, receive the gold spans they are scored and
    trained against: the gold never moves a window boundary, and an entity a boundary cuts is a miss."""
    starts = [w.start for w in windows]
    per_window: list[list[Span]] = [[] for _ in windows]
    crossing: list[Span] = []
    for span in doc.spans:
        i = bisect.bisect_right(starts, span.start) - 1
        if i >= 0 and span.end <= windows[i].end:
            per_window[i].append(span.shifted(-windows[i].start))
        else:
            crossing.append(span)
            if report is not None:
                report.note("span_crosses_window",
                            f"{doc.id}: span {span.start}-{span.end} {doc.mention(span)!r} is not inside any one "
                            "window; left out of every window")
    placed = [Window(w.doc_id, w.index, w.start, w.text, per_window[i]) for i, w in enumerate(windows)]
    return WindowResult(placed, crossing)


def _checked_bounds(doc: Document, bounds: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    out, previous_end = [], 0
    for s, e in bounds:
        if not (previous_end <= s < e <= len(doc.text)):
            raise ValueError(
                f"{doc.id}: sentence bounds must be ordered, non-overlapping, non-empty and within the "
                f"{len(doc.text)} characters of the text; got ({s}, {e}) after end {previous_end}"
            )
        out.append((s, e))
        previous_end = e
    return out


def _cut_long(
    text: str, s: int, e: int, max_tokens: int, count: TokenCounter, spans: list[Span]
) -> list[tuple[int, int]]:
    """Cut one over-long sentence `text[s:e]` into pieces of at most `max_tokens` tokens."""
    pieces = []
    start = s
    while start < e:
        if count(text[start:e]) <= max_tokens:
            pieces.append((start, e))
            break
        ends = [m.end() for m in _WORD.finditer(text, start, e)]
        # The longest prefix that fits, by bisection (a longer prefix never has fewer tokens).
        lo, hi = -1, len(ends) - 1  # ends[hi] == e is known not to fit
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if count(text[start : ends[mid]]) <= max_tokens:
                lo = mid
            else:
                hi = mid
        cut = ends[lo] if lo >= 0 else _cut_inside_word(text, start, ends[0], max_tokens, count)
        cut = _before_entities(cut, start, ends, spans)
        pieces.append((start, cut))
        start = _skip_space(text, cut)
    return pieces


def _cut_inside_word(text: str, start: int, word_end: int, max_tokens: int, count: TokenCounter) -> int:
    """The longest prefix of one too-long word that fits; at least one character, to make progress."""
    lo, hi = start + 1, word_end  # text[start:word_end] is known not to fit
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if count(text[start:mid]) <= max_tokens:
            lo = mid
        else:
            hi = mid
    return lo


def _before_entities(cut: int, start: int, ends: list[int], spans: list[Span]) -> int:
    """Move `cut` back to the last word end before any entity it splits, when one exists after `start`."""
    while True:
        split = [sp.start for sp in spans if sp.start < cut < sp.end]
        if not split:
            return cut
        i = bisect.bisect_right(ends, min(split)) - 1
        if i < 0 or ends[i] <= start or ends[i] >= cut:
            return cut  # the entity begins the piece: it is longer than a window
        cut = ends[i]


def spans_to_document(window: Window, window_spans: Iterable[Span]) -> list[Span]:
    """Spans in window offsets → the same spans in document offsets."""
    out = []
    for span in window_spans:
        if not (0 <= span.start < span.end <= len(window.text)):
            raise ValueError(
                f"{window.doc_id} window {window.index}: span {span.start}-{span.end} is not within the "
                f"window's {len(window.text)} characters (valid: 0 <= start < end <= {len(window.text)})"
            )
        out.append(span.shifted(window.start))
    return out


def merge_window_predictions(
    doc: Document, windows: Sequence[Window], spans_per_window: Sequence[Iterable[Span]]
) -> Document:
    """One document with the spans predicted per window, in document offsets, deduplicated by key and sorted."""
    if len(windows) != len(spans_per_window):
        raise ValueError(
            f"{doc.id}: {len(windows)} windows but {len(spans_per_window)} lists of predicted spans; "
            "pass one list (possibly empty) per window"
        )
    seen: dict[tuple[int, int, str], Span] = {}
    for window, spans in zip(windows, spans_per_window):
        if window.doc_id != doc.id or doc.text[window.start : window.end] != window.text:
            raise ValueError(f"window {window.index} of {window.doc_id!r} is not a window of document {doc.id!r}")
        for span in spans_to_document(window, spans):
            seen.setdefault(span.key, span)
    return doc.with_spans(sorted(seen.values(), key=lambda sp: (sp.start, sp.end, sp.type)))
