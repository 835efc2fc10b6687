"""The causal-LM base of the generative families (span_gen; instruct builds on it too): the tokenizer with the
family's special tokens (pad = eos, left padding for generation), loading the model (PEFT, or Unsloth on CUDA)
with LoRA and the new tokens' embedding rows trainable, prompt + completion features with the prompt masked,
batched greedy generation, and the saved layout (adapter/ or lm/, safetensors).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ner_ray.families import peft as peft_seam
from ner_ray.families.base import FamilyBase
from ner_ray.families.models import resolve_model

log = logging.getLogger(__name__)
IGNORE = -100  # label of prompt and padding positions, and the fill of generated rows
# transformers model types whose causal-LM logits are their output head on the last hidden state, nothing after it (no
# logit scaling or soft-capping): their loss reads the head at the completion's positions only (`head_at_labels`)
PLAIN_HEAD_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})
ADAPTER_DIR = "adapter"  # a saved LoRA model: the PEFT adapter (LoRA + the new tokens' rows); the base reloads by name
LM_DIR = "lm"  # a saved full fine-tune: the whole causal LM


def pad_right(rows: list[list[int]], fill: int) -> torch.Tensor:
    longest = max(len(r) for r in rows)
    return torch.tensor([r + [fill] * (longest - len(r)) for r in rows], dtype=torch.long)


def pad_left(rows: list[list[int]], fill: int) -> torch.Tensor:
    longest = max(len(r) for r in rows)
    return torch.tensor([[fill] * (longest - len(r)) + r for r in rows], dtype=torch.long)


def rate(counts: Any, kinds: tuple[str, ...], items: int) -> float:
    """The share of `items` counted under any of `kinds` (0.0 for no items): a generative family's output rates."""
    return sum(counts[k] for k in kinds) / items if items else 0.0


@contextlib.contextmanager
def weights_cast_once(model: nn.Module) -> Iterator[None]:
    """Within the block, under autocast, each floating weight of `model` is cast to the autocast dtype once, not at every
    call. Autocast keeps the casts of leaf tensors that require grad only, so a frozen weight (a LoRA model's base; a
    whole model at inference) is cast again at every generated token: for SmolLM2-135M in bf16 that is all 135M weights
    a step, several times the matmuls of a batch of one on a CPU. The weights count as requiring grad inside the block
    (generation runs under no_grad, so nothing records a graph), the same casts are reused, and autocast's cache is
    cleared on the way out, since the weights may change after it (unmerged adapters, optimizer steps). Nested in
    such a block (no frozen weight left), it leaves the cache to that block; sharded (ZeRO-3) weights stay as they are."""
    device = next(model.parameters()).device.type
    frozen = [p for p in model.parameters() if p.is_floating_point() and not p.requires_grad]
    sharded = any(hasattr(p, "ds_id") for p in frozen)
    if sharded or not (frozen and torch.is_autocast_enabled(device) and torch.is_autocast_cache_enabled()):
        yield
        return
    for parameter in frozen:
        parameter.requires_grad_(True)
    try:
        yield
    finally:
        for parameter in frozen:
            parameter.requires_grad_(False)
        torch.clear_autocast_cache()


@contextlib.contextmanager
def generation_weights(lm: nn.Module) -> Iterator[None]:
    """The weights as generation reads them: the adapter merged (`peft.adapter_merged`), each weight cast once
    (`weights_cast_once`). Around one `generate` call, or a whole prediction; nested, the inner block does nothing."""
    with peft_seam.adapter_merged(lm), weights_cast_once(lm):
        yield


def check_quantizable(quantize: str) -> None:
    """model.quantize needs CUDA and bitsandbytes (also checked by the pre-flight, before Ray starts)."""
    if not torch.cuda.is_available():
        raise ValueError(f"model.quantize {quantize} (QLoRA, bitsandbytes) needs a CUDA GPU; on CPU set model.quantize: null")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ImportError(f"model.quantize {quantize} needs the bitsandbytes package: pip install 'ner_ray[gpu]'")


def quantization_config(quantize: str, compute_dtype: torch.dtype) -> Any:
    """transformers' bitsandbytes settings: 4-bit NF4 with double quantization computing in `compute_dtype` (QLoRA's
    recipe), or 8-bit (LLM.int8)."""
    from transformers import BitsAndBytesConfig

    if quantize == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=compute_dtype)
    return BitsAndBytesConfig(load_in_8bit=True)


def use_unsloth(backend: str) -> bool:
    """model.backend made concrete: unsloth where asked for (CUDA only) or, with auto, on CUDA where installed."""
    if backend == "peft":
        return False
    installed = importlib.util.find_spec("unsloth") is not None
    if backend == "unsloth":
        if not torch.cuda.is_available():
            raise ValueError("model.backend unsloth needs a CUDA GPU; on this machine use model.backend: peft (or auto)")
        if not installed:
            raise ImportError("model.backend unsloth needs the unsloth package: pip install 'ner_ray[gpu]'")
        return True
    return installed and torch.cuda.is_available()


def causal_lm_inside(model: nn.Module) -> nn.Module:
    """The *ForCausalLM inside a training wrapper (DDP, a DeepSpeed engine: `.module`), a model with a head beside
    the LM (`.lm`) and PEFT (its base model, LoRA layers in place)."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "lm", None)
        if not isinstance(inner, nn.Module):
            break
        model = inner
    return model.get_base_model() if peft_seam.is_peft(model) else model


class CausalLmFamily(FamilyBase):
    """What the generative families share; a subclass sets `special_tokens` and writes prompts and completions."""

    name = "causal_lm"
    generates_text = True  # Serve's /v1/completions and /v1/chat/completions answer with it
    token_head = False  # True: a B/I/O head reads the forward's hidden states (span_gen's model.span_gen.token_head)
    special_tokens: tuple[str, ...] = ()
    max_new_tokens = 64
    full_decoding = True  # False between epoch ends during training: teacher-forced rows only (`set_full_decoding`)
    _head_at_labels: bool | None = None  # `head_at_labels`, once decided

    @classmethod
    def load_tokenizer(cls, source: str | Path) -> Any:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(source))
        missing = [t for t in cls.special_tokens if t not in tokenizer.get_vocab()]
        if missing:  # a saved tokenizer has them already
            tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
        tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        return tokenizer

    def special_token_ids(self) -> list[int]:
        return self.tokenizer.convert_tokens_to_ids(list(self.special_tokens))

    # ------------------------------------------------------------------------------------------- model
    def _dtype(self) -> torch.dtype:
        """Weights in bf16 on a bf16 GPU (an 8B model does not fit in fp32); fp32 on CPU, where the HF Trainer
        autocasts to bf16 and LoRA wants fp32 master weights anyway."""
        precision = self.config.train.precision
        bf16 = torch.cuda.is_available() and precision in ("auto", "bf16") and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16 else torch.float32

    def _base(self, source: str, quantize: str | None = None) -> nn.Module:
        from transformers import AutoModelForCausalLM

        quantized = {"quantization_config": quantization_config(quantize, self._dtype())} if quantize else {}
        model = AutoModelForCausalLM.from_pretrained(source, dtype=self._dtype(), **quantized)
        self._resize(model)
        model.generation_config.pad_token_id = self.tokenizer.eos_token_id
        return model

    def load_quantized(self) -> str | None:
        """model.quantize where a saved model is loaded: the trained bits on a CUDA machine with bitsandbytes; on
        any other machine (a CPU evaluating a GPU-trained QLoRA adapter) the base at full precision."""
        quantize = self.config.model.quantize
        if quantize and not (torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes")):
            log.warning("model.quantize %s: no CUDA or no bitsandbytes here, the base loads at full precision", quantize)
            return None
        return quantize

    def _resize(self, model: nn.Module) -> None:
        """Rows for the added special tokens, drawn with a fixed seed: a saved adapter carries the trained input
        rows, and an untied output head's new rows are then the same at every load."""
        if model.get_input_embeddings().num_embeddings < len(self.tokenizer):
            with torch.random.fork_rng():
                torch.manual_seed(0)
                model.resize_token_embeddings(len(self.tokenizer), mean_resizing=True)

    def build_lm(self) -> nn.Module:
        """The causal LM to train: LoRA (with the special tokens' rows) when model.lora is set, else all weights."""
        lora, quantize = self.config.model.lora, self.config.model.quantize
        if quantize:
            check_quantizable(quantize)
        if use_unsloth(self.config.model.backend):
            return self._build_unsloth()
        model = self._base(resolve_model(self.config.model.name), quantize)
        if lora is None:
            return model
        if quantize:
            model = peft_seam.prepare_quantized(model, self.config.train.gradient_checkpointing)
        return peft_seam.add_causal_lm_lora(model, lora, self.special_token_ids())

    def load_base(self) -> nn.Module:
        """The base model, without adapters, at full precision (what adapters are combined on)."""
        return self._base(resolve_model(self.config.model.name))

    def combined_config(self, configs: list[Any]) -> Any:
        """The settings of a model whose adapter combines those of models trained with `configs` (this family's first)."""
        return self.config

    def _build_unsloth(self) -> nn.Module:
        model = peft_seam.load_unsloth_causal_lm(resolve_model(self.config.model.name), self._dtype(),
                                                 self.config.data.max_length, self.config.model.quantize)
        self._resize(model)
        if self.config.model.lora is None:
            return model
        return peft_seam.add_unsloth_lora(model, self.config.model.lora, self.config.train.gradient_checkpointing)

    def save_lm(self, lm: nn.Module, directory: Path) -> str:
        """The adapter alone (LoRA) or the whole LM (full fine-tune), safetensors; returns which."""
        if peft_seam.is_peft(lm):
            # the new tokens' rows are in the adapter already; the resized embedding itself is the base's, re-made at load
            peft_seam.save_adapter(lm, directory / ADAPTER_DIR, save_embedding_layers=False)
            return "adapter"
        lm.save_pretrained(directory / LM_DIR, safe_serialization=True)
        return "lm"

    def load_lm(self, directory: Path, weights: str) -> nn.Module:
        if weights == "adapter":
            base = self._base(resolve_model(self.config.model.name), self.load_quantized())
            return peft_seam.load_adapter(base, directory / ADAPTER_DIR)
        if not (directory / LM_DIR).is_dir():
            raise FileNotFoundError(f"{directory} is no saved causal-LM model: {LM_DIR}/ is missing")
        return self._base(str(directory / LM_DIR))

    # ----------------------------------------------------------------------------------------- features
    def window_tokens(self) -> int:
        """Text tokens a window may hold: data.max_length less the generated tokens and the prompt's own."""
        overhead = max(len(self.prompt_ids(p)) for p in self.empty_prompts()) + 2  # the prompt's own tokens, and a margin for merges
        budget = self.config.data.max_length - self.max_new_tokens - overhead
        if budget < 8:
            raise ValueError(f"data.max_length {self.config.data.max_length} leaves {budget} text tokens after "
                             f"{self.max_new_tokens} new tokens and the prompt; raise data.max_length")
        return budget

    def empty_prompts(self) -> list[str]:
        """The prompts this family writes, around an empty text (their tokens are each window's overhead)."""
        return [""]

    def prompt_ids(self, prompt: str) -> list[int]:
        """The prompt as a server tokenizes it (the tokenizer's own BOS included), so served completions match."""
        return self.tokenizer(prompt)["input_ids"]

    def features(self, prompt: str, completion: str) -> dict[str, Any]:
        """input_ids = prompt + completion + eos; labels = the completion and eos (the prompt masked)."""
        prompt_ids = self.prompt_ids(prompt)
        target = self.tokenizer(completion, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
        return {"input_ids": prompt_ids + target, "labels": [IGNORE] * len(prompt_ids) + target,
                "prompt_length": len(prompt_ids)}

    def input_length(self, features: dict[str, Any]) -> int:
        """The prompt's tokens: what generation reads (input_ids also hold the gold completion, which must not
        decide which sentences share a batch)."""
        return features["prompt_length"]

    def collate(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Prompt + completion padded right (the loss), and the prompts alone padded left (generation)."""
        pad = self.tokenizer.pad_token_id
        ids = [f["input_ids"] for f in features]
        prompts = [f["input_ids"][: f["prompt_length"]] for f in features]
        return {
            "input_ids": pad_right(ids, pad),
            "attention_mask": pad_right([[1] * len(i) for i in ids], 0),
            "labels": pad_right([f["labels"] for f in features], IGNORE),
            "prompt_ids": pad_left(prompts, pad),
            "prompt_mask": pad_left([[1] * len(p) for p in prompts], 0),
        }

    def head_at_labels(self, model: nn.Module) -> bool:
        """Whether the loss runs the output head at the completion's positions only: a model of PLAIN_HEAD_TYPES,
        trained with PEFT or fully (Unsloth computes its own loss). A small LM's head is a large share of its
        compute (SmolLM2-135M: 28M of its 135M weights, 49K logits a token), and most positions are the prompt's.
        Decided at the first step (a family trains one model): no wrapper walk or package lookup at every step."""
        if self._head_at_labels is None:
            model_type = getattr(causal_lm_inside(model).config, "model_type", None)
            self._head_at_labels = model_type in PLAIN_HEAD_TYPES and not use_unsloth(self.config.model.backend)
        return self._head_at_labels

    def lm_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, Any], Any]:
        """(the mean cross-entropy of the completion's tokens, {"next_tokens": the model's own next token at each of
        them, IGNORE elsewhere: what the fast dev metric reads}, the forward's output).

        `model` is the LM, possibly wrapped (DDP, DeepSpeed, a head beside it: its forward takes the LM's keywords);
        the forward runs through the wrappers, so that they see it. With `head_at_labels`, it stops the head at one
        position and the head then reads the last hidden state at the completion's positions only: the same loss
        without the prompt's logits."""
        inputs, labels = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}, batch["labels"]
        if not self.head_at_labels(model):
            out = model(**inputs, labels=labels)
            return out.loss, {"next_tokens": self.teacher_forced(out.logits, labels)}, out
        out = model(**inputs, output_hidden_states=True, logits_to_keep=1)
        target = labels[:, 1:]
        keep = target != IGNORE
        logits = causal_lm_inside(model).get_output_embeddings()(out.hidden_states[-1][:, :-1][keep])
        loss = nn.functional.cross_entropy(logits.float(), target[keep])
        return loss, {"next_tokens": torch.full_like(target, IGNORE).masked_scatter(keep, logits.argmax(-1))}, out

    def teacher_forced(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The model's own next token at every labelled position (given the gold prefix), IGNORE elsewhere: the
        fast dev metric reads these as if generated."""
        predicted = logits[:, :-1].argmax(-1)
        target = labels[:, 1:]
        return torch.where(target != IGNORE, predicted, torch.full_like(predicted, IGNORE))

    @torch.no_grad()
    def generate(self, lm: nn.Module, batch: dict[str, torch.Tensor], logits_processor: Any = None,
                 max_new_tokens: int | None = None, temperature: float = 0.0, top_p: float = 1.0) -> torch.Tensor:
        """New tokens for the batch's prompts (left padded, KV cache), up to and with the first eos; IGNORE after
        it. Greedy (what evaluation uses) unless `temperature` > 0 (sampling, for a served request asking for it)."""
        from transformers import LogitsProcessorList

        eos = self.tokenizer.eos_token_id
        prompt = batch["prompt_ids"]
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": None} if temperature > 0 else \
            {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        with generation_weights(lm):
            out = lm.generate(input_ids=prompt, attention_mask=batch["prompt_mask"], num_beams=1, pad_token_id=eos,
                              max_new_tokens=max_new_tokens or self.max_new_tokens, eos_token_id=eos, use_cache=True,
                              logits_processor=LogitsProcessorList([logits_processor] if logits_processor else []),
                              **sampling)
        new = out[:, prompt.size(1):]
        after_eos = (new == eos).long().cumsum(1) - (new == eos).long() > 0  # positions past the first eos
        return new.masked_fill(after_eos, IGNORE)

    def lm_rows(self, lm: nn.Module, outputs: dict[str, Any], batch: dict[str, torch.Tensor],
                processor: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`decode`'s rows for a causal LM: (teacher-forced next tokens at the completion's positions, greedy new
        tokens, or one IGNORE column when this evaluation decodes fast only: see `set_full_decoding`)."""
        fast = outputs["next_tokens"]
        if not self.full_decoding:
            return fast, torch.full((fast.size(0), 1), IGNORE, dtype=torch.long, device=fast.device)
        return fast, self.generate(lm, batch, processor)

    def set_full_decoding(self, full: bool) -> None:
        self.full_decoding = full

    def prediction_outputs(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Decoding greedily, with no token head to read the forward, a prediction reads the greedy rows alone: the
        teacher-forced forward (a fifth of a prediction's time, and over windows read from the text alone there is
        no completion to teacher-force) is skipped and the fast rows are IGNORE. Its fast_f1 is the Trainer's."""
        if not self.full_decoding or self.token_head:
            return self.loss(model, batch)[1]
        labels = batch["labels"]
        return {"next_tokens": torch.full_like(labels[:, 1:], IGNORE)}

    @contextlib.contextmanager
    def predicting(self, model: nn.Module) -> Iterator[None]:
        """The adapter merged and the weights cast (`weights_cast_once`) once for the whole prediction, not once per
        batch's `generate`: a sentence at a time, merging all-linear LoRA cost about as much as generating."""
        with generation_weights(self.causal_lm(model)):
            yield

    @staticmethod
    def generated(row: Any) -> bool:
        """Whether a row's greedy part holds generated tokens (else this evaluation read the teacher-forced ones)."""
        return bool((torch.as_tensor(row[1]) != IGNORE).any())

    def output_text(self, row: Any) -> tuple[str, bool]:
        """(the completion this evaluation reads: greedy where generated, else teacher-forced; whether the greedy
        output ran out of max_new_tokens). A truncated output loses its last ';'-separated item, which may be cut short."""
        if not self.generated(row):
            return self.completion(row[0]), False
        ids = [int(i) for i in row[1] if int(i) != IGNORE]
        if self.tokenizer.eos_token_id in ids:
            return self.completion(ids), False
        return self.completion(ids).rpartition(";")[0], True

    # ------------------------------------------------------------------------------------------- serving
    def causal_lm(self, model: nn.Module) -> nn.Module:
        """The causal LM inside a model this family built (the model itself unless a subclass wraps it)."""
        return model

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        """A conversation rendered with the model's chat template up to the assistant's turn (Serve's chat route)."""
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def prompt_grammar(self, prompt: str) -> str | None:
        """The grammar a served completion of `prompt` is decoded under, as evaluation decodes it; None: free text."""
        return None

    def example_prompt(self, example: Any) -> tuple[list[int], str | None]:
        """An inference example's prompt tokens, and the grammar its completion is decoded under (None: free text),
        for an engine that generates outside `decode` (vLLM)."""
        features = example.features
        return features["input_ids"][: features["prompt_length"]], None

    def generated_row(self, ids: list[int]) -> Any:
        """The row `decode` gives for an example whose completion another engine generated (`ids`, with the eos
        where it stopped), so `spans`, `window_info` and `extra_metrics` read it as they read their own."""
        return (torch.tensor([IGNORE]), torch.tensor(ids or [IGNORE]))

    def grammar_processor(self, lm: nn.Module, grammars: list[str]) -> Any:
        """A logits processor holding row i of a generate call to `grammars[i]` (a family with grammars builds it)."""
        raise NotImplementedError(f"family {self.name} decodes free text: it has no grammars")

    def completion(self, row: Any) -> str:
        """The text of a generated or teacher-forced row (IGNORE and special tokens dropped)."""
        ids = [int(i) for i in row if int(i) != IGNORE]
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def merged(self, lm: nn.Module) -> nn.Module:
        """A plain causal LM with the LoRA update and the trained token rows folded into its weights (a copy of
        a full fine-tune as it is), for `ner-ray export --merge`: transformers and vLLM load it without PEFT."""
        merged = peft_seam.merged_model(lm) if peft_seam.is_peft(lm) else lm
        merged.generation_config.pad_token_id = self.tokenizer.eos_token_id
        merged.generation_config.eos_token_id = self.tokenizer.eos_token_id
        merged.generation_config.do_sample = False  # greedy, as evaluation decodes
        for key in ("temperature", "top_p", "top_k"):
            setattr(merged.generation_config, key, None)
        return merged
