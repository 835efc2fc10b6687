"""Sentence labels for the multi-task head (seed 004), one 0/1 label per sentence.

`cid` (BC5CDR): the sentence mentions both the chemical and the disease of one of its document's
CID relations. `has_entity` (any corpus): the sentence mentions any entity. Sentence offsets come
from the caller (the sentence splitter); `label_sentences` picks the task by its config name.
"""

from __future__ import annotations

from collections.abc import Sequence

from ner_ray.data.document import Document

SENTENCE_TASKS = ("cid", "has_entity")


def label_sentences(doc: Document, sentence_bounds: Sequence[tuple[int, int]], task: str) -> list[int]:
    """The labels of `task` (one of SENTENCE_TASKS, as `model.multitask.sentence_task` names it)."""
    if task == "cid":
        return label_cid_sentences(doc, sentence_bounds)
    if task == "has_entity":
        return label_entity_sentences(doc, sentence_bounds)
    raise ValueError(f"unknown sentence task {task!r}; valid: {', '.join(SENTENCE_TASKS)}")


def label_entity_sentences(doc: Document, sentence_bounds: Sequence[tuple[int, int]]) -> list[int]:
    """1 for each sentence window that overlaps at least one entity span, else 0."""
    _check_bounds(doc, sentence_bounds)
    return [int(any(span.start < end and span.end > start for span in doc.spans)) for start, end in sentence_bounds]


def _check_bounds(doc: Document, sentence_bounds: Sequence[tuple[int, int]]) -> None:
    n = len(doc.text)
    for start, end in sentence_bounds:
        if not 0 <= start <= end <= n:
            raise ValueError(
                f"document {doc.id}: sentence bounds ({start}, {end}) must satisfy 0 <= start <= end <= {n}"
            )


def label_cid_sentences(
    doc: Document, sentence_bounds: Sequence[tuple[int, int]], relation_type: str = "CID"
) -> list[int]:
    """One 0/1 label per `(start, end)` sentence window (end-exclusive offsets into `doc.text`).

    A mention belongs to every sentence it overlaps (a mention that a splitter cut in two still
    counts), and stands for each id of its concept field ("D1|D2" → both). Only relations of
    `relation_type` count; head and tail may come from different mentions of the sentence.
    """
    _check_bounds(doc, sentence_bounds)
    pairs = {(rel.head, rel.tail) for rel in doc.relations if rel.type == relation_type}
    labels = []
    for start, end in sentence_bounds:
        ids = {
            concept
            for span in doc.spans
            if span.start < end and span.end > start
            for concept in span.concept_ids
        }
        labels.append(int(any(head in ids and tail in ids for head, tail in pairs)))
    return labels
