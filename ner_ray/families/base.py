"""The Family protocol: what a model family supplies, and the registry of families by name.

A family is five functions: `build` (the model), `encode` (one window → model features), `collate`
(features → a padded batch), `loss` (model, batch → loss and outputs) and `decode` (outputs, batch →
predicted label ids per position). Everything else — windows, training loop, metrics, reporting —
is shared and never branches on the family's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ner_ray.data.chunking import Window
from ner_ray.data.document import Document
from ner_ray.registry import Registry

IGNORE = -100  # label id of positions that carry no tag (special tokens, non-first subwords, padding)


@dataclass(frozen=True)
class LabelSet:
    """BIO labels over entity types: "O", then B-/I- for each type in order."""

    types: tuple[str, ...]

    @property
    def labels(self) -> list[str]:
        return ["O"] + [f"{prefix}-{t}" for t in self.types for prefix in ("B", "I")]

    def id(self, tag: str | None) -> int:
        return IGNORE if tag is None else self.labels.index(tag)

    def tag(self, label_id: int) -> str | None:
        return None if label_id == IGNORE else self.labels[label_id]


@dataclass
class Example:
    """One encoded window: the features the model sees and what decoding needs to map back."""

    window: Window
    features: dict[str, Any]
    offsets: list[tuple[int, int]]
    word_ids: list[int | None]
    misaligned: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Family(Protocol):
    """A model family; constructed with the study config, the tokenizer and the label set.

    A family with a per-example task beside tagging (multitask) also defines
    `decode_extra(model, outputs, batch)` → one prediction per example, which the Trainer collects
    beside the token ids, and `extra_metrics(predictions, examples)` → the metrics of those
    predictions (see `ner_ray.train.predict.decode_batch` and `extra_metrics`).
    """

    name: str
    sentence_windows: bool  # True: one example per sentence (a sentence-level task needs it)

    def build(self) -> Any: ...

    def encode(self, window: Window, doc: Document) -> Example:
        """The features of one window; `doc` is the document it was cut from (relations, context)."""
        ...

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]: ...

    def loss(self, model: Any, batch: dict[str, Any]) -> tuple[Any, dict[str, Any]]: ...

    def decode(self, model: Any, outputs: dict[str, Any], batch: dict[str, Any]) -> Any: ...


FAMILIES = Registry("model family")
FAMILIES.register("token_cls", "ner_ray.families.token_cls:TokenClassification")
FAMILIES.register("crf", "ner_ray.families.crf:CrfTagging")
FAMILIES.register("fusion", "ner_ray.families.fusion:FusionTagging")
FAMILIES.register("multitask", "ner_ray.families.multitask:Multitask")
