"""Model rows → predicted documents: each example's row → spans in window offsets (the family's pure
`spans`) → document offsets, merged over a document's windows.

The rows are what `family.decode` returned for the examples, in example order: collected by the HF
Trainer (arrays, padded with -100 across batches, or a tuple of them) or by `predict.predict_rows` (one
row per example). A predicted document keeps its windows' bounds and what the family says of each
window in meta["windows"], for scoring and the family's extra metrics.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ner_ray.data.chunking import merge_window_predictions
from ner_ray.data.document import Document

if TYPE_CHECKING:
    from ner_ray.families.base import Example, Family


def row_at(rows: Any, index: int) -> Any:
    """Example `index`'s row: from one array/list of rows, or from a tuple of them (one per output)."""
    if isinstance(rows, tuple):
        return tuple(part[index] for part in rows)
    return rows[index]


def row_count(rows: Any) -> int:
    return len(rows[0]) if isinstance(rows, tuple) else len(rows)


def predicted_documents(family: Family, documents: Sequence[Document], examples: Sequence[Example], rows: Any) -> list[Document]:
    """One predicted Document per input document (same id, text and metadata), its spans and relations in
    document offsets, nothing of the input's own annotations; meta["windows"] = [{start, end, **window info}]."""
    if row_count(rows) != len(examples):
        raise ValueError(f"{row_count(rows)} prediction rows for {len(examples)} examples")
    per_doc: dict[int, list[tuple[Example, Any]]] = defaultdict(list)
    for i, example in enumerate(examples):
        per_doc[example.doc_index].append((example, row_at(rows, i)))
    predicted = []
    for index, doc in enumerate(documents):
        pairs = sorted(per_doc.get(index, []), key=lambda pair: pair[0].window.index)  # window order, whatever the examples'
        windows = [example.window for example, _ in pairs]
        spans = [family.spans(example, row) for example, row in pairs]
        merged = merge_window_predictions(Document(doc.id, doc.text), windows, spans) if pairs else Document(doc.id, doc.text)
        relations = sorted({r for example, row in pairs for r in family.relations(example, row)})
        info = [{"start": example.window.start, "end": example.window.end, **family.window_info(example, row)}
                for example, row in pairs]
        predicted.append(Document(doc.id, doc.text, merged.spans, relations, {**doc.meta, "windows": info}))
    return predicted
