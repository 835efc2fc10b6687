"""The four span-generation completions: exact strings, format→parse round trips, each invalid kind, fuzzy mentions."""

from __future__ import annotations

import random

import pytest

from ner_ray.data.document import Span
from ner_ray.data.span_string import TAG, format_span_string
from ner_ray.data.span_targets import (
    ALIGNMENT_KINDS,
    INVALID_KINDS,
    TARGETS,
    align_mention,
    format_completion,
    parse_completion,
)

SENT = "Aspirin induced asthma attacks in aspirin users ."
GOLD = [Span(34, 41, "Chemical"), Span(16, 30, "Disease"), Span(0, 7, "Chemical"), Span(16, 30, "Disease")]
REPEATED = "aspirin , then aspirin ."
VARIANTS = [(target, typed) for target in TARGETS for typed in (False, True)]
TYPES = ("Chemical", "Disease")


def parsed(completion, target, typed, text=SENT, types=TYPES):
    result = parse_completion(completion, text, target, typed, types)
    return [s.key for s in result.spans], dict(result.invalid)


def test_format_completion_variants():
    assert format_completion(GOLD, SENT, "offsets", False) == " 0-7 ; 16-30 ; 34-41"
    assert format_completion(GOLD, SENT, "offsets", True) == " 0-7 Chemical ; 16-30 Disease ; 34-41 Chemical"
    assert format_completion(GOLD, SENT, "mentions", False) == " Aspirin ; asthma attacks ; aspirin"
    assert format_completion(GOLD, SENT, "mentions", True) == " Aspirin [Chemical] ; asthma attacks [Disease] ; aspirin [Chemical]"
    for target, typed in VARIANTS:
        assert format_completion([], SENT, target, typed) == ""
    # untyped drops the type, so one item per offsets; typed keeps both
    both = [Span(0, 7, "Disease"), Span(0, 7, "Chemical")]
    assert format_completion(both, SENT, "offsets", False) == " 0-7"
    assert format_completion(both, SENT, "mentions", True) == " Aspirin [Chemical] ; Aspirin [Disease]"


def test_untyped_offsets_is_the_span_string():
    for spans in (GOLD, [], [Span(16, 22, "Disease"), Span(0, 7, "Chemical")]):
        assert TAG + format_completion(spans, SENT, "offsets", False) == format_span_string(spans)


@pytest.mark.parametrize("target,typed", VARIANTS)
@pytest.mark.parametrize("text,gold", [(SENT, GOLD), (REPEATED, [Span(15, 22, "Chemical"), Span(0, 7, "Chemical")]), (SENT, [])])
def test_round_trip(target, typed, text, gold):
    expected = sorted({(s.start, s.end, s.type if typed else "Entity") for s in gold})
    completion = format_completion(gold, text, target, typed)
    for written in (completion, TAG + completion, f"  {TAG}{completion}\n"):
        result = parse_completion(written, text, target, typed, TYPES)
        assert [s.key for s in result.spans] == expected and result.n_invalid == 0
        assert result.alignment == ({"exact": len(expected)} if target == "mentions" and expected else {})


def test_each_invalid_kind_offsets():
    assert parsed(" 0-7 ; ; 16 - 30 ;", "offsets", False) == ([(0, 7, "Entity"), (16, 30, "Entity")], {})
    assert parsed(" 0-7 ; 3 to 5 ; -4 ; 0-7 Chemical ; \u0663-\u0665", "offsets", False) == ([(0, 7, "Entity")], {"malformed": 4})
    assert parsed(" 7-0 ; 5-5 ; 1-2", "offsets", False) == ([(1, 2, "Entity")], {"reversed": 2})
    assert parsed(" 0-49 ; 40-50 ; 9999999999-1", "offsets", False) == ([(0, 49, "Entity")], {"out_of_range": 1, "malformed": 1})
    assert parsed(" 0-7 ; 0 - 7", "offsets", False) == ([(0, 7, "Entity")], {"duplicate": 1})
    typed = " 0-7 Chemical ; 0-7 Disease ; 0-7 Chemical ; 0-7 ; 0-7 Gene ; 30-16 Disease"
    assert parsed(typed, "offsets", True) == (
        [(0, 7, "Chemical"), (0, 7, "Disease")],
        {"duplicate": 1, "malformed": 1, "unknown_type": 1, "reversed": 1},
    )
    assert parsed(" 0-7 Gene", "offsets", True, types=()) == ([(0, 7, "Gene")], {})  # no type list: any type


def test_each_invalid_kind_mentions():
    assert parsed(" aspirin ; cancer ; aspirin ; aspirin", "mentions", False) == (
        [(34, 41, "Entity")],
        {"hallucinated": 1, "duplicate": 2},
    )
    typed = " aspirin [Chemical] ; aspirin ; [Chemical] ; aspirin [] ; aspirin [Gene] ; aspirin [Chemical]"
    assert parsed(typed, "mentions", True) == (
        [(34, 41, "Chemical")],
        {"malformed": 3, "unknown_type": 1, "duplicate": 1},
    )
    # the type is in the last brackets; another type may share the offsets of the one occurrence
    assert parsed(" [3H]aspirin [Chemical] ; aspirin [Chemical] ; aspirin [Disease]", "mentions", True, "[3H]aspirin") == (
        [(0, 11, "Chemical"), (4, 11, "Chemical"), (4, 11, "Disease")],
        {},
    )


def test_fuzzy_alignment():
    result = parse_completion(" asthma attack ; Asthma attacks ; ASPIRIN  users ; asprin", SENT, "mentions", False)
    assert [s.key[:2] for s in result.spans] == [(16, 30), (34, 47), (0, 7)]
    assert result.invalid == {"duplicate": 1} and result.alignment == {"fuzzy": 3}
    assert align_mention("Asthma attacks", SENT, set()) == ((16, 30), "fuzzy")
    assert align_mention("asthma attack", SENT, {(16, 30)}) == (None, "duplicate")
    assert align_mention("lung cancer", SENT, set()) == (None, "hallucinated")


def test_align_mention_places():
    text = "aspirinate and aspirin , aspirin ."
    assert align_mention("aspirin", text, set()) == ((15, 22), "exact")  # on word boundaries first
    assert align_mention("aspirin", text, {(15, 22)}) == ((25, 32), "exact")
    assert align_mention("aspirin", text, {(15, 22), (25, 32)}) == (None, "duplicate")  # a repeat, not "aspirin|ate"
    assert align_mention("aspirin", "aspirinate", set()) == ((0, 7), "exact")  # inside a word, as a last resort
    assert align_mention("Na", "NaCl and KCl", set()) == ((0, 2), "exact")
    assert align_mention("", SENT, set()) == (None, "hallucinated")


def test_rate_counts():
    result = parse_completion(" 0-7 ; x ; 7-0 ; 0-99 ; 0-7", SENT, "offsets", False)
    assert result.n_items == 5 and result.n_invalid == 4
    assert result.rate_counts == {"invalid_output": 2, "hallucinated": 1, "duplicate": 1}


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="offsets, mentions"):
        format_completion([], SENT, "spans", False)
    with pytest.raises(ValueError, match="offsets, mentions"):
        parse_completion("", SENT, "spans", False)
    with pytest.raises(ValueError, match="outside"):
        format_completion([Span(40, 60, "Chemical")], SENT, "offsets", False)
    with pytest.raises(ValueError, match="type"):
        format_completion([Span(0, 7, "Chem;ical")], SENT, "offsets", True)
    with pytest.raises(ValueError, match="mention"):
        format_completion([Span(6, 9, "Chemical")], "a b c d ; e f", "mentions", False)


def test_garbage_never_raises():
    rng = random.Random(0)
    alphabet = "0123456789-;[]<>TAG aspirinASTHMA\t\n\u0663\u00e9\u4e2d\U0001f600\u0130"
    garbage = [None, 123, b"<TAG> 0-7", ["0-7"], "", TAG, "<TAG> ;;; - - 9999999999-1", "[[]] ; ] [ ; [x]"]
    garbage += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(500)]
    for completion in garbage:
        for target, typed in VARIANTS:
            result = parse_completion(completion, SENT, target, typed, TYPES)
            assert set(result.invalid) <= set(INVALID_KINDS) and set(result.alignment) <= set(ALIGNMENT_KINDS)
            assert all(0 <= s.start < s.end <= len(SENT) for s in result.spans)
            assert len({s.key for s in result.spans}) == len(result.spans)
            assert sum(result.alignment.values()) == (len(result.spans) if target == "mentions" else 0)
            assert result.n_items == len(result.spans) + result.n_invalid
