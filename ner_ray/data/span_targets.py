"""The four completions a span-generating LM is trained to write after `<TAG>`, and their parser.

`target` "offsets" writes `" 0-7 Chemical ; 20-34 Disease"`, "mentions" writes `" aspirin [Chemical] ; ..."`
(untyped: without the types). `parse_completion` reads model output back into sentence offsets, never
raises, and counts invalid items by kind; mentions are placed in the sentence by `align_mention`.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from ner_ray.data.document import Span
from ner_ray.data.span_string import SEPARATOR, TAG, UNTYPED

TARGETS = ("offsets", "mentions")
ALIGNMENT_KINDS = ("exact", "fuzzy")
INVALID_KINDS = ("malformed", "reversed", "out_of_range", "duplicate", "hallucinated", "unknown_type")
# what the rates are computed over: model output that cannot be read, spans not in the sentence, repeats
RATE_GROUPS = {
    "invalid_output": ("malformed", "reversed", "unknown_type"),
    "hallucinated": ("out_of_range", "hallucinated"),
    "duplicate": ("duplicate",),
}
FUZZY_MIN_RATIO = 0.85

_OFFSETS = re.compile(r"([0-9]{1,9})\s*-\s*([0-9]{1,9})(?:\s+(\S.*))?", re.DOTALL)  # ASCII digits only, as span_string
_TYPED_MENTION = re.compile(r"(.*)\[([^\[\]]*)\]", re.DOTALL)  # greedy: the type is in the last brackets


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise ValueError(f"unknown span target {target!r}; valid targets: {', '.join(TARGETS)}")


def format_completion(spans: Iterable[Span], text: str, target: str, typed: bool) -> str:
    """The completion after `<TAG>` for `spans` over `text`: `""` when there are none, else a leading space
    and the items joined by `" ; "`, sorted by (start, end) and deduplicated (by offsets, and type if typed).

    Raises ValueError for a span that is empty or outside `text`, a type that would not parse back
    (empty, padded, or holding ";", "[", "]" or a newline), and, for mentions, a mention holding ";"
    or starting/ending with whitespace.
    """
    _check_target(target)
    keys = sorted({(s.start, s.end, s.type if typed else "") for s in spans})
    items = []
    for start, end, span_type in keys:
        if not 0 <= start < end <= len(text):
            raise ValueError(f"span {start}-{end} is empty or outside a text of {len(text)} characters")
        if typed and (not span_type or span_type != span_type.strip() or any(c in span_type for c in ";[]\n")):
            raise ValueError(f"span {start}-{end}: type {span_type!r} cannot be written in a completion")
        if target == "offsets":
            items.append(f"{start}-{end} {span_type}" if typed else f"{start}-{end}")
            continue
        mention = text[start:end]
        if ";" in mention or mention != mention.strip():
            raise ValueError(f"span {start}-{end}: mention {mention!r} cannot be written in a mentions completion")
        items.append(f"{mention} [{span_type}]" if typed else mention)
    return " " + SEPARATOR.join(items) if items else ""


@dataclass
class ParsedCompletion:
    """The valid spans of one completion in order of appearance, invalid items by kind, and how mentions were placed."""

    spans: list[Span] = field(default_factory=list)
    invalid: Counter = field(default_factory=Counter)
    alignment: Counter = field(default_factory=Counter)

    @property
    def n_items(self) -> int:
        return len(self.spans) + self.n_invalid

    @property
    def n_invalid(self) -> int:
        return sum(self.invalid.values())

    @property
    def rate_counts(self) -> dict[str, int]:
        """`invalid_output`, `hallucinated` and `duplicate` counts (see RATE_GROUPS); divide by `n_items` for rates."""
        return {name: sum(self.invalid[kind] for kind in kinds) for name, kinds in RATE_GROUPS.items()}


def parse_completion(completion: object, text: str, target: str, typed: bool, types: Sequence[str] = ()) -> ParsedCompletion:
    """Read a completion (with or without a leading `<TAG>`) back into spans over `text`; never raises.

    Items are split on ";", blank ones ignored. Invalid items are counted by kind (INVALID_KINDS): not
    `s-e [Type]` / `mention [Type]`, or typed without a type (malformed); end <= start (reversed); end past
    the text (out_of_range); a type not in `types`, when given (unknown_type); a mention not found in the
    text (hallucinated); the same span again (duplicate). A completion that is not a str is one malformed item.
    """
    _check_target(target)
    result = ParsedCompletion()
    if not isinstance(completion, str):
        result.invalid["malformed"] += 1
        return result
    body = completion.strip().removeprefix(TAG)
    seen: set[tuple[int, int, str]] = set()
    for item in body.split(";"):
        item = item.strip()
        if not item:
            continue
        if target == "offsets":
            kind, span = _read_offsets(item, text, typed)
        else:
            kind, span = _read_mention(item, text, typed, seen)
        if span is not None and typed and types and span.type not in types:
            kind, span = "unknown_type", None
        if span is not None and span.key in seen:
            kind, span = "duplicate", None
        if span is None:
            result.invalid[kind] += 1
            continue
        seen.add(span.key)
        result.spans.append(span)
        if target == "mentions":
            result.alignment[kind] += 1
    return result


def _read_offsets(item: str, text: str, typed: bool) -> tuple[str, Span | None]:
    """(invalid kind, None) or ("valid", span) for one offsets item."""
    match = _OFFSETS.fullmatch(item)
    if match is None or bool(match.group(3)) != typed:
        return "malformed", None
    start, end = int(match.group(1)), int(match.group(2))
    if end <= start:
        return "reversed", None
    if end > len(text):
        return "out_of_range", None
    return "valid", Span(start, end, match.group(3).strip() if typed else UNTYPED)


def _read_mention(item: str, text: str, typed: bool, seen: set[tuple[int, int, str]]) -> tuple[str, Span | None]:
    """(invalid kind, None) or (alignment kind, span) for one mentions item."""
    mention, span_type = item, UNTYPED
    if typed:
        match = _TYPED_MENTION.fullmatch(item)
        if match is None:
            return "malformed", None
        mention, span_type = match.group(1).strip(), match.group(2).strip()
        if not mention or not span_type:
            return "malformed", None
    offsets, kind = align_mention(mention, text, {(s, e) for s, e, _ in seen})
    if kind == "duplicate" and typed:
        # every place is taken, but a span of another type may share its offsets with this one
        offsets, kind = align_mention(mention, text, {(s, e) for s, e, t in seen if t == span_type})
    if offsets is None:
        return kind, None
    return kind, Span(offsets[0], offsets[1], span_type)


def align_mention(mention: str, text: str, taken: set[tuple[int, int]]) -> tuple[tuple[int, int] | None, str]:
    """Where `mention` is in `text`, skipping the offsets in `taken`: `((start, end), "exact" | "fuzzy")`,
    or `(None, "duplicate" | "hallucinated")`.

    Exact: the leftmost free occurrence on word boundaries. If every occurrence is taken: duplicate.
    Fuzzy: else the window of `text` (cut on word boundaries) most similar to the mention, ignoring case
    and whitespace runs, with a SequenceMatcher ratio of at least FUZZY_MIN_RATIO; duplicate if every
    best window is taken (a repeated item, not a reason to cut a word). Last, when no window is similar
    enough, a free exact occurrence inside a longer word counts as exact.
    """
    if not mention:
        return None, "hallucinated"
    occurrences = []
    at = text.find(mention)
    while at >= 0:
        occurrences.append((at, at + len(mention)))
        at = text.find(mention, at + 1)
    free = [o for o in occurrences if o not in taken]
    on_words = [o for o in free if _is_boundary(text, o[0]) and _is_boundary(text, o[1])]
    if on_words:
        return on_words[0], "exact"
    if occurrences and not free:
        return None, "duplicate"
    best = _best_windows(mention, text)
    if best:
        untaken = [w for w in best if w not in taken]
        return (untaken[0], "fuzzy") if untaken else (None, "duplicate")
    if free:
        return free[0], "exact"
    return None, "hallucinated"


def _is_boundary(text: str, i: int) -> bool:
    """False only between two letters or digits, i.e. inside a word."""
    return i <= 0 or i >= len(text) or not (text[i - 1].isalnum() and text[i].isalnum())


def _normalize(s: str) -> str:
    return " ".join(s.lower().split())


def _best_windows(mention: str, text: str) -> list[tuple[int, int]]:
    """The windows of `text` cut on word boundaries whose similarity to `mention` is highest and at least
    FUZZY_MIN_RATIO, leftmost first; [] if none is similar enough."""
    target = _normalize(mention)
    if not target:
        return []
    starts = [i for i in range(len(text)) if not text[i].isspace() and _is_boundary(text, i)]
    ends = [j for j in range(1, len(text) + 1) if not text[j - 1].isspace() and _is_boundary(text, j)]
    matcher = SequenceMatcher(None, autojunk=False)
    matcher.set_seq2(target)  # SequenceMatcher caches what it learns about seq2
    best_ratio, best = FUZZY_MIN_RATIO, []
    shortest, longest = len(target) // 2, 2 * len(target) + 8  # raw lengths; whitespace runs may pad a window
    for start in starts:
        for k in range(bisect.bisect_left(ends, start + max(shortest, 1)), len(ends)):
            end = ends[k]
            if end - start > longest:
                break
            window = _normalize(text[start:end])
            matcher.set_seq1(window)
            if matcher.real_quick_ratio() < best_ratio or matcher.quick_ratio() < best_ratio:
                continue
            ratio = matcher.ratio()
            if ratio > best_ratio:
                best_ratio, best = ratio, [(start, end)]
            elif ratio == best_ratio:
                best.append((start, end))
    return best
