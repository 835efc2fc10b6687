"""BioC XML (as in the BC5CDR release) → Documents, with a documented policy for composite mentions.

Passages are placed at their absolute `<offset>` (padded with spaces, so title + " " + abstract);
annotation `<location>`s are absolute too. Document-level `<relation>`s with `relation`/`Chemical`/
`Disease` infons become `Relation(chemical, disease, type)`, as PubTator's CID lines do.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from xml.parsers import expat

from ner_ray.data.document import Document, ParseReport, Relation, Span
from ner_ray.data.textio import read_text
from ner_ray.errors import DataFormatError

POLICIES = ("composite", "individual")
INDIVIDUAL = "IndividualMention"
COMPOSITE = "CompositeMention"


@dataclass
class _Annotation:
    """One `<annotation>` as written, with the line it opens on."""

    line: int
    id: str
    type: str
    concept: str
    role: str
    locations: list[tuple[int, int]]
    text: str

    @property
    def start(self) -> int:
        return self.locations[0][0]

    @property
    def end(self) -> int:
        return self.locations[-1][1]


def read_bioc(
    path: str | Path, policy: str = "composite", lenient: bool = False, report: ParseReport | None = None
) -> list[Document]:
    """Read a BioC XML file; see `parse_bioc` for the policies and what strict mode rejects."""
    return parse_bioc(read_text(path, report), source=str(path), policy=policy, lenient=lenient, report=report)


def parse_bioc(
    xml_text: str,
    source: str = "<string>",
    policy: str = "composite",
    lenient: bool = False,
    report: ParseReport | None = None,
) -> list[Document]:
    """Parse BioC XML text into Documents.

    Composite mentions such as "renal and hepatic failure" come with `CompositeRole` infons:
    `policy="composite"` (the default) keeps the whole mention (PubTator's view: the counts and
    spans equal the PubTator files) and drops its `IndividualMention` parts, counted as
    `individual_mentions_dropped`; the composite's `note` lists the parts' texts joined by "|",
    as PubTator's sixth column does. `policy="individual"` keeps the parts instead of a composite
    that has any (`composites_replaced`); a part with several `<location>`s becomes one span from
    the first start to the last end (`discontinuous_merged`), its BioC text kept as `surface` and
    its fragments in `note` ("fragments 0-6,20-28").

    An annotation whose `<text>` differs from the document text at its locations (fragments
    joined by one space) is an error naming file and line; with `lenient=True` it is skipped
    and counted as `offset_mismatches`. Only kept annotations are checked.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown BioC composite policy {policy!r}; valid: {', '.join(POLICIES)}")
    report = report if report is not None else ParseReport()
    root, lines = _parse_xml(xml_text, source)
    if root.tag != "collection":
        raise DataFormatError(source, lines[id(root)], f"expected a <collection> root element, found <{root.tag}>")
    return [_document(elem, lines, source, policy, lenient, report) for elem in root.iter("document")]


def _parse_xml(xml_text: str, source: str) -> tuple[ET.Element, dict[int, int]]:
    """An ElementTree plus each element's opening line (keyed by id), via expat's line counter."""
    builder = ET.TreeBuilder()
    lines: dict[int, int] = {}
    parser = expat.ParserCreate()
    parser.buffer_text = True

    def start(tag: str, attrs: dict[str, str]) -> None:
        lines[id(builder.start(tag, attrs))] = parser.CurrentLineNumber

    parser.StartElementHandler = start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(xml_text, True)
    except expat.ExpatError as err:
        raise DataFormatError(
            source, err.lineno, f"malformed XML: {expat.ErrorString(err.code)} (column {err.offset + 1})"
        ) from None
    return builder.close(), lines


def _document(
    elem: ET.Element, lines: dict[int, int], source: str, policy: str, lenient: bool, report: ParseReport
) -> Document:
    line = lines[id(elem)]
    doc_id = (elem.findtext("id") or "").strip()
    if not doc_id:
        raise DataFormatError(source, line, "<document> without an <id>")
    text, meta, annotations = "", {}, []
    for passage in elem.iter("passage"):
        where = lines[id(passage)]
        offset = _int(passage.findtext("offset"), source, where, "passage <offset>")
        if offset < len(text):
            raise DataFormatError(
                source, where, f"document {doc_id}: passage offset {offset} overlaps the text before it "
                f"(which ends at {len(text)})"
            )
        body = passage.find("text")
        if body is None and passage.find("sentence") is not None:
            raise DataFormatError(source, where, "sentence-level BioC is not supported; give passage <text>")
        text += " " * (offset - len(text)) + ((body.text or "") if body is not None else "")
        if _infons(passage).get("type") == "title" and "title_end" not in meta:
            meta["title_end"] = len(text)
    for ann in elem.iter("annotation"):
        annotations.append(_annotation(ann, lines[id(ann)], source))
    spans = _apply_policy(annotations, text, policy, lenient, source, doc_id, report)
    relations = [_relation(rel, lines[id(rel)], source, lenient, report) for rel in elem.findall("relation")]
    return Document(doc_id, text, spans, [r for r in relations if r is not None], meta)


def _annotation(elem: ET.Element, line: int, source: str) -> _Annotation:
    infons = _infons(elem)
    if "type" not in infons:
        raise DataFormatError(source, line, f"annotation {elem.get('id')!r} has no 'type' infon")
    locations = []
    for loc in elem.findall("location"):
        start = _int(loc.get("offset"), source, line, "location offset")
        length = _int(loc.get("length"), source, line, "location length")
        if start < 0 or length <= 0:
            raise DataFormatError(
                source, line, f"location offset={start} length={length}: need offset >= 0, length > 0"
            )
        locations.append((start, start + length))
    if not locations:
        raise DataFormatError(source, line, f"annotation {elem.get('id')!r} has no <location>")
    return _Annotation(
        line, elem.get("id", ""), infons["type"], infons.get("MESH", ""), infons.get("CompositeRole", ""),
        locations, elem.findtext("text") or "",
    )


def _apply_policy(
    annotations: list[_Annotation], text: str, policy: str, lenient: bool, source: str, doc_id: str,
    report: ParseReport,
) -> list[Span]:
    """The spans the policy keeps, in file order, each checked against the text."""
    parts = _parts_of_composites(annotations)
    spans = []
    for i, ann in enumerate(annotations):
        if policy == "composite" and ann.role == INDIVIDUAL:
            report.counts["individual_mentions_dropped"] += 1
            continue
        if policy == "individual" and parts.get(i):
            report.counts["composites_replaced"] += 1
            continue
        found = " ".join(text[s:e] for s, e in ann.locations)
        if found != ann.text:
            message = (
                f"document {doc_id}: annotation {ann.id!r} says {ann.text!r} but its locations "
                f"{_fragments(ann)} cover {found!r}"
            )
            if not lenient:
                raise DataFormatError(source, ann.line, message + " (lenient=True skips such annotations)")
            report.note("offset_mismatches", f"{source}:{ann.line}: {message}")
            continue
        if len(ann.locations) > 1:
            report.counts["discontinuous_merged"] += 1
            spans.append(Span(ann.start, ann.end, ann.type, ann.concept, ann.text, f"fragments {_fragments(ann)}"))
        elif ann.role == COMPOSITE and parts.get(i):
            note = "|".join(annotations[j].text for j in parts[i])
            spans.append(Span(ann.start, ann.end, ann.type, ann.concept, note=note))
        else:
            spans.append(Span(ann.start, ann.end, ann.type, ann.concept))
    return spans


def _parts_of_composites(annotations: list[_Annotation]) -> dict[int, list[int]]:
    """Composite index → indices of its individual mentions.

    BioC does not link the parts to their composite; in BC5CDR they follow it, so each part is
    given to the nearest composite before it whose span covers all the part's locations.
    """
    parts: dict[int, list[int]] = {}
    for i, ann in enumerate(annotations):
        if ann.role != INDIVIDUAL:
            continue
        for j in range(i - 1, -1, -1):
            owner = annotations[j]
            if owner.role == COMPOSITE and owner.start <= ann.start and ann.end <= owner.end:
                parts.setdefault(j, []).append(i)
                break
    return parts


def _relation(elem: ET.Element, line: int, source: str, lenient: bool, report: ParseReport) -> Relation | None:
    infons = _infons(elem)
    if all(infons.get(key) for key in ("relation", "Chemical", "Disease")):
        return Relation(infons["Chemical"], infons["Disease"], infons["relation"])
    message = f"relation {elem.get('id')!r} needs infons 'relation', 'Chemical' and 'Disease' (found {sorted(infons)})"
    if not lenient:
        raise DataFormatError(source, line, message + " (lenient=True skips such relations)")
    report.note("relations_skipped", f"{source}:{line}: {message}")
    return None


def _infons(elem: ET.Element) -> dict[str, str]:
    return {infon.get("key", ""): (infon.text or "").strip() for infon in elem.findall("infon")}


def _int(value: str | None, source: str, line: int, what: str) -> int:
    try:
        return int((value or "").strip())
    except ValueError:
        raise DataFormatError(source, line, f"{what} must be an integer, got {value!r}") from None


def _fragments(ann: _Annotation) -> str:
    return ",".join(f"{s}-{e}" for s, e in ann.locations)
