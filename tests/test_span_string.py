"""The span-string parser: exact results for each invalid kind, and a 10,000-string fuzz that it never raises."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ner_ray.data.document import Span
from ner_ray.data.span_string import (
    INVALID_KINDS,
    TAG,
    format_span_string,
    parse_span_string,
)


def parsed(text, text_length=None):
    result = parse_span_string(text, text_length)
    return [(s.start, s.end) for s in result.spans], dict(result.invalid)


def test_format_span_string():
    assert format_span_string([]) == "<TAG>"
    assert format_span_string([Span(20, 34, "Disease"), (0, 7), Span(0, 7, "Chemical")]) == "<TAG> 0-7 ; 20-34"


def test_valid_strings():
    assert parsed("<TAG>") == ([], {})
    assert parsed("<TAG> 0-7 ; 20-34") == ([(0, 7), (20, 34)], {})
    assert parsed("  <TAG>20-34;0 - 7  ") == ([(20, 34), (0, 7)], {})  # order of appearance, loose spacing
    result = parse_span_string("<TAG> 3-5", span_type="Chemical")
    assert result.spans == [Span(3, 5, "Chemical")] and result.n_invalid == 0
    assert parse_span_string("<TAG> 3-5").spans == [Span(3, 5, "Entity")]


def test_each_invalid_kind():
    assert parsed("0-7 ; 20-34") == ([(0, 7), (20, 34)], {"missing_tag": 1})
    assert parsed("") == ([], {"missing_tag": 1})
    assert parsed("<TAG> 0-7 ; 3 to 5 ; -4 ; 1-2-3 ; ") == ([(0, 7)], {"malformed": 4})
    assert parsed("<TAG> 7-0 ; 5-5 ; 1-2") == ([(1, 2)], {"reversed": 2})
    assert parsed("<TAG> 0-7 ; 5-11 ; 0-10", text_length=10) == ([(0, 7), (0, 10)], {"out_of_range": 1})
    assert parsed("<TAG> 0-7 ; 0-7 ; 0 - 7", text_length=10) == ([(0, 7)], {"duplicate": 2})
    assert parsed("<TAG> 1234567890-1234567891") == ([], {"malformed": 1})  # more than 9 digits
    assert parsed("the answer is <TAG> 1-2") == ([], {"missing_tag": 1, "malformed": 1})
    for not_text in (None, 7, b"<TAG> 0-7", ["<TAG> 0-7"]):
        assert parsed(not_text) == ([], {"malformed": 1})


ITEM = st.one_of(
    st.tuples(st.integers(0, 10**10), st.integers(0, 10**10)).map(lambda t: f"{t[0]}-{t[1]}"),
    st.tuples(st.integers(0, 60), st.integers(0, 60)).map(lambda t: f"{t[0]} - {t[1]}"),
    st.text(alphabet="0123456789- ;<>TAG\t\n", max_size=8),
)
GRAMMAR = st.builds(
    lambda prefix, items, separator: prefix + separator.join(items),
    st.sampled_from([f"{TAG} ", TAG, "", f" {TAG}  ", "<tag> ", "TAG ", "<TAG", "<TAG><TAG> "]),
    st.lists(ITEM, max_size=6),
    st.sampled_from([" ; ", ";", " ;", "; ", " , ", " ;; "]),
)


@st.composite
def corrupted(draw) -> str:
    """A grammar string with a few random insertions, deletions or truncation."""
    text = draw(GRAMMAR)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:at] + draw(st.text(max_size=3)) + text[at:]
        else:
            text = text[:at] + text[at + draw(st.integers(1, 3)):]
    return text


@pytest.mark.slow
@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(
    st.one_of(st.text(), GRAMMAR, corrupted(), st.none(), st.integers(), st.binary(max_size=8)),
    st.one_of(st.none(), st.integers(0, 200)),
)
def test_parser_never_raises_and_returns_valid_spans(text, text_length):
    result = parse_span_string(text, text_length)
    offsets = [(s.start, s.end) for s in result.spans]
    assert len(set(offsets)) == len(offsets)
    for start, end in offsets:
        assert 0 <= start < end and (text_length is None or end <= text_length)
    assert set(result.invalid) <= set(INVALID_KINDS)
    assert all(n > 0 for n in result.invalid.values()) and result.n_invalid == sum(result.invalid.values())
    assert all(s.type == "Entity" for s in result.spans)
    if isinstance(text, str) and offsets:
        # what is parsed, written and parsed again comes back the same, with nothing invalid
        again = parse_span_string(format_span_string(result.spans), text_length)
        assert sorted(offsets) == [(s.start, s.end) for s in again.spans] and again.invalid == Counter()


@settings(max_examples=300, deadline=None)
@given(st.sets(st.tuples(st.integers(0, 10**9 - 2), st.integers(1, 10**9 - 1)).filter(lambda t: t[0] < t[1]), max_size=8))
def test_format_then_parse_round_trip(offsets):
    result = parse_span_string(format_span_string(offsets))
    assert [(s.start, s.end) for s in result.spans] == sorted(offsets) and result.n_invalid == 0


def test_only_ascii_digits_are_offsets():
    parsed = parse_span_string("<TAG> \u0663-\u0665 ; 1-2")
    assert [s.key for s in parsed.spans] == [(1, 2, "Entity")] and parsed.invalid == {"malformed": 1}
