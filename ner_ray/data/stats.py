"""Corpus statistics: documents, mentions by type, relations and what the readers reported, per split.

`ner-ray data stats` prints these; the numbers are meant to be checked against a corpus's
published counts (../shared/data/README.md for BC5CDR and NCBI-disease).
"""

from __future__ import annotations

from collections import Counter

from ner_ray.data.corpora import Corpus
from ner_ray.data.document import Document, ParseReport


def split_stats(docs: list[Document], report: ParseReport | None = None) -> dict:
    """One split's counts: documents, mentions, by_type, relations, offset_mismatches and more."""
    report = report or ParseReport()
    by_type = Counter(span.type for doc in docs for span in doc.spans)
    ids = Counter(doc.id for doc in docs)
    return {
        "documents": len(docs),
        "unique_documents": len(ids),
        "mentions": sum(by_type.values()),
        "by_type": dict(sorted(by_type.items())),
        "relations": sum(len(doc.relations) for doc in docs),
        "offset_mismatches": report.counts.get("offset_mismatches", 0),
        "skipped_mentions": report.counts.get("skipped_mentions", 0),
        "duplicate_document_ids": sorted(doc_id for doc_id, n in ids.items() if n > 1),
        "out_of_range_spans": sum(len(doc.check_offsets()) for doc in docs),
    }


def corpus_stats(corpus: Corpus) -> dict:
    """`{split: split_stats}` for every split of a corpus."""
    return {split: split_stats(docs, corpus.reports.get(split)) for split, docs in corpus.splits.items()}


def format_stats(name: str, stats: dict, reports: dict[str, ParseReport] | None = None) -> str:
    """A human-readable table of `corpus_stats`, followed by the readers' notes."""
    types = sorted({t for s in stats.values() for t in s["by_type"]})
    header = ["split", "docs", "mentions", *types, "relations", "offset mismatches"]
    rows = [header] + [
        [split, s["documents"], s["mentions"], *(s["by_type"].get(t, 0) for t in types), s["relations"], s["offset_mismatches"]]
        for split, s in stats.items()
    ]
    widths = [max(len(f"{row[i]:,}" if isinstance(row[i], int) else row[i]) for row in rows) for i in range(len(header))]
    lines = [f"corpus {name}"]
    for row in rows:
        lines.append("  ".join((f"{v:,}" if isinstance(v, int) else v).rjust(w) for v, w in zip(row, widths)))
    for split, report in (reports or {}).items():
        lines.extend(f"note ({split}): {note}" for note in report.notes[:20])
        if len(report.notes) > 20:
            lines.append(f"note ({split}): ... and {len(report.notes) - 20} more")
    for split, s in stats.items():
        if s["duplicate_document_ids"]:
            lines.append(f"note ({split}): duplicate document ids {', '.join(s['duplicate_document_ids'])}")
    return "\n".join(lines)
