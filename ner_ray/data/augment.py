"""Training-time augmentation of documents: entity swap and entity mask.

Both rebuild the text and move every later offset, so the result is again a valid Document.
They are pure and seeded: pass a `random.Random` or an int seed, never global randomness.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable

from ner_ray.data.document import Document, Span


def build_mention_pool(docs: Iterable[Document]) -> dict[str, list[str]]:
    """Every distinct mention string per entity type, sorted (so a pool does not depend on document order)."""
    pool: dict[str, set[str]] = {}
    for doc in docs:
        for span in doc.spans:
            mention = doc.mention(span)
            if mention.strip():
                pool.setdefault(span.type, set()).add(mention)
    return {kind: sorted(strings) for kind, strings in sorted(pool.items())}


def entity_swap(doc: Document, pool: dict[str, list[str]], p: float, rng: random.Random | int) -> Document:
    """Replace each mention, with probability `p`, by another mention string of its type drawn from `pool`.

    A swapped span keeps its type and loses its concept id, surface and note (the new string no longer
    names that concept); relations are kept as they are. A span that overlaps another span (nested or
    overlapping annotations) is never swapped, so that no other span would cover half a replacement;
    nor is a mention whose type has no other string in the pool.
    """
    rng = _as_rng(rng)
    _check_p(p)
    replacements: dict[int, str] = {}
    for i in _swappable(doc):
        span = doc.spans[i]
        mention = doc.mention(span)
        strings = pool.get(span.type, [])
        if not any(s != mention for s in strings) or rng.random() >= p:
            continue
        new = rng.choice(strings)
        while new == mention:
            new = rng.choice(strings)
        replacements[i] = new
    return _rebuild(doc, replacements, keep_concept=False)


def entity_mask(doc: Document, p: float, rng: random.Random | int, mask_token: str = "[MASK]") -> Document:
    """Replace each mention, with probability `p`, by one `mask_token` per whitespace word of the mention.

    The masks are joined by single spaces, so a mention of three words becomes three mask tokens (the
    family passes `tokenizer.mask_token`, or `unk_token` where there is none). A masked span keeps
    type and concept (the context still names that entity) and loses surface and note. Spans that
    overlap another span are never masked, as in `entity_swap`.
    """
    rng = _as_rng(rng)
    _check_p(p)
    if not mask_token or any(c.isspace() for c in mask_token):
        raise ValueError(f"mask_token must be a non-empty string without whitespace, got {mask_token!r}")
    replacements: dict[int, str] = {}
    for i in _swappable(doc):
        words = doc.mention(doc.spans[i]).split()
        if words and rng.random() < p:
            replacements[i] = " ".join([mask_token] * len(words))
    return _rebuild(doc, replacements, keep_concept=True)


def _as_rng(rng: random.Random | int) -> random.Random:
    if isinstance(rng, random.Random):
        return rng
    if isinstance(rng, int) and not isinstance(rng, bool):
        return random.Random(rng)
    raise TypeError(f"rng must be a random.Random or an int seed, got {type(rng).__name__}")


def _check_p(p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"augmentation probability p must be in [0, 1], got {p}")


def _swappable(doc: Document) -> list[int]:
    """Indices of the spans that overlap no other span, in document order (the order draws are made in)."""
    order = sorted(range(len(doc.spans)), key=lambda i: (doc.spans[i].start, doc.spans[i].end, doc.spans[i].type))
    out = []
    reach = -1  # the furthest end among spans starting earlier in `order`
    for k, i in enumerate(order):
        span = doc.spans[i]
        overlaps_next = k + 1 < len(order) and doc.spans[order[k + 1]].start < span.end
        if span.start >= reach and not overlaps_next:
            out.append(i)
        reach = max(reach, span.end)
    return out


def _rebuild(doc: Document, replacements: dict[int, str], keep_concept: bool) -> Document:
    """The document with `doc.spans[i]`'s text replaced by `replacements[i]`, every offset moved along.

    The replaced spans overlap no other span, so every other span lies wholly before or after each
    replacement and moves by the total length change of the replacements that end at or before it.
    `meta["title_end"]` moves the same way.
    """
    if not replacements:
        return Document(doc.id, doc.text, list(doc.spans), list(doc.relations), dict(doc.meta))
    edits = sorted((doc.spans[i].start, doc.spans[i].end, new) for i, new in replacements.items())
    parts, cursor = [], 0
    ends, deltas, total = [], [], 0  # cumulative length change after each edit's end
    for start, end, new in edits:
        parts += [doc.text[cursor:start], new]
        cursor = end
        total += len(new) - (end - start)
        ends.append(end)
        deltas.append(total)

    def move(offset: int) -> int:
        k = bisect.bisect_right(ends, offset)
        return offset + (deltas[k - 1] if k else 0)

    spans = []
    for i, span in enumerate(doc.spans):
        if i in replacements:
            start = move(span.start)
            concept = span.concept if keep_concept else ""
            spans.append(Span(start, start + len(replacements[i]), span.type, concept))
        else:
            spans.append(Span(move(span.start), move(span.end), span.type, span.concept, span.surface, span.note))
    meta = dict(doc.meta)
    if isinstance(meta.get("title_end"), int):
        meta["title_end"] = move(meta["title_end"])
    return Document(doc.id, "".join(parts) + doc.text[cursor:], spans, list(doc.relations), meta)
