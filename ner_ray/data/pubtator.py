"""PubTator format (BC5CDR, NCBI-disease): read into Documents and write back exactly.

A block is `PMID|t|title`, `PMID|a|abstract`, then tab-separated mention lines
`PMID start end mention type concept [parts]` and relation lines `PMID CID chemical disease`,
with blank lines between blocks. Text is title + " " + abstract; offsets are end-exclusive.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ner_ray.data.document import Document, ParseReport, Relation, Span
from ner_ray.data.textio import read_text, write_text_atomic
from ner_ray.errors import DataFormatError


def parse_pubtator(
    text: str, source: str = "<string>", lenient: bool = False, report: ParseReport | None = None
) -> list[Document]:
    """Parse PubTator text into Documents, in file order.

    A mention whose field differs from `text[start:end]` only by surrounding whitespace (one in
    NCBI-disease train) is kept, counted as `offset_mismatches` and noted; a mention line repeated
    within its block is kept once (`duplicate_mentions`). Any other mismatch, and
    offsets outside the text, are errors naming `source:line`; with `lenient=True` such a mention is
    skipped and counted as `skipped_mentions` instead. Malformed lines are always errors.
    """
    report = report if report is not None else ParseReport()
    docs: list[Document] = []
    block: list[tuple[int, str]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if line.strip():
            block.append((number, line))
        elif block:
            docs.append(_parse_block(block, source, lenient, report))
            block = []
    if block:
        docs.append(_parse_block(block, source, lenient, report))
    return docs


def read_pubtator(path: str | Path, lenient: bool = False, report: ParseReport | None = None) -> list[Document]:
    """Read a PubTator file (strict UTF-8); see `parse_pubtator`."""
    return parse_pubtator(read_text(path, report), source=str(path), lenient=lenient, report=report)


def _parse_block(block: list[tuple[int, str]], source: str, lenient: bool, report: ParseReport) -> Document:
    (title_line, title_raw), (abstract_line, abstract_raw) = _header(block, source)
    pmid, _, title = title_raw.split("|", 2)
    abstract_pmid, _, abstract = abstract_raw.split("|", 2)
    if abstract_pmid != pmid:
        raise DataFormatError(source, abstract_line, f"abstract of PMID {abstract_pmid} follows title of PMID {pmid}")
    doc = Document(id=pmid, text=f"{title} {abstract}", meta={"title_end": len(title)})
    seen: dict[Span, int] = {}  # mention -> the line that gave it
    for number, line in block[2:]:
        fields = line.split("\t")
        if fields[0] != pmid:
            raise DataFormatError(source, number, f"line belongs to PMID {fields[0]!r} inside the block of PMID {pmid}")
        if len(fields) == 4 and fields[1] == "CID":
            doc.relations.append(Relation(fields[2], fields[3], "CID"))
            continue
        if len(fields) not in (5, 6, 7):
            raise DataFormatError(
                source, number,
                f"expected a mention line 'PMID<TAB>start<TAB>end<TAB>mention<TAB>type[<TAB>concept[<TAB>parts]]' "
                f"or a relation line 'PMID<TAB>CID<TAB>chemical<TAB>disease', got {len(fields)} tab-separated fields",
            )
        span = _mention(doc, fields, source, number, lenient, report)
        if span is None:
            continue
        if span in seen:  # the same mention line again: one mention, not two
            report.note("duplicate_mentions", f"{source}:{number}: mention {span.start}-{span.end} {span.type} of PMID "
                        f"{pmid} repeats line {seen[span]}; counted once")
            continue
        seen[span] = number
        doc.spans.append(span)
    return doc


def _header(block: list[tuple[int, str]], source: str) -> tuple[tuple[int, str], tuple[int, str]]:
    expected = "a PubTator block must start with 'PMID|t|title' then 'PMID|a|abstract'"
    if "|t|" not in block[0][1]:
        raise DataFormatError(source, block[0][0], expected)
    if len(block) < 2 or "|a|" not in block[1][1]:
        raise DataFormatError(source, block[min(1, len(block) - 1)][0], expected)
    for number, line in block[:2]:
        if "\t" in line.split("|", 2)[0]:
            raise DataFormatError(source, number, "malformed title/abstract line")
    return block[0], block[1]


def _mention(
    doc: Document, fields: list[str], source: str, number: int, lenient: bool, report: ParseReport
) -> Span | None:
    try:
        start, end = int(fields[1]), int(fields[2])
    except ValueError:
        raise DataFormatError(source, number, f"offsets must be integers, got {fields[1]!r} and {fields[2]!r}") from None
    mention, span_type = fields[3], fields[4]
    concept = fields[5] if len(fields) > 5 else ""
    note = fields[6] if len(fields) > 6 else None
    if not span_type:
        raise DataFormatError(source, number, "empty entity type")
    problem = None
    if not 0 <= start < end <= len(doc.text):
        problem = f"offsets {start}-{end} fall outside the text of PMID {doc.id} (length {len(doc.text)})"
    elif doc.text[start:end] != mention:
        if doc.text[start:end] == mention.strip():
            report.note("offset_mismatches", f"{source}:{number}: mention {mention!r} has surrounding whitespace; "
                        f"offsets {start}-{end} match the stripped text, kept")
            return Span(start, end, span_type, concept, surface=mention, note=note)
        problem = f"mention {mention!r} != text[{start}:{end}] = {doc.text[start:end]!r}"
    if problem is None:
        return Span(start, end, span_type, concept, note=note)
    if not lenient:
        raise DataFormatError(source, number, problem + " (use lenient reading to skip such mentions)")
    report.note("offset_mismatches", f"{source}:{number}: {problem}; skipped")
    report.counts["skipped_mentions"] += 1
    return None


def format_pubtator(docs: Iterable[Document]) -> str:
    """PubTator text for documents: the inverse of `parse_pubtator` (each block ends with a blank line).

    The title is `text[:meta["title_end"]]` (the whole text when absent, with an empty abstract).
    """
    blocks = []
    for doc in docs:
        title_end = doc.meta.get("title_end", len(doc.text))
        title, abstract = doc.text[:title_end], doc.text[title_end + 1 :]
        lines = [f"{doc.id}|t|{title}", f"{doc.id}|a|{abstract}"]
        for span in doc.spans:
            fields = [doc.id, str(span.start), str(span.end), span.surface or doc.mention(span), span.type]
            if span.concept or span.note is not None:
                fields.append(span.concept)
            if span.note is not None:
                fields.append(span.note)
            lines.append("\t".join(fields))
        lines.extend(f"{doc.id}\t{rel.type}\t{rel.head}\t{rel.tail}" for rel in doc.relations)
        blocks.append("\n".join(lines) + "\n\n")
    return "".join(blocks)


def write_pubtator(path: str | Path, docs: Iterable[Document]) -> Path:
    """Write documents as a PubTator file, atomically."""
    return write_text_atomic(path, format_pubtator(docs))
