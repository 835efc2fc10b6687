"""Per-sentence grammars (EBNF, xgrammar's GBNF dialect, root rule `root`) of the span completions a model may write.

A completion's items are spans that start at a word start and end at a word end, written as
`span_targets.format_completion` writes them: in increasing order without overlap, or (`any_order`) in any order. Pure text: the same string serves xgrammar's
HF logits processor (`families.constrained`) and vLLM's structured outputs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from ner_ray.data.document import Span
from ner_ray.data.span_targets import TARGETS

MAX_SPAN_WORDS = 16  # the most words (see `word_bounds`) one span may cover
_WORD = re.compile(r"\w+|[^\w\s]")


def word_bounds(text: str) -> list[tuple[int, int]]:
    """The (start, end) character offsets of the words of `text`: `\\w+` runs and single symbols ("Aspirin-induced" is 3)."""
    return [match.span() for match in _WORD.finditer(text)]


def _literal(value: str) -> str:
    """`value` as a grammar string literal: printable ASCII as is, the rest escaped (also safe for any GBNF reader)."""
    out = []
    for char in value:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def _check(target: str, typed: bool, types: Sequence[str]) -> None:
    if target not in TARGETS:
        raise ValueError(f"unknown span target {target!r}; valid targets: {', '.join(TARGETS)}")
    if typed and not types:
        raise ValueError("a typed span grammar needs at least one type")
    for span_type in types if typed else ():
        if not span_type or span_type != span_type.strip() or any(c in span_type for c in ";[]\n"):
            raise ValueError(f"type {span_type!r} cannot be written in a completion (empty, padded, or holding ;[] or a newline)")


def _writable(text: str, start: int, end: int, target: str) -> bool:
    # format_completion refuses mentions holding ";" (the parser splits items on it); offsets have no such limit
    return target == "offsets" or ";" not in text[start:end]


def span_grammar(text: str, target: str, typed: bool, types: Sequence[str] = (), any_order: bool = False) -> str:
    """The grammar of every completion of `text` whose items are word-bound spans of at most MAX_SPAN_WORDS words,
    each starting at or after the previous one's end (`any_order`: any span, in any order, repeats included), written
    for `target` ("offsets" / "mentions"), with a type from `types` when `typed`. A text without words admits only
    the empty completion.

    Rules: `root ::= "" | " " from_i`; `from_i` picks an item starting at word i or later (a chain, so the
    grammar stays linear in the words); `item_i` is one span starting at word i, followed by `after_j` (j: its
    last word), which ends the completion or continues with `" ; "` and an item starting after word j (any_order:
    an item starting anywhere, `from_` of the first word with an item).

    Raises ValueError for an unknown target, and when typed, for no types or a type that cannot be written.
    """
    _check(target, typed, types)
    bounds = word_bounds(text)
    items: dict[int, str] = {}  # first word -> the body of its `item_` rule
    for i, (start, _) in enumerate(bounds):
        last_words = [j for j in range(i, min(len(bounds), i + MAX_SPAN_WORDS)) if _writable(text, start, bounds[j][1], target)]
        if not last_words:
            continue
        if target == "offsets":
            typed_part = ' " " type' if typed else ""
            items[i] = " | ".join(f"{_literal(f'{start}-{bounds[j][1]}')}{typed_part} after_{j}" for j in last_words)
            continue
        # mentions as a tree, a word at a time ("aspirin" (after_0 | "-" (after_1 | ...))): the longer mentions
        # share their prefix instead of repeating it, which keeps grammar and compile time small
        tree = ""
        for j in reversed(last_words):  # ";" ends the writable mentions, so these are words i..k
            stop = f'" [" type "]" after_{j}' if typed else f"after_{j}"
            piece = text[start if j == i else bounds[j - 1][1]:bounds[j][1]]
            tree = f"{_literal(piece)} ({stop}{' | ' + tree if tree else ''})"
        items[i] = tree
    starts = sorted(items)
    if not starts:
        return 'root ::= ""\n'
    # the first word with an item at or after each word (None past the last)
    first_from: list[int | None] = [None] * (len(bounds) + 1)
    for k in range(len(bounds) - 1, -1, -1):
        first_from[k] = k if k in items else first_from[k + 1]
    rules = [f'root ::= "" | " " from_{starts[0]}']
    for here, following in zip(starts, [*starts[1:], None]):
        rules.append(f"from_{here} ::= item_{here}" + (f" | from_{following}" if following is not None else ""))
    for i in starts:
        rules.append(f"item_{i} ::= {items[i]}")
    for j in range(len(bounds)):
        nxt = starts[0] if any_order else first_from[j + 1]
        rules.append(f'after_{j} ::= ""' + (f' | " ; " from_{nxt}' if nxt is not None else ""))
    if typed:
        rules.append("type ::= " + " | ".join(_literal(span_type) for span_type in types))
    return "\n".join(rules) + "\n"


def unreachable_spans(text: str, spans: Iterable[Span | tuple[int, int]], target: str = "offsets",
                      any_order: bool = False) -> list[tuple[int, int]]:
    """The (start, end) of the gold spans that no completion `span_grammar(text, target, ..., any_order)` admits: not
    on word bounds, over MAX_SPAN_WORDS words, a mention holding ";", or, unless `any_order`, (in (start, end) order)
    overlapping or repeating the offsets of a span kept before it. Types are not checked."""
    if target not in TARGETS:
        raise ValueError(f"unknown span target {target!r}; valid targets: {', '.join(TARGETS)}")
    bounds = word_bounds(text)
    word_of_start = {start: i for i, (start, _) in enumerate(bounds)}
    word_of_end = {end: i for i, (_, end) in enumerate(bounds)}
    offsets = sorted((s.start, s.end) if isinstance(s, Span) else (int(s[0]), int(s[1])) for s in spans)
    unreachable, kept_end = [], -1
    for start, end in offsets:
        first, last = word_of_start.get(start), word_of_end.get(end)
        if (first is None or last is None or last < first or last - first >= MAX_SPAN_WORDS
                or (start < kept_end and not any_order) or not _writable(text, start, end, target)):
            unreachable.append((start, end))
        else:
            kept_end = end
    return unreachable


def gold_reachable(text: str, spans: Iterable[Span | tuple[int, int]], target: str = "offsets",
                   any_order: bool = False) -> bool:
    """Whether a completion the grammar admits can write all of `spans` (see `unreachable_spans`)."""
    return not unreachable_spans(text, spans, target, any_order)
