"""The Family protocol: everything that differs between model families, behind one interface.

A family owns its tokenizer, its model (`build`, `save`, `load`), its view of a window (`encode`,
`collate`), its loss, its decoding (`decode`: outputs → gatherable tensor rows, label ids for a tagger
or generated token ids for a language model; `spans`: one example and its row → spans in window
offsets, pure) and its optimiser parameter groups. Windows, the training loop, inference, scoring,
Tune and Serve call these and never branch on a family's name. Families register in ner_ray.registry.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ner_ray.config import StudyConfig
from ner_ray.data.chunking import Window
from ner_ray.data.document import Document, Relation, Span


@dataclass
class Example:
    """One encoded window: the features the model sees, and what its family needs to map a row back."""

    window: Window
    features: dict[str, Any]  # what `collate` batches: model inputs, and targets for the loss
    decoding: dict[str, Any] = field(default_factory=dict)  # the family's own (e.g. token offsets, prompt length)
    doc_index: int = -1  # the window's document in the list it was encoded from
    misaligned: int = 0  # gold spans this view cannot express exactly (counted in the parse report)


@dataclass(frozen=True)
class ParameterGroup:
    """Parameters that share a learning rate: `lr_multiplier` x train.lr."""

    name: str
    parameters: list
    lr_multiplier: float = 1.0


class Family(Protocol):
    """A model family, constructed as `Family(config, types, tokenizer=None)`: `types` are the entity types
    it predicts; with no tokenizer it loads its own (`load_tokenizer`) for `config.model.name`."""

    name: str
    config: StudyConfig
    types: tuple[str, ...]
    tokenizer: Any
    sentence_windows: bool  # True: one example per sentence (a sentence-level task needs it)
    predicts_relations: bool  # True: `relations` can return some, and relation F1 is scored
    typed_spans: bool  # False: the spans carry no type, and every F1 is scored as if all types were one
    generates_text: bool  # True: a causal LM (generative.CausalLmFamily), which Serve's completion routes use
    metric_names: tuple[str, ...]  # what `extra_metrics` returns (dev_<name> in the reports; a tune.metric may name one)

    @classmethod
    def load_tokenizer(cls, source: str | Path) -> Any:
        """The tokenizer as this family uses it (special tokens added, padding side set)."""
        ...

    def window_tokens(self) -> int:
        """How many tokens of text one window may hold (`ner_ray.inference.encode` cuts windows to it)."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def build(self) -> Any:
        """A new model to train."""
        ...

    def encode(self, window: Window, doc: Document | None = None) -> Example:
        """The features of one window. `window.spans` are its gold spans, the targets of the loss (none at
        inference); `doc` is the document it was cut from (relations, context), None for raw text."""
        ...

    def examples(self, window: Window, doc: Document | None = None) -> list[Example]:
        """Every example of one window, as `ner_ray.inference.encode` asks for them: `[encode(window, doc)]`, or one
        per task for a family that asks several questions of each window (instruct)."""
        ...

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]: ...

    def input_length(self, features: dict[str, Any]) -> int:
        """The tokens the model reads of one example's input, without any gold target (a causal LM's prompt
        alone): evaluation batches examples of like input lengths (`ner_ray.inference.encode.in_length_order`)."""
        ...

    def loss(self, model: Any, batch: dict[str, Any]) -> tuple[Any, dict[str, Any]]: ...

    def decode(self, model: Any, outputs: dict[str, Any], batch: dict[str, Any]) -> Any:
        """The batch's predictions as tensor rows (a tensor, or a tuple of tensors, with the batch first),
        which the HF Trainer gathers across workers and pads with -100."""
        ...

    def prediction_outputs(self, model: Any, batch: dict[str, Any]) -> dict[str, Any]:
        """The outputs `decode` reads when predicting outside the Trainer (`ner_ray.inference.predict`): those of
        `loss`, unless the family's prediction reads no forward of its own."""
        ...

    def predicting(self, model: Any) -> contextlib.AbstractContextManager[None]:
        """The context a whole prediction (many batches, one model that does not change) runs in: what can be
        prepared once for all its batches instead of at each (a causal LM's merged adapter)."""
        ...

    def spans(self, example: Example, row: Any) -> list[Span]:
        """Pure: the spans (window offsets) that one example's row stands for."""
        ...

    def relations(self, example: Example, row: Any) -> list[Relation]:
        """Pure: the document-level relations one example's row predicts (none for an NER-only family)."""
        ...

    def window_info(self, example: Example, row: Any) -> dict[str, Any]:
        """Pure: what else a row says about its window (a sentence class, counts of unusable output), kept
        in the predicted document's meta["windows"] for `extra_metrics`."""
        ...

    def extra_metrics(self, gold: list[Document], predicted: list[Document]) -> dict[str, float]:
        """Metrics beside entity F1, from gold and predicted documents (meta["windows"]); {} when none."""
        ...

    def set_full_decoding(self, full: bool) -> None:
        """Called before each training-time evaluation: False where a family may use a cheaper decoding (a
        generative family's teacher-forced parse between epoch ends), True for the full one (greedy decoding;
        also what every evaluation outside training uses)."""
        ...

    def parameter_groups(self, model: Any) -> list[ParameterGroup]: ...

    def save(self, model: Any, directory: Path) -> dict[str, Any]:
        """Write the trained weights into `directory` (safetensors); returns what `load` needs to know."""
        ...

    def load(self, directory: Path, saved: dict[str, Any]) -> Any:
        """The model `save` wrote (eval mode), given what `save` returned."""
        ...


class FamilyBase:
    """Defaults every family shares; a family overrides what it does differently."""

    name = "family"
    generates_text = False  # True: a causal LM (ner_ray.families.generative), servable as OpenAI completions
    sentence_windows = False
    predicts_relations = False
    typed_spans = True
    metric_names: tuple[str, ...] = ()

    def __init__(self, config: StudyConfig, types: tuple[str, ...] | list[str], tokenizer: Any = None):
        from ner_ray.families.models import resolve_model

        self.config = config
        self.types = tuple(types)
        self.tokenizer = tokenizer if tokenizer is not None else self.load_tokenizer(resolve_model(config.model.name))

    @classmethod
    def load_tokenizer(cls, source: str | Path) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(source))

    def window_tokens(self) -> int:
        return self.config.data.max_length - self.tokenizer.num_special_tokens_to_add()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def examples(self, window: Window, doc: Document | None = None) -> list[Example]:
        return [self.encode(window, doc)]  # type: ignore[attr-defined]  (every family defines encode)

    def relations(self, example: Example, row: Any) -> list[Relation]:
        return []

    def window_info(self, example: Example, row: Any) -> dict[str, Any]:
        return {}

    def extra_metrics(self, gold: list[Document], predicted: list[Document]) -> dict[str, float]:
        return {}

    def set_full_decoding(self, full: bool) -> None:
        pass  # one decoding only

    def input_length(self, features: dict[str, Any]) -> int:
        return len(features["input_ids"])

    def prediction_outputs(self, model: Any, batch: dict[str, Any]) -> dict[str, Any]:
        return self.loss(model, batch)[1]  # type: ignore[attr-defined]  (every family defines loss)

    def predicting(self, model: Any) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def parameter_groups(self, model: Any) -> list[ParameterGroup]:
        return [ParameterGroup("all", [p for p in model.parameters() if p.requires_grad])]
