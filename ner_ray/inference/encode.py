"""Documents → windows → a family's examples.

Evaluation and serving windows are cut from the text alone (`evaluation_windows`): a document's gold
spans never move a boundary, they are only placed into the windows afterwards (the targets of the dev
loss), and a gold entity that a boundary cuts is a miss when scoring. Training windows may use the gold
spans to keep entities whole (`training_windows`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ner_ray.data.chunking import (
    WindowResult,
    make_windows,
    place_spans,
    split_sentences,
)
from ner_ray.data.document import Document, ParseReport

if TYPE_CHECKING:
    from ner_ray.families.base import Example, Family


def evaluation_windows(doc: Document, family: Family, report: ParseReport | None = None) -> WindowResult:
    """Windows cut from `doc.text` alone, with `doc`'s spans placed into them (those no window holds whole
    come back as `crossing`)."""
    text_only = Document(doc.id, doc.text)
    result = make_windows(text_only, family.window_tokens(), family.count_tokens, sentence_bounds=split_sentences(doc.text),
                          pack=not family.sentence_windows)
    return place_spans(doc, result.windows, report)


def training_windows(doc: Document, family: Family, report: ParseReport | None = None) -> WindowResult:
    """Windows whose sentence breaks and cuts avoid `doc`'s gold spans wherever the text allows."""
    bounds = split_sentences(doc.text, protect=doc.spans)
    return make_windows(doc, family.window_tokens(), family.count_tokens, sentence_bounds=bounds, report=report,
                        pack=not family.sentence_windows)


def encode_documents(docs: list[Document], family: Family, training: bool = False,
                     report: ParseReport | None = None) -> list[Example]:
    """Every example of every window of every document (`family.examples`: one per window, or one per task), in
    document order (`example.doc_index` points back into `docs`)."""
    report = report if report is not None else ParseReport()
    cut = training_windows if training else evaluation_windows
    examples = []
    for index, doc in enumerate(docs):
        for window in cut(doc, family, report).windows:
            for example in family.examples(window, doc):
                example.doc_index = index
                report.counts["misaligned_spans"] += example.misaligned
                examples.append(example)
    return examples


def in_length_order(examples: Sequence[Example], family: Family) -> list[int]:
    """The positions of `examples` by input length (the family's `input_length`: for a causal LM the prompt, never a
    gold completion), ties in their order: evaluation batches in this order pad less and, generating, hold rows
    that finish closer together (a batch generates until its longest row ends). The order only groups batches;
    rows are read back per example, so every prediction stays the same up to the padding's rounding."""
    return sorted(range(len(examples)), key=lambda i: family.input_length(examples[i].features))


def evaluation_examples(docs: list[Document], family: Family, report: ParseReport | None = None) -> list[Example]:
    """`encode_documents` of `docs` from their text alone, in `in_length_order`: the examples the Trainer evaluates and
    predicts, so that its batches are those `predict_rows` makes of the same documents."""
    examples = encode_documents(docs, family, training=False, report=report)
    return [examples[i] for i in in_length_order(examples, family)]
