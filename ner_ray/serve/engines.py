"""Serve's inference engines (registered in ner_ray.registry.ENGINES, imported lazily): what runs the model behind
the routes. `hf` runs a saved ner_ray model of any family in process with transformers: batched greedy (or sampled)
generation for a causal LM, left padded with the KV cache, decoded under the family's grammar when the prompt is
the family's own; tagging and scoring through ner_ray.inference, so /v1/ner/evaluate gives `ner-ray evaluate`'s
numbers. One engine call runs at a time (torch uses every core already); Serve's batching fills the calls.
`vllm` (serve/vllm_engine.py) batches concurrent prompts itself.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ner_ray.data.document import Document

if TYPE_CHECKING:
    from ner_ray.inference.evaluate import Progress


@dataclass(frozen=True)
class Generation:
    """How one prompt is completed; prompts with the same settings share an engine call."""

    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    adapter: str | None = None  # the served model id whose adapter generates (engines serving several adapters)


@dataclass(frozen=True)
class Prompt:
    """A prompt's tokens, and the grammar its completion is decoded under (None: free text)."""

    ids: tuple[int, ...]
    grammar: str | None = None


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (eos or a stop string) or "length" (max_tokens reached)


class Engine(Protocol):
    """An engine serves one saved model, `Engine(model_dir)`, or LoRA adapters on one base model, `Engine(model_dir,
    {model id: model folder})` (model_dir the first's); `adapter` names the one a call uses (None: the first)."""

    name: str
    generates_text: bool
    continuous: bool  # True: it batches concurrent prompts itself, awaited with `agenerate`; False: Serve's batches fill `generate`'s calls
    context: int | None  # the most tokens a prompt and its completion may hold together (None: no known limit)
    calls: int  # engine calls so far (generate batches, tag and evaluate requests): batching shows here

    def encode_prompt(self, prompt: str) -> Prompt: ...

    def encode_chat(self, messages: list[dict[str, str]]) -> Prompt: ...

    def generate(self, prompts: list[Prompt], settings: Generation) -> list[Completion]: ...

    def tag(self, documents: list[Document], adapter: str | None = None) -> list[Document]: ...

    def evaluate(self, documents: list[Document], corpus: str, split: str, types: list[str], adapter: str | None = None,
                 progress: Progress | None = None) -> dict[str, Any]:
        """`ner-ray evaluate`'s scores JSON for gold `documents` of `split` of `corpus` (names for the record), scored
        on `types`; `progress(done, total)` after every chunk of documents predicted, where given."""
        ...


class FamilyPrompts:
    """Prompts as the served model's family writes them (an engine sets `family` and `model_dir`)."""

    family: Any
    model_dir: Path

    def encode_prompt(self, prompt: str) -> Prompt:
        """A completion prompt's tokens as training tokenized prompts (the tokenizer's BOS included), and the family's
        grammar for it (a span_gen prompt of the family's own form is decoded as evaluation decodes it)."""
        return Prompt(tuple(self.family.prompt_ids(prompt)), self.family.prompt_grammar(prompt))

    def encode_chat(self, messages: list[dict[str, str]]) -> Prompt:
        """A conversation rendered with the model's chat template, ready for the assistant's turn."""
        tokenizer = self.family.tokenizer
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"model {self.model_dir.name} has no chat template: use /v1/completions")
        text = self.family.chat_prompt(messages)
        return Prompt(tuple(tokenizer(text, add_special_tokens=False)["input_ids"]))


class HfEngine(FamilyPrompts):
    """transformers in process, on CPU (or the GPU the model was loaded to), at the precision the model trained in."""

    name = "hf"
    continuous = False  # one batched generate call at a time: Serve's batches fill it

    def __init__(self, model_dir: str | Path, adapters: dict[str, str | Path] | None = None):
        from ner_ray.inference.model_files import load_model

        self.model_dir = Path(model_dir)
        self.loaded = load_model(model_dir)
        on_gpu_if_any(self.loaded.model)
        self.family = self.loaded.family
        self.generates_text = bool(self.family.generates_text)
        lm = self.family.causal_lm(self.loaded.model) if self.generates_text else None
        self.adapters = load_adapters(lm, adapters) if adapters else {}
        self.folders = {model_id: Path(folder) for model_id, folder in (adapters or {}).items()}
        self.context = getattr(getattr(lm, "config", None), "max_position_embeddings", None)  # prompt + new tokens
        self.calls = 0
        self._lock = threading.Lock()

    # ---------------------------------------------------------------------------------------- generation
    def generate(self, prompts: list[Prompt], settings: Generation) -> list[Completion]:
        """Completions in prompt order: one batched generate call for the free prompts, one for the constrained."""
        import torch

        from ner_ray.families.generative import IGNORE, pad_left
        from ner_ray.inference.predict import autocast

        family, lm = self.family, self.family.causal_lm(self.loaded.model)
        eos, pad = family.tokenizer.eos_token_id, family.tokenizer.pad_token_id
        results: dict[int, Completion] = {}
        device = next(lm.parameters()).device
        with self._lock:
            self.calls += 1
            self._use(settings.adapter)
            for constrained in (False, True):
                rows = [i for i, p in enumerate(prompts) if (p.grammar is not None) == constrained]
                if not rows:
                    continue
                ids = [list(prompts[i].ids) for i in rows]
                batch = {"prompt_ids": pad_left(ids, pad).to(device), "prompt_mask": pad_left([[1] * len(p) for p in ids], 0).to(device)}
                processor = family.grammar_processor(lm, [prompts[i].grammar for i in rows]) if constrained else None
                if settings.seed is not None:
                    torch.manual_seed(settings.seed)
                with torch.no_grad(), autocast(self.loaded.precision, device.type):
                    out = family.generate(lm, batch, processor, settings.max_tokens, settings.temperature, settings.top_p)
                for i, row in zip(rows, out.tolist()):
                    new = [t for t in row if t != IGNORE]
                    results[i] = Completion(family.completion(new), len(prompts[i].ids), len(new),
                                            "stop" if eos in new else "length")
        return [results[i] for i in range(len(prompts))]

    # ------------------------------------------------------------------------------------ tagging, scoring
    def tag(self, documents: list[Document], adapter: str | None = None) -> list[Document]:
        from ner_ray.inference.predict import predict_documents

        with self._lock:
            self.calls += 1
            self._use(adapter)
            return predict_documents(self.loaded, documents)

    def evaluate(self, documents: list[Document], corpus: str, split: str, types: list[str], adapter: str | None = None,
                 progress: Progress | None = None) -> dict[str, Any]:
        from ner_ray.inference.evaluate import score_model

        with self._lock:
            self.calls += 1
            self._use(adapter)
            result, _ = score_model(self.loaded, documents, types, corpus, split, progress=progress)
        return {"model": str(self.folders.get(adapter or "", self.model_dir)), **result}

    def _use(self, adapter: str | None) -> None:
        """Make `adapter`'s weights the active ones (the first's when None); a no-op for one model."""
        if self.adapters:
            self.family.causal_lm(self.loaded.model).set_adapter(self.adapters[adapter or next(iter(self.adapters))])


def on_gpu_if_any(model: Any) -> None:
    """Move a model loaded on the CPU to the GPU where this process sees one (the replica asked Ray for it,
    serve.gpus); a model already placed (bitsandbytes' 4/8-bit weights) stays where it is."""
    import torch

    if torch.cuda.is_available() and next(model.parameters()).device.type == "cpu":
        model.to("cuda")


def load_adapters(lm: Any, adapters: dict[str, str | Path]) -> dict[str, str]:
    """{model id: PEFT adapter name} of `adapters` ({model id: model folder}) loaded into `lm`, the PeftModel of the
    first of them (already loaded as its active adapter): the others beside it, from their adapter folders."""
    from ner_ray.families.generative import ADAPTER_DIR
    from ner_ray.families.peft import is_peft, load_named_adapter

    if lm is None or not is_peft(lm):
        raise ValueError("several adapters are served on a causal LM with LoRA (family span_gen or instruct with model.lora)")
    names = {}
    for i, (model_id, folder) in enumerate(adapters.items()):
        if i == 0:
            names[model_id] = lm.active_adapter
            continue
        names[model_id] = f"served{i}"
        load_named_adapter(lm, Path(folder) / ADAPTER_DIR, names[model_id])
    lm.eval()
    return names


def resolve_engine(name: str, model_dir: str | Path, models: int = 1) -> str:
    """serve.engine made concrete: auto is vllm for a causal-LM model where vLLM is installed (several adapters on one
    base: vLLM's LoRA requests, unless the family adds tokens, whose rows only the hf engine's switching carries), hf
    otherwise."""
    import importlib.util

    from ner_ray.artifacts import read_model_meta
    from ner_ray.registry import ENGINES, FAMILIES

    if name != "auto":
        ENGINES.get(name)  # an unknown name lists the valid ones
        return name
    family = FAMILIES.get(read_model_meta(model_dir)["family"])
    if models > 1 and (not family.generates_text or family.special_tokens):
        return "hf"  # vLLM's LoRA requests cannot carry the rows of added tokens (span_gen): hf switches adapters itself
    return "vllm" if family.generates_text and importlib.util.find_spec("vllm") is not None else "hf"
