"""Family multitask (seed 004): one shared encoder (LoRA or full), a token head for NER and a
sentence head that classifies each sentence (`model.multitask.sentence_task`: cid or has_entity).

Every example is one sentence; the loss is token cross-entropy + `loss_weight` x sentence
cross-entropy. Entities decode as in token_cls; the predicted sentence class of each window travels in
the predicted document (meta["windows"]) and is scored against the gold documents' sentence labels
(dev/test sentence accuracy and F1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ner_ray.data.chunking import Window
from ner_ray.data.document import Document, Span
from ner_ray.data.sentence_labels import label_sentences
from ner_ray.families.base import Example
from ner_ray.families.tagger import EncoderFamily, TaggerModel

SENTENCE_LABELS = "sentence_labels"  # batch key of the gold sentence classes (beside "labels")


class Multitask(EncoderFamily):
    """Token tagging plus a two-class sentence head on the first token, trained jointly."""

    name = "multitask"
    sentence_windows = True
    sentence_classes = 2
    metric_names = ("sentence_accuracy", "sentence_precision", "sentence_recall", "sentence_f1")

    def encode(self, window: Window, doc: Document | None = None) -> Example:
        """The token_cls view plus the window's sentence label, computed on its document.

        Without `doc` (inference on raw text) the window stands for its own document: it has no
        relations, so the cid label is 0 there; training always passes the document.
        """
        example = super().encode(window, doc)
        if doc is None:
            doc, bounds = Document(window.doc_id, window.text, list(window.spans)), (0, len(window.text))
        else:
            bounds = (window.start, window.end)
        label = label_sentences(doc, [bounds], self.config.model.multitask.sentence_task)[0]
        example.features[SENTENCE_LABELS] = label
        return example

    def loss(self, model: TaggerModel, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        token_loss, outputs = super().loss(model, batch)
        if SENTENCE_LABELS not in batch:  # unlabelled input (serving): nothing to add
            return token_loss, outputs
        sentence_loss = nn.functional.cross_entropy(outputs["sentence_logits"].float(), batch[SENTENCE_LABELS])
        return token_loss + self.config.model.multitask.loss_weight * sentence_loss, outputs

    def decode(self, model: TaggerModel, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(tag ids per position, the predicted sentence class of each example)."""
        return super().decode(model, outputs, batch), outputs["sentence_logits"].argmax(-1)

    def spans(self, example: Example, row: Any) -> list[Span]:
        return super().spans(example, row[0])

    def window_info(self, example: Example, row: Any) -> dict[str, Any]:
        return {"sentence_class": int(row[1])}

    def extra_metrics(self, gold: list[Document], predicted: list[Document]) -> dict[str, float]:
        """Sentence accuracy and F1 of class 1: each predicted window's class against its gold label."""
        task = self.config.model.multitask.sentence_task
        truth, guesses = [], []
        for gold_doc, doc in zip(gold, predicted):
            windows = [w for w in doc.meta.get("windows", []) if "sentence_class" in w]
            truth += label_sentences(gold_doc, [(w["start"], w["end"]) for w in windows], task)
            guesses += [w["sentence_class"] for w in windows]
        return sentence_scores(truth, guesses)


def sentence_scores(gold: Sequence[int], predicted: Sequence[int]) -> dict[str, float]:
    """Accuracy, and precision/recall/F1 of the positive class (0.0 on a zero denominator, as seqeval)."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(predicted)} sentence predictions for {len(gold)} examples")
    tp = sum(1 for g, p in zip(gold, predicted) if g == p == 1)
    correct = sum(1 for g, p in zip(gold, predicted) if g == p)
    n_pred, n_gold = sum(1 for p in predicted if p == 1), sum(1 for g in gold if g == 1)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "sentence_accuracy": correct / len(gold) if gold else 0.0,
        "sentence_precision": precision,
        "sentence_recall": recall,
        "sentence_f1": f1,
    }
