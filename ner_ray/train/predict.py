"""From predicted label ids per window to scored documents: ids → window spans → document spans → F1.

The same function turns predictions into metrics in the trainer, in `ner-ray train`'s metrics.json
and (later) in Tune and Serve, so the F1 is the same number everywhere.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from ner_ray.data.chunking import merge_window_predictions
from ner_ray.data.document import Document, Span
from ner_ray.data.tagging import decode_subword_bio
from ner_ray.families.base import IGNORE, Example, LabelSet
from ner_ray.metrics import evaluate_entities


def window_spans(example: Example, ids: Sequence[int], labels: LabelSet, scheme: str) -> list[Span]:
    """Spans (window offsets) from one example's predicted ids (IGNORE / padding beyond its length)."""
    n = len(example.offsets)
    tags = [labels.tag(int(i)) if int(i) != IGNORE else None for i in list(ids)[:n]]
    tags += [None] * (n - len(tags))
    return decode_subword_bio(example.offsets, example.word_ids, tags, scheme)


def predicted_documents(
    documents: list[Document], examples: list[Example], id_rows: Sequence[Sequence[int]] | np.ndarray,
    labels: LabelSet, scheme: str,
) -> list[Document]:
    """One predicted Document per gold document (same id and text), spans in document offsets."""
    if len(id_rows) != len(examples):
        raise ValueError(f"{len(id_rows)} prediction rows for {len(examples)} examples")
    per_doc: dict[int, tuple[list, list]] = defaultdict(lambda: ([], []))
    for example, ids in zip(examples, id_rows):
        windows, spans = per_doc[example.extra["doc_index"]]
        windows.append(example.window)
        spans.append(window_spans(example, ids, labels, scheme))
    predicted = []
    for index, doc in enumerate(documents):
        windows, spans = per_doc.get(index, ([], []))
        predicted.append(merge_window_predictions(doc, windows, spans) if windows else doc.with_spans([]))
    return predicted


def score(documents: list[Document], examples: list[Example], id_rows, labels: LabelSet, scheme: str) -> dict:
    """evaluate_entities on the gold documents and the predictions decoded from `id_rows`."""
    return evaluate_entities(documents, predicted_documents(documents, examples, id_rows, labels, scheme))


def flat_metrics(scores: dict) -> dict[str, float]:
    """The scalar metrics a trainer logs: f1/precision/recall, per-type f1 and untyped/overlap f1."""
    flat = {key: float(scores[key]) for key in ("f1", "precision", "recall")}
    flat.update({f"f1_{t}": float(prf["f1"]) for t, prf in scores["per_type"].items()})
    flat["untyped_f1"] = float(scores["untyped"]["f1"])
    flat["overlap_f1"] = float(scores["overlap"]["f1"])
    return flat


def decode_batch(family, model, outputs, batch):
    """What the Trainer collects for one batch: the token ids, or (ids, per-example predictions) for a
    family with a task beside tagging (one that defines `decode_extra`, as multitask)."""
    ids = family.decode(model, outputs, batch)
    decode_extra = getattr(family, "decode_extra", None)
    return ids if decode_extra is None else (ids, decode_extra(model, outputs, batch))


def split_predictions(predictions) -> tuple[Sequence[Sequence[int]] | np.ndarray, np.ndarray | None]:
    """(token id rows, per-example predictions or None) from what `decode_batch` produced, concatenated."""
    # The Trainer keeps decode_batch's tuple as a tuple; id rows are never one (a list or an array).
    if isinstance(predictions, tuple) and len(predictions) == 2 and np.ndim(predictions[0]) == 2 and np.ndim(predictions[1]) == 1:
        return predictions[0], predictions[1]
    return predictions, None


def extra_metrics(family, extra, examples: list[Example]) -> dict[str, float]:
    """The family's metrics of its per-example predictions (multitask: sentence accuracy and F1); {} when none."""
    return {} if extra is None else family.extra_metrics(extra, examples)


def predict_ids(family, model, examples: list[Example], batch_size: int = 32) -> list[list[int]]:
    """Predicted label ids per example, in process (no Trainer): the decoding the Trainer uses too."""
    import torch

    model.eval()
    rows: list[list[int]] = []
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            batch = family.collate([e.features for e in examples[i : i + batch_size]])
            _, outputs = family.loss(model, batch)
            rows.extend(ids.tolist() for ids in family.decode(model, outputs, batch))
    return rows
