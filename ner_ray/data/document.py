"""The one form every corpus is parsed into: documents with character-offset spans.

Offsets are 0-based and end-exclusive over `Document.text` (for PubTator and BioC corpora,
title + " " + abstract). Every model view is derived from a Document and every prediction is
mapped back to one before scoring, so these offsets are the single source of truth.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace


@dataclass(frozen=True, order=True)
class Span:
    """An entity mention: `text[start:end]` has type `type`.

    `concept` is the normalised id field as the source wrote it (e.g. "D009270", "D014786|D006311",
    "-1"); `surface` is the mention string as the source wrote it, kept only when it differs from
    `text[start:end]` (so that writing the corpus back is exact); `note` is a further source
    field (PubTator's list of the parts of a composite mention; None when the source had no such
    field, "" when it had an empty one).
    """

    start: int
    end: int
    type: str
    concept: str = ""
    surface: str = ""
    note: str | None = None

    @property
    def key(self) -> tuple[int, int, str]:
        """What strict entity matching compares: offsets and type, nothing else."""
        return (self.start, self.end, self.type)

    @property
    def concept_ids(self) -> list[str]:
        """The ids in the concept field ("D1|D2" gives both); "-1" and "" (no id) give none."""
        return [c.strip() for c in self.concept.split("|") if c.strip() and c.strip() != "-1"]

    def shifted(self, delta: int) -> Span:
        """The same mention `delta` characters later (negative: earlier)."""
        return Span(self.start + delta, self.end + delta, self.type, self.concept, self.surface, self.note)


@dataclass(frozen=True, order=True)
class Relation:
    """A document-level relation between two concept ids, e.g. BC5CDR's (chemical MeSH, disease MeSH, "CID")."""

    head: str
    tail: str
    type: str


@dataclass
class Document:
    """A text with its entity spans, relations and free metadata (e.g. `title_end`, `split`)."""

    id: str
    text: str
    spans: list[Span] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def mention(self, span: Span) -> str:
        """The text a span covers."""
        return self.text[span.start : span.end]

    def with_spans(self, spans: list[Span]) -> Document:
        """A copy with other spans (a prediction for this document, say), sharing text and metadata."""
        return Document(self.id, self.text, list(spans), list(self.relations), dict(self.meta))

    def retyped(self, type_map: dict[str, str]) -> Document:
        """A copy whose span types are renamed by `type_map` (types not in it stay as they are)."""
        spans = [replace(s, type=type_map.get(s.type, s.type)) for s in self.spans]
        return self.with_spans(spans)

    def check_offsets(self) -> list[Span]:
        """The spans whose offsets fall outside the text or are empty/reversed (none, for a valid document)."""
        n = len(self.text)
        return [s for s in self.spans if not (0 <= s.start < s.end <= n)]


@dataclass
class ParseReport:
    """What a reader noticed but did not stop for: counts by kind and `file:line: message` notes."""

    counts: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def note(self, kind: str, message: str) -> None:
        self.counts[kind] += 1
        self.notes.append(message)

    def merge(self, other: ParseReport) -> None:
        self.counts.update(other.counts)
        self.notes.extend(other.notes)
