"""BIO tags <-> character-offset spans, over words or over a fast tokenizer's subwords.

Reading tags follows seqeval's default (conlleval) chunking, so the spans we score are the chunks
seqeval scores. Writing tags never moves a span: one that a tokenization cannot express exactly is
still tagged on the tokens it touches and reported as `misaligned`; one that collides with an
earlier span is left out and reported as `overlapping`.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

from ner_ray.data.document import Span

OUTSIDE = "O"
SCHEMES = ("first", "all")

Offsets = Sequence[tuple[int, int]]


def parse_tag(tag: str | None) -> tuple[str, str]:
    """("B"|"I", type) for `B-type`/`I-type`, ("O", "") for `O` and for None (an ignored position).

    Anything else (another prefix, an empty type, whitespace in the type) is a ValueError.
    """
    if tag is None or tag == OUTSIDE:
        return OUTSIDE, ""
    if isinstance(tag, str) and len(tag) > 2 and tag[0] in "BI" and tag[1] == "-":
        kind = tag[2:]
        if not any(c.isspace() for c in kind):
            return tag[0], kind
    raise ValueError(f"tag {tag!r} is not O, B-<type> or I-<type>")


def tags_to_spans(offsets: Offsets, tags: Sequence[str | None]) -> list[Span]:
    """The chunks of a BIO tag sequence as spans from their first token's start to their last token's end.

    As seqeval's default mode: a chunk starts at B-X, or at I-X after O or after a tag of another
    type; it ends before O, B-* or a tag of another type. None (an ignored position) and a token
    with empty offsets (a special token) read as O.
    """
    if len(offsets) != len(tags):
        raise ValueError(f"{len(offsets)} token offsets but {len(tags)} tags")
    spans: list[Span] = []
    current: list | None = None  # [type, start, end] of the open chunk
    for (start, end), tag in zip(offsets, tags):
        prefix, kind = parse_tag(tag) if start < end else (OUTSIDE, "")
        if current is not None and (prefix != "I" or kind != current[0]):
            spans.append(Span(current[1], current[2], current[0]))
            current = None
        if prefix == "B" or (prefix == "I" and current is None):
            current = [kind, start, end]
        elif prefix == "I":
            current[2] = end
    if current is not None:
        spans.append(Span(current[1], current[2], current[0]))
    return spans


@dataclass
class TagEncoding:
    """One tag per token (None for empty special tokens) and the spans the tags do not express exactly.

    `misaligned`: spans that start or end inside a token (tagged on the tokens they touch, so they
    decode wider) or that touch no token at all (not tagged). `overlapping`: spans that share a token
    with an earlier-starting (or, at the same start, longer) span; they are not tagged.
    """

    tags: list[str | None]
    misaligned: list[Span] = field(default_factory=list)
    overlapping: list[Span] = field(default_factory=list)


def spans_to_tags(offsets: Offsets, spans: Sequence[Span]) -> TagEncoding:
    """B-/I-/O tags for tokens at `offsets` (in text order) from character spans.

    The first token a span touches gets B-type, the others I-type. Every span not listed in
    `misaligned` or `overlapping` comes back exactly from `tags_to_spans(offsets, tags)`.
    """
    tags: list[str | None] = [OUTSIDE if s < e else None for s, e in offsets]
    real = [i for i, (s, e) in enumerate(offsets) if s < e]
    starts = [offsets[i][0] for i in real]
    ends = [offsets[i][1] for i in real]
    if any(a > b for a, b in zip(starts, starts[1:])) or any(a > b for a, b in zip(ends, ends[1:])):
        raise ValueError("token offsets must be in text order (starts and ends non-decreasing)")
    result = TagEncoding(tags)
    # Earlier start first, then longer first: the outer of two nested spans wins.
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if span.start >= span.end:
            raise ValueError(f"span {span.start}-{span.end} {span.type} is empty or reversed")
        first = bisect.bisect_right(ends, span.start)  # first token ending after the span starts
        last = bisect.bisect_left(starts, span.end) - 1  # last token starting before the span ends
        covered = real[first : last + 1]
        if not covered:
            result.misaligned.append(span)
            continue
        if any(tags[i] != OUTSIDE for i in covered):
            result.overlapping.append(span)
            continue
        tags[covered[0]] = f"B-{span.type}"
        for i in covered[1:]:
            tags[i] = f"I-{span.type}"
        if offsets[covered[0]][0] != span.start or offsets[covered[-1]][1] != span.end:
            result.misaligned.append(span)
    return result


@dataclass
class SubwordEncoding:
    """A text tokenized by a fast tokenizer with one BIO tag (or None: ignored in the loss) per subword.

    `offsets` and `word_ids` are the tokenizer's offset mapping and word ids (None for special
    tokens); `misaligned` and `overlapping` are as in `TagEncoding`, judged at the unit the scheme
    tags (words for "first", subwords for "all"); spans cut off by `max_length` count as misaligned.
    """

    input_ids: list[int]
    offsets: list[tuple[int, int]]
    word_ids: list[int | None]
    tags: list[str | None]
    misaligned: list[Span] = field(default_factory=list)
    overlapping: list[Span] = field(default_factory=list)


def encode_subword_bio(
    text: str, spans: Sequence[Span], tokenizer, scheme: str = "first", max_length: int | None = None
) -> SubwordEncoding:
    """Tokenize `text` and tag its subwords from character `spans`.

    scheme "first": the first subword of each word carries the word's tag, the others get None, so
    a span boundary inside a word is misaligned even when it falls between subwords. scheme "all":
    every subword carries B-/I-/O. `max_length` truncates (special tokens included).
    """
    _check_scheme(scheme)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{type(tokenizer).__name__} is not a fast tokenizer; subword tags need its offset mapping")
    encoding = tokenizer(
        text, return_offsets_mapping=True, truncation=max_length is not None, max_length=max_length
    )
    offsets = [(int(s), int(e)) for s, e in encoding["offset_mapping"]]
    word_ids = list(encoding.word_ids())
    if scheme == "all":
        masked = [(s, e) if w is not None else (0, 0) for (s, e), w in zip(offsets, word_ids)]
        tagged = spans_to_tags(masked, spans)
        tags = tagged.tags
    else:
        words = _words(offsets, word_ids)
        tagged = spans_to_tags([(s, e) for _, s, e in words], spans)
        tags = [None] * len(offsets)
        for (first, _, _), tag in zip(words, tagged.tags):
            tags[first] = tag
    return SubwordEncoding(
        list(encoding["input_ids"]), offsets, word_ids, tags, tagged.misaligned, tagged.overlapping
    )


def decode_subword_bio(
    offsets: Offsets, word_ids: Sequence[int | None], tags: Sequence[str | None], scheme: str = "first"
) -> list[Span]:
    """Character spans from per-subword tags (a model's predictions, say); special tokens are ignored.

    scheme "first" reads only each word's first subword and extends a chunk to the end of its
    last word's last subword; scheme "all" reads every subword.
    """
    _check_scheme(scheme)
    if not len(offsets) == len(word_ids) == len(tags):
        raise ValueError(f"{len(offsets)} offsets, {len(word_ids)} word ids and {len(tags)} tags differ in length")
    if scheme == "all":
        return tags_to_spans(offsets, [t if w is not None else None for t, w in zip(tags, word_ids)])
    words = _words(offsets, word_ids)
    return tags_to_spans([(s, e) for _, s, e in words], [tags[first] for first, _, _ in words])


def _words(offsets: Offsets, word_ids: Sequence[int | None]) -> list[tuple[int, int, int]]:
    """(index of first subword, start, end) of each run of subwords sharing a word id."""
    words: list[list[int]] = []
    previous = None
    for i, ((start, end), word) in enumerate(zip(offsets, word_ids)):
        if word is None:
            previous = None
            continue
        if word != previous:
            words.append([i, start, end])
        elif start < end:
            if words[-1][1] >= words[-1][2]:  # the word so far was empty (zero-width subwords)
                words[-1][1] = start
            words[-1][2] = max(words[-1][2], end)
        previous = word
    return [(i, s, e) for i, s, e in words]


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown subword tagging scheme {scheme!r}; valid: {', '.join(SCHEMES)}")
