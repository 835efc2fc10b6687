"""The encoder tagger every encoder family builds on: encoder → dropout → token classifier,
with an optional CRF over the tagged positions and an optional sentence head on the first token.

`EncoderFamily` holds what the encoder families share: loading the encoder (optionally with LoRA),
encoding a window into subword BIO labels, padding a batch, and token cross-entropy / argmax.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ner_ray.config import StudyConfig
from ner_ray.data.chunking import Window
from ner_ray.data.document import Document
from ner_ray.data.tagging import encode_subword_bio
from ner_ray.families import peft as peft_seam
from ner_ray.families.base import IGNORE, Example, LabelSet
from ner_ray.families.models import resolve_model

PADDED_KEYS = {"input_ids": None, "attention_mask": 0, "labels": IGNORE, "label_mask": 0, "token_type_ids": 0}


class TaggerModel(nn.Module):
    """Encoder + token classifier (+ CRF, + sentence head); forward returns a dict of logits."""

    def __init__(self, encoder: nn.Module, num_labels: int, dropout: float, crf: bool = False, sentence_classes: int = 0):
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, num_labels)
        if crf:
            from torchcrf import CRF

            self.crf = CRF(num_labels, batch_first=True)
        else:
            self.crf = None
        self.sentence_head = nn.Linear(hidden, sentence_classes) if sentence_classes else None

    def forward(self, input_ids, attention_mask, token_type_ids=None, crf_labels=None, label_mask=None,
                **_: Any) -> dict[str, torch.Tensor]:
        """Logits (and sentence logits); with a CRF and `crf_labels`, also `crf_nll`, the mean negative
        log-likelihood of the tags at the `label_mask` positions (computed here, inside forward, so that
        DistributedDataParallel sees the CRF parameters used)."""
        kwargs = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state
        hidden = self.dropout(hidden)
        outputs = {"logits": self.classifier(hidden)}
        if self.sentence_head is not None:
            outputs["sentence_logits"] = self.sentence_head(hidden[:, 0])
        if self.crf is not None and crf_labels is not None:
            mask = label_mask.bool()
            emissions, packed_mask = pack(outputs["logits"].float(), mask)
            tags, _ = pack(crf_labels, mask, fill=0)
            outputs["crf_nll"] = -self.crf(emissions, tags, mask=packed_mask, reduction="mean")
        return outputs

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        """Every weight outside the encoder (classifier, CRF, sentence head)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.")}

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs: dict | None = None, **options: Any) -> None:
        """Called by HF Trainer when train.gradient_checkpointing is on (transformers >= 5.24 passes
        every_n_layers and offload as `options`); the encoder's layers recompute their activations."""
        enable = getattr(self.encoder, "activation_checkpointing_enable", None)
        if enable is not None:
            enable(activation_checkpointing_kwargs=activation_checkpointing_kwargs, **options)
        else:  # transformers before 5.24
            self.encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs=activation_checkpointing_kwargs)

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None, **options: Any) -> None:
        """The older name of `activation_checkpointing_enable`."""
        self.activation_checkpointing_enable(gradient_checkpointing_kwargs, **options)


def pack(values: torch.Tensor, mask: torch.Tensor, fill: float | int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Move the masked positions of each row to its front: (packed values, packed mask)."""
    lengths = mask.sum(1)
    width = max(int(lengths.max()), 1)
    # A stable sort on "not masked" puts masked positions first, in their original order.
    order = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices[:, :width]
    index = order if values.dim() == 2 else order.unsqueeze(-1).expand(-1, -1, values.size(-1))
    packed = values.gather(1, index)
    packed_mask = torch.arange(width, device=mask.device).unsqueeze(0) < lengths.unsqueeze(1)
    packed_mask[:, 0] = True  # torchcrf needs the first step on; a row without tags then scores one "O"
    if values.dim() == 2:
        packed = packed.masked_fill(~packed_mask, fill)
    return packed, packed_mask


def unwrap(model: nn.Module) -> nn.Module:
    """The model itself under a DistributedDataParallel (or DeepSpeed) wrapper, for its heads' attributes."""
    return getattr(model, "module", model)


def load_encoder(config: StudyConfig) -> nn.Module:
    """The pretrained encoder named by model.name, with a LoRA adapter when model.lora is set."""
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(resolve_model(config.model.name), add_pooling_layer=False)
    if config.model.lora is not None:
        encoder = peft_seam.add_lora(encoder, config.model.lora)
    return encoder


def pad(features: list[dict[str, Any]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pad variable-length features to the longest in the batch (dynamic padding); scalars are stacked."""
    batch: dict[str, torch.Tensor] = {}
    longest = max(len(f["input_ids"]) for f in features)
    for key in features[0]:
        values = [f[key] for f in features]
        if key in PADDED_KEYS:
            fill = pad_token_id if key == "input_ids" else PADDED_KEYS[key]
            batch[key] = torch.tensor([v + [fill] * (longest - len(v)) for v in values], dtype=torch.long)
        else:
            batch[key] = torch.tensor(values)
    return batch


class EncoderFamily:
    """Shared parts of the encoder families (token_cls, crf, multitask): subclasses set the head."""

    name = "encoder"
    sentence_windows = False
    crf = False
    sentence_classes = 0

    def __init__(self, config: StudyConfig, tokenizer, labels: LabelSet):
        self.config = config
        self.tokenizer = tokenizer
        self.labels = labels

    def build(self) -> TaggerModel:
        return self.build_on(load_encoder(self.config))

    def build_on(self, encoder: nn.Module) -> TaggerModel:
        """The tagger around a given encoder (a freshly loaded one, or one restored from disk)."""
        return TaggerModel(encoder, len(self.labels.labels), self.config.model.head.dropout,
                           crf=self.crf, sentence_classes=self.sentence_classes)

    def encode(self, window: Window, doc: Document | None = None) -> Example:
        scheme = self.config.data.label_scheme
        enc = encode_subword_bio(window.text, window.spans, self.tokenizer, scheme=scheme)
        labels = [self.labels.id(tag) for tag in enc.tags]
        features = {
            "input_ids": enc.input_ids,
            "attention_mask": [1] * len(enc.input_ids),
            "labels": labels,
            "label_mask": [int(tag is not None) for tag in enc.tags],
        }
        return Example(window, features, enc.offsets, enc.word_ids, misaligned=len(enc.misaligned) + len(enc.overlapping))

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return pad(features, self.tokenizer.pad_token_id)

    def loss(self, model: TaggerModel, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        logits = outputs["logits"]
        loss = nn.functional.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=IGNORE)
        return loss, outputs

    def decode(self, model: TaggerModel, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Predicted label ids at the tagged positions (label_mask), IGNORE elsewhere."""
        ids = outputs["logits"].argmax(-1)
        return torch.where(batch["label_mask"].bool(), ids, torch.full_like(ids, IGNORE))
