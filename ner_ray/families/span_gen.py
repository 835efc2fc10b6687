"""Family span_gen (seed 002): a causal LM reads `"<NER> {sentence} <TAG>"` and writes the sentence's entities
after `<TAG>` as offsets (`" 0-7 ; 20-34"`, the seed's format) or mentions (`" aspirin ; asthma attacks"`),
optionally typed (model.span_gen). Rows are (teacher-forced tokens, greedy tokens[, B/I/O head tags]): the fast
dev metric reads the head's tags (model.span_gen.token_head) or parses the teacher-forced tokens at every evaluation,
greedy decoding (grammar-constrained by default) fills the second at epoch ends, after training and at inference.
Beside F1 it reports invalid, hallucinated, duplicate and truncated output rates.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ner_ray.config import StudyConfig
from ner_ray.data.chunking import Window, spans_to_document
from ner_ray.data.document import Document, Span
from ner_ray.data.span_grammar import gold_reachable, span_grammar
from ner_ray.data.span_string import UNTYPED
from ner_ray.data.span_targets import RATE_GROUPS, ParsedCompletion, format_completion, parse_completion
from ner_ray.data.tagging import spans_to_tags, tags_to_spans
from ner_ray.families.base import Example
from ner_ray.families.generative import IGNORE, CausalLmFamily, rate
from ner_ray.families.tagger import LabelSet, enable_checkpointing
from ner_ray.metrics import count_entities, entity_scores

log = logging.getLogger(__name__)
NER, TAG = "<NER>", "<TAG>"
GAP_WARNING = 0.01  # a greedy F1 this far from the teacher-forced one usually means a formatting bug
HEAD_FILE = "token_head.safetensors"


class TokenHeadModel(nn.Module):
    """The causal LM and a B/I/O tagging head on its last hidden state (read at the prompt's sentence tokens)."""

    def __init__(self, lm: nn.Module, labels: int):
        super().__init__()
        self.lm = lm
        self.token_head = nn.Linear(lm.config.hidden_size, labels)

    @property
    def config(self) -> Any:
        return self.lm.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **lm_keywords: Any) -> Any:
        """The LM's output (with hidden states) and under `tags`, the head's logits at every position."""
        out = self.lm(input_ids=input_ids, attention_mask=attention_mask, **{**lm_keywords, "output_hidden_states": True})
        out["tags"] = self.token_head(out.hidden_states[-1])
        return out

    def activation_checkpointing_enable(self, activation_checkpointing_kwargs: dict | None = None, **options: Any) -> None:
        """HF Trainer's gradient checkpointing reaches the LM's layers (transformers >= 5.24 name)."""
        enable_checkpointing(self.lm, activation_checkpointing_kwargs, **options)

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None, **options: Any) -> None:
        self.activation_checkpointing_enable(gradient_checkpointing_kwargs, **options)


def lm_of(model: nn.Module) -> nn.Module:
    return model.lm if isinstance(model, TokenHeadModel) else model


class SpanGeneration(CausalLmFamily):
    """Prompt → span string, LoRA (PEFT; Unsloth on CUDA) or full fine-tuning of a causal LM."""

    name = "span_gen"
    special_tokens = (NER, TAG, "<O>", "<B>", "<I>")
    sentence_windows = True  # one sentence per prompt: the completion stays within max_new_tokens
    metric_names = ("fast_f1", "invalid_rate", "hallucination_rate", "duplicate_rate", "truncated_rate")  # dev metrics Tune may rank on

    def __init__(self, config: StudyConfig, types: tuple[str, ...] | list[str], tokenizer: Any = None):
        super().__init__(config, types, tokenizer)
        options = config.model.span_gen
        self.target, self.typed, self.constrained = options.target, options.typed, options.constrained
        self.any_order = options.item_order == "any"
        self.max_new_tokens = options.max_new_tokens
        self.typed_spans = options.typed
        self.token_head = options.token_head
        self.labels = LabelSet(self.types if self.typed else (UNTYPED,))
        self._constraint = None

    def prompt(self, text: str) -> str:
        """What the model reads; a client posts `"<NER> " + sentence + " <TAG>"` to /v1/completions."""
        return f"{NER} {text} {TAG}"

    def build(self) -> nn.Module:
        lm = self.build_lm()
        return TokenHeadModel(lm, len(self.labels.labels)) if self.token_head else lm

    def sentence_offsets(self, text: str) -> list[tuple[int, int]]:
        """Each prompt token's offsets in the sentence (leading space trimmed); (0, 0) for the prompt's own tokens."""
        prompt = self.prompt(text)
        first = len(NER) + 1  # the prompt is "<NER> " + text + " <TAG>"
        mapping = self.tokenizer(prompt, return_offsets_mapping=True)["offset_mapping"]
        offsets = []
        for a, b in mapping:
            while a < b and prompt[a].isspace():
                a += 1
            inside = first <= a < b <= first + len(text)
            offsets.append((a - first, b - first) if inside else (0, 0))
        return offsets

    def encode(self, window: Window, doc: Document | None = None) -> Example:
        writable = [s for s in window.spans if self.writable(s, window.text)]
        completion = format_completion(writable, window.text, self.target, self.typed)
        features = {**self.features(self.prompt(window.text), completion), "text": window.text}
        # gold the completion cannot carry (a mention holding ';'), or that the grammar cannot reach (off word bounds)
        lost = len(window.spans) - len(writable)
        unreachable = 0 if not self.constrained else sum(not gold_reachable(window.text, [s], self.target) for s in writable)
        decoding: dict[str, Any] = {}
        if self.token_head:
            offsets = self.sentence_offsets(window.text)
            assert len(offsets) == features["prompt_length"], "the prompt tokenised twice differently"
            spans = window.spans if self.typed else [Span(s.start, s.end, UNTYPED) for s in window.spans]
            tags = spans_to_tags(offsets, spans).tags
            features["bio"] = [IGNORE if o == (0, 0) else self.labels.id(t or "O") for o, t in zip(offsets, tags)]
            decoding["offsets"] = offsets
        return Example(window, features, decoding, misaligned=lost + unreachable)

    def writable(self, span: Span, text: str) -> bool:
        try:
            format_completion([span], text, self.target, self.typed)
        except ValueError:
            return False
        return True

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = {**super().collate(features), "texts": [f["text"] for f in features]}
        if self.token_head:
            width = batch["input_ids"].size(1)
            batch["bio"] = torch.tensor([f["bio"] + [IGNORE] * (width - len(f["bio"])) for f in features], dtype=torch.long)
        return batch

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        """The LM loss on the completion; with the token head, plus its cross-entropy on the sentence's tokens."""
        lm_loss, outputs, out = self.lm_loss(model, batch)
        if not self.token_head:
            return lm_loss, outputs
        tags = out["tags"]
        head_loss = nn.functional.cross_entropy(tags.flatten(0, 1).float(), batch["bio"].flatten(), ignore_index=IGNORE)
        return lm_loss + head_loss, {**outputs, "tags": tags}

    def decode(self, model: nn.Module, outputs: dict[str, Any], batch: dict[str, Any]) -> tuple[torch.Tensor, ...]:
        """`lm_rows` (teacher-forced tokens, greedy tokens under the grammar or IGNORE)[, the token head's label ids
        at the sentence's tokens]."""
        lm = lm_of(model)
        processor = None
        if self.constrained and self.full_decoding:
            processor = self.grammar_processor(lm, [self.grammar(text) for text in batch["texts"]])
        rows: tuple[torch.Tensor, ...] = self.lm_rows(lm, outputs, batch, processor)
        if self.token_head:
            tags = outputs["tags"].argmax(-1)
            rows += (torch.where(batch["bio"] != IGNORE, tags, torch.full_like(tags, IGNORE)),)
        return rows

    def grammar(self, text: str) -> str:
        return span_grammar(text, self.target, self.typed, self.types, self.any_order)

    def grammar_processor(self, lm: nn.Module, grammars: list[str]) -> Any:
        if self._constraint is None:
            from ner_ray.families.constrained import SpanConstraint

            self._constraint = SpanConstraint(self.tokenizer, lm.config.vocab_size)  # rows of the resized embedding
        return self._constraint.logits_processor(grammars)

    # ------------------------------------------------------------------------------------------- serving
    def causal_lm(self, model: nn.Module) -> nn.Module:
        return lm_of(model)

    def example_prompt(self, example: Example) -> tuple[list[int], str | None]:
        ids, _ = super().example_prompt(example)
        return ids, self.grammar(example.window.text) if self.constrained else None

    def generated_row(self, ids: list[int]) -> tuple[torch.Tensor, ...]:
        """As `decode`'s rows; the token head's tags are not computed by another engine (its fast_f1 then reads none)."""
        row = super().generated_row(ids)
        return row + (torch.tensor([IGNORE]),) if self.token_head else row

    def prompt_grammar(self, prompt: str) -> str | None:
        """A served prompt written as this family writes them (`"<NER> {sentence} <TAG>"`, the seed client's) is
        decoded under the sentence's grammar when model.span_gen.constrained, as evaluation decodes; else free."""
        head, tail = f"{NER} ", f" {TAG}"
        if not self.constrained or not (prompt.startswith(head) and prompt.endswith(tail)) or len(prompt) < len(head + tail):
            return None
        text = prompt[len(head):-len(tail)]
        return self.grammar(text) if self.prompt(text) == prompt else None

    def head_spans(self, example: Example, row: Any) -> list[Span]:
        """The token head's B/I/O chunks, in sentence offsets."""
        offsets = example.decoding["offsets"]
        ids = [int(i) for i in list(row[2])[: len(offsets)]]
        tags = [None if i == IGNORE else self.labels.tag(i) for i in ids]
        return tags_to_spans(offsets, tags + [None] * (len(offsets) - len(ids)))

    # ------------------------------------------------------------------------------------------ reading rows
    def parse(self, example: Example, ids: Any) -> ParsedCompletion:
        return parse_completion(self.completion(ids), example.window.text, self.target, self.typed, self.types)

    def read(self, example: Example, row: Any) -> tuple[ParsedCompletion, bool]:
        """(the parsed output `output_text` reads, whether the greedy output was truncated)."""
        text, truncated = self.output_text(row)
        return parse_completion(text, example.window.text, self.target, self.typed, self.types), truncated

    def spans(self, example: Example, row: Any) -> list[Span]:
        """The greedy output's spans where this evaluation generated, else the teacher-forced ones."""
        return self.read(example, row)[0].spans

    def window_info(self, example: Example, row: Any) -> dict[str, Any]:
        fast = self.head_spans(example, row) if self.token_head else self.parse(example, row[0]).spans
        used, truncated = self.read(example, row)
        return {"fast_spans": [[s.start, s.end, s.type] for s in fast], "greedy": self.generated(row),
                "gold_items": len(example.window.spans), "items": used.n_items, "invalid": dict(used.invalid),
                "alignment": dict(used.alignment), "truncated": truncated}

    def extra_metrics(self, gold: list[Document], predicted: list[Document]) -> dict[str, float]:
        """The item rates of the decoding that made the spans; where the windows were encoded with their gold (dev
        during training: teacher forcing needs targets, and windows read from the text alone have none), fast_f1
        (teacher-forced) and, where greedy output made the spans, its gap to fast_f1 (warned above GAP_WARNING)."""
        windows = [w for doc in predicted for w in doc.meta.get("windows", [])]
        invalid = sum((Counter(w.get("invalid", {})) for w in windows), Counter())
        alignment = sum((Counter(w.get("alignment", {})) for w in windows), Counter())
        items = sum(w.get("items", 0) for w in windows)
        metrics = {
            "invalid_rate": rate(invalid, RATE_GROUPS["invalid_output"], items),
            "hallucination_rate": rate(invalid, RATE_GROUPS["hallucinated"], items),
            "duplicate_rate": rate(invalid, RATE_GROUPS["duplicate"], items),
            "generated_items": float(items),
            # outputs cut by max_new_tokens (their last item dropped): raise model.span_gen.max_new_tokens if high
            "truncated_rate": sum(bool(w.get("truncated")) for w in windows) / len(windows) if windows else 0.0,
        }
        if self.target == "mentions":
            metrics["fuzzy_alignment_rate"] = rate(alignment, ("fuzzy",), items)
        if not any(w.get("gold_items") for w in windows):
            return metrics
        fast_docs = [doc.with_spans(self.fast_spans(doc)) for doc in predicted]
        fast_f1 = self.f1(gold, fast_docs)
        metrics["fast_f1"] = float(fast_f1)
        if all(w.get("greedy") for w in windows):
            greedy_f1 = self.f1(gold, predicted)
            metrics["greedy_fast_gap"] = float(greedy_f1 - fast_f1)
            if abs(greedy_f1 - fast_f1) > GAP_WARNING:
                log.warning("span_gen: greedy F1 %.4f vs teacher-forced F1 %.4f (gap %.4f > %.2f): the greedy output "
                            "drifts from what teacher forcing predicts (a formatting bug is the usual cause)",
                            greedy_f1, fast_f1, greedy_f1 - fast_f1, GAP_WARNING)
        return metrics

    def f1(self, gold: list[Document], predicted: list[Document]) -> float:
        """Micro F1 as this family is scored: strict with types, or untyped."""
        return entity_scores(count_entities(gold, predicted, "strict" if self.typed_spans else "untyped"))["micro"].f1

    @staticmethod
    def fast_spans(doc: Document) -> list[Span]:
        spans: dict[tuple, Span] = {}
        for w in doc.meta.get("windows", []):
            window = Window(doc.id, 0, w["start"], doc.text[w["start"]:w["end"]])
            for span in spans_to_document(window, [Span(s, e, t) for s, e, t in w.get("fast_spans", [])]):
                spans.setdefault(span.key, span)
        return sorted(spans.values(), key=lambda s: (s.start, s.end, s.type))

    # ------------------------------------------------------------------------------------------ save / load
    def save(self, model: nn.Module, directory: Path) -> dict[str, Any]:
        if isinstance(model, TokenHeadModel):
            save_file({k: v.contiguous() for k, v in model.token_head.state_dict().items()}, directory / HEAD_FILE)
        return {"weights": self.save_lm(lm_of(model), directory)}

    def load(self, directory: Path, saved: dict[str, Any]) -> nn.Module:
        lm = self.load_lm(directory, saved["weights"])
        if not self.token_head:
            return lm.eval()
        model = TokenHeadModel(lm, len(self.labels.labels))
        model.token_head.load_state_dict(load_file(directory / HEAD_FILE))
        return model.eval()

    def merged(self, model: nn.Module) -> nn.Module:
        return super().merged(lm_of(model))  # the export generates: the token head has no part in it
