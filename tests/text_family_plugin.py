"""A fake text-generating family for the tests, registered as `gazetteer_text` when this module is named in
$NER_RAY_PLUGINS (as a user's own family would be).

Its "language model" reads a window's text (bytes in) and writes the window's entities as text (bytes out):
"Chemical <TAG> 0-7 ; 20-34 | Disease <TAG> 40-47", one span string per type. What it learns is a gazetteer:
in training mode its forward reads the target strings of the batch and remembers each mention's type; at
inference it writes the offsets of every remembered mention found in the text. Its one weight gives a
loss that falls. It never sees gold at inference: a window it has not learned from gets what the gazetteer
finds. So it stands in for a decoder-only LLM family — prompt → generated token ids (rows) → text → spans —
and goes through training-time evaluation, final scoring and `ner-ray evaluate` with no special case.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ner_ray.data.chunking import Window
from ner_ray.data.document import Document, Span
from ner_ray.data.span_string import format_span_string, parse_span_string
from ner_ray.families.base import Example, FamilyBase
from ner_ray.registry import FAMILIES

IGNORE = -100
TYPES_SEPARATOR = " | "
GAZETTEER_FILE = "gazetteer.json"


class ByteTokenizer:
    """Token ids are UTF-8 bytes + 1 (0 pads)."""

    pad_token_id = 0

    def encode(self, text: str) -> list[int]:
        return [b + 1 for b in text.encode("utf-8")]

    def decode(self, ids) -> str:
        return bytes(int(i) - 1 for i in ids if 0 < int(i) <= 256).decode("utf-8", errors="replace")

    def save_pretrained(self, directory: str | Path) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "byte_tokenizer.json").write_text(json.dumps({"kind": "utf-8 bytes + 1"}))


def format_target(spans: list[Span], types: tuple[str, ...]) -> str:
    return TYPES_SEPARATOR.join(f"{t} {format_span_string([s for s in spans if s.type == t])}" for t in types)


def parse_target(text: str, text_length: int) -> tuple[list[Span], int]:
    """(spans, invalid items) of a generated string; never raises."""
    spans, invalid = [], 0
    for part in text.split(TYPES_SEPARATOR):
        kind, _, body = part.strip().partition(" ")
        parsed = parse_span_string(body, text_length, span_type=kind or "Entity")
        spans += parsed.spans
        invalid += parsed.n_invalid
    return spans, invalid


class GazetteerLM(nn.Module):
    def __init__(self, tokenizer: ByteTokenizer, types: tuple[str, ...]):
        super().__init__()
        self.tokenizer = tokenizer
        self.types = types
        self.weight = nn.Parameter(torch.zeros(()))
        self.mentions: dict[str, str] = {}  # mention text -> type

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if self.training and labels is not None:
            for prompt_ids, target_ids in zip(input_ids, labels):
                prompt = self.tokenizer.decode(prompt_ids)
                spans, _ = parse_target(self.tokenizer.decode(target_ids), len(prompt))
                self.mentions.update({prompt[s.start:s.end]: s.type for s in spans})
        return {"loss": (self.weight - 1.0) ** 2}

    def generate(self, prompt: str) -> str:
        found: list[Span] = []
        taken = [False] * len(prompt)
        for mention in sorted(self.mentions, key=len, reverse=True):
            for match in re.finditer(rf"(?<!\w){re.escape(mention)}(?!\w)", prompt):
                if not any(taken[match.start():match.end()]):
                    found.append(Span(match.start(), match.end(), self.mentions[mention]))
                    taken[match.start():match.end()] = [True] * (match.end() - match.start())
        return format_target(found, self.types)


class GazetteerText(FamilyBase):
    name = "gazetteer_text"

    def __init__(self, config, types, tokenizer=None):
        super().__init__(config, types, tokenizer or ByteTokenizer())  # model.name names no tokenizer here

    @classmethod
    def load_tokenizer(cls, source) -> ByteTokenizer:
        return ByteTokenizer()

    def window_tokens(self) -> int:
        return self.config.data.max_length

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def build(self) -> GazetteerLM:
        return GazetteerLM(self.tokenizer, self.types)

    def encode(self, window: Window, doc: Document | None = None) -> Example:
        target = format_target(window.spans, self.types)
        features = {"input_ids": self.tokenizer.encode(window.text), "labels": self.tokenizer.encode(target)}
        return Example(window, features)

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        def padded(key: str, fill: int) -> torch.Tensor:
            longest = max(len(f[key]) for f in features)
            return torch.tensor([f[key] + [fill] * (longest - len(f[key])) for f in features], dtype=torch.long)

        return {"input_ids": padded("input_ids", 0), "labels": padded("labels", IGNORE)}

    def loss(self, model: GazetteerLM, batch: dict[str, torch.Tensor]):
        outputs = model(batch["input_ids"], batch.get("labels"))
        return outputs["loss"], outputs

    def decode(self, model: GazetteerLM, outputs, batch) -> torch.Tensor:
        model = getattr(model, "module", model)
        texts = [model.generate(self.tokenizer.decode(ids)) for ids in batch["input_ids"]]
        generated = [self.tokenizer.encode(text) for text in texts]
        longest = max(len(g) for g in generated)
        return torch.tensor([g + [IGNORE] * (longest - len(g)) for g in generated], dtype=torch.long)

    def spans(self, example: Example, row) -> list[Span]:
        return parse_target(self.tokenizer.decode([i for i in row if int(i) != IGNORE]), len(example.window.text))[0]

    def window_info(self, example: Example, row) -> dict[str, Any]:
        return {"invalid_items": parse_target(self.tokenizer.decode([i for i in row if int(i) != IGNORE]),
                                              len(example.window.text))[1]}

    def extra_metrics(self, gold: list[Document], predicted: list[Document]) -> dict[str, float]:
        return {"invalid_items": float(sum(w["invalid_items"] for doc in predicted for w in doc.meta["windows"]))}

    def save(self, model: GazetteerLM, directory: Path) -> dict[str, Any]:
        (directory / GAZETTEER_FILE).write_text(json.dumps({"weight": float(model.weight), "mentions": model.mentions}))
        return {"weights": "gazetteer"}

    def load(self, directory: Path, saved: dict[str, Any]) -> GazetteerLM:
        stored = json.loads((directory / GAZETTEER_FILE).read_text())
        model = self.build()
        with torch.no_grad():
            model.weight.fill_(stored["weight"])
        model.mentions = stored["mentions"]
        return model.eval()


if "gazetteer_text" not in FAMILIES:
    FAMILIES.register("gazetteer_text", GazetteerText)
