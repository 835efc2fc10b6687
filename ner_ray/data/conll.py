"""BIO/IOB TSV corpora (`token<TAB>tag` per line, a blank line after each sentence) <-> Documents.

One Document per sentence. The file keeps no original spacing, so a document's text is its tokens
joined by single spaces, and writing splits the text on whitespace again (or uses a given
tokenizer): reading a file and writing it back gives the same bytes.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from ner_ray.data.document import Document, ParseReport, Span
from ner_ray.data.tagging import parse_tag, spans_to_tags, tags_to_spans
from ner_ray.data.textio import read_text, write_text_atomic
from ner_ray.errors import DataFormatError

Tokenize = Callable[[str], Iterable[tuple[int, int]]]


def parse_bio(
    text: str, source: str | Path = "<string>", lenient: bool = False, report: ParseReport | None = None
) -> list[Document]:
    """Parse BIO TSV text into one Document per sentence, ids `f"{stem}-{index:05d}"` from 0.

    Spans are the chunks seqeval would read (tagging.tags_to_spans); an I- tag that starts a chunk
    is kept, counted as `i_without_b` and noted. A malformed line (not exactly two tab-separated
    fields, an empty token or one with whitespace, a tag other than O/B-x/I-x) is a DataFormatError
    naming `source:line`; with `lenient=True` it is skipped and counted as `skipped_lines`. Blank
    (or whitespace-only) lines end a sentence; a trailing "\\r" is dropped from every line.
    """
    report = report if report is not None else ParseReport()
    source = str(source)
    stem = Path(source).stem
    docs: list[Document] = []
    tokens: list[str] = []
    tags: list[str] = []
    first_line = 0

    def end_sentence() -> None:
        offsets, position = [], 0
        for token in tokens:
            offsets.append((position, position + len(token)))
            position += len(token) + 1
        doc_id = f"{stem}-{len(docs):05d}"
        docs.append(Document(doc_id, " ".join(tokens), tags_to_spans(offsets, tags), meta={"line": first_line}))

    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            if tokens:
                end_sentence()
                tokens, tags = [], []
            continue
        problem = _line_problem(line)
        if problem:
            if not lenient:
                raise DataFormatError(source, number, problem)
            report.note("skipped_lines", f"{source}:{number}: {problem}; line skipped")
            continue
        token, tag = line.split("\t")
        prefix, kind = parse_tag(tag)
        if prefix == "I" and (not tags or parse_tag(tags[-1])[1] != kind):
            report.note("i_without_b", f"{source}:{number}: {tag} starts a mention (no B-{kind} before it)")
        if not tokens:
            first_line = number
        tokens.append(token)
        tags.append(tag)
    if tokens:
        end_sentence()
    return docs


def read_bio(path: str | Path, lenient: bool = False, report: ParseReport | None = None) -> list[Document]:
    """Read a BIO TSV file (strict UTF-8); see `parse_bio`."""
    return parse_bio(read_text(path, report), source=str(path), lenient=lenient, report=report)


def split_whitespace(text: str) -> list[tuple[int, int]]:
    """Offsets of the whitespace-separated tokens of `text` (the tokenization `parse_bio` implies)."""
    return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def split_words(text: str, spans: Iterable[Span] = ()) -> list[tuple[int, int]]:
    """Word and punctuation tokens (`\\w+` runs and single symbols), also cut at every span boundary.

    The tokenizer for writing BIO from character-offset corpora: no entity boundary falls inside a
    token, so every span is written exactly (e.g. "Ca" of "Ca2+" becomes a token of its own).
    """
    cuts = sorted({b for span in spans for b in (span.start, span.end)})
    tokens = []
    for match in re.finditer(r"\w+|[^\w\s]", text):
        start = match.start()
        for cut in cuts[bisect.bisect_right(cuts, start) : bisect.bisect_left(cuts, match.end())]:
            tokens.append((start, cut))
            start = cut
        tokens.append((start, match.end()))
    return tokens


def format_bio(docs: Iterable[Document], tokenize: Tokenize | None = None, report: ParseReport | None = None) -> str:
    """BIO TSV text: each document's tokens with their tags, then a blank line.

    Tokens are `tokenize(text)` offsets (whitespace split by default). A span that does not start
    and end on token boundaries is written as the tokens it touches and noted as `misaligned`; a
    span colliding with an earlier one is left out and noted as `overlapping`; a document without
    tokens is left out and noted as `empty_documents`. A token or span type holding whitespace
    cannot be written in this format and is a ValueError.
    """
    report = report if report is not None else ParseReport()
    tokenize = tokenize or split_whitespace
    lines: list[str] = []
    for doc in docs:
        offsets = [(s, e) for s, e in tokenize(doc.text) if s < e]
        if not offsets:
            report.note("empty_documents", f"{doc.id}: no tokens; not written")
            continue
        encoding = spans_to_tags(offsets, doc.spans)
        for kind, spans in (("misaligned", encoding.misaligned), ("overlapping", encoding.overlapping)):
            for span in spans:
                report.note(kind, f"{doc.id}: {span.type} {span.start}-{span.end} {doc.mention(span)!r} is {kind}")
        for (start, end), tag in zip(offsets, encoding.tags):
            token = doc.text[start:end]
            if any(c.isspace() for c in token) or any(c.isspace() for c in tag):
                raise ValueError(
                    f"document {doc.id}: token {token!r} ({start}-{end}) with tag {tag!r} holds whitespace, "
                    "which BIO TSV cannot represent; use a tokenizer that splits on whitespace"
                )
            lines.append(f"{token}\t{tag}\n")
        lines.append("\n")
    return "".join(lines)


def write_bio(
    path: str | Path, docs: Iterable[Document], tokenize: Tokenize | None = None, report: ParseReport | None = None
) -> int:
    """Write documents as BIO TSV (see `format_bio`); returns how many spans were not written exactly."""
    local = ParseReport()
    write_text_atomic(path, format_bio(docs, tokenize, local))
    if report is not None:
        report.merge(local)
    return local.counts["misaligned"] + local.counts["overlapping"]


def _line_problem(line: str) -> str:
    """Why a non-blank line is not `token<TAB>tag`, or "" when it is."""
    fields = line.split("\t")
    if len(fields) != 2:
        return f"expected 'token<TAB>tag', found {len(fields)} tab-separated field(s) in {line[:80]!r}"
    token, tag = fields
    if not token:
        return f"empty token before the tab in {line[:80]!r}"
    if any(c.isspace() for c in token):
        return f"token {token!r} holds whitespace; BIO tokens are joined by single spaces into the document text"
    try:
        parse_tag(tag)
    except ValueError:
        return f"tag {tag!r} is not O, B-<type> or I-<type>"
    return ""
