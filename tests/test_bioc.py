"""BioC XML reader: exact documents for a three-document fixture under both composite policies,
file:line errors, and equality with the PubTator files on all three BC5CDR splits."""

from __future__ import annotations

import pytest
from conftest import SHARED_DATA, needs_shared

from ner_ray.data.bioc import parse_bioc, read_bioc
from ner_ray.data.document import Document, ParseReport, Relation, Span
from ner_ray.data.pubtator import read_pubtator
from ner_ray.errors import DataFormatError

FIXTURE = """<?xml version='1.0' encoding='UTF-8'?><!DOCTYPE collection SYSTEM 'BioC.dtd'>
<collection>
<source>PubTator</source>
<document>
<id>1</id>
<passage>
<infon key="type">title</infon>
<offset>0</offset>
<text>Aspirin causes ulcers.</text>
<annotation id='0'>
<infon key="type">Chemical</infon>
<infon key="MESH">D001241</infon>
<location offset='0' length='7' />
<text>Aspirin</text>
</annotation>
<annotation id='1'>
<infon key="type">Disease</infon>
<infon key="MESH">D014456</infon>
<location offset='15' length='6' />
<text>ulcers</text>
</annotation>
</passage>
<passage>
<infon key="type">abstract</infon>
<offset>23</offset>
<text>No ulcers &amp; more.</text>
<annotation id='2'>
<infon key="type">Disease</infon>
<infon key="MESH">D014456</infon>
<location offset='26' length='6' />
<text>ulcers</text>
</annotation>
</passage>
<relation id='R0'>
<infon key="relation">CID</infon>
<infon key="Chemical">D001241</infon>
<infon key="Disease">D014456</infon>
</relation>
</document>
<document>
<id>2</id>
<passage>
<infon key="type">title</infon>
<offset>0</offset>
<text>Renal and hepatic failure after cisplatin.</text>
<annotation id='0'>
<infon key="type">Disease</infon>
<infon key="CompositeRole">CompositeMention</infon>
<infon key="MESH">D051437|D048550</infon>
<location offset='0' length='25' />
<text>Renal and hepatic failure</text>
</annotation>
<annotation id='1'>
<infon key="type">Disease</infon>
<infon key="CompositeRole">IndividualMention</infon>
<infon key="MESH">D051437</infon>
<location offset='0' length='5' />
<location offset='18' length='7' />
<text>Renal failure</text>
</annotation>
<annotation id='2'>
<infon key="type">Disease</infon>
<infon key="CompositeRole">IndividualMention</infon>
<infon key="MESH">D048550</infon>
<location offset='10' length='15' />
<text>hepatic failure</text>
</annotation>
<annotation id='3'>
<infon key="type">Chemical</infon>
<infon key="MESH">D002945</infon>
<location offset='32' length='9' />
<text>cisplatin</text>
</annotation>
</passage>
<passage>
<infon key="type">abstract</infon>
<offset>43</offset>
<text>Cisplatin again.</text>
<annotation id='4'>
<infon key="type">Chemical</infon>
<infon key="MESH">-1</infon>
<location offset='43' length='9' />
<text>Cisplatin</text>
</annotation>
</passage>
<relation id='R0'>
<infon key="relation">CID</infon>
<infon key="Chemical">D002945</infon>
<infon key="Disease">D051437</infon>
</relation>
<relation id='R1'>
<infon key="relation">CID</infon>
<infon key="Chemical">D002945</infon>
<infon key="Disease">D048550</infon>
</relation>
</document>
<document>
<id>3</id>
<passage>
<infon key="type">title</infon>
<offset>0</offset>
<text>Nothing here.</text>
</passage>
<passage>
<infon key="type">abstract</infon>
<offset>15</offset>
<text>Really.</text>
</passage>
</document>
</collection>
"""

DOC1 = Document(
    "1",
    "Aspirin causes ulcers. No ulcers & more.",
    [Span(0, 7, "Chemical", "D001241"), Span(15, 21, "Disease", "D014456"), Span(26, 32, "Disease", "D014456")],
    [Relation("D001241", "D014456", "CID")],
    {"title_end": 22},
)
DOC2_RELATIONS = [Relation("D002945", "D051437", "CID"), Relation("D002945", "D048550", "CID")]
DOC2_CHEMICALS = [Span(32, 41, "Chemical", "D002945"), Span(43, 52, "Chemical", "-1")]
DOC2_TEXT = "Renal and hepatic failure after cisplatin. Cisplatin again."
DOC3 = Document("3", "Nothing here.  Really.", [], [], {"title_end": 13})


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the first line equal to `needle` (an oracle independent of the parser)."""
    return text.split("\n").index(needle) + 1


def test_composite_policy_keeps_the_whole_mention_with_its_parts_as_note():
    report = ParseReport()
    docs = parse_bioc(FIXTURE, report=report)
    doc2 = Document(
        "2", DOC2_TEXT,
        [Span(0, 25, "Disease", "D051437|D048550", note="Renal failure|hepatic failure"), *DOC2_CHEMICALS],
        DOC2_RELATIONS, {"title_end": 42},
    )
    assert docs == [DOC1, doc2, DOC3]
    assert dict(report.counts) == {"individual_mentions_dropped": 2}


def test_individual_policy_keeps_the_parts_and_merges_discontinuous_ones():
    report = ParseReport()
    docs = parse_bioc(FIXTURE, policy="individual", report=report)
    doc2 = Document(
        "2", DOC2_TEXT,
        [
            Span(0, 25, "Disease", "D051437", surface="Renal failure", note="fragments 0-5,18-25"),
            Span(10, 25, "Disease", "D048550"),
            *DOC2_CHEMICALS,
        ],
        DOC2_RELATIONS, {"title_end": 42},
    )
    assert docs == [DOC1, doc2, DOC3]
    assert dict(report.counts) == {"composites_replaced": 1, "discontinuous_merged": 1}


def test_crlf_file_reads_the_same_with_the_same_lines(tmp_path):
    crlf = FIXTURE.replace("<text>hepatic failure</text>", "<text>hepatic failures</text>").replace("\n", "\r\n")
    path = tmp_path / "crlf.xml"
    path.write_bytes(crlf.encode("utf-8"))
    assert [d.id for d in read_bioc(path)] == ["1", "2", "3"]
    with pytest.raises(DataFormatError) as err:
        read_bioc(path, policy="individual")
    # the error names the opening line of the bad annotation (id '2' of document 2)
    lines = crlf.split("\r\n")
    expected = [i for i, line in enumerate(lines, 1) if line == "<annotation id='2'>"][1]
    assert err.value.line == expected
    assert str(err.value).startswith(f"{path}:{expected}: document 2: annotation '2' says 'hepatic failures'")


def test_mismatching_part_is_dropped_by_composite_policy_and_counted_by_lenient_individual():
    bad = FIXTURE.replace("<text>hepatic failure</text>", "<text>hepatic failures</text>")
    composite = parse_bioc(bad, source="bad.xml")
    assert [[s.key for s in d.spans] for d in composite] == [[s.key for s in d.spans] for d in parse_bioc(FIXTURE)]
    assert composite[1].spans[0].note == "Renal failure|hepatic failures"  # the parts as written
    with pytest.raises(DataFormatError, match="lenient=True"):
        parse_bioc(bad, source="bad.xml", policy="individual")
    report = ParseReport()
    docs = parse_bioc(bad, source="bad.xml", policy="individual", lenient=True, report=report)
    assert [s.key for s in docs[1].spans] == [(0, 25, "Disease"), (32, 41, "Chemical"), (43, 52, "Chemical")]
    assert report.counts["offset_mismatches"] == 1
    line = [i for i, text in enumerate(bad.split("\n"), 1) if text == "<annotation id='2'>"][1]
    assert report.notes[0].startswith(f"bad.xml:{line}: document 2: annotation '2'")


def test_malformed_xml_names_file_and_line(tmp_path):
    path = tmp_path / "broken.xml"
    path.write_text("<collection>\n<document>\n<id>1</id>\n</collection>\n", encoding="utf-8")
    with pytest.raises(DataFormatError) as err:
        read_bioc(path)
    assert (err.value.source, err.value.line) == (str(path), 4)
    assert "malformed XML: mismatched tag" in str(err.value)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("<offset>15</offset>", "<offset>x</offset>", "passage <offset> must be an integer, got 'x'"),
        ("<offset>15</offset>", "<offset>10</offset>", "document 3: passage offset 10 overlaps"),
        ("<location offset='26' length='6' />", "<location offset='26' length='0' />", "need offset >= 0, length > 0"),
        ('<infon key="Disease">D048550</infon>', "", "relation 'R1' needs infons"),
    ],
)
def test_structural_errors_name_the_line(old, new, message):
    bad = FIXTURE.replace(old, new)
    with pytest.raises(DataFormatError, match=message) as err:
        parse_bioc(bad, source="f.xml")
    assert err.value.line is not None and 1 < err.value.line < len(bad.split("\n"))


def test_unknown_policy_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid: composite, individual"):
        parse_bioc(FIXTURE, policy="parts")


SPLITS = [("Training", 9385, 1038), ("Development", 9591, 1012), ("Test", 9809, 1066)]


def _comparable(doc: Document) -> tuple:
    # PubTator's note is None without a parts column and "" with an empty one (the mention lines
    # of train PMID 19211690 end in a tab); BioC has no column to be empty, so both read as ""
    spans = [(s.start, s.end, s.type, s.concept, s.surface, s.note or "") for s in doc.spans]
    return doc.id, doc.text, spans, doc.relations, doc.meta


@needs_shared
@pytest.mark.parametrize(("split", "mentions", "relations"), SPLITS)
def test_bc5cdr_bioc_equals_pubtator(split, mentions, relations):
    bioc = read_bioc(SHARED_DATA / "bc5cdr" / f"CDR_{split}Set.BioC.xml")
    pubtator = read_pubtator(SHARED_DATA / "bc5cdr" / f"CDR_{split}Set.PubTator.txt")
    assert len(bioc) == len(pubtator) == 500
    assert sum(len(d.spans) for d in bioc) == mentions
    assert sum(len(d.relations) for d in bioc) == relations
    assert [_comparable(d) for d in bioc] == [_comparable(d) for d in pubtator]


@needs_shared
@pytest.mark.parametrize(("split", "mismatches"), [("Training", 3), ("Development", 1), ("Test", 0)])
def test_bc5cdr_individual_policy_finds_exactly_the_known_mismatches(split, mismatches):
    path = SHARED_DATA / "bc5cdr" / f"CDR_{split}Set.BioC.xml"
    report = ParseReport()
    docs = read_bioc(path, policy="individual", lenient=True, report=report)
    assert report.counts["offset_mismatches"] == mismatches
    assert all(d.check_offsets() == [] for d in docs)
    raw = path.read_text(encoding="utf-8").split("\n")
    for note in report.notes:
        line = int(note.split(":")[1])
        assert raw[line - 1].startswith("<annotation id=")
    if mismatches:
        with pytest.raises(DataFormatError) as err:
            read_bioc(path, policy="individual")
        assert f"{path}:{err.value.line}: document " in str(err.value)
        assert err.value.line == int(report.notes[0].split(":")[1])
    else:
        assert len(read_bioc(path, policy="individual")) == 500
