"""The encoder tagger every encoder family builds on: encoder → dropout → token classifier, with an
optional CRF over the tagged positions and an optional sentence head on the first token.

`EncoderFamily` holds what the encoder families share: BIO labels over subwords (`LabelSet`; decoding
ids back to spans through the tokenizer's offsets), loading the encoder (optionally with LoRA), padding a
batch, token cross-entropy / argmax, the head's learning rate, and the saved layout (adapter/ or
encoder/, head.safetensors).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ner_ray.config import StudyConfig
from ner_ray.data.chunking import Window
from ner_ray.data.document import Document, Span
from ner_ray.data.tagging import decode_subword_bio, encode_subword_bio
from ner_ray.families import peft as peft_seam
from ner_ray.families.base import Example, FamilyBase, ParameterGroup
from ner_ray.families.models import resolve_model

FORBIDDEN = -1.0e4  # the score of a transition BIO forbids: no sum of log-probabilities outweighs it
IGNORE = -100  # label id of positions that carry no tag (special tokens, non-first subwords, padding)
ADAPTER_DIR = "adapter"  # a saved LoRA model: the PEFT adapter (the base is reloaded by name)
ENCODER_DIR = "encoder"  # a saved full (or merged) model: the whole encoder
HEAD_FILE = "head.safetensors"  # classifier, CRF and sentence head


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
        enable_checkpointing(self.encoder, activation_checkpointing_kwargs, **options)

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None, **options: Any) -> None:
        """The older name of `activation_checkpointing_enable`."""
        self.activation_checkpointing_enable(gradient_checkpointing_kwargs, **options)


def enable_checkpointing(inner: nn.Module, kwargs: dict | None = None, **options: Any) -> None:
    """Turn on activation checkpointing in the HF model a wrapper holds, under either transformers name."""
    enable = getattr(inner, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs=kwargs, **options)
    else:  # transformers before 5.24
        inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


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


def viterbi_ids(crf: nn.Module, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The best label ids under `crf`'s transitions (a torchcrf CRF) given per-position `scores`, at the `mask`
    positions (bool); IGNORE elsewhere."""
    emissions, packed_mask = pack(scores, mask)
    best = crf.decode(emissions, mask=packed_mask)
    ids = torch.full(mask.shape, IGNORE, dtype=torch.long, device=scores.device)
    for row, path in enumerate(best):
        positions = mask[row].nonzero().flatten()
        ids[row, positions] = torch.tensor(path[: len(positions)], dtype=ids.dtype, device=ids.device)
    return ids


def bio_crf(labels: LabelSet, learned: nn.Module | None = None) -> nn.Module:
    """A torchcrf CRF whose Viterbi path is always valid BIO: I-X only after B-X or I-X, never first. Its scores
    are `learned`'s (a trained CRF) or 0, with FORBIDDEN added on the transitions BIO forbids; over a softmax
    head's log-probabilities its Viterbi path is the most probable valid tag sequence."""
    from torchcrf import CRF

    tags = labels.labels
    n = len(tags)
    inside = [j for j, tag in enumerate(tags) if tag.startswith("I-")]
    start, transitions, end = torch.zeros(n), torch.zeros(n, n), torch.zeros(n)
    for j in inside:
        start[j] = FORBIDDEN
        allowed = {tags.index(f"B-{tags[j][2:]}"), j}
        for i in range(n):
            if i not in allowed:
                transitions[i, j] = FORBIDDEN
    with torch.random.fork_rng(devices=[]):  # CRF() draws its initial scores: decoding must not move training's RNG
        crf = CRF(n, batch_first=True).requires_grad_(False)
    with torch.no_grad():
        for name, penalty in (("start_transitions", start), ("transitions", transitions), ("end_transitions", end)):
            base = getattr(learned, name).detach().float().cpu() if learned is not None else torch.zeros_like(penalty)
            getattr(crf, name).copy_(base + penalty)
    return crf


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


class EncoderFamily(FamilyBase):
    """Shared parts of the encoder families (token_cls, crf, multitask, fusion): subclasses set the head."""

    name = "encoder"
    crf = False
    sentence_classes = 0

    def __init__(self, config: StudyConfig, types: tuple[str, ...] | list[str], tokenizer: Any = None):
        super().__init__(config, types, tokenizer)
        self.labels = LabelSet(self.types)

    def build(self) -> TaggerModel:
        return self.build_on(load_encoder(self.config))

    def build_on(self, encoder: nn.Module) -> TaggerModel:
        """The tagger around a given encoder (a freshly loaded one, or one restored from disk)."""
        return TaggerModel(encoder, len(self.labels.labels), self.config.model.head.dropout,
                           crf=self.crf, sentence_classes=self.sentence_classes)

    def encode(self, window: Window, doc: Document | None = None) -> Example:
        scheme = self.config.data.label_scheme
        enc = encode_subword_bio(window.text, window.spans, self.tokenizer, scheme=scheme)
        features = {
            "input_ids": enc.input_ids,
            "attention_mask": [1] * len(enc.input_ids),
            "labels": [self.labels.id(tag) for tag in enc.tags],
            "label_mask": [int(tag is not None) for tag in enc.tags],
        }
        return Example(window, features, {"offsets": enc.offsets, "word_ids": enc.word_ids},
                       misaligned=len(enc.misaligned) + len(enc.overlapping))

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return pad(features, self.tokenizer.pad_token_id)

    def loss(self, model: TaggerModel, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        logits = outputs["logits"]
        loss = nn.functional.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=IGNORE)
        return loss, outputs

    def decode(self, model: TaggerModel, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Predicted label ids at the tagged positions (label_mask), IGNORE elsewhere: each position's argmax, or
        with model.head.constrained the most probable tag sequence that is valid BIO."""
        mask = batch["label_mask"].bool()
        if self.config.model.head.constrained:
            scores = outputs["logits"].float().log_softmax(-1).cpu()
            return viterbi_ids(self.valid_bio, scores, mask.cpu()).to(mask.device)
        ids = outputs["logits"].argmax(-1)
        return torch.where(mask, ids, torch.full_like(ids, IGNORE))

    @functools.cached_property
    def valid_bio(self) -> nn.Module:
        """The CRF (fixed scores, nothing learned) whose Viterbi decoding keeps a softmax head's tags valid BIO."""
        return bio_crf(self.labels)

    def spans(self, example: Example, row: Any) -> list[Span]:
        """BIO chunks of the row's label ids (positions past the example's length are padding)."""
        offsets, word_ids = example.decoding["offsets"], example.decoding["word_ids"]
        ids = [int(i) for i in list(row)[: len(offsets)]]
        tags = [self.labels.tag(i) for i in ids] + [None] * (len(offsets) - len(ids))
        return decode_subword_bio(offsets, word_ids, tags, self.config.data.label_scheme)

    def parameter_groups(self, model: nn.Module) -> list[ParameterGroup]:
        """The encoder at train.lr, the head (classifier, CRF, sentence head, fusion weights) at lr x
        model.head.lr_multiplier."""
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        encoder = [p for n, p in trainable if n.startswith("encoder.")]
        head = [p for n, p in trainable if not n.startswith("encoder.")]
        return [ParameterGroup("encoder", encoder), ParameterGroup("head", head, self.config.model.head.lr_multiplier)]

    def save(self, model: TaggerModel, directory: Path) -> dict[str, Any]:
        """The LoRA adapter alone (when only adapters and head trained) or the whole encoder (merged, after
        unfreezing), and the head; all safetensors."""
        encoder = model.encoder
        adapter_only = peft_seam.is_peft(encoder) and not any(
            p.requires_grad for n, p in encoder.named_parameters() if "lora_" not in n)
        if adapter_only:
            peft_seam.save_adapter(encoder, directory / ADAPTER_DIR)
        else:
            peft_seam.merged_model(encoder).save_pretrained(directory / ENCODER_DIR, safe_serialization=True)
        save_file({k: v.contiguous() for k, v in model.head_state_dict().items()}, directory / HEAD_FILE)
        return {"weights": "adapter" if adapter_only else "encoder"}

    def load(self, directory: Path, saved: dict[str, Any]) -> TaggerModel:
        from transformers import AutoModel

        if not (directory / HEAD_FILE).is_file():
            raise FileNotFoundError(f"{directory} is no saved encoder model: {HEAD_FILE} is missing")
        if saved["weights"] == "adapter":
            base = AutoModel.from_pretrained(resolve_model(self.config.model.name), add_pooling_layer=False)
            encoder = peft_seam.load_adapter(base, directory / ADAPTER_DIR)
        else:
            encoder = AutoModel.from_pretrained(directory / ENCODER_DIR, add_pooling_layer=False)
        model = self.build_on(encoder)
        missing, unexpected = model.load_state_dict(load_file(directory / HEAD_FILE), strict=False)
        assert not unexpected and all(k.startswith("encoder.") for k in missing), (missing, unexpected)
        return model.eval()
