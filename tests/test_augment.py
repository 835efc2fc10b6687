"""Entity swap and mask: exact outputs with fixed seeds, and offset properties on random and BC5CDR documents."""

from __future__ import annotations

import random

import pytest
from conftest import SHARED_DATA, needs_shared
from hypothesis import given, settings
from hypothesis import strategies as st

from ner_ray.data.augment import build_mention_pool, entity_mask, entity_swap
from ner_ray.data.document import Document, Relation, Span
from ner_ray.data.pubtator import read_pubtator

C, D = "Chemical", "Disease"
DOC = Document(
    "9",
    "Lithium causes tremor. Cisplatin nephrotoxicity and renal failure were seen.",
    [
        Span(0, 7, C, "D008094"),
        Span(15, 21, D, "D014202"),
        Span(23, 32, C, "D002945"),
        Span(33, 47, D, "D007674"),
        Span(52, 65, D, "D051437"),
        Span(52, 57, D, "X"),  # nested in "renal failure": neither of the two is ever replaced
    ],
    [Relation("D008094", "D014202", "CID")],
    {"title_end": 22},
)
POOL = {C: ["Lithium", "cisplatin", "lithium carbonate"], D: ["hearing loss", "tremor"]}


def _mentions(doc: Document) -> list[str]:
    return [doc.mention(s) for s in doc.spans]


def test_build_mention_pool_is_sorted_and_distinct():
    other = Document("8", "cisplatin and Lithium", [Span(0, 9, C), Span(14, 21, C)])
    assert build_mention_pool([DOC, other]) == {
        C: ["Cisplatin", "Lithium", "cisplatin"],
        D: ["nephrotoxicity", "renal", "renal failure", "tremor"],
    }


def test_entity_swap_exact_with_seed():
    swapped = entity_swap(DOC, POOL, 1.0, 0)
    assert swapped.text == "cisplatin causes hearing loss. cisplatin hearing loss and renal failure were seen."
    assert [s.key for s in swapped.spans] == [
        (0, 9, C), (17, 29, D), (31, 40, C), (41, 53, D), (58, 71, D), (58, 63, D)
    ]
    assert [s.concept for s in swapped.spans] == ["", "", "", "", "D051437", "X"]
    assert swapped.relations == DOC.relations
    assert swapped.meta == {"title_end": 30}
    assert swapped.text[: swapped.meta["title_end"]] == "cisplatin causes hearing loss."

    half = entity_swap(DOC, POOL, 0.5, 7)
    assert half.text == "cisplatin causes tremor. lithium carbonate hearing loss and renal failure were seen."
    assert _mentions(half) == ["cisplatin", "tremor", "lithium carbonate", "hearing loss", "renal failure", "renal"]
    assert [s.concept for s in half.spans] == ["", "D014202", "", "", "D051437", "X"]
    assert half.meta == {"title_end": 24}


def test_entity_mask_exact_with_seed():
    masked = entity_mask(DOC, 1.0, 0)
    assert masked.text == "[MASK] causes [MASK]. [MASK] [MASK] and renal failure were seen."
    assert [s.key for s in masked.spans] == [(0, 6, C), (14, 20, D), (22, 28, C), (29, 35, D), (40, 53, D), (40, 45, D)]
    assert [s.concept for s in masked.spans] == [s.concept for s in DOC.spans]
    assert masked.meta == {"title_end": 21}

    doc = Document("7", "Severe acute kidney injury followed.", [Span(7, 26, D, "D058186")])
    masked = entity_mask(doc, 1.0, random.Random(1), mask_token="<unk>")
    assert masked.text == "Severe <unk> <unk> <unk> followed."
    assert masked.spans == [Span(7, 24, D, "D058186")]
    assert entity_mask(DOC, 0.5, 3).text == "[MASK] causes tremor. [MASK] nephrotoxicity and renal failure were seen."


def test_p_zero_same_seed_and_bad_arguments():
    assert entity_swap(DOC, POOL, 0.0, 1) == DOC
    assert entity_mask(DOC, 0.0, 1) == DOC
    assert entity_swap(DOC, POOL, 0.5, 11) == entity_swap(DOC, POOL, 0.5, 11)
    assert entity_mask(DOC, 0.5, random.Random(4)) == entity_mask(DOC, 0.5, random.Random(4))
    # A mention whose type has no other string in the pool is never swapped.
    only = entity_swap(DOC, {C: ["Lithium"]}, 1.0, 0)
    assert only.text == "Lithium causes tremor. Lithium nephrotoxicity and renal failure were seen."
    assert [s.concept for s in only.spans] == ["D008094", "D014202", "", "D007674", "D051437", "X"]
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        entity_swap(DOC, POOL, 1.5, 0)
    with pytest.raises(ValueError, match="mask_token"):
        entity_mask(DOC, 0.5, 0, mask_token="[ MASK ]")
    with pytest.raises(TypeError, match="random.Random or an int"):
        entity_mask(DOC, 0.5, "seed")


def _overlapping(doc: Document) -> set[int]:
    return {
        i for i, a in enumerate(doc.spans) for j, b in enumerate(doc.spans)
        if i != j and a.start < b.end and b.start < a.end
    }


def _outside(doc: Document, indices: list[int]) -> list[str]:
    """The text between the given (non-overlapping) spans."""
    pieces, cursor = [], 0
    for i in sorted(indices, key=lambda i: doc.spans[i].start):
        pieces.append(doc.text[cursor : doc.spans[i].start])
        cursor = doc.spans[i].end
    return pieces + [doc.text[cursor:]]


def check_swap(doc: Document, out: Document, pool: dict[str, list[str]], p: float) -> None:
    assert len(out.spans) == len(doc.spans) and out.relations == doc.relations
    overlapping = _overlapping(doc)
    replaced = []
    for i, (old, new) in enumerate(zip(doc.spans, out.spans)):
        assert 0 <= new.start < new.end <= len(out.text)
        assert new.type == old.type
        before, after = doc.mention(old), out.mention(new)
        if new == old.shifted(new.start - old.start) and after == before:
            eligible = i not in overlapping and any(s != before for s in pool.get(old.type, []))
            assert not (p == 1.0 and eligible), (i, before)
        else:
            assert i not in overlapping and after != before and after in pool[old.type] and new.concept == ""
            replaced.append(i)
    assert p > 0 or not replaced
    assert _outside(doc, replaced) == _outside(out, replaced)


def check_mask(doc: Document, out: Document, mask: str, p: float) -> None:
    assert len(out.spans) == len(doc.spans) and out.relations == doc.relations
    overlapping = _overlapping(doc)
    replaced = []
    for i, (old, new) in enumerate(zip(doc.spans, out.spans)):
        assert 0 <= new.start < new.end <= len(out.text)
        assert (new.type, new.concept) == (old.type, old.concept)
        before, after = doc.mention(old), out.mention(new)
        if after == before:
            assert not (p == 1.0 and i not in overlapping and before.split()), (i, before)
        else:
            assert i not in overlapping and after == " ".join([mask] * len(before.split()))
            replaced.append(i)
    assert p > 0 or not replaced
    assert _outside(doc, replaced) == _outside(out, replaced)


@st.composite
def documents(draw):
    text = draw(st.text(alphabet="ab .\n", min_size=1, max_size=30))
    bounds = st.tuples(st.integers(0, len(text) - 1), st.integers(1, len(text))).filter(lambda b: b[0] < b[1])
    pairs = draw(st.lists(bounds, max_size=6))
    types = draw(st.lists(st.sampled_from([C, D]), min_size=len(pairs), max_size=len(pairs)))
    meta = {"title_end": draw(st.integers(0, len(text)))}
    spans = [Span(a, b, t, "ID") for (a, b), t in zip(pairs, types)]
    return Document("h", text, spans, [Relation("c", "d", "CID")], meta)


POOLS = st.dictionaries(
    st.sampled_from([C, D]), st.lists(st.text(alphabet="xyz -", min_size=1, max_size=5), max_size=3)
)
PROBABILITY = st.sampled_from([0.0, 0.4, 1.0])


@settings(max_examples=150, deadline=None)
@given(documents(), POOLS, PROBABILITY, st.integers(0, 2**32))
def test_entity_swap_properties(doc, pool, p, seed):
    out = entity_swap(doc, pool, p, seed)
    check_swap(doc, out, pool, p)
    assert out == entity_swap(doc, pool, p, seed)
    if p == 0.0:
        assert out == doc


@settings(max_examples=150, deadline=None)
@given(documents(), PROBABILITY, st.integers(0, 2**32))
def test_entity_mask_properties(doc, p, seed):
    out = entity_mask(doc, p, seed, mask_token="<mask>")
    check_mask(doc, out, "<mask>", p)
    assert out == entity_mask(doc, p, seed, mask_token="<mask>")
    if p == 0.0:
        assert out == doc


@needs_shared
def test_properties_on_all_bc5cdr_train_documents():
    docs = read_pubtator(SHARED_DATA / "bc5cdr" / "CDR_TrainingSet.PubTator.txt")
    pool = build_mention_pool(docs)
    assert set(pool) == {C, D}
    swapped = masked = 0
    for k, doc in enumerate(docs):
        for p in (0.0, 0.5, 1.0):
            out = entity_swap(doc, pool, p, k)
            check_swap(doc, out, pool, p)
            swapped += out.text != doc.text
            out = entity_mask(doc, p, k)
            check_mask(doc, out, "[MASK]", p)
            masked += out.text != doc.text
            # The title still ends where the separating space is, with its mentions inside it.
            old_end, new_end = doc.meta["title_end"], out.meta["title_end"]
            assert out.text[new_end] == " "
            for old, new in zip(doc.spans, out.spans):
                assert (old.end <= old_end) == (new.end <= new_end)
    assert swapped > len(docs) and masked > len(docs)
