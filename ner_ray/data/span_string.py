"""The span-string view of seed 002: `"<TAG> 0-7 ; 20-34"`, and a parser that never raises.

Offsets are end-exclusive character offsets into the window text; items are sorted and
deduplicated; a window without entities is `"<TAG>"` alone. The format is untyped: parsed spans
get the type `UNTYPED` unless the caller names one. Model output is arbitrary text, so the parser
keeps every well-formed item and counts the rest by kind instead of raising.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from ner_ray.data.document import Span

TAG = "<TAG>"
UNTYPED = "Entity"
SEPARATOR = " ; "
INVALID_KINDS = ("missing_tag", "malformed", "reversed", "out_of_range", "duplicate")

_ITEM = re.compile(r"([0-9]{1,9})\s*-\s*([0-9]{1,9})")  # ASCII digits only: int() would read others too


def format_span_string(spans: Iterable[Span | tuple[int, int]]) -> str:
    """`"<TAG> s-e ; s-e"` for the spans' offsets, sorted and deduplicated (types are dropped)."""
    offsets = sorted({(s.start, s.end) if isinstance(s, Span) else (int(s[0]), int(s[1])) for s in spans})
    if not offsets:
        return TAG
    return f"{TAG} " + SEPARATOR.join(f"{start}-{end}" for start, end in offsets)


@dataclass
class ParsedSpans:
    """The valid spans of one span string, in order of appearance, and counts of invalid items by kind."""

    spans: list[Span] = field(default_factory=list)
    invalid: Counter = field(default_factory=Counter)

    @property
    def n_invalid(self) -> int:
        return sum(self.invalid.values())


def parse_span_string(text: object, text_length: int | None = None, span_type: str = UNTYPED) -> ParsedSpans:
    """Parse `"<TAG> s-e ; s-e"`; never raises, whatever `text` is.

    Invalid items are counted, not returned: `missing_tag` (no leading `<TAG>`; the items are
    still read), `malformed` (not `int-int`), `reversed` (end <= start), `out_of_range` (end past
    `text_length`, when given), `duplicate` (an offset pair seen before in the same string).
    """
    result = ParsedSpans()
    if not isinstance(text, str):
        result.invalid["malformed"] += 1
        return result
    body = text.strip()
    if body.startswith(TAG):
        body = body[len(TAG) :]
    else:
        result.invalid["missing_tag"] += 1
    body = body.strip()
    if not body:
        return result
    seen: set[tuple[int, int]] = set()
    for item in body.split(";"):
        match = _ITEM.fullmatch(item.strip())
        if match is None:
            result.invalid["malformed"] += 1
            continue
        start, end = int(match.group(1)), int(match.group(2))
        if end <= start:
            result.invalid["reversed"] += 1
        elif text_length is not None and end > text_length:
            result.invalid["out_of_range"] += 1
        elif (start, end) in seen:
            result.invalid["duplicate"] += 1
        else:
            seen.add((start, end))
            result.spans.append(Span(start, end, span_type))
    return result
