"""The instruct view of BC5CDR-like documents (seed 003): chemicals, diseases and CID pairs.

`build_instruct_examples` turns a Document into prompt/completion pairs; `parse_entity_list` and
`parse_cid_pairs` read a completion (gold or generated) back and never raise, so that arbitrary
model output can be scored. One completion format for every task: items joined by "; " (an entity's
mention, or a CID pair as "chemical | disease"), "none" when there is nothing to list. The parsers also
accept newlines between items. `align_mentions` places listed mentions back into the text (strict span
scoring); `normalise` and `concepts_by_name` serve mention-set and CID scoring.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from ner_ray.data.document import Document, Span
from ner_ray.data.jsonl import InstructExample

TASKS = ("chemicals", "diseases", "cid")
NONE = "none"
ENTITY_SEPARATOR = "; "
PAIR_SEPARATOR = " | "
CHEMICAL, DISEASE = "Chemical", "Disease"

INSTRUCTIONS = {
    "chemicals": "List the chemicals and drugs mentioned in the text, exactly as written, "
    f"in order of first appearance, separated by '{ENTITY_SEPARATOR}'. Answer '{NONE}' if there are none.",
    "diseases": "List the diseases and symptoms mentioned in the text, exactly as written, "
    f"in order of first appearance, separated by '{ENTITY_SEPARATOR}'. Answer '{NONE}' if there are none.",
    "cid": "List the chemical-induced disease relations stated in the text as "
    f"'chemical{PAIR_SEPARATOR}disease', naming each by its first mention, separated by '{ENTITY_SEPARATOR}'. "
    f"Answer '{NONE}' if there are none.",
}


def build_instruct_examples(doc: Document, tasks: Iterable[str] = TASKS) -> list[InstructExample]:
    """One example per task for a document with `Chemical`/`Disease` spans and CID relations.

    Prompt: the task's instruction, a blank line, "Text: " + the document text. Entity
    completions list the distinct mention strings (case-sensitive) in order of first appearance.
    A CID relation is written with the first mention of each of its concept ids (a span whose
    concept is "D1|D2" is a mention of both); a relation with an id that has no mention cannot
    be named and is left out, counted in `extra["cid_unnamed"]`. `extra` also holds the task and doc id.
    """
    examples = []
    for task in tasks:
        if task not in INSTRUCTIONS:
            raise ValueError(f"unknown instruct task {task!r}; valid: {', '.join(TASKS)}")
        extra = {"task": task, "doc_id": doc.id}
        if task == "cid":
            pairs, unnamed = cid_pairs(doc)
            completion = ENTITY_SEPARATOR.join(f"{c}{PAIR_SEPARATOR}{d}" for c, d in pairs) or NONE
            extra["cid_unnamed"] = unnamed
        else:
            names = entity_mentions(doc, CHEMICAL if task == "chemicals" else DISEASE)
            completion = ENTITY_SEPARATOR.join(names) or NONE
        prompt = task_prompt(task, doc.text)
        examples.append(InstructExample(prompt, completion, extra))
    return examples


def task_prompt(task: str, text: str) -> str:
    """The user's message for one task: the task's instruction, a blank line, "Text: " + the text."""
    return f"{INSTRUCTIONS[task]}\n\nText: {text}"


def entity_mentions(doc: Document, span_type: str) -> list[str]:
    """The distinct mention strings of one type, in order of first appearance in the text."""
    names: dict[str, None] = {}
    for span in sorted(doc.spans, key=lambda s: (s.start, s.end)):
        if span.type == span_type:
            names.setdefault(doc.mention(span), None)
    return list(names)


def cid_pairs(doc: Document, relation_type: str = "CID") -> tuple[list[tuple[str, str]], int]:
    """(chemical, disease) names of the document's relations, in relation order and deduplicated,
    and how many relations were left out because an id has no mention."""
    first: dict[str, str] = {}
    for span in sorted(doc.spans, key=lambda s: (s.start, s.end)):
        for concept in span.concept_ids:
            first.setdefault(concept, doc.mention(span))
    pairs: dict[tuple[str, str], None] = {}
    unnamed = 0
    for rel in doc.relations:
        if rel.type != relation_type:
            continue
        if rel.head in first and rel.tail in first:
            pairs.setdefault((first[rel.head], first[rel.tail]), None)
        else:
            unnamed += 1
    return list(pairs), unnamed


def parse_entity_list(completion: object, invalid: Counter | None = None) -> list[str]:
    """The distinct entity strings of a completion, in order; never raises.

    Items are separated by ";" or newlines and stripped; "none" (any case) or blank alone means
    no entities. Empty items (as in "a;;b") and repeats are dropped and counted into `invalid`
    (when given) as `empty` / `duplicate`; a non-string completion counts as `malformed`.
    """
    invalid = invalid if invalid is not None else Counter()
    names: dict[str, None] = {}
    for item in _items(completion, invalid):
        if item in names:
            invalid["duplicate"] += 1
        else:
            names[item] = None
    return list(names)


def parse_cid_pairs(completion: object, invalid: Counter | None = None) -> list[tuple[str, str]]:
    """The distinct (chemical, disease) pairs of a completion, in order; never raises.

    Pairs are separated by newlines or ";", each "chemical | disease"; "none" (any case) alone
    means no pairs. An item without exactly one "|" or with an empty side is counted in `invalid`
    as `malformed`, a repeat as `duplicate`, an empty item (as in "a | b\n\nc | d") as `empty`.
    """
    invalid = invalid if invalid is not None else Counter()
    pairs: dict[tuple[str, str], None] = {}
    for item in _items(completion, invalid):
        sides = [side.strip() for side in item.split("|")]
        if len(sides) != 2 or not all(sides):
            invalid["malformed"] += 1
        elif (sides[0], sides[1]) in pairs:
            invalid["duplicate"] += 1
        else:
            pairs[(sides[0], sides[1])] = None
    return list(pairs)


def _items(completion: object, invalid: Counter) -> list[str]:
    """The stripped, non-empty items of a completion split at ";" and newlines (empty ones counted)."""
    if not isinstance(completion, str):
        invalid["malformed"] += 1
        return []
    completion = completion.strip()
    if not completion or completion.lower() == NONE:
        return []
    items = [item.strip() for item in completion.replace("\n", ";").split(";")]
    invalid["empty"] += items.count("")
    return [item for item in items if item]


def normalise(name: str) -> str:
    """A mention as mention-set scoring compares it: case-folded, inner whitespace collapsed, outer punctuation dropped."""
    return " ".join(name.casefold().split()).strip(" .,;:!?\"'")


def align_mentions(names: Iterable[str], text: str, span_type: str) -> tuple[list[Span], list[str]]:
    """(a span for every occurrence of every listed name in `text` that starts and ends on a word boundary, the
    names found nowhere: hallucinated). Exact occurrences first; a name with none is looked for case-insensitively.
    An occurrence inside an occurrence of a longer listed name ("neuropathy" in "peripheral neuropathy") is part of
    that mention, not one of its own."""
    spans: dict[tuple[int, int], Span] = {}
    missing = []
    for name in names:
        pattern = rf"(?<!\w){re.escape(name)}(?!\w)"
        found = list(re.finditer(pattern, text)) or list(re.finditer(pattern, text, re.IGNORECASE))
        if not found:
            missing.append(name)
        for match in found:
            spans.setdefault((match.start(), match.end()), Span(match.start(), match.end(), span_type))
    found_spans = sorted(spans.values(), key=lambda s: (s.start, s.end))
    outermost = [s for s in found_spans if not any(o.start <= s.start and s.end <= o.end and o.end - o.start > s.end - s.start
                                                  for o in found_spans)]
    return outermost, missing


def concepts_by_name(doc: Document, span_type: str) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """The concept ids each mention string of `span_type` stands for in `doc`: (by exact string, by `normalise`d
    string); a composite id field ("D1|D2") gives both ids, a mention without id none."""
    exact: dict[str, set[str]] = {}
    normalised: dict[str, set[str]] = {}
    for span in doc.spans:
        if span.type == span_type and span.concept_ids:
            exact.setdefault(doc.mention(span), set()).update(span.concept_ids)
            normalised.setdefault(normalise(doc.mention(span)), set()).update(span.concept_ids)
    return exact, normalised


def concept_ids(name: str, index: tuple[dict[str, set[str]], dict[str, set[str]]]) -> set[str]:
    """The ids `name` maps to through a document's mentions (`concepts_by_name`): exact match, then normalised."""
    exact, normalised = index
    return exact.get(name) or normalised.get(normalise(name)) or set()
